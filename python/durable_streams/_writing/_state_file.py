"""A producer's state file: what a restarted producer needs to resume exactly-once.

One SQLite file (standard library) per producer keeps the producer's epoch, its next
sequence number, how many messages its sessions took (so a program feeding the same input
again knows how much of it to skip) and every batch sealed but not yet settled, each with its
(epoch, seq) and bytes. The sender writes it before a batch first goes out, so the server
never sees a number the file does not know: a process killed at any moment and started
again with the same file resends what may be missing under the same numbers, and the server
stores each batch once.

- Durability: write-ahead log with ``synchronous=FULL``, so a write that records new batches
  is on disk (fsync) before they are sent. Writes that only drop settled batches skip the
  fsync: losing one to a crash means a batch is resent and answered "duplicate", nothing more.
- One writer: the file is opened in SQLite's exclusive locking mode and stays locked until
  the producer closes (or its process dies), so a second producer on the same file, in this
  process or another, gets :class:`ProducerStateLockedError` instead of a race.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass

from .. import _errors as errors
from ._sequencer import StoreChanges, StoredBatch

__all__ = ["ProducerState", "StateFile"]

FORMAT = 2

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS producer (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 0),
    format INTEGER NOT NULL,
    url TEXT NOT NULL,
    producer_id TEXT NOT NULL,
    json_mode INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    taken INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    closes INTEGER NOT NULL,
    body BLOB NOT NULL
)""",
)


@dataclass(frozen=True)
class ProducerState:
    """What the file held when it was opened: where the last session stopped."""

    epoch: int
    next_seq: int
    taken: int
    batches: list[StoredBatch]


class StateFile:
    """An open, locked state file. Not thread-safe: one writer at a time (the sender)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        url: str,
        producer_id: str,
        json_mode: bool,
        epoch: int,
    ) -> None:
        """Open (or create, starting at ``epoch``) the file and lock it; :attr:`state` says
        what an earlier session left, or is None for a new file."""
        self.path = os.fspath(path)
        self._url = errors.redact_url(url)
        self._fsync = True
        try:
            self._db = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error("cannot be opened", exc) from exc
        try:
            self.state = self._open(producer_id, json_mode, epoch)
        except BaseException:
            self._db.close()
            raise

    def _open(self, producer_id: str, json_mode: bool, epoch: int) -> ProducerState | None:
        db = self._db
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")  # takes the lock, held until close()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise errors.ProducerStateLockedError(
                    f"the producer state file {self.path!r} is in use by another producer "
                    "(in this process or another); one file serves one producer at a time",
                    url=self._url,
                ) from exc
            raise self._error("cannot be opened", exc) from exc
        except sqlite3.DatabaseError as exc:
            raise self._error("is not a producer state file", exc) from exc
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT * FROM producer").fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO producer VALUES (0, ?, ?, ?, ?, ?, 0, 0)",
                    (FORMAT, self._url, producer_id, int(json_mode), epoch),
                )
                db.execute("COMMIT")
                return None
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._error("is not a producer state file", exc) from exc
        fmt = row[1]
        if fmt != FORMAT:
            raise self._error(
                f"has format {fmt}; this version reads format {FORMAT} (open it with the "
                "version that wrote it to deliver what it holds, then start a new file)"
            )
        _, _, url, stored_id, stored_json, stored_epoch, next_seq, taken = row
        if (url, stored_id) != (self._url, producer_id):
            raise self._error(
                f"belongs to producer {stored_id!r} on {url}, not {producer_id!r} on {self._url}"
            )
        if bool(stored_json) != json_mode:
            kind = "a JSON" if stored_json else "a non-JSON"
            raise self._error(f"was written for {kind} stream")
        batches = [
            StoredBatch(id, epoch, seq, count, bool(closes), bytes(body))
            for id, epoch, seq, count, closes, body in db.execute(
                "SELECT id, epoch, seq, count, closes, body FROM batches ORDER BY seq"
            )
        ]
        return ProducerState(stored_epoch, next_seq, taken, batches)

    def _error(self, what: str, cause: BaseException | None = None) -> errors.ProducerStateError:
        detail = f": {cause}" if cause is not None else ""
        return errors.ProducerStateError(
            f"the producer state file {self.path!r} {what}{detail}", url=self._url
        )

    def write(self, changes: StoreChanges) -> None:
        """Record ``changes`` in one transaction; on disk (fsync) when they add batches."""
        db = self._db
        fsync = bool(changes.upserts)
        try:
            if fsync != self._fsync:
                db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
                self._fsync = fsync
            db.execute("BEGIN")
            try:
                db.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in changes.deletes])
                rows = [(b.id, b.epoch, b.seq, b.count, b.close, b.body) for b in changes.upserts]
                db.executemany("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?)", rows)
                db.execute(
                    "UPDATE producer SET epoch = ?, next_seq = ?, taken = ?",
                    (changes.epoch, changes.next_seq, changes.taken),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error("cannot be written", exc) from exc

    def close(self) -> None:
        """Release the lock (and fold the log into the file)."""
        with contextlib.suppress(sqlite3.Error):  # else the log is replayed on the next open
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
