"""Durable state in SQLite (WAL) under ``state_dir``: alerts, maintenance windows,
devices' last-seen, the notification outbox and its delivery history.

Small synchronous writes on the event loop: each is tens of microseconds in WAL mode
with synchronous=NORMAL, far below anything that would need a thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.alerting.engine import Alert, Window
from monitor.alerting.rules import DeviceState
from monitor.lifecycle import Resource
from monitor.model import Device

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, open INTEGER NOT NULL, fired_at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (open, fired_at);
CREATE TABLE IF NOT EXISTS maintenance (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_channel ON outbox (channel, id);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, alert_id TEXT NOT NULL,
    event TEXT NOT NULL, channel TEXT NOT NULL, ok INTEGER NOT NULL, error TEXT);
"""

_DEVICE_FIELDS = ("last_seen", "state", "state_since", "online", "offline_since", "code")


@dataclass(frozen=True)
class OutboxItem:
    id: int
    channel: str
    created: float
    attempts: int
    data: dict[str, Any]


class Store(Resource):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # -- alerts --

    def save_alerts(self, alerts: Iterable[Alert]) -> None:
        rows = [(a.id, int(a.is_open), a.fired_at, json.dumps(a.to_dict())) for a in alerts]
        if rows:
            with self._db:
                self._db.executemany(
                    "INSERT INTO alerts (id, open, fired_at, data) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(id) DO UPDATE SET open=excluded.open, data=excluded.data",
                    rows,
                )

    def alerts(self, open_only: bool, limit: int = 500) -> list[Alert]:
        where = "WHERE open = 1" if open_only else ""
        cur = self._db.execute(
            f"SELECT data FROM alerts {where} ORDER BY fired_at DESC LIMIT ?", (limit,)
        )
        return [Alert.from_dict(json.loads(row[0])) for row in cur]

    def alert(self, alert_id: str) -> Alert | None:
        row = self._db.execute("SELECT data FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return Alert.from_dict(json.loads(row[0])) if row else None

    # -- maintenance windows --

    def save_window(self, w: Window) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO maintenance (id, data) VALUES (?, ?)",
            (w.id, json.dumps(w.to_dict())),
        )

    def delete_window(self, window_id: str) -> bool:
        return self._db.execute("DELETE FROM maintenance WHERE id = ?", (window_id,)).rowcount > 0

    def windows(self) -> list[Window]:
        return [
            Window(**json.loads(r[0])) for r in self._db.execute("SELECT data FROM maintenance")
        ]

    # -- devices --

    def save_devices(self, states: Iterable[DeviceState]) -> None:
        rows = []
        for ds in states:
            data = {f: getattr(ds, f) for f in _DEVICE_FIELDS}
            d = ds.device
            data["device"] = [d.id, d.kind, d.site, d.area]
            rows.append((d.id, json.dumps(data)))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO devices (id, data) VALUES (?, ?)", rows)

    def devices(self) -> list[DeviceState]:
        out = []
        for (raw,) in self._db.execute("SELECT data FROM devices"):
            data = json.loads(raw)
            ds = DeviceState(Device(*data.pop("device")))
            for f in _DEVICE_FIELDS:
                setattr(ds, f, data.get(f))
            out.append(ds)
        return out

    # -- notification outbox --

    def outbox_add(self, channel: str, created: float, data: dict[str, Any]) -> int:
        cur = self._db.execute(
            "INSERT INTO outbox (channel, created, data) VALUES (?, ?, ?)",
            (channel, created, json.dumps(data)),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def outbox_next(self, channel: str) -> OutboxItem | None:
        row = self._db.execute(
            "SELECT id, channel, created, attempts, data FROM outbox WHERE channel = ?"
            " ORDER BY id LIMIT 1",
            (channel,),
        ).fetchone()
        if row is None:
            return None
        return OutboxItem(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def outbox_channels(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT channel FROM outbox")]

    def outbox_attempted(self, item_id: int) -> None:
        self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))

    def outbox_done(self, item: OutboxItem, at: float, ok: bool, error: str | None) -> None:
        with self._db:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item.id,))
            self._db.execute(
                "INSERT INTO deliveries (at, alert_id, event, channel, ok, error)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    at,
                    item.data.get("alert_id", ""),
                    item.data.get("event", ""),
                    item.channel,
                    int(ok),
                    error,
                ),
            )

    def deliveries(self, alert_id: str) -> list[dict[str, Any]]:
        cur = self._db.execute(
            "SELECT at, event, channel, ok, error FROM deliveries WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )
        return [dict(zip(("at", "event", "channel", "ok", "error"), r, strict=True)) for r in cur]
