"""The conformance adapter: run it with ``python -m conformance.adapter [--async]``."""
