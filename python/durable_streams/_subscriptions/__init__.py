"""Subscriptions (PROTOCOL.md sections 6 and 7): ``_rules`` says what each call sends and what
its answer means, free of I/O; ``_client_async`` holds :class:`AsyncSubscriptions` and the
at-least-once consumer, and ``_client_sync`` is generated from it."""
