"""What every command of ``durable-streams`` that talks to a server shares: its options
(base URL, headers, auth, timeout, retries, verbosity), how it names streams, and how it turns
errors into one line on stderr and an exit status:

====  ===============================================================================
0     done
1     the server refused (a conflict, a closed stream, nothing to claim, ...) or another
      failure
2     the command line is wrong (also: a URL or a header that cannot be sent)
3     no such stream (or subscription)
4     the server could not be reached (connection refused, timed out)
5     the input is not valid (a line of NDJSON that is not JSON: its number is named)
130   interrupted (Ctrl+C)
====  ===============================================================================
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Callable
from typing import Any, TextIO

from .. import _errors as errors
from .._protocol import join_url
from .._retry import RetryPolicy

__all__ = [
    "AUTH_VARIABLES",
    "EXIT",
    "INTERRUPTED",
    "JSON",
    "InputError",
    "add_options",
    "count",
    "headers",
    "retry",
    "run",
    "url",
]

EXIT = {"ok": 0, "failed": 1, "usage": 2, "not-found": 3, "unreachable": 4, "bad-input": 5}
INTERRUPTED = 130
JSON = "application/json"
# A command at a shell gives up on an unreachable server within seconds, not a minute, but
# rides out a server restart: this long by default (--retry-for), tries at most 1 s apart.
RETRY_FOR = 10.0
# Where the Authorization header comes from when no --auth is given: ours first, then the name
# the TypeScript CLI reads, so its scripts work unchanged.
AUTH_VARIABLES = ("DURABLE_STREAMS_AUTH", "STREAM_AUTH")


class InputError(Exception):
    """The user's input (a line of NDJSON, a header) is not valid."""


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of every command that talks to a server, on its parser."""
    parser.add_argument(
        "--url",
        default=os.environ.get("DURABLE_STREAMS_URL"),
        help="base URL that stream paths are relative to (default: $DURABLE_STREAMS_URL)",
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header for every request (repeatable), e.g. -H 'X-Tenant: acme'",
    )
    parser.add_argument(
        "--auth",
        # Not set here unless given: the top-level parser's --auth stays.
        default=argparse.SUPPRESS,
        metavar="VALUE",
        help="the Authorization header of every request, e.g. --auth 'Bearer T' (default: "
        "$DURABLE_STREAMS_AUTH, else $STREAM_AUTH); never printed",
    )
    parser.add_argument("--timeout", type=_seconds, default=30.0, help="seconds (default 30)")
    parser.add_argument(
        "--retry-for",
        type=float,
        default=RETRY_FOR,
        metavar="SECONDS",
        help="keep retrying what failed on the way (server down or restarting) for this "
        f"long (default {RETRY_FOR:g}; 0: never retry)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show retries, reconnects and epoch moves on stderr (-vv: debug)",
    )
    return parser


def retry(args: argparse.Namespace) -> RetryPolicy:
    seconds = args.retry_for
    if seconds == 0:
        return RetryPolicy.never()
    return RetryPolicy(max_retries=None, max_delay=1.0, deadline=seconds)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def count(text: str) -> int:
    """An argument that is a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, not {text!r}")
    return value


def url(args: argparse.Namespace, name: str) -> str:
    """The URL of the stream ``name``: a full URL, or a path under the base URL."""
    if name.startswith(("http://", "https://")):
        return name
    if not args.url:
        raise InputError(f"{name!r} is not a URL: give a full URL, or a base with --url")
    return join_url(args.url, name)


def _auth(args: argparse.Namespace) -> tuple[str, str] | None:
    """The Authorization value and where it came from: --auth, else the first variable set."""
    given = getattr(args, "auth", None)
    if given is not None:
        source, value = "--auth", given
    else:
        found = [(name, os.environ[name]) for name in AUTH_VARIABLES if name in os.environ]
        if not found:
            return None
        source, value = found[0]
    if not value.strip():
        raise errors.UsageError(f"{source} is empty: give an Authorization value, e.g. 'Bearer T'")
    return source, value.strip()


def headers(args: argparse.Namespace) -> dict[str, str]:
    """The headers of every request: ``-H``, and the Authorization value of ``--auth`` or the
    environment (an explicit ``-H Authorization`` is kept over the environment's)."""
    found: dict[str, str] = {}
    for text in args.header:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            # Not quoted: it may be a credential given without its name.
            raise InputError("a header is 'Name: value'; -H got one without a name and a colon")
        found[name.strip()] = value.strip()
    auth = _auth(args)
    if auth is not None:
        source, value = auth
        explicit = any(name.lower() == "authorization" for name in found)
        if explicit and source == "--auth":
            raise errors.UsageError("give the Authorization header once: --auth or -H, not both")
        if not explicit:
            found["Authorization"] = value
    return found


def run(
    args: argparse.Namespace,
    stderr: TextIO,
    work: Callable[[], int],
) -> int:
    """``work()`` (one command) with the library's log on stderr under ``-v``; its exit
    status, or the one of the error it raised, told in one line on stderr."""
    # The library's log (see durable_streams._log) on stderr with -v, for this command only.
    # Without it, a handler that shows nothing: else Python's last-resort handler prints
    # the library's warnings (a retry, then success) beside the command's own one line.
    logger = logging.getLogger("durable_streams")
    handler: logging.Handler = logging.NullHandler()
    level = logger.level
    if args.verbose:
        handler = logging.StreamHandler(stderr)
        handler.setFormatter(logging.Formatter("durable-streams: %(levelname)s: %(message)s"))
        logger.setLevel(logging.INFO if args.verbose == 1 else logging.DEBUG)
    logger.addHandler(handler)
    try:
        return _exit_status(stderr, work)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _exit_status(stderr: TextIO, work: Callable[[], int]) -> int:
    try:
        return work()
    except KeyboardInterrupt:
        stderr.write("\n")
        return INTERRUPTED
    except BrokenPipeError:  # `read ... | head`: the reader went away, nothing more to say
        return EXIT["ok"]
    except InputError as exc:
        stderr.write(f"durable-streams: {exc}\n")
        return EXIT["bad-input"]
    except errors.UsageError as exc:  # a URL or header that cannot work: the command line
        stderr.write(f"durable-streams: {exc}\n")
        return EXIT["usage"]
    except (errors.StreamNotFoundError, errors.SubscriptionNotFoundError) as exc:
        stderr.write(f"durable-streams: {exc}\n")
        return EXIT["not-found"]
    except errors.TransportError as exc:
        stderr.write(f"durable-streams: cannot reach the server: {exc}\n")
        return EXIT["unreachable"]
    except (errors.DurableStreamError, ValueError, TypeError) as exc:
        stderr.write(f"durable-streams: {exc}\n")
        return EXIT["failed"]


def command(commands: Any, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand with the shared options."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help, description=help)
    return add_options(parser)
