"""Which stream answers which request: the client's memory of its proxied requests, in a
SQLite file, so a restarted process reads the answer it already asked for."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass

__all__ = ["ProxiedRequest", "RequestStore"]


@dataclass(frozen=True)
class ProxiedRequest:
    """A request the proxy has answered: its pre-signed read URL, when that URL expires
    (Unix seconds), and the upstream's content type."""

    stream_url: str
    expires: int
    upstream_content_type: str | None = None

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires


class RequestStore:
    """Remembers the stream of each request id, per proxy, in the SQLite file at ``path``
    (created if missing; ``":memory:"`` keeps it in this process). Safe to share between
    threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS proxied (proxy TEXT NOT NULL, request_id TEXT NOT NULL,"
                " stream_url TEXT NOT NULL, expires INTEGER NOT NULL, upstream_content_type TEXT,"
                " PRIMARY KEY (proxy, request_id))"
            )

    def __repr__(self) -> str:
        return f"<RequestStore {self.path}>"

    def __enter__(self) -> RequestStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, proxy_url: str, request_id: str) -> ProxiedRequest | None:
        with self._lock:
            row = self._db.execute(
                "SELECT stream_url, expires, upstream_content_type FROM proxied"
                " WHERE proxy = ? AND request_id = ?",
                (proxy_url, request_id),
            ).fetchone()
        return None if row is None else ProxiedRequest(row[0], int(row[1]), row[2])

    def put(self, proxy_url: str, request_id: str, request: ProxiedRequest) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO proxied VALUES (?, ?, ?, ?, ?)",
                (
                    proxy_url,
                    request_id,
                    request.stream_url,
                    request.expires,
                    request.upstream_content_type,
                ),
            )

    def remove(self, proxy_url: str, request_id: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM proxied WHERE proxy = ? AND request_id = ?", (proxy_url, request_id)
            )
