"""The store in SQLite (WAL) under ``state_dir``: the embedded default, for one monitor.

Writes never raise. What the disk does not take (full, failing, read-only) is kept in
memory, bounded, seen by every read, and written in one transaction as soon as the disk
takes it again: each write tries, and while failing at most every ``RETRY_S``. ``problem``
says why meanwhile (``/health``, the monitor's own alert). A store that cannot even be
created (a new state_dir on a full disk) starts empty and keeps trying: the monitor runs
degraded rather than not at all.

Small synchronous writes on the event loop: each is tens of microseconds in WAL mode with
synchronous=NORMAL, far below anything that would need a thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from monitor import logs, schema_version
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
from monitor.clock import Clock, SystemClock
from monitor.errors import StateMigrationError, StateVersionError
from monitor.lifecycle import Resource
from monitor.model import DeviceKey

log = logs.get(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, open INTEGER NOT NULL, fired_at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (open, fired_at);
CREATE TABLE IF NOT EXISTS maintenance (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    site TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (site, id));
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL,
    refused INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_channel ON outbox (channel, id);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, alert_id TEXT NOT NULL,
    event TEXT NOT NULL, channel TEXT NOT NULL, ok INTEGER NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS deliveries_alert ON deliveries (alert_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sparkplug_nodes (
    grp TEXT NOT NULL, node TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (grp, node));
"""

# PRAGMA user_version of state.db: 0, a monitor before versions (devices keyed by id
# alone); 1, devices keyed by (site, id) (SPEC 2); 2, the outbox counts the tries refused
# for their content; 3, the Sparkplug edge nodes (SPEC 3.4: their birth's bdSeq and devices
# survive a restart). Each step below migrates from the one before it; a store newer than
# this monitor is refused, not overwritten.
SCHEMA_VERSION = 3


def _devices_by_site(db: sqlite3.Connection) -> None:
    if "id" in (columns := schema_version.columns(db, "devices")) and "site" not in columns:
        db.execute("ALTER TABLE devices RENAME TO devices_by_id")
        db.execute(
            "CREATE TABLE devices (site TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,"
            " PRIMARY KEY (site, id))"
        )
        db.execute(  # the device's site is in its saved data: [id, kind, site, area]
            "INSERT OR REPLACE INTO devices (site, id, data)"
            " SELECT json_extract(data, '$.device[2]'), id, data FROM devices_by_id"
            " WHERE json_valid(data) AND json_type(data, '$.device[2]') = 'text'"
        )
        lost = (
            db.execute("SELECT count(*) FROM devices_by_id").fetchone()[0]
            - db.execute("SELECT count(*) FROM devices").fetchone()[0]
        )
        if lost:  # last-seen times without a site: forgotten, heard anew when they speak
            log.warning("store.devices_without_site", dropped=lost)
        db.execute("DROP TABLE devices_by_id")


def _outbox_refusals(db: sqlite3.Connection) -> None:
    if (columns := schema_version.columns(db, "outbox")) and "refused" not in columns:
        db.execute("ALTER TABLE outbox ADD COLUMN refused INTEGER NOT NULL DEFAULT 0")


def _sparkplug_nodes(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS sparkplug_nodes (grp TEXT NOT NULL, node TEXT NOT NULL,"
        " data TEXT NOT NULL, PRIMARY KEY (grp, node))"
    )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _devices_by_site,
    2: _outbox_refusals,
    3: _sparkplug_nodes,
}


class SqliteStore(Resource):
    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self.path = path
        self._clock = clock or SystemClock()
        self._db: sqlite3.Connection | None = None
        self.problem: str | None = None  # why the disk refuses, while it does
        self._retry_at = 0.0
        # Not yet on disk: the newest state of each thing.
        self._alerts: dict[str, Alert] = {}
        self._windows: dict[str, Window | None] = {}  # None: deleted
        self._devices: dict[DeviceKey, str | None] = {}  # its JSON; None: forgotten
        self._outbox: dict[int, OutboxItem] = {}  # by (negative) temporary id
        self._written_as: dict[int, int] = {}  # temporary id -> id on disk
        self._done: dict[int, Delivery] = {}  # on disk, delivered, not yet deleted
        self._attempts: Counter[int] = Counter()
        self._refused: Counter[int] = Counter()
        self._deliveries: deque[Delivery] = deque(maxlen=1000)
        self._meta: dict[str, str] = {}
        self._nodes: dict[tuple[str, str], str | None] = {}  # Sparkplug; None: forgotten
        self._next_temp = -1
        self._skipped_windows: set[str] = set()  # rows said once: not a window we can keep
        self._open_db()

    # -- the connection --

    def _open_db(self) -> bool:
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # the version first: a newer store is left exactly as it was, header and all
            schema_version.migrate(db, str(self.path), SCHEMA, SCHEMA_VERSION, MIGRATIONS)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except (StateVersionError, StateMigrationError):
            if db is not None:
                db.close()
            raise
        except (sqlite3.Error, OSError) as e:
            if db is not None:
                db.close()
            self._failed("cannot open", e)
            return False
        self._db = db
        return True

    def _failed(self, doing: str, e: Exception) -> None:
        problem = f"{doing} {self.path}: {e}"
        if problem != self.problem:
            log.error("store.failing", path=str(self.path), error=str(e), pending=self.pending)
        self.problem = problem
        self._retry_at = self._clock.monotonic() + RETRY_S

    @property
    def pending(self) -> int:
        """How many things wait in memory for the disk."""
        return (
            len(self._alerts)
            + len(self._windows)
            + len(self._devices)
            + len(self._outbox)
            + len(self._done)
            + len(self._attempts)
            + len(self._refused)
            + len(self._meta)
            + len(self._nodes)
        )

    async def aclose(self) -> None:
        self.close()

    async def run(self) -> None:
        """Nothing in the background: each write tries what waits (at most every RETRY_S)."""

    def close(self) -> None:
        self.flush(force=True)
        if self.pending:
            log.error("store.closed_with_pending", path=str(self.path), pending=self.pending)
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writing what is pending --

    def flush(self, force: bool = False) -> bool:
        """Write everything pending in one transaction; False (all of it kept) if the disk
        does not take it. While failing, tries at most every RETRY_S unless ``force``."""
        if not self.pending and self.problem is None:
            return True
        if not force and self.problem is not None and self._clock.monotonic() < self._retry_at:
            return False
        if self._db is None and not self._open_db():
            return False
        assert self._db is not None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                written = self._write_pending(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            self._failed("cannot write", e)
            return False
        self._written_as.update(written)
        self._alerts.clear()
        self._windows.clear()
        self._devices.clear()
        self._outbox.clear()
        self._done.clear()
        self._attempts.clear()
        self._refused.clear()
        self._deliveries.clear()
        self._meta.clear()
        self._nodes.clear()
        if self.problem is not None:
            log.info("store.recovered", path=str(self.path))
            self.problem = None
        return True

    def _write_pending(self, db: sqlite3.Connection) -> dict[int, int]:
        db.executemany(
            "INSERT INTO alerts (id, open, fired_at, data) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET open=excluded.open, data=excluded.data",
            [
                (a.id, int(a.is_open), a.fired_at, json.dumps(a.to_dict()))
                for a in self._alerts.values()
            ],
        )
        for window_id, w in self._windows.items():
            if w is None:
                db.execute("DELETE FROM maintenance WHERE id = ?", (window_id,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO maintenance (id, data) VALUES (?, ?)",
                    (w.id, json.dumps(w.to_dict())),
                )
        db.executemany(
            "INSERT OR REPLACE INTO devices (site, id, data) VALUES (?, ?, ?)",
            [(site, i, data) for (site, i), data in self._devices.items() if data is not None],
        )
        db.executemany(
            "DELETE FROM devices WHERE site = ? AND id = ?",
            [key for key, data in self._devices.items() if data is None],
        )
        written = {}
        for item in self._outbox.values():
            cur = db.execute(
                "INSERT INTO outbox (channel, created, attempts, refused, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (item.channel, item.created, item.attempts, item.refused, json.dumps(item.data)),
            )
            assert cur.lastrowid is not None
            written[item.id] = cur.lastrowid
        db.executemany(
            "UPDATE outbox SET attempts = attempts + ? WHERE id = ?",
            [(n, item_id) for item_id, n in self._attempts.items()],
        )
        db.executemany(
            "UPDATE outbox SET refused = refused + ? WHERE id = ?",
            [(n, item_id) for item_id, n in self._refused.items()],
        )
        db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in self._done])
        db.executemany(
            "INSERT INTO deliveries (at, alert_id, event, channel, ok, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(at, a, e, c, int(ok), err) for at, a, e, c, ok, err in self._deliveries],
        )
        db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", self._meta.items())
        db.executemany(
            "INSERT OR REPLACE INTO sparkplug_nodes (grp, node, data) VALUES (?, ?, ?)",
            [(g, n, data) for (g, n), data in self._nodes.items() if data is not None],
        )
        db.executemany(
            "DELETE FROM sparkplug_nodes WHERE grp = ? AND node = ?",
            [key for key, data in self._nodes.items() if data is None],
        )
        return written

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Rows from the disk; none when it cannot be read (the problem is reported)."""
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as e:
            self._failed("cannot read", e)
            return []

    def _bound(self, pending: dict[Any, Any], what: str) -> None:
        while len(pending) > MAX_PENDING:
            pending.pop(next(iter(pending)))
            log.error("store.dropped_pending", what=what, limit=MAX_PENDING)

    # -- alerts --

    def save_alerts(self, alerts: Iterable[Alert]) -> None:
        for a in alerts:
            self._alerts.pop(a.id, None)  # newest last: the oldest goes first when bounded
            self._alerts[a.id] = a
        self._bound(self._alerts, "alerts")
        self.flush()

    def alerts(self, open_only: bool, limit: int | None = PAGE) -> list[Alert]:
        """The newest alerts first, at most ``limit`` (None: all, as a restart needs)."""
        where = "WHERE open = 1" if open_only else ""
        rows = self._read(
            f"SELECT data FROM alerts {where} ORDER BY fired_at DESC LIMIT ?",
            [-1 if limit is None else limit],
        )
        found = {a.id: a for a in (Alert.from_dict(json.loads(r[0])) for r in rows)}
        for a in self._alerts.values():
            if a.is_open or not open_only:
                found[a.id] = copy(a)
            else:
                found.pop(a.id, None)
        newest = sorted(found.values(), key=lambda a: a.fired_at, reverse=True)
        return newest if limit is None else newest[:limit]

    def alert(self, alert_id: str) -> Alert | None:
        if (pending := self._alerts.get(alert_id)) is not None:
            return copy(pending)
        rows = self._read("SELECT data FROM alerts WHERE id = ?", [alert_id])
        return Alert.from_dict(json.loads(rows[0][0])) if rows else None

    # -- maintenance windows --

    def save_window(self, w: Window) -> None:
        self._windows[w.id] = w
        self.flush()

    def delete_window(self, window_id: str) -> None:
        self._windows[window_id] = None
        self.flush()

    def windows(self) -> list[Window]:
        """The saved windows; a row that is not one this version can keep (an older version
        saved a window ending in the year 10000) is left out, and said once."""
        found: dict[str, Window] = {}
        skipped: list[str] = []
        for row_id, text in self._read("SELECT id, data FROM maintenance"):
            if (w := stored_window(text)) is not None:
                found[w.id] = w
            elif str(row_id) not in self._skipped_windows:
                skipped.append(str(row_id))
        if skipped:
            self._skipped_windows.update(skipped)
            log.warning(
                "store.windows_skipped",
                count=len(skipped),
                ids=",".join(i[:32] for i in skipped[:10]),
                why="not a valid window (SPEC 6: at most 366 days, within the years 1970-9999)",
            )
        for window_id, w in self._windows.items():
            if w is None:
                found.pop(window_id, None)
            else:
                found[window_id] = w
        return list(found.values())

    # -- devices --

    def save_devices(self, states: Iterable[DeviceState]) -> None:
        for ds in states:
            self._devices[ds.device.key] = device_json(ds)
        self.flush()

    def forget_device(self, key: DeviceKey) -> None:
        self._devices[key] = None
        self.flush()

    def devices(self) -> list[DeviceState]:
        raw = {(r[0], r[1]): r[2] for r in self._read("SELECT site, id, data FROM devices")}
        raw.update(self._devices)
        return [device_state(text) for text in raw.values() if text is not None]

    # -- notification outbox --

    def outbox_add(self, channel: str, created: float, data: dict[str, Any]) -> None:
        """Queue a notification; if the disk refuses it, it is delivered from memory."""
        item = OutboxItem(self._next_temp, channel, created, 0, data)
        self._next_temp -= 1
        self._outbox[item.id] = item
        if not self.flush() and len(self._outbox) > MAX_PENDING:
            self._bound(self._outbox, "notifications")

    def outbox_next(self, channel: str, after: OutboxItem | None = None) -> OutboxItem | None:
        """The oldest notification of this channel not yet delivered (``after`` one)."""
        after_id = 0 if after is None else self._written_as.get(after.id, after.id)
        memory = [i for i in self._outbox.values() if i.channel == channel]
        if after_id < 0:  # in memory: those queued after it, in their order
            return next((i for i in memory if i.id < after_id), None)
        rows = self._read(
            "SELECT id, channel, created, attempts, data, refused FROM outbox"
            " WHERE channel = ? AND id > ? ORDER BY id LIMIT ?",
            [channel, after_id, len(self._done) + 1],
        )
        for row in rows:
            if row[0] not in self._done:
                return OutboxItem(
                    row[0],
                    row[1],
                    row[2],
                    row[3] + self._attempts[row[0]],
                    json.loads(row[4]),
                    row[5] + self._refused[row[0]],
                )
        return memory[0] if memory else None

    def outbox_channels(self) -> list[str]:
        channels = [r[0] for r in self._read("SELECT DISTINCT channel FROM outbox")]
        return list(dict.fromkeys([*channels, *(i.channel for i in self._outbox.values())]))

    def outbox_attempted(self, item: OutboxItem, refused: bool = False) -> None:
        """One more failed try; ``refused``: one that counts towards giving it up."""
        item_id = self._written_as.get(item.id, item.id)
        if item_id < 0:  # only in memory: the item itself carries its counts
            if (kept := self._outbox.get(item_id)) is not None:
                self._outbox[item_id] = replace(
                    kept, attempts=kept.attempts + 1, refused=kept.refused + refused
                )
            return
        self._attempts[item_id] += 1
        if refused:
            self._refused[item_id] += 1
        self.flush()

    def outbox_done(self, item: OutboxItem, at: float, ok: bool, error: str | None) -> None:
        delivery = (
            at,
            str(item.data.get("alert_id", "")),
            str(item.data.get("event", "")),
            item.channel,
            ok,
            error,
        )
        self._deliveries.append(delivery)
        if self._outbox.pop(item.id, None) is None:  # on disk (perhaps since it was taken)
            self._done[self._written_as.pop(item.id, item.id)] = delivery
        self.flush()

    def deliveries(self, alert_id: str) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT at, event, channel, ok, error FROM deliveries WHERE alert_id = ? ORDER BY id",
            [alert_id],
        )
        rows += [
            (at, e, c, int(ok), err) for at, a, e, c, ok, err in self._deliveries if a == alert_id
        ]
        return [dict(zip(DELIVERY_FIELDS, r, strict=True)) for r in rows]

    # -- Sparkplug edge nodes (SPEC 3.4) --

    def save_sparkplug_nodes(self, nodes: Iterable[tuple[str, str, str | None]]) -> None:
        """(group, node, snapshot, or None: forgotten); bounded by sparkplug.max_nodes."""
        changed = False
        for group, node, data in nodes:
            self._nodes[(group, node)] = data
            changed = True
        if changed:
            self._bound(self._nodes, "sparkplug nodes")
            self.flush()

    def sparkplug_nodes(self) -> list[tuple[str, str, str]]:
        raw = {
            (r[0], r[1]): r[2] for r in self._read("SELECT grp, node, data FROM sparkplug_nodes")
        }
        raw.update(self._nodes)
        return [(g, n, data) for (g, n), data in raw.items() if data is not None]

    # -- small facts of other parts (e.g. what the MQTT session is subscribed to) --

    def get(self, key: str) -> str | None:
        if key in self._meta:
            return self._meta[key]
        rows = self._read("SELECT value FROM meta WHERE key = ?", [key])
        return str(rows[0][0]) if rows else None

    def put(self, key: str, value: str) -> None:
        if self.get(key) != value:
            self._meta[key] = value
            self.flush()

    # -- history kept bounded --

    def prune(self, now: float) -> None:
        """Resolved alerts and deliveries older than KEEP_S or beyond KEEP_ROWS go."""
        if self._db is None or self.problem is not None:
            return
        cutoff = now - KEEP_S
        try:
            self._db.execute("DELETE FROM alerts WHERE open = 0 AND fired_at < ?", (cutoff,))
            self._db.execute(
                "DELETE FROM alerts WHERE open = 0 AND id NOT IN"
                " (SELECT id FROM alerts ORDER BY fired_at DESC LIMIT ?)",
                (KEEP_ROWS,),
            )
            self._db.execute("DELETE FROM deliveries WHERE at < ?", (cutoff,))
            self._db.execute(
                "DELETE FROM deliveries WHERE id <= (SELECT MAX(id) FROM deliveries) - ?",
                (KEEP_ROWS,),
            )
        except sqlite3.Error as e:
            self._failed("cannot prune", e)
