"""One suite, both stores (SPEC 8.1): SQLite under state_dir and a real PostgreSQL (a
private cluster, tests/conftest.py). Each test writes, closes the store (a restart, or
the next leader taking over), opens it again and reads what a monitor relies on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.alerting.engine import Alert, Window
from monitor.alerting.rules import DeviceState
from monitor.alerting.store import KEEP_S, SqliteStore, Store
from monitor.alerting.store.postgres import HISTORY, PostgresStore
from monitor.model import Device
from monitor.sim.devservers import Postgres
from tests.helpers import ManualClock, SmallDisk, down

T0 = 1_790_000_000.0
HOOK = "webhook:http://h/x"


@dataclass
class Backend:
    """How to open the store again (same place) and how to make its database refuse."""

    name: str
    open: Callable[[], Store]
    refusing: Callable[[], contextlib.AbstractContextManager[None]]
    clock: ManualClock


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = ManualClock(T0)
    if request.param == "sqlite":
        disk = SmallDisk(tmp_path / "disk")

        try:
            yield Backend(
                "sqlite", lambda: SqliteStore(disk.path / "state.db", clock), disk.full, clock
            )
        finally:
            disk.unmount()
        return
    server: Postgres = request.getfixturevalue("postgres_server")
    url: str = request.getfixturevalue("postgres_url")

    yield Backend("postgres", lambda: PostgresStore(url, clock), lambda: down(server), clock)


def alert(i: int, state: str = "firing", fired_at: float = T0) -> Alert:
    a = Alert(f"a{i}", "no_data", "aktau", "a", "xray_scanner", f"xs-{i}", "critical", "s", T0, T0)
    a.state = state  # type: ignore[assignment]
    a.fired_at = fired_at + i
    return a


def reopened(backend: Backend, store: Store) -> Store:
    store.close()
    return backend.open()


def test_alerts_come_back_newest_first_with_what_people_did_to_them(backend: Backend) -> None:
    store = backend.open()
    acked = alert(1)
    acked.acked_at, acked.acked_by = T0 + 5, "Айгерим"
    acked.notified = {"crew": T0 + 1}
    store.save_alerts([alert(0), acked, alert(2, "resolved")])
    store.save_alerts([alert(0, "resolved")])  # the newest state of each is what counts
    held = store.alert("a1")
    assert held is not None
    held.acked_by = "someone else"  # a copy: the store is changed only by a save
    store = reopened(backend, store)
    assert [a.id for a in store.alerts(open_only=True)] == ["a1"]
    assert [a.id for a in store.alerts(open_only=False)] == ["a2", "a1", "a0"]
    assert [a.id for a in store.alerts(open_only=False, limit=2)] == ["a2", "a1"]
    back = store.alert("a1")
    assert back is not None
    assert (back.acked_at, back.acked_by, back.notified) == (T0 + 5, "Айгерим", {"crew": T0 + 1})
    assert store.alert("nope") is None
    store.close()


def test_every_open_alert_is_read_back_not_a_page(backend: Backend) -> None:
    store = backend.open()
    store.save_alerts([alert(i) for i in range(700)])
    store = reopened(backend, store)
    assert len(store.alerts(open_only=True)) == 500  # a page, for the API
    assert len(store.alerts(open_only=True, limit=None)) == 700  # every one, for a restart
    store.close()


def test_windows_and_their_removal_hold(backend: Backend) -> None:
    store = backend.open()
    store.save_window(Window("w1", "device", "xs-1", T0, T0 + 3600, site="aktau"))
    store.save_window(Window("w2", "site", "kuryk", T0, T0 + 60))
    store.delete_window("w2")
    store = reopened(backend, store)
    assert [(w.id, w.site) for w in store.windows()] == [("w1", "aktau")]
    store.close()


def test_a_device_is_its_site_and_id_and_can_be_forgotten(backend: Backend) -> None:
    store = backend.open()
    aktau = DeviceState(Device("gb-01", "gate_barrier", "aktau", "gate"), last_seen=T0)
    kuryk = DeviceState(Device("gb-01", "weighbridge", "kuryk", "scale"), last_seen=T0 + 9)
    gone = DeviceState(Device("xs-9", "xray_scanner", "aktau", "x"), last_seen=T0)
    store.save_devices([aktau, kuryk, gone])
    store.forget_device(("aktau", "xs-9"))
    store = reopened(backend, store)
    found = {d.device.key: (d.device.kind, d.last_seen) for d in store.devices()}
    assert found == {
        ("aktau", "gb-01"): ("gate_barrier", T0),
        ("kuryk", "gb-01"): ("weighbridge", T0 + 9),
    }
    store.close()


def test_the_outbox_delivers_in_order_once_and_keeps_its_counts(backend: Backend) -> None:
    store = backend.open()
    for i in range(3):
        store.outbox_add(HOOK, T0 + i, {"alert_id": f"a{i}", "event": "firing"})
    store.outbox_add("telegram:x", T0, {"alert_id": "a0", "event": "firing"})
    store.save_alerts([alert(0)])
    assert store.flush(force=True)  # queued and written; then tried
    first = store.outbox_next(HOOK)
    assert first is not None and first.data["alert_id"] == "a0"
    store.outbox_attempted(first, refused=True)
    store.outbox_attempted(first)
    second = store.outbox_next(HOOK, after=first)
    assert second is not None and second.data["alert_id"] == "a1"
    store.outbox_done(second, T0 + 1, True, None)
    store = reopened(backend, store)  # a restart, or the next leader
    assert sorted(store.outbox_channels()) == sorted([HOOK, "telegram:x"])
    head = store.outbox_next(HOOK)
    assert head is not None
    assert (head.data["alert_id"], head.attempts, head.refused) == ("a0", 2, 1)
    store.outbox_done(head, T0 + 2, False, "given up")
    last = store.outbox_next(HOOK)
    assert last is not None and last.data["alert_id"] == "a2"  # a1 is not sent twice
    store.outbox_done(last, T0 + 3, True, None)
    store = reopened(backend, store)
    assert store.outbox_next(HOOK) is None
    assert [(d["event"], bool(d["ok"]), d["error"]) for d in store.deliveries("a0")] == [
        ("firing", False, "given up")
    ]
    later = store.outbox_next("telegram:x")
    assert later is not None
    store.outbox_add(HOOK, T0 + 4, {"alert_id": "a3", "event": "firing"})
    assert store.flush(force=True)
    newest = store.outbox_next(HOOK)
    assert newest is not None and newest.id > last.id  # ids never come back
    store.close()


def test_sparkplug_nodes_and_small_facts_hold(backend: Backend) -> None:
    store = backend.open()
    store.save_sparkplug_nodes([("G1", "n1", '{"bd": 3}'), ("G1", "n2", "{}")])
    store.save_sparkplug_nodes([("G1", "n2", None)])
    store.put("mqtt.subscriptions", '["customs/#"]')
    store = reopened(backend, store)
    assert store.sparkplug_nodes() == [("G1", "n1", '{"bd": 3}')]
    assert store.get("mqtt.subscriptions") == '["customs/#"]'
    assert store.get("nothing") is None
    store.close()


def test_history_is_pruned_by_age_and_open_alerts_are_kept(backend: Backend) -> None:
    store = backend.open()
    old = [alert(i, "resolved", fired_at=T0 - KEEP_S - 60) for i in range(5)]
    still_open = alert(5, fired_at=T0 - KEEP_S - 60)  # old, but open: kept whatever its age
    recent = alert(6, "resolved")
    store.save_alerts([*old, still_open, recent])
    store.flush(force=True)
    store.prune(T0)
    store = reopened(backend, store)
    assert {a.id for a in store.alerts(open_only=False)} == {"a5", "a6"}
    store.close()


def test_what_the_database_refuses_waits_in_memory_and_is_written_later(
    backend: Backend,
) -> None:
    store = backend.open()
    store.save_alerts([alert(0)])
    assert store.flush(force=True)
    with backend.refusing():
        store.save_alerts([alert(1), alert(0, "resolved")])  # does not raise
        store.save_window(Window("w1", "device", "xs-1", T0, T0 + 3600))
        store.save_devices([DeviceState(Device("xs-1", "xray_scanner", "aktau", "a"))])
        store.outbox_add(HOOK, T0, {"alert_id": "a1", "event": "firing"})
        assert not store.flush(force=True)
        assert store.problem is not None and store.pending >= 4
        # reads see what waits
        assert [a.id for a in store.alerts(open_only=True)] == ["a1"]
        assert [w.id for w in store.windows()] == ["w1"]
        assert [d.device.id for d in store.devices()] == ["xs-1"]
        item = store.outbox_next(HOOK)
        if backend.name == "sqlite":  # one monitor: delivered from memory meanwhile
            assert item is not None
            store.outbox_done(item, T0, True, None)
        else:  # a group: only once written (a next leader must know it was sent)
            assert item is None
    backend.clock.advance(10)  # past the retry pacing
    assert store.flush()
    assert (store.problem, store.pending) == (None, 0)
    if backend.name == "postgres":
        item = store.outbox_next(HOOK)
        assert item is not None
        store.outbox_done(item, T0, True, None)
    store = reopened(backend, store)
    assert {a.id: a.state for a in store.alerts(open_only=False)} == {
        "a0": "resolved",
        "a1": "firing",
    }
    assert [w.id for w in store.windows()] == ["w1"]
    assert store.outbox_next(HOOK) is None  # delivered: not sent again
    store.close()


def test_postgres_keeps_the_newest_history_in_memory(postgres_url: str) -> None:
    """Older resolved alerts stay in the database, not in the leader's memory."""
    store = PostgresStore(postgres_url, ManualClock(T0))
    store.save_alerts([alert(i, "resolved") for i in range(HISTORY + 10)])
    store.save_alerts([alert(HISTORY + 10)])
    assert len(store.alerts(open_only=False, limit=None)) == HISTORY + 1
    assert store.alert("a0") is None and store.alert(f"a{HISTORY + 9}") is not None
    store.close()


def test_postgres_hands_out_a_notification_once_it_is_written(postgres_url: str) -> None:
    """A leader killed after sending one the database never heard of would have its
    successor fire the alert again: a group sends only what is committed."""
    store = PostgresStore(postgres_url, ManualClock(T0))
    woken: list[bool] = []
    store.on_written = lambda: woken.append(True)
    store.outbox_add(HOOK, T0, {"alert_id": "a1", "event": "firing"})
    assert store.outbox_next(HOOK) is None and woken == []
    assert store.flush(force=True)
    assert woken == [True]
    item = store.outbox_next(HOOK)
    assert item is not None and item.data["alert_id"] == "a1"
    store.close()


def test_postgres_belongs_to_one_group(postgres_url: str) -> None:
    from monitor.errors import StoreOwnedError

    PostgresStore(postgres_url, ManualClock(T0), group="monitor-aktau-1").close()
    PostgresStore(postgres_url, ManualClock(T0), group="monitor-aktau-1").close()
    with pytest.raises(StoreOwnedError, match="monitor-aktau-1"):
        PostgresStore(postgres_url, ManualClock(T0), group="monitor-kuryk-1")
