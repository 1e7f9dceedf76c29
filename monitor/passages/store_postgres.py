"""Open passages in PostgreSQL (``store.url``, SPEC 8.1): shared by the monitors of a
group, so the next leader takes over the trucks that are inside the post.

The same promises as SQLite's ``PassageStore``: ``save`` runs before the acks of the
messages whose reads changed the state; writes never raise; what the database does not
take stays in memory, keyed (so bounded by the matcher's state), and is written with the
next write that succeeds; ``problem`` says why meanwhile. ``fence`` runs first in every
write transaction: a monitor that no longer leads raises ``Fenced`` there, and nothing of
its transaction is written; nor anything later by this store, even if this monitor leads
again (it then builds its parts, and this store, anew from the database).

Where the writes run. SQLite's are a local file's, on the loop. Here each is a round trip
to another host, and a database that hangs would hold the loop (the broker's keepalive,
the API) for up to the statement timeout. So the tracker's call before the acks,
``asave``, takes the changes on the loop (in the order of the reads) and writes them in a
thread, and the acks wait for it: the order "written, then acknowledged" holds, and the
loop does not wait. One write at a time (a lock): each takes everything taken so far, so a
later write never lands under an earlier one. ``save`` does the same on the caller's
thread (tests). While the database fails, a write is tried at most every ``RETRY_S``;
meanwhile the acks go on (the changes wait here, as with a full disk). A database that
hangs holds the acks of that write's batches (the statement timeout; a server that does
not answer at all, until the leadership's own deadline steps this monitor down).

The leader is the only writer, so what it loaded at the start plus what it saved since is
the truth: ``released`` (the board's "today") is answered from memory, never the network.

Its tables are ``passage_*``, beside alerting's in the same database, with their own
schema version (``passage_schema_version``): either can migrate without the other.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from monitor import logs
from monitor.config import store_session, store_where
from monitor.errors import Fenced, StateVersionError, StoreUnavailable
from monitor.passages.matcher import Changes, OpenPassage, Passage
from monitor.passages.store import Loaded, Released, open_data, passage_data

log = logs.get(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS passage_schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS passage_open (
    site TEXT NOT NULL, plate_hash TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (site, plate_hash));
CREATE TABLE IF NOT EXISTS passage_last_reads (
    site TEXT NOT NULL, plate_hash TEXT NOT NULL, area TEXT NOT NULL, ts_ms BIGINT NOT NULL,
    PRIMARY KEY (site, plate_hash, area));
CREATE TABLE IF NOT EXISTS passage_closed (
    site TEXT NOT NULL, plate_hash TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (site, plate_hash));
CREATE TABLE IF NOT EXISTS passage_released (
    site TEXT NOT NULL, plate_hash TEXT NOT NULL, exit_ms BIGINT NOT NULL,
    dwell_s DOUBLE PRECISION NOT NULL, inspected BOOLEAN NOT NULL,
    PRIMARY KEY (site, plate_hash, exit_ms));
CREATE INDEX IF NOT EXISTS passage_released_exit ON passage_released (exit_ms);
"""
# The schema's version, in passage_schema_version: 1, the first (issue 23). MIGRATIONS[n]
# turns a database of version n - 1 into one of version n; a newer one is refused.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, Callable[[psycopg.Connection[Any]], None]] = {}
RETRY_S = 5.0  # while the database fails, a write is tried at most this often

Fence = Callable[[psycopg.Cursor[Any]], None]
ReleasedKey = tuple[str, str, int]


@dataclass
class _Batch:
    """What is not written yet: the newest change of each key."""

    changes: Changes = field(default_factory=Changes)
    released: dict[ReleasedKey, Released] = field(default_factory=dict)
    forget_before: int | None = None

    def __bool__(self) -> bool:
        return bool(self.changes or self.released)

    def then(self, later: _Batch) -> _Batch:
        """This batch followed by ``later`` (a batch the database refused, put back
        before what was taken meanwhile)."""
        self.changes.open.update(later.changes.open)
        self.changes.reads.update(later.changes.reads)
        self.changes.closed.update(later.changes.closed)
        self.released.update(later.released)
        if later.forget_before is not None:
            self.forget_before = later.forget_before
        return self


class PostgresPassageStore:
    def __init__(
        self,
        url: str,
        fence: Fence | None = None,
        *,
        mono: Callable[[], float] = time.monotonic,
        session: dict[str, Any] | None = None,
    ) -> None:
        """Bring the schema up to date and read the state; raises ``StoreUnavailable``
        if the database cannot be reached (a leader cannot take over from nothing: its
        caller waits and tries again), ``StateVersionError`` if a newer monitor wrote it.
        The connection is made again by the first write: a standby's view, which never
        writes, holds none."""
        self._url = url
        # libpq settings of a group's monitor (``store_session``): no transaction
        # of a frozen leader holds the lease row past the deadline
        self._session = session or store_session()
        self.where = store_where(url)  # for logs and errors: never the password
        self.fence = fence
        self._mono = mono
        self.problem: str | None = None
        self.fenced = False  # a write was refused: this monitor does not lead (SPEC 8.1)
        self.term_over = False  # ... nor will with these parts: nothing is written again
        self._retry_at = 0.0
        self._write_lock = threading.Lock()  # one write at a time, on the connection
        self._take_lock = threading.Lock()  # _pending: added to on the loop, taken by writes
        self._pending = _Batch()
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        try:
            with self._connect() as conn:
                self._migrate(conn)
                self._loaded: Loaded | None = _read_state(conn)
                self._released = _read_released(conn)
        except psycopg.Error as e:
            raise StoreUnavailable(self.where, str(e).strip()) from None
        except (TypeError, ValueError) as e:  # rows that are no passage: not ours to drop
            raise StoreUnavailable(self.where, f"unreadable passages: {e}") from None

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._url, application_name="customs-monitor passages", **self._session
            )
        except psycopg.ProgrammingError:  # libpq quotes what it could not read: the secret
            raise StoreUnavailable(self.where, "libpq cannot read store.url") from None

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # one start at a time: two monitors starting together create the schema once
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('customs-monitor passages'))")
            conn.execute(SCHEMA)
            row = conn.execute("SELECT max(version) FROM passage_schema_version").fetchone()
            found = None if row is None else row[0]
            if found is None:
                conn.execute("INSERT INTO passage_schema_version VALUES (%s)", (SCHEMA_VERSION,))
                return
            if found > SCHEMA_VERSION:
                raise StateVersionError(f"{self.where} (passages)", found, SCHEMA_VERSION)
            for step in range(found + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](conn)
                conn.execute("UPDATE passage_schema_version SET version = %s", (step,))
                log.info("store.migrated", store=f"{self.where} (passages)", schema=step)

    def close(self) -> None:
        """What waits is not written here (nor by SQLite's): the last save before the acks
        wrote what the acks need; what a failing database refused is lost with the
        process, as a full disk's is. On the loop, so it never waits for a write under
        way (a database that hangs, at a step-down): that write closes the connection
        when it ends."""
        self._closed = True
        if self._write_lock.acquire(blocking=False):
            try:
                self._close_conn()
            finally:
                self._write_lock.release()
        if self._pending and not self.fenced:
            log.error("passages.store_closed_with_pending", store=self.where)

    def _close_conn(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    # -- reading it back at start --

    def load(self) -> Loaded:
        """The open passages, last reads and recently closed ones, as read at the start
        (the tracker asks once)."""
        loaded, self._loaded = self._loaded, None
        return loaded if loaded is not None else ({}, {}, {})

    def released(self, since_ms: int) -> list[Released]:
        """Passages released since ``since_ms`` (for the status board), from memory."""
        return sorted((r for r in self._released.values() if r[2] >= since_ms), key=lambda r: r[2])

    # -- writing --

    def save(self, changes: Changes, released: list[Passage], forget_before_ms: int) -> None:
        """Write these changes (and any the database refused before) in one transaction,
        on this thread."""
        self._take(changes, released, forget_before_ms)
        self._write()

    async def asave(self, changes: Changes, released: list[Passage], forget_before_ms: int) -> None:
        """``save`` for the loop: the changes taken here, in order; written in a thread,
        and this returns once they are written (or kept for later). Cancelled, the thread
        still ends what it began, and keeps what it could not write."""
        self._take(changes, released, forget_before_ms)
        if self._pending:  # most batches carry no plate read: no thread for them
            await asyncio.to_thread(self._write)

    def _take(self, changes: Changes, released: list[Passage], forget_before_ms: int) -> None:
        rows = {(p.site, p.plate_hash, p.exit_ms): _released_row(p) for p in released}
        with self._take_lock:  # held only while a write swaps the batch out: no wait
            self._pending.then(_Batch(changes, dict(rows), forget_before_ms))
        self._released.update(rows)
        for key in [k for k in self._released if k[2] < forget_before_ms]:
            del self._released[key]

    def _write(self) -> bool:
        with self._write_lock:
            try:
                return self._write_pending()
            finally:
                if self._closed:
                    self._close_conn()

    def _write_pending(self) -> bool:
        if not self._pending:
            return True
        if self._closed or self.term_over:  # a past term's changes: never written
            return False
        if self.problem is not None and self._mono() < self._retry_at:
            return False  # a database that failed: not every batch waits for it again
        with self._take_lock:
            batch, self._pending = self._pending, _Batch()
        try:
            self._transaction(batch)
        except psycopg.Error as e:
            self._put_back(batch)
            self._failed("cannot write", e)
            return False
        except Fenced as e:  # not the leader now: nothing of it written (SPEC 8.1)
            self._put_back(batch)  # a leader cut off leads on once the database answers
            if not self.fenced:
                log.warning("passages.store_fenced", store=self.where, why=str(e))
            self.fenced = True
            self.term_over = self.term_over or e.final
            self.problem = f"will not write {self.where}: {e}"
            self._retry_at = self._mono() + RETRY_S
            return False
        self.fenced = False
        if self.problem is not None:
            log.info("passages.store_recovered", store=self.where)
            self.problem = None
        return True

    def _transaction(self, batch: _Batch) -> None:
        """``batch`` in one transaction, the fence last. A connection that broke since
        the last write (the server restarted) is replaced, and the write tried once more
        on the new one. Writing a batch again is harmless (upserts and deletes by key):
        one that did commit before its connection broke lands on itself."""
        reused = self._conn is not None
        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    _write(cur, batch)
                    if self.fence is not None:  # last: the lease row locked for the commit only
                        self.fence(cur)
                return
            except psycopg.Error:
                if self._conn.broken:
                    self._close_conn()
                    if reused and attempt == 1:
                        continue
                raise

    def _put_back(self, batch: _Batch) -> None:
        with self._take_lock:
            self._pending = batch.then(self._pending)

    def _failed(self, doing: str, e: Exception) -> None:
        problem = f"{doing} {self.where}: {str(e).strip()}"
        if problem != self.problem:
            log.error("passages.store_failing", store=self.where, error=str(e).strip())
        self.problem = problem
        self._retry_at = self._mono() + RETRY_S


def _read_state(conn: psycopg.Connection[Any]) -> Loaded:
    with conn.transaction():
        open_ = {
            (site, h): OpenPassage(**json.loads(data))
            for site, h, data in conn.execute("SELECT site, plate_hash, data FROM passage_open")
        }
        reads = {
            (site, h, area): ts
            for site, h, area, ts in conn.execute(
                "SELECT site, plate_hash, area, ts_ms FROM passage_last_reads"
            )
        }
        closed = {
            (site, h): Passage(**json.loads(data))
            for site, h, data in conn.execute("SELECT site, plate_hash, data FROM passage_closed")
        }
    return open_, reads, closed


def _read_released(conn: psycopg.Connection[Any]) -> dict[ReleasedKey, Released]:
    rows = conn.execute(
        "SELECT site, plate_hash, exit_ms, dwell_s, inspected FROM passage_released"
    ).fetchall()
    return {(s, h, ms): (s, h, ms, d, i) for s, h, ms, d, i in rows}


def _released_row(p: Passage) -> Released:
    return (p.site, p.plate_hash, p.exit_ms, p.dwell_s, p.inspected)


def _write(cur: psycopg.Cursor[Any], b: _Batch) -> None:
    c = b.changes
    _upsert(
        cur,
        "INSERT INTO passage_open (site, plate_hash, data) VALUES (%s, %s, %s)"
        " ON CONFLICT (site, plate_hash) DO UPDATE SET data = excluded.data",
        "DELETE FROM passage_open WHERE site = %s AND plate_hash = %s",
        {k: None if p is None else json.dumps(open_data(p)) for k, p in c.open.items()},
    )
    _upsert(
        cur,
        "INSERT INTO passage_last_reads (site, plate_hash, area, ts_ms) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (site, plate_hash, area) DO UPDATE SET ts_ms = excluded.ts_ms",
        "DELETE FROM passage_last_reads WHERE site = %s AND plate_hash = %s AND area = %s",
        dict(c.reads.items()),
    )
    _upsert(
        cur,
        "INSERT INTO passage_closed (site, plate_hash, data) VALUES (%s, %s, %s)"
        " ON CONFLICT (site, plate_hash) DO UPDATE SET data = excluded.data",
        "DELETE FROM passage_closed WHERE site = %s AND plate_hash = %s",
        {k: None if p is None else json.dumps(passage_data(p)) for k, p in c.closed.items()},
    )
    if b.released:
        cur.executemany(
            "INSERT INTO passage_released (site, plate_hash, exit_ms, dwell_s, inspected)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (site, plate_hash, exit_ms)"
            " DO UPDATE SET dwell_s = excluded.dwell_s, inspected = excluded.inspected",
            list(b.released.values()),
        )
    if b.forget_before is not None:
        cur.execute("DELETE FROM passage_released WHERE exit_ms < %s", (b.forget_before,))


def _upsert(cur: psycopg.Cursor[Any], insert: str, delete: str, rows: dict[Any, Any]) -> None:
    """Rows by key: a value is written (inserted or replaced), None deletes the row."""
    if written := [(*k, v) for k, v in rows.items() if v is not None]:
        cur.executemany(insert, written)
    if deleted := [tuple(k) for k, v in rows.items() if v is None]:
        cur.executemany(delete, deleted)
