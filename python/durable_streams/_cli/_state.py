"""``durable-streams state``: State Protocol streams from a shell. ``state materialize``
prints a state stream's entities at its tail as one JSON object, ``{type: {key: value}}``."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from ..state import load_state
from . import _common as common
from ._common import EXIT, headers, retry, url

__all__ = ["add_commands", "run"]


def add_commands(commands: Any) -> None:
    """``state`` and its subcommands, on the ``durable-streams`` parser's subcommands."""
    state = commands.add_parser(
        "state",
        help="State Protocol streams (materialize)",
        description="Work on State Protocol streams: JSON streams of entity changes.",
    )
    actions = state.add_subparsers(dest="state_command", required=True)
    materialize = common.command(
        actions, "materialize", "print a state stream's entities at its tail as JSON"
    )
    materialize.add_argument("stream", help="the stream's URL, or a path under --url")
    materialize.add_argument(
        "--skip-malformed",
        action="store_true",
        help="pass over messages that are not valid changes (default: stop at the first, "
        "naming its offset)",
    )
    materialize.add_argument(
        "--with-offset",
        action="store_true",
        help='print {"offset": ..., "state": {...}}: where the stream stood',
    )


def run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """One state command; the exit status."""
    return common.run(args, stderr, lambda: _materialize(args, stdout))


def _materialize(args: argparse.Namespace, stdout: TextIO) -> int:
    state = load_state(
        url(args, args.stream),
        on_malformed="skip" if args.skip_malformed else "raise",
        headers=headers(args),
        timeout=args.timeout,
        retry=retry(args),
    )
    view: Any = state.snapshot()
    if args.with_offset:
        view = {"offset": state.offset, "state": view}
    stdout.write(json.dumps(view, ensure_ascii=False, separators=(",", ":")) + "\n")
    return EXIT["ok"]
