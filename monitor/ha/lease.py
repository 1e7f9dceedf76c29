"""Leadership through the database (SPEC 8.1), as Zabbix HA does it: one row per group of
monitors, renewed by its holder every ``heartbeat``; a monitor that finds it older than
``failover`` (by the database's clock, the one clock all of them share) takes it, and the
row's ``epoch`` goes up by one.

The epoch fences. Every state write checks it in its own transaction (``fence``, which
also locks the row, so a takeover waits for the write to commit and the write never
lands after it). Every InfluxDB write and notification asks ``valid()`` first: the
holder's own deadline, ``failover - heartbeat`` after the last renewal it began, on this
host's monotonic clock. That runs out before any standby can take the row, and it runs
out on its own: a leader frozen (SIGSTOP, a paused VM) wakes past it and does nothing
more before it has even asked the database.

A leader cut off from the database (it does not answer: down, restarting, a partition)
goes on ingesting past its deadline (``may_ingest``: the broker's messages into InfluxDB
and its spool), but sends nothing, writes no state and makes no new MQTT connection
(``valid``): should a standby reach the database and take over, it connects with the
shared client id, the broker drops this one's connection, and this one stays off until
the database answers; then it steps down (another epoch) or leads on (its own).

The clock is CLOCK_BOOTTIME: it counts a suspended host's sleep too, so a host that wakes
from suspend finds its deadline passed.

Synchronous on purpose: ``keep`` calls it in a thread, and the standby's loop too; its
connection is its own, so a long state write never delays a renewal.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from monitor import logs
from monitor.config import store_session, store_where
from monitor.errors import Fenced, StoreUnavailable

log = logs.get(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS leadership (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL,
    renewed TIMESTAMPTZ NOT NULL, api TEXT);
"""


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def holder_id() -> str:
    """This process, for the row and the logs: host, pid and a random part (a restarted
    process with the pid of an old one is still another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    def __init__(
        self,
        url: str,
        name: str,
        heartbeat: float,
        failover: float,
        *,
        holder: str | None = None,
        api: str | None = None,
        mono: Callable[[], float] = boottime,
    ) -> None:
        """``name``: the group's (the shared ``mqtt.client_id``); ``api``: where this
        monitor's API is reached, said in the row for the others (the standby's board)."""
        self._url = url
        self._where = f"{store_where(url)} (the leadership)"
        self.name = name
        self.heartbeat = heartbeat
        self.failover = failover
        self.holder = holder or holder_id()
        self.api = api
        self._mono = mono
        self.epoch: int | None = None  # while this process holds the row
        self._valid_until = 0.0
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # the connection, one statement at a time
        self.lost = asyncio.Event()  # set when leadership ends (not by ``release``)
        self._loop: asyncio.AbstractEventLoop | None = None  # where ``lost`` is set
        self.cut_off = False  # leading past the deadline: the database does not answer

    # -- the connection --

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            try:
                options = store_session(self.heartbeat, self.failover)
                # a renewal that hangs is no renewal: the deadline must not wait for it
                options["options"] += f" -c statement_timeout={int(self.heartbeat * 1000) or 1}"
                self._conn = psycopg.connect(
                    self._url,
                    autocommit=True,
                    application_name="customs-monitor lease",
                    **options,
                )
            except psycopg.ProgrammingError:  # libpq quotes what it could not read
                self.close()
                raise StoreUnavailable(self._where, "libpq cannot read store.url") from None
            except psycopg.Error as e:
                self.close()
                raise StoreUnavailable(self._where, str(e).strip()) from None
            try:
                self._conn.execute(SCHEMA)
            except psycopg.Error as e:
                self.close()
                raise StoreUnavailable(self._where, str(e).strip()) from None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    # -- the holder's deadline --

    def valid(self) -> bool:
        """Whether this process may act as the leader now: write state, send, connect."""
        return self.epoch is not None and self._mono() < self._valid_until

    def may_ingest(self) -> bool:
        """Whether it may write what the broker gives it: while it leads, and while the
        database does not answer whether it still does."""
        return self.epoch is not None and (self.cut_off or self._mono() < self._valid_until)

    def _held_from(self, began: float) -> None:
        self._valid_until = began + self.failover - self.heartbeat

    # -- taking, keeping and giving it up --

    def _acquire(self) -> bool:
        began = self._mono()
        try:
            row = (
                self._db()
                .execute(
                    "INSERT INTO leadership (name, holder, epoch, renewed, api)"
                    " VALUES (%(name)s, %(holder)s, 1, now(), %(api)s)"
                    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                    " epoch = leadership.epoch + 1, renewed = now(), api = excluded.api"
                    " WHERE leadership.renewed < now() - make_interval(secs => %(failover)s)"
                    " RETURNING epoch",
                    {
                        "name": self.name,
                        "holder": self.holder,
                        "api": self.api,
                        "failover": self.failover,
                    },
                )
                .fetchone()
            )
        except psycopg.Error as e:
            self.close()
            raise StoreUnavailable(self._where, str(e).strip()) from None
        if row is None:
            return False
        self.epoch = int(row[0])
        self._held_from(began)
        self.lost.clear()
        log.info("ha.leading", group=self.name, holder=self.holder, epoch=self.epoch)
        return True

    def _renew(self) -> bool:
        if self.epoch is None:
            return False
        began = self._mono()
        try:
            row = (
                self._db()
                .execute(
                    "UPDATE leadership SET renewed = now()"
                    " WHERE name = %s AND holder = %s AND epoch = %s RETURNING epoch",
                    (self.name, self.holder, self.epoch),
                )
                .fetchone()
            )
        except psycopg.Error as e:
            self.close()
            raise StoreUnavailable(self._where, str(e).strip()) from None
        if row is None:
            self._step_down("taken over")
            return False
        self._held_from(began)
        return True

    def _release(self) -> None:
        if self.epoch is None:
            return
        epoch, self.epoch = self.epoch, None
        try:
            self._db().execute(
                "UPDATE leadership SET renewed = '-infinity'"
                " WHERE name = %s AND holder = %s AND epoch = %s",
                (self.name, self.holder, epoch),
            )
        except (psycopg.Error, StoreUnavailable) as e:
            log.warning("ha.release_failed", group=self.name, error=str(e))
        log.info("ha.released", group=self.name, epoch=epoch)

    def acquire(self) -> bool:
        """Take the row if nobody holds it or its holder has not renewed it within
        ``failover``; True if this process leads now (a new epoch)."""
        with self._lock:
            return self._acquire()

    def renew(self) -> bool:
        """Keep the row; False (and ``lost`` set) if another holder has it now; raises
        ``StoreUnavailable`` when the database does not answer."""
        with self._lock:
            return self._renew()

    def release(self) -> None:
        """A clean stop: the row is left for a standby to take at once."""
        with self._lock:
            self._release()

    def holder_now(self) -> tuple[str, int, str | None] | None:
        """Who leads (holder, epoch, api), as the row says; None if nobody does."""
        with self._lock:
            return self._holder_now()

    def _step_down(self, why: str) -> None:
        if self.epoch is not None:
            log.warning("ha.stepping_down", group=self.name, epoch=self.epoch, why=why)
        self.epoch = None
        self.cut_off = False
        if self._loop is not None:  # from the thread of a renewal or a write, too
            self._loop.call_soon_threadsafe(self.lost.set)
        else:
            self.lost.set()

    def fence(self, cur: psycopg.Cursor[Any]) -> None:
        """First in every state write's transaction: raises ``Fenced`` unless this
        process still holds the row with its epoch (which it keeps locked until the
        write commits)."""
        epoch = self.epoch
        if epoch is None:
            raise Fenced(self.name, epoch)
        if not self.valid():
            raise Fenced(self.name, epoch, final=False)
        row = cur.execute(
            "SELECT epoch FROM leadership WHERE name = %s AND holder = %s AND epoch = %s FOR SHARE",
            (self.name, self.holder, epoch),
        ).fetchone()
        if row is None:
            self._step_down("fenced: another leader's epoch")
            raise Fenced(self.name, epoch)

    def _holder_now(self) -> tuple[str, int, str | None] | None:
        try:
            row = (
                self._db()
                .execute(
                    "SELECT holder, epoch, api FROM leadership WHERE name = %s"
                    " AND renewed >= now() - make_interval(secs => %s)",
                    (self.name, self.failover),
                )
                .fetchone()
            )
        except psycopg.Error as e:
            self.close()
            raise StoreUnavailable(self._where, str(e).strip()) from None
        return None if row is None else (str(row[0]), int(row[1]), row[2])

    # -- the leader's loop --

    async def keep(self) -> None:
        """Renew every ``heartbeat`` while leading; step down (``lost``) and return when
        the row is another's. Past the deadline with no answer from the database, lead on
        cut off (``may_ingest``), until it answers."""
        self._loop = asyncio.get_running_loop()
        renewal: asyncio.Future[bool] | None = None
        while self.epoch is not None:
            began = self._mono()
            if renewal is None or renewal.done():  # one in its thread at a time
                renewal = asyncio.ensure_future(asyncio.to_thread(self.renew))
            try:
                async with asyncio.timeout(self.heartbeat):  # a renewal that hangs is none
                    await asyncio.shield(renewal)
            except (TimeoutError, StoreUnavailable) as e:
                why = e.reason if isinstance(e, StoreUnavailable) else "no answer in time"
                if not self.valid() and not self.cut_off and self.epoch is not None:
                    self.cut_off = True
                    log.error(
                        "ha.cut_off",
                        group=self.name,
                        epoch=self.epoch,
                        error=why,
                        meanwhile="ingest goes on; alerts and state wait for the database",
                    )
            else:
                if self.cut_off and self.epoch is not None:
                    log.info("ha.reconnected", group=self.name, epoch=self.epoch)
                self.cut_off = False
            if self.epoch is not None:
                await asyncio.sleep(max(0.0, began + self.heartbeat - self._mono()))
