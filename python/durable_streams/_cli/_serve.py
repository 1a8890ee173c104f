"""``durable-streams serve``: the embedded server, until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

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
    proxy: Any = None
    task = asyncio.current_task()
    if task is not None and sys.platform != "win32":  # before the URL is out: no window left
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        url = await server.astart()
        proxy = _proxy(args, url)
        if proxy is not None:
            server.mount(proxy.prefix, proxy)
        print(url, flush=True)
        where = f"data file {args.data}" if args.data else "in memory"
        print(f"durable-streams: serving ({where}); Ctrl+C stops", file=sys.stderr, flush=True)
        await server.serve_forever()
    except asyncio.CancelledError:
        pass
    finally:
        await server.aclose()  # and the proxy mounted on it


def _proxy(args: argparse.Namespace, url: str) -> Any:
    """The durable proxy ``serve`` hosts, if a secret is set."""
    from ..proxy import ProxyApp

    secret = args.proxy_secret or os.environ.get("DURABLE_STREAMS_PROXY_SECRET")
    if not secret:
        if args.proxy_allow or args.proxy_streams:
            raise ValueError("the proxy needs --proxy-secret (or DURABLE_STREAMS_PROXY_SECRET)")
        return None
    return ProxyApp(
        args.proxy_streams or f"{url}/v1/stream/proxy",
        secret=secret,
        allowlist=args.proxy_allow,
        url_ttl=args.proxy_url_ttl,
    )
