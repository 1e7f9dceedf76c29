"""A full state_dir (SPEC 7): ingestion into InfluxDB goes on, state writes fail soft and
are retried, /health says why, the monitor's own alert fires, and it all recovers when
space returns; a start on a full disk runs degraded instead of dying.

state_dir is a real tmpfs of a few MiB, filled to the last byte by a file of zeros.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import MonitorProcess, Publisher, SmallDisk, Talker, Webhook, rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def telemetry_points(influxd: InfluxDB, database: str) -> int:
    got = rows(influxd.url, database, "SELECT count(scans_total) AS n FROM xray_scanner")
    return int(got[0]["n"]) if got else 0


def state_dir_reasons(port: int) -> list[str]:
    status, body = health(port)
    return [r for r in body["reasons"] if r.startswith("state_dir")] if status == 503 else []


@pytest.mark.parametrize("full_from_the_start", [False, True], ids=["fills-up", "starts-full"])
async def test_a_full_state_dir_degrades_and_recovers(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    small_disk: SmallDisk,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
    full_from_the_start: bool,
) -> None:
    path = alert_config(
        channels=[f"webhook:{webhook.url}"],
        devices=["xs-a", "xs-b"],
        severity=("critical", "warning"),
    )
    port = yaml.safe_load(path.read_text())["http"]["port"]
    if full_from_the_start:
        small_disk.fill()
    monitor = MonitorProcess(tmp_path / "monitor.log", config=path)
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-a", "xs-b"])
    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await monitor.wait_log("mqtt.connected")
        if not full_from_the_start:
            await wait_for(lambda: health(port)[0] == 200, timeout=15)
            small_disk.fill()
        # the store, the spool and the quarantine say why; the monitor's alert goes out
        await wait_for(lambda: state_dir_reasons(port), timeout=20)
        await wait_for(
            lambda: ("monitor-m", "monitor_state_dir", "firing") in webhook.events(), timeout=20
        )
        # meanwhile ingestion into InfluxDB goes on
        before = await asyncio.to_thread(telemetry_points, influxd, database)
        await wait_for(lambda: telemetry_points(influxd, database) >= before + 20, timeout=20)
        assert monitor.proc.poll() is None
        small_disk.free()
        await wait_for(lambda: health(port)[0] == 200, timeout=30)
        await wait_for(
            lambda: ("monitor-m", "monitor_state_dir", "resolved") in webhook.events(), timeout=20
        )
        talking.cancel()
    pub.close()
    assert monitor.terminate() == 0
    log = monitor.log()
    assert "Traceback" not in log
    assert "store.failing" in log and "store.recovered" in log
