"""Writing a stream: the handle (``_handle`` builds each request, free of I/O;
``_handle_async`` sends it, ``_handle_sync`` is generated from it) and the idempotent producer
(``_sequencer`` decides every batch and what its answer means, free of I/O;
``_producer_async`` drives it; ``_producer_threaded`` runs that driver on a loop thread;
``_state_file`` keeps what a restarted producer needs)."""
