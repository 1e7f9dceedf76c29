"""The store on a real full disk: nothing raises, reads see what waits in memory, a
notification the outbox cannot keep is delivered from memory, and once space returns all
of it is written and nothing is delivered twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.alerting.engine import Alert, Window
from monitor.alerting.rules import DeviceState
from monitor.alerting.store import SqliteStore
from monitor.alerting.store.sqlite import MIGRATIONS, SCHEMA, SCHEMA_VERSION
from monitor.model import Device
from tests.helpers import ManualClock, SmallDisk

T0 = 1_790_000_000.0


def alert(i: int, state: str = "firing") -> Alert:
    a = Alert(f"a{i}", "no_data", "aktau", "a", "xray_scanner", f"xs-{i}", "critical", "s", T0, T0)
    a.state = state  # type: ignore[assignment]
    return a


def test_a_full_disk_keeps_state_in_memory_and_writes_it_when_space_returns(
    small_disk: SmallDisk,
) -> None:
    clock = ManualClock(T0)
    store = SqliteStore(small_disk.path / "state.db", clock)
    store.save_alerts([alert(0)])
    store.outbox_add("webhook:http://h/x", T0, {"alert_id": "a0", "event": "firing"})
    written = store.outbox_next("webhook:http://h/x")
    assert written is not None and written.id > 0
    assert store.problem is None

    small_disk.fill()
    store.save_alerts([alert(1), alert(0, "resolved")])  # does not raise
    store.save_window(Window("w1", "device", "xs-1", T0, T0 + 3600))
    store.save_devices([DeviceState(Device("xs-1", "xray_scanner", "aktau", "a"), last_seen=T0)])
    store.outbox_add("webhook:http://h/x", T0, {"alert_id": "a1", "event": "firing"})
    assert store.problem is not None and "full" in store.problem
    assert store.pending >= 4
    # reads see what waits in memory
    assert [a.id for a in store.alerts(open_only=True)] == ["a1"]
    assert store.alert("a0") is not None and store.alert("a0").state == "resolved"  # type: ignore[union-attr]
    assert [w.id for w in store.windows()] == ["w1"]
    assert [d.device.id for d in store.devices()] == ["xs-1"]
    # the notifications: the one on disk first, then the one only in memory
    first = store.outbox_next("webhook:http://h/x")
    assert first is not None and first.id == written.id
    store.outbox_done(first, T0, True, None)
    second = store.outbox_next("webhook:http://h/x")
    assert second is not None and second.id < 0 and second.data["alert_id"] == "a1"
    store.outbox_done(second, T0, True, None)  # delivered from memory
    assert store.outbox_next("webhook:http://h/x") is None

    small_disk.free()
    clock.advance(10)  # past the retry pacing
    store.save_devices([])  # any write retries what waits
    assert (store.problem, store.pending) == (None, 0)
    store.close()

    again = SqliteStore(small_disk.path / "state.db", clock)  # after a restart
    assert {a.id: a.state for a in again.alerts(open_only=False)} == {
        "a0": "resolved",
        "a1": "firing",
    }
    assert [w.id for w in again.windows()] == ["w1"]
    assert again.outbox_next("webhook:http://h/x") is None  # nothing is sent twice
    assert [d["event"] for d in again.deliveries("a1")] == ["firing"]
    again.close()


def test_a_store_that_cannot_be_created_starts_empty_and_keeps_trying(
    small_disk: SmallDisk,
) -> None:
    clock = ManualClock(T0)
    small_disk.fill()
    store = SqliteStore(small_disk.path / "state.db", clock)
    assert store.problem is not None
    assert store.alerts(open_only=False) == [] and store.devices() == []
    store.save_alerts([alert(2)])
    assert [a.id for a in store.alerts(open_only=True)] == ["a2"]
    small_disk.free()
    clock.advance(10)
    store.save_devices([])
    assert store.problem is None
    store.close()
    assert [a.id for a in SqliteStore(small_disk.path / "state.db", clock).alerts(True)] == ["a2"]


def test_history_is_pruned_by_age_and_open_alerts_are_kept(tmp_path: Path) -> None:
    from monitor.alerting.store import KEEP_S

    store = SqliteStore(tmp_path / "state.db", ManualClock(T0))
    old = [alert(i, "resolved") for i in range(5)]
    for a in old:
        a.fired_at = T0 - KEEP_S - 60
    still_open = alert(5)
    still_open.fired_at = T0 - KEEP_S - 60  # old, but open: kept whatever its age
    recent = alert(6, "resolved")
    store.save_alerts([*old, still_open, recent])
    for a in old:
        item_data = {"alert_id": a.id, "event": "resolved"}
        store.outbox_add("webhook:http://h/x", T0, item_data)
        item = store.outbox_next("webhook:http://h/x")
        assert item is not None
        store.outbox_done(item, T0 - KEEP_S - 60, True, None)
    store.prune(T0)
    assert {a.id for a in store.alerts(open_only=False)} == {"a5", "a6"}
    assert store.deliveries("a0") == []
    store.close()


def test_every_open_alert_is_read_back_not_a_page(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", ManualClock(T0))
    store.save_alerts([alert(i) for i in range(700)])
    assert len(store.alerts(open_only=True)) == 500  # a page, for the API
    assert len(store.alerts(open_only=True, limit=None)) == 700  # all, for a restart
    store.close()


def test_migrating_drops_what_it_cannot_carry_and_refuses_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from monitor.errors import StateMigrationError

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE devices (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
    good = '{"last_seen": 1.0, "device": ["gb-01", "gate_barrier", "aktau", "gate-in"]}'
    db.executemany(
        "INSERT INTO devices VALUES (?, ?)",
        [("gb-01", good), ("x", '{"device": ["x", "gate_barrier"]}'), ("y", "not json")],
    )
    db.commit()
    db.close()
    store = SqliteStore(path, ManualClock(T0))
    assert [d.device.key for d in store.devices()] == [("aktau", "gb-01")]
    assert store.problem is None
    store.close()
    # a step that the rows themselves defeat: refused (exit 2), the store as it was
    bad = tmp_path / "bad.db"
    sqlite3.connect(bad).executescript("CREATE TABLE devices (id TEXT, data TEXT);")

    def defeated(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE probe (x)")
        raise sqlite3.IntegrityError("UNIQUE constraint failed: devices.site, devices.id")

    monkeypatch.setitem(MIGRATIONS, 1, defeated)
    with pytest.raises(StateMigrationError, match="schema 1"):
        SqliteStore(bad, ManualClock(T0))
    tables = sqlite3.connect(bad).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("devices",)]  # nothing of the failed step left behind


def test_a_schema_2_store_gains_the_sparkplug_nodes_and_keeps_them(tmp_path: Path) -> None:
    """Schema 3 (issue 20.9): the Sparkplug edge nodes, migrated into a store of schema 2."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS sparkplug_nodes")[0])
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO meta VALUES ('mqtt.subscriptions', '[]')")
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.get("mqtt.subscriptions") == "[]"  # what it had is kept
    assert store.sparkplug_nodes() == []
    store.save_sparkplug_nodes([("plc", "gw-1", '{"born": true}'), ("plc", "gw-2", "{}")])
    store.save_sparkplug_nodes([("plc", "gw-2", None)])  # forgotten
    store.close()
    again = SqliteStore(path)
    assert again.sparkplug_nodes() == [("plc", "gw-1", '{"born": true}')]
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == (SCHEMA_VERSION,) == (3,)
    again.close()
