"""Command line: ``durable-streams`` (also ``python -m durable_streams``).

``serve`` runs the embedded server and prints its URL, alone, on the first line of stdout;
it stops on Ctrl+C or SIGTERM. ``create``, ``append``, ``read``, ``head``, ``close``,
``fork`` and ``delete`` work on streams (``_streams`` has them), ``subscription ...`` on
subscriptions (``_subs``), ``state materialize`` on State Protocol streams (``_state``);
``bench`` load-tests a server (``_bench``); ``_common`` has the shared options and exit
statuses, ``_serve`` the server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from . import _bench, _state, _streams, _subs
from ._serve import _DEFAULT_PORT, _serve


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="durable-streams",
        description="Durable Streams from a shell: work on streams, or serve them.",
        epilog="Exit status: 0 done, 1 refused or failed, 2 bad command line, 3 no such "
        "stream, 4 server unreachable, 5 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"durable-streams {__version__}")
    parser.add_argument(
        "--auth",
        default=None,
        metavar="VALUE",
        help="the Authorization header of every request (also after the command; default: "
        "$DURABLE_STREAMS_AUTH, else $STREAM_AUTH); never printed",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _streams.add_commands(commands)
    _bench.add_command(commands)
    _subs.add_commands(commands)
    _state.add_commands(commands)
    serve = commands.add_parser(
        "serve",
        help="run a local Durable Streams server",
        description="Run the embedded Durable Streams server; its URL goes to stdout.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=int,
        default=_DEFAULT_PORT,
        help=f"port to bind; 0 picks a free one (default {_DEFAULT_PORT})",
    )
    serve.add_argument(
        "--data",
        metavar="PATH",
        default=None,
        help="SQLite data file that keeps streams across restarts (default: in memory)",
    )
    serve.add_argument(
        "--long-poll-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a long-poll waits; also the SSE keep-alive interval (default 30)",
    )
    serve.add_argument(
        "--sse-reconnect",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="end SSE responses after this long so readers reconnect (default 60)",
    )
    serve.add_argument(
        "--fault-injection",
        action="store_true",
        help="enable POST/DELETE /_test/inject-error (for testing clients)",
    )
    serve.add_argument(
        "--webhooks",
        action="store_true",
        help="let subscriptions deliver by webhook (needs the cryptography package)",
    )
    proxy = serve.add_argument_group(
        "durable proxy",
        "serve the durable proxy (PROXY_PROTOCOL.md) under /v1/proxy, its streams on this "
        "server under /v1/stream/proxy/ unless --proxy-streams says otherwise",
    )
    proxy.add_argument(
        "--proxy-secret",
        metavar="SECRET",
        default=None,
        help="sign read URLs and authenticate service calls with SECRET (default: the "
        "DURABLE_STREAMS_PROXY_SECRET environment variable); the proxy runs when one is set",
    )
    proxy.add_argument(
        "--proxy-allow",
        metavar="PATTERN",
        action="append",
        default=[],
        help="an upstream origin or URL pattern the proxy may fetch (* within a path segment, "
        "** anything); repeat for more; none: every upstream is refused",
    )
    proxy.add_argument(
        "--proxy-streams",
        metavar="URL",
        default=None,
        help="the Durable Streams URL under which the proxy keeps its streams",
    )
    proxy.add_argument(
        "--proxy-url-ttl",
        type=int,
        default=24 * 3600,
        metavar="SECONDS",
        help="how long a pre-signed read URL is valid (default 86400)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bench":
        return _bench.run(args, sys.stdout, sys.stderr)
    if args.command == "subscription":
        return _subs.run(args, sys.stdin, sys.stdout, sys.stderr)
    if args.command == "state":
        return _state.run(args, sys.stdin, sys.stdout, sys.stderr)
    if args.command != "serve":
        return _streams.run(args, sys.stdin, sys.stdout, sys.stderr)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"durable-streams: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
