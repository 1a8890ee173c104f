"""The stream commands of ``durable-streams``: create, append, read (and follow), head, close,
fork and delete, from a shell.

Streams are named by URL, or by a path under a base URL (``--url`` or
``DURABLE_STREAMS_URL``). JSON streams are read and written as NDJSON, one message per line;
other streams as bytes. Errors and exit statuses: see ``_common``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .. import _errors as errors
from .._errors import FailedBatch
from .._protocol import DEFAULT_CONTENT_TYPE, is_json_content_type
from .._reading._response_sync import stream
from .._writing._handle_sync import DurableStream
from .._writing._producer_threaded import SyncIdempotentProducer
from . import _common as common
from ._common import EXIT, JSON, InputError, headers, retry, url

__all__ = ["EXIT", "add_commands", "run"]

_PROGRESS_EVERY = 0.25  # seconds between progress lines on a terminal


def add_commands(commands: Any) -> None:
    """The stream commands, on the ``durable-streams`` parser's subcommands."""

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return common.command(commands, name, help)

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
        type=common.count,
        metavar="N",
        help="also inherit N messages (JSON streams) or bytes past --offset",
    )
    fork.add_argument(
        "--ttl", type=int, metavar="SECONDS", help="delete the fork after this idle time"
    )
    fork.add_argument("--expires-at", metavar="RFC3339", help="delete the fork at this time")

    delete = command("delete", "delete a stream")
    delete.add_argument("stream")


def _handle(args: argparse.Namespace, name: str) -> DurableStream:
    return DurableStream(
        url(args, name), headers=headers(args), timeout=args.timeout, retry=retry(args)
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
        retry=retry(args),
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
        url(args, args.stream),
        offset=args.offset,
        live=live,
        headers=headers(args),
        timeout=args.timeout,
        retry=None if args.follow else retry(args),
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
    return common.run(args, stderr, lambda: _run(args, stdin, stdout, stderr))


def _run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    if args.command == "create":
        content_type = JSON if args.json else args.content_type
        DurableStream.create(
            url(args, args.stream),
            content_type=content_type,
            ttl_seconds=args.ttl,
            expires_at=args.expires_at,
            closed=args.closed,
            headers=headers(args),
            timeout=args.timeout,
            retry=retry(args),
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
                url(args, args.new),
                offset=args.offset,
                sub_offset=args.sub_offset,
                ttl_seconds=args.ttl,
                expires_at=args.expires_at,
            ).close()
    elif args.command == "delete":
        with _handle(args, args.stream) as handle:
            handle.delete()
    return EXIT["ok"]
