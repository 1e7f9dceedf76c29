"""Every store in state_dir carries its schema version (SPEC 10): a store written by each
earlier monitor is migrated and read back whole; a newer one is refused, as a process (exit
2, a clear line) and without a change to the file.

The earlier stores are tests/fixtures/stores/*.db, written by those monitors' own code
(tests/fixtures/stores/make.py names the commits).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import schema_version
from monitor.alerting.store import SqliteStore
from monitor.alerting.store import sqlite as state_store
from monitor.errors import StateVersionError
from monitor.passages import store as passage_store
from monitor.passages.store import PassageStore
from monitor.sink import spool as spool_store
from monitor.sink.spool import Spool
from monitor.stats import Stats
from tests.helpers import ROOT, free_port

FIXTURES = ROOT / "tests" / "fixtures" / "stores"
HOOK = "webhook:http://127.0.0.1:9000/alerts"
T0 = 1_790_000_000.0


def fixture(name: str, into: Path, as_name: str | None = None) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    path = into / (as_name or name.split("-")[0] + ".db")
    shutil.copy(FIXTURES / name, path)
    return path


@pytest.mark.parametrize("name", ["state-0.db", "state-1.db", "state-2.db", "state-3.db"])
def test_a_state_store_of_each_earlier_schema_is_migrated_and_read_back_whole(
    tmp_path: Path, name: str
) -> None:
    path = fixture(name, tmp_path)
    assert schema_version.of(path) == int(name[6])
    store = SqliteStore(path)
    assert store.problem is None
    assert schema_version.of(path) == state_store.SCHEMA_VERSION
    alerts = {a.id: a for a in store.alerts(open_only=False)}
    assert {i: a.state for i, a in alerts.items()} == {
        "a-firing": "firing",
        "a-acked": "acknowledged",
        "a-resolved": "resolved",
    }
    assert alerts["a-firing"].notified == {"maintenance-crew": T0 - 60}
    assert (alerts["a-acked"].acked_by, alerts["a-acked"].acked_at) == ("Aigerim", T0 - 300)
    assert {a.id for a in store.alerts(open_only=True)} == {"a-firing", "a-acked"}
    (window,) = store.windows()
    assert (window.id, window.value, window.reason) == ("w-1", "xs-03", "tube replacement")
    devices = {d.device.key: d for d in store.devices()}
    assert set(devices) == {("aktau", "xs-01"), ("kuryk", "kxs-7")}
    assert devices[("aktau", "xs-01")].last_seen == T0 - 120
    # the notification not yet delivered is still to be sent, the one delivered is not
    pending = store.outbox_next(HOOK)
    assert pending is not None and pending.data == {"alert_id": "a-acked", "event": "acknowledged"}
    assert store.outbox_next(HOOK, pending) is None
    assert [d["event"] for d in store.deliveries("a-firing")] == ["firing"]
    assert json.loads(store.get("mqtt.subscriptions") or "") == ["customs/+/+/+/+/+"]
    nodes = store.sparkplug_nodes()
    assert nodes == ([("rail-gate-plc", "plc-01", '{"bdseq": 3}')] if name == "state-3.db" else [])
    # and it takes new writes in the new schema
    store.outbox_attempted(pending, refused=True)
    store.close()
    again = SqliteStore(path)
    item = again.outbox_next(HOOK)
    assert item is not None and (item.attempts, item.refused) == (1, 1)
    again.close()


def test_passages_of_the_unversioned_schema_are_migrated_and_read_back(tmp_path: Path) -> None:
    path = fixture("passages-0.db", tmp_path)
    assert schema_version.of(path) == 0
    store = PassageStore(path)
    assert store.problem is None
    assert schema_version.of(path) == passage_store.SCHEMA_VERSION == 1
    open_, reads, closed = store.load()
    (passage,) = open_.values()
    assert (passage.site, passage.plate_hash, passage.entry_area) == (
        "aktau",
        "0123456789abcdef",
        "gate-in",
    )
    assert passage.stages == {"inspection": int(T0 * 1000) - 300_000}
    assert reads == {("aktau", "0123456789abcdef", "gate-in"): passage.entry_ms}
    assert closed == {}
    store.close()


@pytest.mark.parametrize(("name", "precision"), [("spool-0-ms.db", "ms"), ("spool-0.db", "us")])
def test_a_spool_of_each_unversioned_shape_is_migrated_and_replays_in_its_precision(
    tmp_path: Path, name: str, precision: str
) -> None:
    path = fixture(name, tmp_path)
    spool = Spool(path, 1 << 20, Stats())
    assert spool.problem is None
    assert schema_version.of(path) == spool_store.SCHEMA_VERSION == 1
    assert (spool.batches, spool.points) == (2, 2)
    first = spool.oldest()
    assert first is not None
    line = "xray_scanner,site=aktau,area=inspection-1,device=xs-01 tube_voltage_kv=140"
    assert first[1:] == ([f"{line} 1790000000000"], precision)
    spool.remove(first[0])
    assert spool.append(["m f=1 1"])  # new batches in the new schema
    spool.close()
    again = Spool(path, 1 << 20, Stats())
    assert [again.oldest() is not None, again.batches] == [True, 2]
    again.close()


def newer(path: Path, version: int) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {version + 1}")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("name", "opener", "version"),
    [
        ("state-3.db", lambda p: SqliteStore(p), state_store.SCHEMA_VERSION),
        ("passages-0.db", lambda p: PassageStore(p), passage_store.SCHEMA_VERSION),
        ("spool-0.db", lambda p: Spool(p, 1 << 20, Stats()), spool_store.SCHEMA_VERSION),
    ],
)
def test_a_store_of_a_newer_schema_is_refused_and_left_as_it_was(
    tmp_path: Path, name: str, opener: object, version: int
) -> None:
    path = fixture(name, tmp_path)
    newer(path, version)
    before = path.read_bytes()
    with pytest.raises(StateVersionError, match="written by a newer monitor"):
        opener(path)  # type: ignore[operator]
    assert path.read_bytes() == before


@pytest.mark.parametrize("store", ["passages.db", "spool.db"])
def test_an_older_monitor_refuses_a_newer_store_exit_2(tmp_path: Path, store: str) -> None:
    """As a process: the monitor stops before it touches anything, with one clear line."""
    state = tmp_path / "state"
    source = {"passages.db": "passages-0.db", "spool.db": "spool-0.db"}[store]
    path = fixture(source, state, store)
    version = {"passages.db": passage_store, "spool.db": spool_store}[store].SCHEMA_VERSION
    newer(path, version)
    before = path.read_bytes()
    env = {
        **os.environ,
        "MONITOR_STATE_DIR": str(state),
        "MONITOR_MQTT__PORT": str(free_port()),  # nobody there: it stops before connecting
        "MONITOR_HTTP__PORT": str(free_port()),
        "MONITOR_NOTIFY__ROUTES": "[]",
        "MONITOR_PASSAGES__PLATE_KEY": "k" * 32,
    }
    config = tmp_path / "m.yaml"
    config.write_text(
        (ROOT / "config" / "monitor.yaml").read_text()
        + "\npassages: {entry_areas: [gate-in], exit_areas: [gate-out]}\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert f"error: {path} holds state of schema {version + 1}, written by a newer monitor" in (
        res.stderr
    )
    assert path.read_bytes() == before
