"""``durable-streams subscription``: subscriptions (PROTOCOL.md sections 6 and 7) from a shell.

``create``, ``get``, ``delete``, ``add-streams`` and ``remove-stream`` manage them; ``claim``
prints a claimed wake as JSON (its token authorizes the acks), which ``ack`` and ``release``
read back (``--claim FILE``, or stdin); ``consume`` is the whole at-least-once consumer: it
prints each message as a line of JSON and acknowledges a batch once its lines are written.
The base URL (``--url`` or ``DURABLE_STREAMS_URL``) is the server's stream root, the URL
stream paths are relative to (``http://host/v1/stream`` on the reference server)."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import socket
from typing import Any, TextIO

from .._subscriptions._client_sync import Subscriptions
from .._values import Claim, PendingStream, SubscriptionMessage, SubscriptionType
from . import _common as common
from ._common import EXIT, InputError, headers, retry

__all__ = ["add_commands", "run"]


def add_commands(commands: Any) -> None:
    """``subscription`` and its subcommands, on the ``durable-streams`` parser's subcommands."""
    group = commands.add_parser(
        "subscription",
        help="subscriptions: create, get, delete, add-streams, remove-stream, claim, ack, "
        "release, consume",
        description="Work on the subscriptions of the server whose stream root is --url.",
    )
    actions = group.add_subparsers(dest="action", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser = common.command(actions, name, help)
        parser.add_argument("id", help="the subscription's id")
        return parser

    create = action("create", "create a subscription (or confirm an identical one)")
    create.add_argument(
        "--pattern", metavar="GLOB", help="stream paths to follow: * one segment, ** any"
    )
    create.add_argument(
        "--stream",
        dest="streams",
        action="append",
        metavar="PATH",
        help="a stream path to follow (repeatable)",
    )
    create.add_argument(
        "--type",
        choices=("pull-wake", "webhook"),
        help="how it wakes its workers (default: webhook with --webhook-url, else pull-wake)",
    )
    create.add_argument("--wake-stream", metavar="PATH", help="a pull-wake's wake stream (JSON)")
    create.add_argument("--webhook-url", metavar="URL", help="a webhook's endpoint")
    create.add_argument(
        "--lease-ttl-ms", type=common.count, metavar="MS", help="how long a wake stays held"
    )
    create.add_argument("--description", metavar="TEXT")

    action("get", "print a subscription, its streams and their acknowledged offsets, as JSON")
    action("delete", "delete a subscription")
    add = action("add-streams", "follow these stream paths too, from their current tails")
    add.add_argument("paths", nargs="+", metavar="PATH")
    remove = action("remove-stream", "stop following an explicitly added stream path")
    remove.add_argument("path", metavar="PATH")

    worker = f"cli-{socket.gethostname()}-{os.getpid()}"
    claim = action("claim", "claim a pull-wake subscription's wake; print it as JSON")
    claim.add_argument("--worker", default=worker, help="this worker's name (default: host, pid)")

    for name, help in (
        ("ack", "acknowledge PATH=OFFSET pairs of a claimed wake (none: renew its lease)"),
        ("release", "give a claimed wake back unfinished"),
    ):
        parser = common.command(actions, name, help)
        parser.add_argument(
            "--claim",
            default="-",
            metavar="FILE",
            help="the JSON that claim printed (default -: stdin)",
        )
        if name == "ack":
            parser.add_argument("acks", nargs="*", metavar="PATH=OFFSET")
            parser.add_argument("--done", action="store_true", help="finish the wake")

    consume = action(
        "consume",
        "print each message of a pull-wake subscription as a line of JSON and acknowledge it",
    )
    consume.add_argument("--worker", default=worker, help="this worker's name (default: host, pid)")
    consume.add_argument(
        "--until-idle",
        action="store_true",
        help="stop once no work is pending (default: until Ctrl+C)",
    )


def run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """One subscription command; the exit status."""
    return common.run(args, stderr, lambda: _run(args, stdin, stdout))


def _print(stdout: TextIO, value: Any) -> None:
    stdout.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    stdout.flush()


def _run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    if not args.url:
        raise InputError(
            "subscriptions live under the server's stream root: give it with --url or "
            "$DURABLE_STREAMS_URL (the reference server's is http://HOST:PORT/v1/stream)"
        )
    with Subscriptions(
        args.url, headers=headers(args), timeout=args.timeout, retry=retry(args)
    ) as subs:
        action = args.action
        if action == "create":
            kind: SubscriptionType = args.type or ("webhook" if args.webhook_url else "pull-wake")
            created = subs.create(
                args.id,
                type=kind,
                pattern=args.pattern,
                streams=args.streams,
                webhook_url=args.webhook_url,
                wake_stream=args.wake_stream,
                lease_ttl_ms=args.lease_ttl_ms,
                description=args.description,
            )
            _print(stdout, dataclasses.asdict(created))
        elif action == "get":
            _print(stdout, dataclasses.asdict(subs.get(args.id)))
        elif action == "delete":
            subs.delete(args.id)
        elif action == "add-streams":
            subs.add_streams(args.id, args.paths)
        elif action == "remove-stream":
            subs.remove_stream(args.id, args.path)
        elif action == "claim":
            _print(stdout, dataclasses.asdict(subs.claim(args.id, args.worker)))
        elif action == "ack":
            acks = dict(_ack(text) for text in args.acks)
            woken = subs.ack(_claim(args.claim, stdin), acks, done=args.done)
            _print(stdout, {"next_wake": woken})
        elif action == "release":
            subs.release(_claim(args.claim, stdin))
        elif action == "consume":
            consumer = subs.consumer(args.id, worker=args.worker)
            consumer.run(lambda message: _print(stdout, _line(message)), until_idle=args.until_idle)
    return EXIT["ok"]


def _ack(text: str) -> tuple[str, str]:
    path, sep, offset = text.partition("=")
    if not sep or not path or not offset:
        raise InputError(f"an ack is PATH=OFFSET, not {text!r}")
    return path, offset


def _claim(source: str, stdin: TextIO) -> Claim:
    """The claim ``claim`` printed, from the file ``source`` (``-``: stdin)."""
    where = "stdin" if source == "-" else source
    try:
        if source == "-":
            text = stdin.read()
        else:
            with open(source, encoding="utf-8") as file:
                text = file.read()
    except OSError as exc:
        raise InputError(f"cannot read the claim: {exc.strerror}: {source}") from None
    try:
        obj = json.loads(text)
        streams = tuple(PendingStream(**s) for s in obj.pop("streams"))
        claim = Claim(**obj, streams=streams)
        if not isinstance(claim.generation, int) or not all(
            isinstance(getattr(claim, name), str)
            for name in ("subscription_id", "worker", "wake_id", "token")
        ):
            raise TypeError
        return claim
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InputError(
            f"{where} does not hold a claim (the JSON that 'subscription claim' printed)"
        ) from None


def _line(message: SubscriptionMessage) -> dict[str, Any]:
    """A message as a line of JSON: a JSON stream's value as it is; another stream's bytes as
    text when they are UTF-8, else in ``data_base64``."""
    line: dict[str, Any] = {"stream": message.stream, "offset": message.offset}
    data = message.data
    if isinstance(data, bytes):
        try:
            line["data"] = data.decode("utf-8")
        except UnicodeDecodeError:
            line["data_base64"] = base64.b64encode(data).decode("ascii")
    else:
        line["data"] = data
    return line
