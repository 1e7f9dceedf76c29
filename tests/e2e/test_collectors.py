"""Collectors that share the load (SPEC 8): N ``monitor run`` processes against one broker
and one InfluxDB, each owning some sites through ``mqtt.topics`` with its own client_id
and state_dir. Every message is stored once, and each collector watches and alerts on its
own devices only (a device of another site is not "silent" to it)."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench import load
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import ALERT_TIMEOUT, MonitorProcess, rows, wait_for

pytestmark = pytest.mark.integration

SITES = ["aktau", "kuryk", "atyrau", "beineu"]
PER_DEVICE = 500


def talking(site: str) -> str:
    return f"xs-{site}-1"


def silent(site: str) -> str:
    return f"xs-{site}-2"  # registered, never heard: no_data after ALERT_TIMEOUT


def collector_config(
    path: Path, k: int, sites: list[str], mosquitto: Mosquitto, influxd: InfluxDB, db: str
) -> tuple[Path, int]:
    """The same registry for all; the sites, client_id, state_dir and port its own."""
    port = free_port()
    devices = "\n".join(
        f"  - {{id: {dev}, kind: xray_scanner, site: {site}, area: hall}}"
        for site in SITES
        for dev in (talking(site), silent(site))
    )
    path.write_text(f"""
mqtt:
  port: {mosquitto.port}
  client_id: collector-{k}
  topics: {json.dumps([f"customs/{s}/#" for s in sites])}
  reconnect: {{initial: 100ms, max: 500ms}}
influx: {{url: "{influxd.url}", database: {db}, retry: {{max: 1s}}}}
state_dir: {path.parent / f"state-{k}"}
http: {{port: {port}}}
status_interval: 1s
alerts:
  kinds:
    xray_scanner: {{no_data_timeout: {ALERT_TIMEOUT}s, severity: critical}}
notify: {{routes: []}}
devices:
{devices}
""")
    return path, port


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.load(r)


def per_device(influxd: InfluxDB, db: str) -> dict[str, int]:
    q = "SELECT count(scans_total) FROM xray_scanner GROUP BY device"
    return {r["device"]: int(r["count"]) for r in rows(influxd.url, db, q)}


@pytest.mark.parametrize("collectors", [2, 4])
async def test_collectors_share_the_sites_each_message_stored_once_alerts_their_own(
    mosquitto: Mosquitto, influxd: InfluxDB, database: str, tmp_path: Path, collectors: int
) -> None:
    owned = [SITES[k::collectors] for k in range(collectors)]
    procs, ports = [], []
    for k, sites in enumerate(owned):
        path, port = collector_config(
            tmp_path / f"collector-{k}.yaml", k, sites, mosquitto, influxd, database
        )
        procs.append(MonitorProcess(tmp_path / f"collector-{k}.log", config=path))
        ports.append(port)
    for proc in procs:
        await proc.wait_log("event=mqtt.connected")  # after its SUBACK

    # No "ts": each collector that took a message would store it at its own receive time,
    # so a message taken twice would be two points.
    backlog = [
        (f"customs/{site}/hall/xray_scanner/{talking(site)}/telemetry", b'{"scans_total": %d}' % i)
        for i in range(PER_DEVICE)
        for site in SITES
    ]
    await asyncio.to_thread(load.publish_all, mosquitto.port, backlog, "devices")
    expected = {talking(site): PER_DEVICE for site in SITES}
    await wait_for(lambda: per_device(influxd, database) == expected, timeout=30, interval=0.2)

    def open_alerts(port: int) -> set[str]:
        return {a["device"] for a in get(port, "/api/alerts")["alerts"]}

    async def keep_talking() -> None:  # the talking devices stay alive meanwhile
        for i in itertools.count(PER_DEVICE):
            beat = [(topic, b'{"scans_total": %d}' % i) for topic, _ in backlog[: len(SITES)]]
            for site in SITES:
                expected[talking(site)] += 1
            # cancelled meanwhile, the thread publishes the beat whole anyway: counted first
            await asyncio.shield(
                asyncio.to_thread(load.publish_all, mosquitto.port, beat, "devices")
            )
            await asyncio.sleep(0.5)

    talker = asyncio.create_task(keep_talking())
    try:
        for port, sites in zip(ports, owned, strict=True):
            mine = {silent(site) for site in sites}
            await wait_for(lambda p=port, m=mine: open_alerts(p) == m, ALERT_TIMEOUT + 15)
            watched = {d["device"] for d in get(port, "/api/devices")["devices"]}
            assert watched == {d for site in sites for d in (talking(site), silent(site))}
        await asyncio.sleep(ALERT_TIMEOUT)  # long enough for a foreign device to be "silent"
        for port, sites in zip(ports, owned, strict=True):
            assert open_alerts(port) == {silent(site) for site in sites}
    finally:
        talker.cancel()
        await asyncio.gather(talker, return_exceptions=True)
    # nothing stored twice, later either
    await wait_for(lambda: per_device(influxd, database) == expected, timeout=10, interval=0.2)
    for proc in procs:
        assert proc.terminate() == 0
