"""Truck passages across the real boundaries (SPEC 9): plate reads published to mosquitto,
the monitor as its own process, passages and counters read back from InfluxDB, open
passages kept over a restart, and the clear plate found nowhere."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import MonitorProcess, Publisher, rows, wait_for

pytestmark = pytest.mark.integration

KEY = "a-test-plate-key-of-some-length"
PLATES = ["123ABC02", "777KZA15", "505XYZ12", "010AAA01"]
MIN = 60_000


def plate_hash(plate: str) -> str:
    """SPEC 9's hash, computed here independently of the monitor."""
    return hmac.new(KEY.encode(), plate.encode(), hashlib.sha256).hexdigest()[:16]


def read(area: str, plate: str, ts_ms: int, confidence: float = 96.0) -> tuple[str, str]:
    topic = f"customs/aktau/{area}/anpr_camera/anpr-{area}/event"
    payload = {"ts": ts_ms, "type": "plate_read", "plate": plate, "confidence": confidence}
    return topic, json.dumps(payload)


def passages(influxd: InfluxDB, database: str) -> list[dict[str, object]]:
    return rows(influxd.url, database, "SELECT * FROM passages")


def configure_passages(configure: Callable[..., Config]) -> Config:
    return configure(
        client_id="monitor-passages",
        MONITOR_PASSAGES__PLATE_KEY=KEY,
        MONITOR_PASSAGES__STAGES='{"inspection": ["inspection-1"]}',
        MONITOR_STATS_INTERVAL="1s",
    )


async def test_plate_reads_become_passages_across_a_restart_and_no_clear_plate_anywhere(
    configure: Callable[..., Config],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
) -> None:
    config = configure_passages(configure)
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    pub = Publisher(mosquitto.port)
    log = tmp_path / "monitor.log"
    first = MonitorProcess(log)
    await first.wait_log("event=mqtt.connected")
    pub.publish_all(
        [
            read("gate-in", "123 abc-02", t0),  # written as a person would: the same plate
            read("gate-in", PLATES[0], t0 + 30_000),  # the camera again: one read
            read("inspection-1", PLATES[0], t0 + 20 * MIN),
            read("gate-out", PLATES[0], t0 + 95 * MIN),
            read("gate-in", PLATES[1], t0 + 10 * MIN),  # still inside at the restart
            read("gate-in", PLATES[2], t0 + 11 * MIN, confidence=42.0),  # too unsure
            read("gate-out", PLATES[3], t0 + 12 * MIN),  # never came in
            # rejected (a confidence that is no number): quarantined, without its plate
            (
                "customs/aktau/gate-in/anpr_camera/anpr-gate-in/event",
                json.dumps({"type": "plate_read", "plate": PLATES[3], "confidence": "high"}),
            ),
        ]
    )
    await wait_for(lambda: len(passages(influxd, database)) == 1, timeout=15)
    await wait_for(lambda: metric(config, "exits_without_entry") == 1, timeout=10)
    assert metric(config, "passages_closed") == 1
    assert metric(config, "plate_reads_low_confidence") == 1
    assert metric(config, "passages_unmatched") == 0
    assert first.terminate() == 0

    second = MonitorProcess(log)  # the open passage of PLATES[1] must have survived
    await second.wait_log("event=mqtt.connected")
    exit_read = read("gate-out", PLATES[1], t0 + 70 * MIN)
    pub.publish_all([exit_read])
    await wait_for(lambda: len(passages(influxd, database)) == 2, timeout=15)
    pub.publish_all([exit_read])  # sent again (a publisher's retry): changes nothing
    await wait_for(lambda: metric(config, "messages_received") == 2, timeout=10)
    assert metric(config, "passages_closed") == 1  # this run's: the one exit, once
    assert metric(config, "exits_without_entry") == 0

    by_plate = {p["plate_hash"]: p for p in passages(influxd, database)}
    assert set(by_plate) == {plate_hash(PLATES[0]), plate_hash(PLATES[1])}
    inspected, plain = by_plate[plate_hash(PLATES[0])], by_plate[plate_hash(PLATES[1])]
    assert inspected["dwell_s"] == 95 * 60 and inspected["inspection_s"] == 20 * 60
    assert (inspected["inspected"], inspected["entry_area"], inspected["exit_area"]) == (
        "yes",
        "gate-in",
        "gate-out",
    )
    assert plain["dwell_s"] == 60 * 60 and plain["inspected"] == "no"
    events = rows(
        influxd.url,
        database,
        "SELECT plate_hash, device FROM events WHERE \"type\" = 'exit_without_entry'",
    )
    assert [(e["plate_hash"], e["device"]) for e in events] == [
        (plate_hash(PLATES[3]), "anpr-gate-out")
    ]
    [quarantined] = [
        json.loads(line)
        for line in (config.state_dir / "quarantine" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert quarantined["reason"] == "wrong_type" and quarantined["payload_redacted"] is True
    assert json.loads(quarantined["payload"]) == {  # a plate read keeps no text but its type
        "type": "plate_read",
        "plate": "***",
        "confidence": "***",
    }

    # The clear plate: nowhere in InfluxDB, the state dir, the log, or the API.
    second_api = f"http://127.0.0.1:{config.http.port}"
    api_text = "".join(
        urllib.request.urlopen(second_api + path, timeout=5).read().decode()
        for path in (
            "/api/devices",
            "/api/devices/anpr-gate-in",
            "/api/alerts?state=all",
            "/metrics",
        )
    )
    assert second.terminate() == 0
    everything = json.dumps(
        [
            rows(influxd.url, database, f'SELECT * FROM "{m}"')
            for m in _measurements(influxd, database)
        ]
    )
    assert plate_hash(PLATES[0]) in everything  # the test looks where the plates would be
    files = b"".join(p.read_bytes() for p in config.state_dir.rglob("*") if p.is_file())
    assert b"quarantine" in b"".join(str(p).encode() for p in config.state_dir.rglob("*"))
    for plate in PLATES:
        for where, text in (
            ("InfluxDB", everything),
            ("the log", log.read_text()),
            ("the API", api_text),
            ("state_dir", files.decode(errors="replace")),
        ):
            assert plate not in text and plate[:3] + " abc" not in text, f"{plate} in {where}"
    pub.close()


def _measurements(influxd: InfluxDB, database: str) -> list[str]:
    return [r["name"] for r in rows(influxd.url, database, "SHOW MEASUREMENTS")]  # type: ignore[misc]


def metric(config: Config, name: str) -> float | None:
    """A counter of the running monitor, from its /metrics."""
    url = f"http://127.0.0.1:{config.http.port}/metrics"
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"monitor_{name}_total ") or line.startswith(f"monitor_{name} "):
            return float(line.split()[-1])
    return None


def test_passages_without_a_plate_key_are_refused_at_start(tmp_path: Path) -> None:
    proc = MonitorProcess(
        tmp_path / "monitor.log",
        env={"MONITOR_PASSAGES__ENTRY_AREAS": '["gate-in"]', "MONITOR_STATE_DIR": str(tmp_path)},
    )
    assert proc.proc.wait(30) == 2
    assert "passages: plate reads need a secret plate key" in proc.log()
    proc.kill()


async def test_with_a_shared_store_the_next_monitor_takes_over_the_open_passages(
    configure: Callable[..., Config],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    """SPEC 8.1: with ``store.url`` the open passages are in PostgreSQL, not under the
    state_dir: a monitor on another host (its own, empty state_dir) closes them."""
    config = configure_passages(configure)
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    pub = Publisher(mosquitto.port)
    env = {"MONITOR_STORE__URL": postgres_url}
    first = MonitorProcess(
        tmp_path / "first.log", env={**env, "MONITOR_STATE_DIR": str(tmp_path / "a")}
    )
    await first.wait_log("event=mqtt.connected", timeout=30)
    pub.publish_all([read("gate-in", PLATES[1], t0)])
    await wait_for(lambda: metric(config, "messages_received") == 1, timeout=10)
    assert first.terminate() == 0
    assert not (tmp_path / "a" / "passages.db").exists()

    second = MonitorProcess(
        tmp_path / "second.log", env={**env, "MONITOR_STATE_DIR": str(tmp_path / "b")}
    )
    await second.wait_log("event=mqtt.connected", timeout=30)
    pub.publish_all([read("gate-out", PLATES[1], t0 + 70 * MIN)])
    await wait_for(lambda: len(passages(influxd, database)) == 1, timeout=15)
    [passage] = passages(influxd, database)
    assert passage["plate_hash"] == plate_hash(PLATES[1]) and passage["dwell_s"] == 70 * 60
    assert metric(config, "exits_without_entry") == 0
    assert second.terminate() == 0
    pub.close()
