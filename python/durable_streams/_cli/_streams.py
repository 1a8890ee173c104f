"""The stream commands of ``durable-streams``: create, append, read (and follow), head, close,
fork and delete, from a shell.

Streams are named by URL, or by a path under a base URL (``--url`` or
``DURABLE_STREAMS_URL``). JSON streams are read and written as NDJSON, one message per line;
other streams as bytes. Errors are one line on stderr and an exit status:

====  ===============================================================================
0     done
1     the server refused (a conflict, a closed stream, ...) or another failure
2     the command line is wrong (also: a URL or a header that cannot be sent)
3     no such stream
4     the server could not be reached (connection refused, timed out)
5     the input is not valid (a line of NDJSON that is not JSON: its number is named)
130   interrupted (Ctrl+C)
====  ===============================================================================
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .. import _errors as errors
from .._errors import FailedBatch
from .._protocol import DEFAULT_CONTENT_TYPE, is_json_content_type, join_url
from .._reading._response_sync import stream
from .._retry import RetryPolicy
from .._writing._handle_sync import DurableStream
from .._writing._producer_threaded import SyncIdempotentProducer

__all__ = ["EXIT", "add_commands", "run"]

EXIT = {"ok": 0, "failed": 1, "usage": 2, "not-found": 3, "unreachable": 4, "bad-input": 5}
INTERRUPTED = 130
JSON = "application/json"
_PROGRESS_EVERY = 0.25  # seconds between progress lines on a terminal
# A command at a shell gives up on an unreachable server within seconds, not a minute, but
# rides out a server restart: this long by default (--retry-for), tries at most 1 s apart.
_RETRY_FOR = 10.0


def _retry(args: argparse.Namespace) -> RetryPolicy:
    seconds = args.retry_for
    if seconds == 0:
        return RetryPolicy.never()
    return RetryPolicy(max_retries=None, max_delay=1.0, deadline=seconds)


class InputError(Exception):
    """The user's input (a line of NDJSON, a header) is not valid."""


def add_commands(commands: Any) -> None:
    """The stream commands, on the ``durable-streams`` parser's subcommands."""

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help, description=help)
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
            help="a header for every request (repeatable), e.g. -H 'Authorization: Bearer T'",
        )
        parser.add_argument(
            "--auth",
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help="the Authorization header of every request, e.g. --auth 'Bearer T' (default: "
            "$DURABLE_STREAMS_AUTH, else $STREAM_AUTH); never printed",
        )
        parser.add_argument("--timeout", type=_seconds, default=30.0, help="seconds (default 30)")
        parser.add_argument(
            "--retry-for",
            type=float,
            default=_RETRY_FOR,
            metavar="SECONDS",
            help="keep retrying what failed on the way (server down or restarting) for this "
            f"long (default {_RETRY_FOR:g}; 0: never retry)",
        )
        parser.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            help="show retries, reconnects and epoch moves on stderr (-vv: debug)",
        )
        return parser

    create = command("create", "create a stream (or confirm an identical one)")
    create.add_argument("stream", help="the stream's URL, or a path under --url")
    kind = create.add_mutually_exclusive_group()
    kind.add_argument("--content-type", default=DEFAULT_CONTENT_TYPE)
    kind.add_argument("--json", action="store_true", help="short for --content-type " + JSON)
    create.add_argument("--ttl", type=int, metavar="SECONDS", help="delete after this idle time")
    create.add_argument("--expires-at", metavar="RFC3339", help="delete at this time")
    create.add_argument("--closed", action="store_true", help="create it closed")

    append = command(
        "append",
        "append DATA, or stdin: NDJSON lines to a JSON stream, lines (or --raw bytes) to others",
    )
    append.add_argument("stream")
    append.add_argument(
        "data", nargs="*", help="messages (JSON text on JSON streams, else lines of text)"
    )
    append.add_argument("--raw", action="store_true", help="stdin as raw bytes, not lines")
    append.add_argument(
        "--batch-json",
        action="store_true",
        help="a JSON array (an argument or a line) is one message per element: [1,[2]] "
        "appends 1 and [2]",
    )
    append.add_argument(
        "--producer-id",
        metavar="ID",
        help="name this input: a rerun of the same input with the same id after a failure or "
        "Ctrl+C skips what earlier runs appended and appends the rest, none of it twice",
    )
    append.add_argument(
        "--state",
        metavar="FILE",
        help="where --producer-id keeps its progress (default: a file named after the stream "
        "and id under $DURABLE_STREAMS_STATE_DIR, else $XDG_STATE_HOME/durable-streams, "
        "else ~/.local/state/durable-streams)",
    )
    append.add_argument("--quiet", "-q", action="store_true", help="no progress on a terminal")

    read = command("read", "print a stream: JSON ones as NDJSON, others as bytes")
    read.add_argument("stream")
    read.add_argument("--offset", default="-1", help="where to start (default -1: the beginning)")
    read.add_argument("-f", "--follow", action="store_true", help="keep tailing until Ctrl+C")
    read.add_argument("--live", choices=("sse", "long-poll"), help="how to follow")

    head = command("head", "show a stream's metadata")
    head.add_argument("stream")
    head.add_argument("--json", action="store_true", help="as one JSON object")

    close = command("close", "close a stream (with DATA as its last message)")
    close.add_argument("stream")
    close.add_argument("data", nargs="?")

    fork = command("fork", "create NEW as a fork of STREAM (its data up to --offset)")
    fork.add_argument("stream")
    fork.add_argument("new")
    fork.add_argument("--offset", help="the fork point (default: the tail)")
    fork.add_argument(
        "--sub-offset",
        type=_count,
        metavar="N",
        help="also inherit N messages (JSON streams) or bytes past --offset",
    )
    fork.add_argument(
        "--ttl", type=int, metavar="SECONDS", help="delete the fork after this idle time"
    )
    fork.add_argument("--expires-at", metavar="RFC3339", help="delete the fork at this time")

    delete = command("delete", "delete a stream")
    delete.add_argument("stream")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, not {text!r}")
    return value


def _url(args: argparse.Namespace, name: str) -> str:
    if name.startswith(("http://", "https://")):
        return name
    if not args.url:
        raise InputError(f"{name!r} is not a URL: give a full URL, or a base with --url")
    return join_url(args.url, name)


# Where the Authorization header comes from when no --auth is given: ours first, then the name
# the TypeScript CLI reads, so its scripts work unchanged.
AUTH_VARIABLES = ("DURABLE_STREAMS_AUTH", "STREAM_AUTH")


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


def _headers(args: argparse.Namespace) -> dict[str, str]:
    headers: dict[str, str] = {}
    for text in args.header:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            # Not quoted: it may be a credential given without its name.
            raise InputError("a header is 'Name: value'; -H got one without a name and a colon")
        headers[name.strip()] = value.strip()
    auth = _auth(args)
    if auth is not None:
        source, value = auth
        explicit = [name for name in headers if name.lower() == "authorization"]
        if explicit and source == "--auth":
            raise errors.UsageError("give the Authorization header once: --auth or -H, not both")
        if not explicit:
            headers["Authorization"] = value
    return headers


def _handle(args: argparse.Namespace, name: str) -> DurableStream:
    return DurableStream(
        _url(args, name), headers=_headers(args), timeout=args.timeout, retry=_retry(args)
    )


def _message(text: str, json_mode: bool, where: str) -> Any:
    if not json_mode:
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{where} is not JSON: {exc}") from None


def _messages(value: Any, batch: bool) -> list[Any]:
    """What one JSON input is: one message, or with --batch-json an array's elements (one
    level: [[1, 2]] is the message [1, 2]), as a server takes a JSON append's array."""
    return list(value) if batch and isinstance(value, list) else [value]


def _lines(source: TextIO) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(source, 1):
        text = line.rstrip("\r\n")
        if text.strip():
            yield number, text


class _Progress:
    """Messages, bytes and rate on one refreshed stderr line, on a terminal only."""

    def __init__(self, out: TextIO, enabled: bool) -> None:
        self._out = out
        self._enabled = enabled
        self.messages = 0
        self.bytes = 0
        self._start = time.monotonic()
        self._shown = 0.0

    def add(self, size: int) -> None:
        self.messages += 1
        self.bytes += size
        if self._enabled and time.monotonic() - self._shown >= _PROGRESS_EVERY:
            self.show()

    def show(self, final: bool = False) -> None:
        if not self._enabled:
            return
        self._shown = time.monotonic()
        elapsed = max(self._shown - self._start, 1e-9)
        line = (
            f"\r{self.messages:,} messages, {self.bytes / 1e6:,.1f} MB, "
            f"{self.messages / elapsed:,.0f} msg/s"
        )
        # Clear to the end of the line: a shorter rate must not leave the last one's tail.
        self._out.write(line + "\x1b[K" + ("\n" if final else ""))
        self._out.flush()


def _append(args: argparse.Namespace, stdin: TextIO, stderr: TextIO) -> int:
    if args.state and not args.producer_id:
        raise errors.UsageError("--state goes with --producer-id")
    handle = _handle(args, args.stream)
    with handle:
        handle.head()
        json_mode = is_json_content_type(handle.content_type)
        if args.batch_json and not json_mode:
            raise errors.UsageError(
                f"--batch-json is for JSON streams; this one is {handle.content_type}"
            )
        if args.data:
            for i, text in enumerate(args.data, 1):
                # Each argument is a line, as each line of stdin is.
                if not json_mode:
                    handle.append(text + "\n")
                    continue
                for message in _messages(_message(text, True, f"argument {i}"), args.batch_json):
                    handle.append(message)
            return EXIT["ok"]
        progress = _Progress(stderr, enabled=stderr.isatty() and not args.quiet)
        if args.raw:
            if args.batch_json:
                raise errors.UsageError("--batch-json takes lines of JSON, not --raw bytes")
            body = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
            if body:
                handle.append(body)
                progress.add(len(body))
            progress.show(final=True)
            return EXIT["ok"]
        return _append_lines(args, handle, json_mode, stdin, stderr, progress)


def state_file_for(url: str, producer_id: str) -> Path:
    """The default state file of ``append --producer-id``: one per stream and id."""
    folder = os.environ.get("DURABLE_STREAMS_STATE_DIR")
    if not folder:
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        folder = os.path.join(base, "durable-streams")
    key = hashlib.sha256(f"{errors.redact_url(url)}\0{producer_id}".encode()).hexdigest()
    return Path(folder) / "producers" / f"{key[:32]}.sqlite"


def _append_lines(
    args: argparse.Namespace,
    handle: DurableStream,
    json_mode: bool,
    stdin: TextIO,
    stderr: TextIO,
    progress: _Progress,
) -> int:
    """Lines of stdin through a gap-less producer: the stream holds a prefix of the input
    whatever happens. With --producer-id, a state file remembers how much of the input
    earlier runs took, and the batches still on their way; a rerun skips the former and the
    producer resends the latter under their old numbers, so each line is stored once."""
    producer_id = args.producer_id
    state: Path | None = None
    if producer_id:
        state = Path(args.state) if args.state else state_file_for(handle.url, producer_id)
        state.parent.mkdir(parents=True, exist_ok=True)
    producer = SyncIdempotentProducer(
        handle,
        producer_id=producer_id or f"cli-{os.getpid()}-{time.time_ns()}",
        state=state,
        retry=_retry(args),
    )
    skip = producer.messages_taken
    seen = 0
    try:
        with producer:
            for number, text in _lines(stdin):
                if args.batch_json:  # a line may hold many messages: count them
                    value = _message(text, True, f"line {number}")
                    for message in _messages(value, True):
                        seen += 1
                        if seen > skip:
                            producer.append_nowait(message)
                    if seen > skip:
                        progress.add(len(text) + 1)
                    continue
                seen += 1
                if seen <= skip:
                    continue
                message = _message(text, json_mode, f"line {number}")
                producer.append_nowait(message if json_mode else text + "\n")
                progress.add(len(text) + 1)
    except errors.UndeliveredError as exc:
        progress.show(final=True)
        count = sum(f.count for f in exc.failures)
        stderr.write(f"durable-streams: {count:,} message(s) were not appended: {exc.__cause__}\n")
        stderr.write(f"durable-streams: {_how_to_finish(producer_id, exc.failures)}\n")
        return EXIT["failed"]
    except KeyboardInterrupt:
        progress.show(final=True)
        if producer_id:
            stderr.write(f"durable-streams: interrupted; {_how_to_finish(producer_id, [])}\n")
        raise
    progress.show(final=True)
    if seen < skip:
        raise InputError(
            f"the input has {seen:,} message(s), but earlier runs with producer id "
            f"{producer_id!r} appended {skip:,}: it is not the input they appended (give "
            "other input another --producer-id)"
        )
    if skip:
        appended = seen - skip
        stderr.write(
            f"durable-streams: skipped the first {skip:,} message(s), appended by earlier runs "
            f"with producer id {producer_id!r}; appended {appended:,}\n"
        )
    return EXIT["ok"]


def _how_to_finish(producer_id: str | None, failures: list[FailedBatch]) -> str:
    if failures and isinstance(failures[0].error, errors.SequenceReusedError):
        return (
            f"producer id {producer_id!r} was used by a run whose state file is not here: pass "
            "that run's --state FILE, or name this input with another --producer-id"
        )
    if not producer_id:
        return (
            "the stream holds the input up to where it stopped, nothing after; "
            "with --producer-id, a rerun of the same input appends the rest"
        )
    if any(f.error.status is not None and not f.kept for f in failures[:1]):
        return (
            "the stream holds the input up to the refused message; fix it and rerun the "
            f"same command (--producer-id {producer_id}) to append the rest"
        )
    return (
        f"rerun the same command with the same input (--producer-id {producer_id}) to append "
        "the rest: what is stored already is skipped, nothing is appended twice"
    )


def _write_items(items: Iterable[Any], json_mode: bool, out: BinaryIO) -> None:
    for item in items:
        if json_mode:
            out.write(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode())
            out.write(b"\n")
        else:
            out.write(item)
        out.flush()


def _read(args: argparse.Namespace, stdout: BinaryIO) -> int:
    live: Any = (args.live or True) if args.follow else False
    if args.live and not args.follow:
        raise InputError("--live goes with --follow")
    with stream(
        _url(args, args.stream),
        offset=args.offset,
        live=live,
        headers=_headers(args),
        timeout=args.timeout,
        retry=None if args.follow else _retry(args),
    ) as res:
        content_type = res.content_type  # the first answer says, unless it was empty
        if content_type is None:
            with _handle(args, args.stream) as handle:
                content_type = handle.head().content_type
        json_mode = is_json_content_type(content_type)
        _write_items(res.iter_json() if json_mode else res.iter_bytes(), json_mode, stdout)
    return EXIT["ok"]


def _head(args: argparse.Namespace, stdout: TextIO) -> int:
    with _handle(args, args.stream) as handle:
        result = handle.head()
    facts = {
        "url": errors.redact_url(handle.url),
        "content_type": result.content_type,
        "offset": result.offset,
        "closed": result.closed,
        "ttl_seconds": result.ttl_seconds,
        "expires_at": result.expires_at,
        "etag": result.etag,
    }
    if args.json:
        stdout.write(json.dumps(facts) + "\n")
    else:
        for name, value in facts.items():
            if value is not None:
                stdout.write(f"{name}: {value}\n")
    return EXIT["ok"]


def run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """One stream command; the exit status."""
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
        return _run(args, stdin, stdout, stderr)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    try:
        if args.command == "create":
            content_type = JSON if args.json else args.content_type
            DurableStream.create(
                _url(args, args.stream),
                content_type=content_type,
                ttl_seconds=args.ttl,
                expires_at=args.expires_at,
                closed=args.closed,
                headers=_headers(args),
                timeout=args.timeout,
                retry=_retry(args),
            ).close()
        elif args.command == "append":
            return _append(args, stdin, stderr)
        elif args.command == "read":
            return _read(args, stdout.buffer if hasattr(stdout, "buffer") else stdout)  # type: ignore[arg-type]
        elif args.command == "head":
            return _head(args, stdout)
        elif args.command == "close":
            with _handle(args, args.stream) as handle:
                data = args.data
                if data is not None:
                    handle.head()
                    data = _message(data, is_json_content_type(handle.content_type), "DATA")
                result = handle.close_stream(data)
            stdout.write(f"closed at {result.offset}\n")
        elif args.command == "fork":
            with _handle(args, args.stream) as handle:
                handle.fork(
                    _url(args, args.new),
                    offset=args.offset,
                    sub_offset=args.sub_offset,
                    ttl_seconds=args.ttl,
                    expires_at=args.expires_at,
                ).close()
        elif args.command == "delete":
            with _handle(args, args.stream) as handle:
                handle.delete()
        return EXIT["ok"]
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
    except errors.StreamNotFoundError as exc:
        stderr.write(f"durable-streams: {exc}\n")
        return EXIT["not-found"]
    except errors.TransportError as exc:
        stderr.write(f"durable-streams: cannot reach the server: {exc}\n")
        return EXIT["unreachable"]
    except (errors.DurableStreamError, ValueError, TypeError) as exc:
        stderr.write(f"durable-streams: {exc}\n")
        return EXIT["failed"]
