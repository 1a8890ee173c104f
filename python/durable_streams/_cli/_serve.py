"""``durable-streams serve``: the embedded server, until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

_DEFAULT_PORT = 4437  # the protocol's registered port for standalone servers


async def _serve(args: argparse.Namespace) -> None:
    from ..server import Server

    server = Server(
        args.host,
        args.port,
        data_path=args.data,
        long_poll_timeout=args.long_poll_timeout,
        sse_reconnect_interval=args.sse_reconnect,
        fault_injection=args.fault_injection,
        webhooks=args.webhooks,
    )
    task = asyncio.current_task()
    if task is not None and sys.platform != "win32":  # before the URL is out: no window left
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        url = await server.astart()
        print(url, flush=True)
        where = f"data file {args.data}" if args.data else "in memory"
        print(f"durable-streams: serving ({where}); Ctrl+C stops", file=sys.stderr, flush=True)
        await server.serve_forever()
    except asyncio.CancelledError:
        pass
    finally:
        await server.aclose()
