"""The data file: every stream's state and messages in SQLite, so streams survive a restart
(and subscriptions with their cursors, and the server's signing keys).

Memory stays the source of truth while the server runs; this is a write-through journal,
read once at start-up. Each append commits its message and the stream's state (producer
epochs and sequences included) in one transaction, so a crash never keeps one without the
other. WAL with ``synchronous=NORMAL``: a committed append survives the process dying; a
power cut may lose the last few.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._store import ProducerState, Stream

__all__ = ["SqliteJournal"]

_SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (path TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    path TEXT NOT NULL,
    end_pos INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (path, end_pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


def _state(stream: Stream) -> str:
    return json.dumps(
        {
            "uid": stream.uid,
            "content_type": stream.content_type,
            "created": stream.created,
            "ttl_seconds": stream.ttl_seconds,
            "expires_at": stream.expires_at,
            "closed": stream.closed,
            "closed_by": stream.closed_by,
            "forked_from": stream.forked_from,
            "fork_offset": stream.fork_offset,
            "fork_sub_offset": stream.fork_sub_offset,
            "ref_count": stream.ref_count,
            "soft_deleted": stream.soft_deleted,
            "tail": stream.tail,
            "last_seq": stream.last_seq,
            "producers": {k: [p.epoch, p.last_seq] for k, p in stream.producers.items()},
        },
        separators=(",", ":"),
    )


def _stream(path: str, text: str, now: float) -> Stream:
    state: dict[str, Any] = json.loads(text)
    closed_by = state["closed_by"]
    return Stream(
        path=path,
        uid=state["uid"],
        content_type=state["content_type"],
        created=state["created"],
        # A restart counts as an access: a TTL never runs out while the server is down.
        accessed=now,
        ttl_seconds=state["ttl_seconds"],
        expires_at=state["expires_at"],
        closed=state["closed"],
        closed_by=None if closed_by is None else (closed_by[0], closed_by[1], closed_by[2]),
        forked_from=state["forked_from"],
        fork_offset=state["fork_offset"],
        fork_sub_offset=state["fork_sub_offset"],
        ref_count=state["ref_count"],
        soft_deleted=state["soft_deleted"],
        tail=state["tail"],
        last_seq=state["last_seq"],
        producers={k: ProducerState(v[0], v[1]) for k, v in state["producers"].items()},
    )


class SqliteJournal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        name = os.fspath(path)
        try:
            self._conn = sqlite3.connect(name, isolation_level=None, timeout=2.0)
        except sqlite3.Error as exc:
            raise RuntimeError(f"{name}: cannot open it as a data file ({exc})") from exc
        self._depth = 0
        try:
            # One server per file: a second one would keep its own copy in memory and the two
            # would overwrite each other. The exclusive lock is taken here and kept until close.
            self._conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executescript(_SCHEMA)  # commits
            row = self._conn.execute("SELECT value FROM info WHERE key='schema'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO info VALUES ('schema', ?)", (_SCHEMA_VERSION,))
            elif row[0] != _SCHEMA_VERSION:
                raise RuntimeError(f"{name}: unknown data file schema {row[0]!r}")
        except sqlite3.Error as exc:
            self._conn.close()
            raise RuntimeError(f"{name}: cannot use it as a data file ({exc})") from exc
        except BaseException:
            self._conn.close()
            raise

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def save(self, stream: Stream, added: int = 0) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO streams (path, state) VALUES (?, ?)",
            (stream.path, _state(stream)),
        )
        if added:
            self._conn.executemany(
                "INSERT INTO chunks (path, end_pos, data) VALUES (?, ?, ?)",
                [
                    (stream.path, end, chunk)
                    for end, chunk in zip(stream.ends[-added:], stream.chunks[-added:], strict=True)
                ],
            )

    def remove(self, path: str) -> None:
        self._conn.execute("DELETE FROM chunks WHERE path = ?", (path,))
        self._conn.execute("DELETE FROM streams WHERE path = ?", (path,))

    def load(self) -> Iterator[Stream]:
        now = time.time()
        for path, text in self._conn.execute("SELECT path, state FROM streams").fetchall():
            stream = _stream(path, text, now)
            rows = self._conn.execute(
                "SELECT end_pos, data FROM chunks WHERE path = ? ORDER BY end_pos", (path,)
            )
            for end, data in rows:
                stream.ends.append(end)
                stream.chunks.append(bytes(data))
            yield stream

    def save_record(self, kind: str, key: str, value: str) -> None:
        with self.batch():
            self._conn.execute(
                "INSERT OR REPLACE INTO records (kind, key, value) VALUES (?, ?, ?)",
                (kind, key, value),
            )

    def remove_record(self, kind: str, key: str) -> None:
        with self.batch():
            self._conn.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    def records(self, kind: str) -> list[tuple[str, str]]:
        rows = self._conn.execute(
            "SELECT key, value FROM records WHERE kind = ? ORDER BY key", (kind,)
        ).fetchall()
        return [(key, value) for key, value in rows]

    def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        row = self._conn.execute(
            "SELECT value FROM records WHERE kind = 'secret' AND key = ?", (name,)
        ).fetchone()
        if row is not None:
            return bytes.fromhex(row[0])
        value = make()
        self.save_record("secret", name, value.hex())
        return value

    def close(self) -> None:
        self._conn.close()
