"""The store in PostgreSQL (``store.url``): the state shared by the monitors of SPEC 8.1.

One monitor leads and is the only writer (the leadership, fenced by its epoch, makes sure
of that), so what it loaded at the start plus what it changed since is the whole truth:
it is kept in memory and every read is answered from there, never from the network. Each
change is also queued, and ``run`` writes what is queued in one transaction, in a thread
(the event loop never waits for the database). What the database does not take stays
queued, keyed by what it changes, and is written once it takes it again; ``problem`` says
why meanwhile. ``fence`` runs last in every write transaction, just before its commit: a
leader that has lost the lease raises there, and nothing of its transaction is written
(the row it locks is held only for the commit, so a renewal never waits for a write).
A notification is handed to the notifier only once its row is committed: a leader killed
after sending it has it in the outbox for the next, never a new leader re-firing what the
database never heard of.

Kept in memory: every open alert and the newest ``HISTORY`` resolved ones (the API's
longest list) with their deliveries; windows, devices, the outbox, Sparkplug nodes and the
small facts, all of them. Older history stays in the database, pruned like SQLite's.

psycopg 3 (not asyncpg): one driver for the thread that writes and the start that reads
synchronously (``build`` runs before the loop serves anything), and libpq's own handling
of the URL, ``sslmode``, ``~/.pgpass`` and service files, as the post's ``psql`` does.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from monitor import logs
from monitor.alerting.engine import Alert, Window
from monitor.alerting.rules import DeviceState
from monitor.alerting.store.base import (
    DELIVERY_FIELDS,
    KEEP_ROWS,
    KEEP_S,
    MAX_PENDING,
    PAGE,
    RETRY_S,
    Delivery,
    OutboxItem,
    copy,
    device_json,
    device_state,
    stored_window,
)
from monitor.clock import Clock
from monitor.config import store_session, store_where
from monitor.errors import Fenced, StateVersionError, StoreOwnedError, StoreUnavailable
from monitor.lifecycle import Resource
from monitor.model import DeviceKey

log = logs.get(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, open BOOLEAN NOT NULL, fired_at DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (open, fired_at);
CREATE TABLE IF NOT EXISTS maintenance (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    site TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (site, id));
CREATE TABLE IF NOT EXISTS outbox (
    id BIGINT PRIMARY KEY, channel TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL, refused INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, alert_id TEXT NOT NULL,
    event TEXT NOT NULL, channel TEXT NOT NULL, ok BOOLEAN NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS deliveries_alert ON deliveries (alert_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sparkplug_nodes (
    grp TEXT NOT NULL, node TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (grp, node));
"""
# The schema's version, in the table of that name: 1, the first (issue 23). Each later
# one migrates from the one before it; a database newer than this monitor is refused.
SCHEMA_VERSION = 1
# Resolved alerts kept in memory, the newest: the longest list the API asks for.
HISTORY = 2000

NEXT_ID_KEY = "store.outbox_next_id"

Fence = Callable[[psycopg.Cursor[Any]], None]


@dataclass
class _Changes:
    """What is not written yet, keyed by what it changes: the newest change of each."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    windows: dict[str, Window | None] = field(default_factory=dict)
    devices: dict[DeviceKey, str | None] = field(default_factory=dict)
    outbox: dict[int, OutboxItem | None] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    nodes: dict[tuple[str, str], str | None] = field(default_factory=dict)
    prune_before: float | None = None

    def __len__(self) -> int:
        return (
            len(self.alerts)
            + len(self.windows)
            + len(self.devices)
            + len(self.outbox)
            + len(self.deliveries)
            + len(self.meta)
            + len(self.nodes)
            + (self.prune_before is not None)
        )

    def then(self, later: _Changes) -> _Changes:
        """These changes followed by ``later`` ones (a batch the database refused, put
        back before what was queued meanwhile)."""
        self.alerts.update(later.alerts)
        self.windows.update(later.windows)
        self.devices.update(later.devices)
        self.outbox.update(later.outbox)
        self.meta.update(later.meta)
        self.nodes.update(later.nodes)
        self.deliveries = [*self.deliveries, *later.deliveries][-MAX_PENDING:]
        self.prune_before = later.prune_before or self.prune_before
        return self


class PostgresStore(Resource):
    def __init__(
        self,
        url: str,
        clock: Clock,
        fence: Fence | None = None,
        connect: bool = True,
        *,
        read_only: bool = False,
        group: str | None = None,
        session: dict[str, Any] | None = None,
    ) -> None:
        """Connect, bring the schema up to date and load the state; raises
        ``StoreUnavailable`` if the database cannot be reached (the caller waits and tries
        again: a leader cannot lead from an empty store), ``StateVersionError`` if it was
        written by a newer monitor. ``connect=False``: empty until ``reload`` (a standby
        that serves its /health while the database is away). ``group``: the monitors'
        (``mqtt.client_id``), recorded by the first and checked by every other
        (``StoreOwnedError``); ``session``: libpq settings (``store_session``);
        ``read_only``: a standby's view, which keeps what is done to it in memory only."""
        self._url = url
        self.where = store_where(url)  # for logs and errors: never the password
        self._clock = clock
        self.fence = fence
        self.read_only = read_only
        self._group = group
        self._session = session or store_session()
        self.problem: str | None = None
        self.fenced = False  # the last write was refused: this monitor does not lead
        self.term_over = False  # ... and will not with these parts: nothing is written
        self.on_written: Callable[[], None] | None = None  # notifications committed
        self._unwritten: set[int] = set()  # outbox ids not committed yet
        self._retry_at = 0.0
        self._lock = threading.Lock()  # one transaction at a time on the connection
        self._queued = _Changes()
        self._writing: _Changes | None = None  # handed to the thread, not yet committed
        self._wake: asyncio.Event | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._empty()
        if not connect:
            return
        try:
            self._conn = self._connect()
            self._migrate(self._conn)
            self._load(self._conn)
        except psycopg.Error as e:
            self._close_conn()
            raise StoreUnavailable(self.where, str(e).strip()) from None
        except BaseException:
            self._close_conn()
            raise

    # -- the connection --

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._url, application_name="customs-monitor", **self._session)
        except psycopg.ProgrammingError:  # libpq quotes what it could not read: the secret
            raise StoreUnavailable(self.where, "libpq cannot read store.url") from None

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # one start at a time: two monitors starting together create the schema once
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('customs-monitor schema'))")
            conn.execute(SCHEMA)
            self._migrated = True
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            found = None if row is None else row[0]
            if found is None:
                conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
            elif found > SCHEMA_VERSION:
                raise StateVersionError(self.where, found, SCHEMA_VERSION)
            if self._group is not None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('store.group', %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (self._group,),
                )
                row = conn.execute("SELECT value FROM meta WHERE key = 'store.group'").fetchone()
                if row is not None and row[0] != self._group:
                    raise StoreOwnedError(self.where, row[0], self._group)

    def _empty(self) -> None:
        self._alerts: dict[str, Alert] = {}
        self._deliveries: dict[str, list[Delivery]] = {}
        self._windows: dict[str, Window] = {}
        self._devices: dict[DeviceKey, str] = {}
        self._outbox: dict[int, OutboxItem] = {}
        self._meta: dict[str, str] = {}
        self._nodes: dict[tuple[str, str], str] = {}
        self._next_id = 1
        self._migrated = False

    def _load(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            rows = conn.execute(
                "SELECT data FROM alerts WHERE open UNION ALL"
                " (SELECT data FROM alerts WHERE NOT open ORDER BY fired_at DESC LIMIT %s)",
                (HISTORY,),
            ).fetchall()
            self._alerts = {a.id: a for a in (Alert.from_dict(json.loads(r[0])) for r in rows)}
            self._deliveries = {}
            for at, alert_id, event, channel, ok, error in conn.execute(
                "SELECT at, alert_id, event, channel, ok, error FROM deliveries"
                " WHERE alert_id = ANY(%s) ORDER BY id",
                (list(self._alerts),),
            ):
                self._deliveries.setdefault(alert_id, []).append(
                    (at, alert_id, event, channel, ok, error)
                )
            self._windows = {}
            skipped = []
            for row_id, text in conn.execute("SELECT id, data FROM maintenance"):
                if (w := stored_window(text)) is not None:
                    self._windows[w.id] = w
                else:
                    skipped.append(str(row_id))
            if skipped:
                log.warning("store.windows_skipped", count=len(skipped), ids=",".join(skipped[:10]))
            self._devices = {
                (site, i): data
                for site, i, data in conn.execute("SELECT site, id, data FROM devices")
            }
            self._outbox = {
                i: OutboxItem(i, channel, created, attempts, json.loads(data), refused)
                for i, channel, created, attempts, refused, data in conn.execute(
                    "SELECT id, channel, created, attempts, refused, data FROM outbox ORDER BY id"
                )
            }
            self._meta = dict(conn.execute("SELECT key, value FROM meta"))
            # ids go on from the last one ever given: never one a notifier saw before
            given = int(self._meta.get(NEXT_ID_KEY, "1"))
            self._next_id = max(given, max(self._outbox, default=0) + 1)
            self._nodes = {
                (g, n): data
                for g, n, data in conn.execute("SELECT grp, node, data FROM sparkplug_nodes")
            }

    def reload(self) -> None:
        """Read the state again (a standby's view of what the leader wrote); raises
        ``StoreUnavailable``. What was queued here is dropped: a standby writes nothing."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._close_conn()
                    self._conn = self._connect()
                if not self._migrated:
                    self._migrate(self._conn)
                self._load(self._conn)
            except psycopg.Error as e:
                self._close_conn()
                raise StoreUnavailable(self.where, str(e).strip()) from None
        self._queued = _Changes()

    @property
    def pending(self) -> int:
        return len(self._queued) + (0 if self._writing is None else len(self._writing))

    async def aclose(self) -> None:
        # What is queued goes in one last write, in a thread: a stop within its bound.
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        self.flush(force=True)
        if self.pending and self.fenced:  # the leader's now: what it knows, it wrote
            log.warning("store.closed_not_leading", store=self.where, dropped=self.pending)
        elif self.pending:
            log.error("store.closed_with_pending", store=self.where, pending=self.pending)
        with self._lock:
            self._close_conn()

    # -- writing what is queued --

    def _changed(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Write what is queued, as soon as it is (coalesced while a write is under way);
        while the database fails, at most every RETRY_S."""
        self._wake = wake = asyncio.Event()
        while True:
            if not self._queued:
                await wake.wait()
            wake.clear()
            if self.problem is not None and (wait := self._retry_at - self._clock.monotonic()) > 0:
                await asyncio.sleep(wait)
            batch, self._queued = self._queued, _Changes()
            self._writing = batch
            write = asyncio.ensure_future(asyncio.to_thread(self._write, batch))
            try:
                await asyncio.shield(write)
            finally:
                # Cancelled meanwhile (the stop), the thread still finishes what it began,
                # and its outcome decides: a batch written must not be written twice.
                await asyncio.wait([write])
                self._writing = None
                if write.cancelled() or write.exception() is not None or not write.result():
                    self._queued = batch.then(self._queued)
                elif batch.outbox and self.on_written is not None:
                    self.on_written()  # notifications the notifier may take now

    def flush(self, force: bool = False) -> bool:
        """Write what is queued now, on this thread (the stop, tests); False if it waits."""
        if self.read_only:
            self._queued = _Changes()
        if not self._queued:
            return self.problem is None
        if not force and self.problem is not None and self._clock.monotonic() < self._retry_at:
            return False
        batch, self._queued = self._queued, _Changes()
        if self._write(batch):
            if batch.outbox and self.on_written is not None:
                self.on_written()
            return True
        self._queued = batch.then(self._queued)
        return False

    def _write(self, batch: _Changes) -> bool:
        if self.term_over:  # a past term's changes, never over the next leader's
            return False
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                with self._conn.transaction(), self._conn.cursor() as cur:
                    _write(cur, batch)
                    if self.fence is not None:
                        self.fence(cur)
            except psycopg.Error as e:
                self._failed("cannot write", e)
                if self._conn is not None and self._conn.broken:
                    self._close_conn()
                return False
            except Fenced as e:  # not the leader now: nothing of it written (SPEC 8.1)
                if not self.fenced:
                    log.warning("store.fenced", store=self.where, why=str(e))
                self.fenced = True
                self.term_over = self.term_over or e.final
                self.problem = f"will not write {self.where}: {e}"
                self._retry_at = self._clock.monotonic() + RETRY_S
                return False
        self.fenced = False
        self._unwritten.difference_update(batch.outbox)
        if self.problem is not None:
            log.info("store.recovered", store=self.where)
            self.problem = None
        return True

    def _failed(self, doing: str, e: Exception) -> None:
        reason = str(e).strip()
        problem = f"{doing} {self.where}: {reason}"
        if problem != self.problem:
            log.error("store.failing", store=self.where, error=reason)
        self.problem = problem
        self._retry_at = self._clock.monotonic() + RETRY_S

    # -- alerts --

    def save_alerts(self, alerts: Iterable[Alert]) -> None:
        for a in alerts:
            self._alerts[a.id] = copy(a)
            self._queued.alerts[a.id] = self._alerts[a.id]
        self._keep_history()
        self._changed()

    def _keep_history(self) -> None:
        resolved = [a for a in self._alerts.values() if not a.is_open]
        if len(resolved) > HISTORY:
            resolved.sort(key=lambda a: a.fired_at)
            for a in resolved[: len(resolved) - HISTORY]:
                del self._alerts[a.id]  # written (or queued): the database keeps it
                self._deliveries.pop(a.id, None)

    def alerts(self, open_only: bool, limit: int | None = PAGE) -> list[Alert]:
        found = [copy(a) for a in self._alerts.values() if a.is_open or not open_only]
        found.sort(key=lambda a: a.fired_at, reverse=True)
        return found if limit is None else found[:limit]

    def alert(self, alert_id: str) -> Alert | None:
        a = self._alerts.get(alert_id)
        return None if a is None else copy(a)

    # -- maintenance windows --

    def save_window(self, w: Window) -> None:
        self._windows[w.id] = w
        self._queued.windows[w.id] = w
        self._changed()

    def delete_window(self, window_id: str) -> None:
        self._windows.pop(window_id, None)
        self._queued.windows[window_id] = None
        self._changed()

    def windows(self) -> list[Window]:
        return list(self._windows.values())

    # -- devices --

    def save_devices(self, states: Iterable[DeviceState]) -> None:
        for ds in states:
            text = device_json(ds)
            if self._devices.get(key := ds.device.key) != text:
                self._devices[key] = self._queued.devices[key] = text
        self._changed()

    def forget_device(self, key: DeviceKey) -> None:
        self._devices.pop(key, None)
        self._queued.devices[key] = None
        self._changed()

    def devices(self) -> list[DeviceState]:
        return [device_state(text) for text in self._devices.values()]

    # -- notification outbox --

    def outbox_add(self, channel: str, created: float, data: dict[str, Any]) -> None:
        item = OutboxItem(self._next_id, channel, created, 0, data)
        self._next_id += 1
        self._unwritten.add(item.id)
        self._outbox[item.id] = self._queued.outbox[item.id] = item
        self._queued.meta[NEXT_ID_KEY] = str(self._next_id)
        self._changed()

    def outbox_next(self, channel: str, after: OutboxItem | None = None) -> OutboxItem | None:
        """The oldest of the channel's notifications not yet delivered (``after`` one),
        once its row is committed."""
        after_id = 0 if after is None else after.id
        return next(
            (
                i
                for i in self._outbox.values()
                if i.channel == channel and i.id > after_id and i.id not in self._unwritten
            ),
            None,
        )

    def outbox_channels(self) -> list[str]:
        return list(dict.fromkeys(i.channel for i in self._outbox.values()))

    def outbox_attempted(self, item: OutboxItem, refused: bool = False) -> None:
        if (kept := self._outbox.get(item.id)) is None:
            return
        kept = replace(kept, attempts=kept.attempts + 1, refused=kept.refused + refused)
        self._outbox[item.id] = self._queued.outbox[item.id] = kept
        self._changed()

    def outbox_done(self, item: OutboxItem, at: float, ok: bool, error: str | None) -> None:
        alert_id = str(item.data.get("alert_id", ""))
        delivery = (at, alert_id, str(item.data.get("event", "")), item.channel, ok, error)
        if alert_id in self._alerts:
            self._deliveries.setdefault(alert_id, []).append(delivery)
        self._queued.deliveries.append(delivery)
        del self._queued.deliveries[:-MAX_PENDING]
        if self._outbox.pop(item.id, None) is not None:
            self._queued.outbox[item.id] = None
        self._changed()

    def deliveries(self, alert_id: str) -> list[dict[str, Any]]:
        return [
            dict(zip(DELIVERY_FIELDS, (at, e, c, ok, err), strict=True))
            for at, _, e, c, ok, err in self._deliveries.get(alert_id, [])
        ]

    # -- Sparkplug edge nodes (SPEC 3.4) --

    def save_sparkplug_nodes(self, nodes: Iterable[tuple[str, str, str | None]]) -> None:
        for group, node, data in nodes:
            if data is None:
                self._nodes.pop((group, node), None)
            else:
                self._nodes[(group, node)] = data
            self._queued.nodes[(group, node)] = data
        self._changed()

    def sparkplug_nodes(self) -> list[tuple[str, str, str]]:
        return [(g, n, data) for (g, n), data in self._nodes.items()]

    # -- small facts --

    def get(self, key: str) -> str | None:
        return self._meta.get(key)

    def put(self, key: str, value: str) -> None:
        if self._meta.get(key) != value:
            self._meta[key] = self._queued.meta[key] = value
            self._changed()

    # -- history kept bounded --

    def prune(self, now: float) -> None:
        self._queued.prune_before = now - KEEP_S
        self._changed()


def _write(cur: psycopg.Cursor[Any], c: _Changes) -> None:
    if c.alerts:
        cur.executemany(
            "INSERT INTO alerts (id, open, fired_at, data) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET open = excluded.open, data = excluded.data",
            [(a.id, a.is_open, a.fired_at, json.dumps(a.to_dict())) for a in c.alerts.values()],
        )
    _upsert(
        cur,
        "INSERT INTO maintenance (id, data) VALUES (%s, %s)"
        " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
        "DELETE FROM maintenance WHERE id = %s",
        {(k,): None if w is None else json.dumps(w.to_dict()) for k, w in c.windows.items()},
    )
    _upsert(
        cur,
        "INSERT INTO devices (site, id, data) VALUES (%s, %s, %s)"
        " ON CONFLICT (site, id) DO UPDATE SET data = excluded.data",
        "DELETE FROM devices WHERE site = %s AND id = %s",
        dict(c.devices.items()),
    )
    if added := [i for i in c.outbox.values() if i is not None]:
        cur.executemany(
            "INSERT INTO outbox (id, channel, created, attempts, refused, data)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE"
            " SET attempts = excluded.attempts, refused = excluded.refused",
            [
                (i.id, i.channel, i.created, i.attempts, i.refused, json.dumps(i.data))
                for i in added
            ],
        )
    if gone := [(i,) for i, item in c.outbox.items() if item is None]:
        cur.executemany("DELETE FROM outbox WHERE id = %s", gone)
    if c.deliveries:
        cur.executemany(
            "INSERT INTO deliveries (at, alert_id, event, channel, ok, error)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            c.deliveries,
        )
    if c.meta:
        cur.executemany(
            "INSERT INTO meta (key, value) VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(c.meta.items()),
        )
    _upsert(
        cur,
        "INSERT INTO sparkplug_nodes (grp, node, data) VALUES (%s, %s, %s)"
        " ON CONFLICT (grp, node) DO UPDATE SET data = excluded.data",
        "DELETE FROM sparkplug_nodes WHERE grp = %s AND node = %s",
        dict(c.nodes.items()),
    )
    if (cutoff := c.prune_before) is not None:
        cur.execute("DELETE FROM alerts WHERE NOT open AND fired_at < %s", (cutoff,))
        cur.execute(
            "DELETE FROM alerts WHERE NOT open AND id NOT IN"
            " (SELECT id FROM alerts ORDER BY fired_at DESC LIMIT %s)",
            (KEEP_ROWS,),
        )
        cur.execute("DELETE FROM deliveries WHERE at < %s", (cutoff,))
        cur.execute(
            "DELETE FROM deliveries WHERE id <= (SELECT max(id) FROM deliveries) - %s",
            (KEEP_ROWS,),
        )


def _upsert(
    cur: psycopg.Cursor[Any], insert: str, delete: str, rows: dict[Any, str | None]
) -> None:
    """Rows by key: a text is written (inserted or replaced), None deletes the row."""
    if written := [(*k, text) for k, text in rows.items() if text is not None]:
        cur.executemany(insert, written)
    if deleted := [tuple(k) for k, text in rows.items() if text is None]:
        cur.executemany(delete, deleted)
