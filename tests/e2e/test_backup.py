"""`monitor backup` of a running monitor under load, `monitor restore` into a fresh
state_dir, and a monitor started on it finds the same state (SPEC 10): open alerts, an
acknowledgement, a maintenance window, open passages, and the points it had spooled while
InfluxDB was away, which it then writes. A restore is refused while a monitor runs on its
state_dir, and over a state that is there unless told to move it aside."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import ROOT, MonitorProcess, Publisher, influx_query, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "backup-token"
PLATES = ["111AAA02", "222BBB02", "333CCC02", "444DDD02", "555EEE02"]
MARKED = 300  # telemetry points with a `seq` field, spooled before the backup


def config(path: Path, mqtt_port: int, database: str) -> Path:
    devices = "\n".join(
        f"  - {{id: xs-0{i}, kind: xray_scanner, site: aktau, area: inspection-1}}"
        for i in range(1, 5)
    )
    path.write_text(f"""
mqtt: {{port: {mqtt_port}, client_id: monitor-backup, reconnect: {{initial: 100ms, max: 500ms}}}}
influx: {{url: "http://127.0.0.1:{free_port()}", database: {database}, retry: {{max: 1s}}}}
status_interval: 1s
alerts:
  kinds:
    xray_scanner: {{no_data_timeout: 2s, fault_for: 1s, offline_for: 1s, severity: critical}}
notify: {{routes: []}}
passages: {{entry_areas: [gate-in], exit_areas: [gate-out]}}
devices:
{devices}
  - {{id: cam-in, kind: anpr_camera, site: aktau, area: gate-in}}
  - {{id: cam-out, kind: anpr_camera, site: aktau, area: gate-out}}
""")
    return path


def env(state_dir: Path, http_port: int, **more: str) -> dict[str, str]:
    return {
        "MONITOR_STATE_DIR": str(state_dir),
        "MONITOR_HTTP__PORT": str(http_port),
        "MONITOR_HTTP__TOKEN": TOKEN,
        "MONITOR_PASSAGES__PLATE_KEY": "backup-test-plate-key",
        **more,
    }


def api(port: int, path: str, body: object = None) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def reachable(port: int) -> bool:
    with contextlib.suppress(OSError, urllib.error.HTTPError, ValueError):
        api(port, "/api/alerts")
        return True
    return False


def cli(cfg: Path, state_dir: Path, *args: str, **more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args, "-c", str(cfg)],
        capture_output=True,
        text=True,
        env={**os.environ, "MONITOR_STATE_DIR": str(state_dir), "COLUMNS": "200", **more},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def marked_in_spool(state_dir: Path) -> int:
    """Spooled lines of the marked points, read from the file as it is on disk."""
    db = sqlite3.connect(f"{(state_dir / 'spool.db').as_uri()}?mode=ro", uri=True)
    try:
        batches = db.execute("SELECT data FROM batches").fetchall()
    except sqlite3.Error:
        return 0
    finally:
        db.close()
    return sum(zlib.decompress(b[0]).count(b" seq=") for b in batches)


def state(port: int) -> dict[str, Any]:
    alerts = {
        a["alert_id"]: (a["device"], a["rule"], a["state"], a["acknowledged_by"], a["started_at"])
        for a in api(port, "/api/alerts")["alerts"]
        if a["device"] in ("xs-01", "xs-02")
    }
    today = api(port, "/api/passages")["today"]
    return {
        "alerts": alerts,
        "windows": api(port, "/api/maintenance")["windows"],
        "passages": (today["inside"], today["passages"], today["median_s"]),
    }


async def test_a_backup_under_load_restores_the_same_state(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    cfg = config(tmp_path / "m.yaml", mosquitto.port, database)
    first, fresh, copy = tmp_path / "first", tmp_path / "fresh", tmp_path / "backup"
    port_a = free_port()
    a = MonitorProcess(tmp_path / "a.log", config=cfg, env=env(first, port_a))
    await a.wait_log("event=mqtt.connected")
    pub = Publisher(mosquitto.port, "backup-devices")
    now_ms = int(time.time() * 1000)

    def telemetry(device: str, **fields: object) -> None:
        topic = f"customs/aktau/inspection-1/xray_scanner/{device}/telemetry"
        pub.publish(topic, json.dumps({"state": "ready", **fields}))

    def plate(area: str, camera: str, number: str, ts: int) -> None:
        topic = f"customs/aktau/{area}/anpr_camera/{camera}/event"
        pub.publish(topic, json.dumps({"type": "plate_read", "plate": number, "ts": ts}))

    # two scanners speak once and fall silent: two open alerts, one acknowledged
    for device in ("xs-01", "xs-02"):
        telemetry(device)
    for i, number in enumerate(PLATES):  # five trucks in, the first one out again
        plate("gate-in", "cam-in", number, now_ms - 600_000 + i * 1000)
    plate("gate-out", "cam-out", PLATES[0], now_ms - 60_000)

    async def load() -> None:  # the other devices talk on, ~200 messages a second
        n = 0
        while True:
            for device in ("xs-03", "xs-04", *(f"load-{i:02}" for i in range(8))):
                telemetry(device, scans_total=n)
            n += 1
            await asyncio.sleep(0.05)

    talking = asyncio.create_task(load())
    try:
        for seq in range(MARKED):  # the points that must come back from the spool
            telemetry("xs-03", seq=seq, ts=now_ms - 300_000 + seq)
        await wait_for(lambda: marked_in_spool(first) == MARKED, timeout=60)

        def fired() -> set[str]:
            return {a[0] for a in state(port_a)["alerts"].values() if a[2] == "firing"}

        await wait_for(lambda: fired() == {"xs-01", "xs-02"}, timeout=30)
        (acked,) = [i for i, a in state(port_a)["alerts"].items() if a[0] == "xs-02"]
        api(port_a, f"/api/alerts/{acked}/ack", {"by": "Aigerim"})
        api(
            port_a,
            "/api/maintenance",
            {"scope": "device", "value": "xs-04", "duration": "2h", "reason": "tube"},
        )
        before = state(port_a)
        assert before["passages"][:2] == (4, 1)
        assert {a[3] for a in before["alerts"].values()} == {None, "Aigerim"}

        made = await asyncio.to_thread(cli, cfg, first, "backup", str(copy))
        assert made.returncode == 0, made.stderr
        assert "state.db schema 3" in made.stdout and "PLATE_KEY" in made.stdout
        # the monitor runs: its state_dir is not restored into
        busy = await asyncio.to_thread(cli, cfg, first, "restore", str(copy), "--replace")
        assert busy.returncode == 2
        assert "a monitor is running with state_dir" in busy.stderr
        # nor does a second monitor run on it
        second = await asyncio.to_thread(cli, cfg, first, "run", **env(first, free_port()))
        assert second.returncode == 2
        assert f"a monitor is running with state_dir {first} (pid {a.proc.pid})" in second.stderr
        assert state(port_a) == before  # nothing changed meanwhile that the copy lacks
    finally:
        talking.cancel()
    assert a.terminate() == 0

    restored = await asyncio.to_thread(cli, cfg, fresh, "restore", str(copy))
    assert restored.returncode == 0, restored.stderr
    again = await asyncio.to_thread(cli, cfg, fresh, "restore", str(copy))
    assert again.returncode == 2 and "--replace" in again.stderr  # a state is there now

    port_b = free_port()
    b = MonitorProcess(
        tmp_path / "b.log",
        config=cfg,
        env=env(fresh, port_b, MONITOR_INFLUX__URL=influxd.url, MONITOR_MQTT__CLIENT_ID="b"),
    )
    await wait_for(lambda: reachable(port_b) or b.proc.poll() is not None, timeout=30)
    after = state(port_b)
    assert after["windows"] == before["windows"]
    assert after["passages"] == before["passages"]
    assert {i: a[:4] for i, a in after["alerts"].items()} == {
        i: a[:4] for i, a in before["alerts"].items()
    }
    for i, a in before["alerts"].items():  # the same moment, on the clock carried on
        assert abs(_t(after["alerts"][i][4]) - _t(a[4])) < 1
    # what A had spooled while InfluxDB was away, B writes

    def written() -> int:
        q = "SELECT count(seq) FROM xray_scanner WHERE device = 'xs-03'"
        try:
            found = influx_query(influxd.url, database, q)
        except AssertionError:  # the database is not there yet
            return 0
        return int(found[0]["values"][0][1]) if found else 0

    await wait_for(lambda: written() == MARKED, timeout=60)
    # and an open passage goes on: the second truck leaves, its stay counted from its entry
    plate("gate-out", "cam-out", PLATES[1], now_ms)
    await wait_for(lambda: state(port_b)["passages"][:2] == (3, 2), timeout=15)
    pub.close()
    assert b.terminate() == 0


def _t(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()
