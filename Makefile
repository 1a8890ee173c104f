PYTHON ?= python3

.PHONY: server
# Run the pinned reference server (installs it from the lockfile first if needed).
# Pass options through ARGS, e.g. `make server ARGS="--port 4437 --long-poll-timeout 5000"`.
server:
	$(PYTHON) refserver/launch.py $(ARGS)
