"""Reading a stream: :class:`ReadSession` (``_session``) decides every request and what its
answer means, free of I/O; ``_delivery`` hands a batch's items out one by one without losing
any; ``_response_async`` is the driver, the stream response of ``astream()``, and
``_response_sync`` its generated twin, the one of ``stream()``."""
