"""SIGHUP reloads the config (SPEC 10, issue 22): the monitor as a process, a real
mosquitto, InfluxDB and webhook. A device added, one removed, a route changed, a setting
that needs a restart said so, an invalid file refused with the old config kept; and no
known device gets a fresh grace: one that fell silent before the reload is alerted on its
original deadline."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import MonitorProcess, Publisher, Webhook, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT = 5.0  # no_data of the scanners
BEFORE_RELOAD = 3.5  # a scanner falls silent this long before the SIGHUP
# A fresh grace at the reload would fire it BEFORE_RELOAD later than its deadline: the
# firing notification's duration would be TIMEOUT + BEFORE_RELOAD, not TIMEOUT.
LATE = TIMEOUT + BEFORE_RELOAD / 2


def write(
    path: Path,
    servers: tuple[Mosquitto, InfluxDB, str, Webhook, int],
    devices: list[str],
    severity: str,
    status_interval: str = "1s",
    match: str = "",
) -> None:
    mosquitto, influxd, db, webhook, port = servers
    entries = "\n".join(devices)
    path.write_text(f"""
mqtt:
  {{port: {mosquitto.port}, client_id: monitor-reload, reconnect: {{initial: 100ms, max: 500ms}}}}
influx: {{url: "{influxd.url}", database: {db}, retry: {{max: 1s}}}}
state_dir: {path.parent / "state"}
http: {{port: {port}}}
status_interval: {status_interval}
alerts:
  kinds:
    xray_scanner: {{no_data_timeout: {TIMEOUT}s, severity: critical}}
notify:
  routes:
    - {{name: crew, match: {{severity: [{severity}]{match}}}, channels: ["webhook:{webhook.url}"]}}
devices:
{entries}
""")


def scanner(device: str, extra: str = "") -> str:
    return f"  - {{id: {device}, kind: xray_scanner, site: aktau, area: inspection-1{extra}}}"


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.load(r)


def alerts(port: int) -> dict[str, dict[str, Any]]:
    return {a["device"]: a for a in get(port, "/api/alerts?state=all")["alerts"]}


async def test_sighup_reloads_without_a_fresh_grace_and_refuses_an_invalid_file(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    port = free_port()
    servers = (mosquitto, influxd, database, webhook, port)
    path = tmp_path / "monitor.yaml"
    talking = ["xs-a", "xs-b", "xs-d"]
    # xs-c is registered and never heard (down after 1 s); the route takes warnings only
    first = [*map(scanner, talking), scanner("xs-c", ", no_data_timeout: 1s")]
    write(path, servers, first, "warning")
    proc = MonitorProcess(tmp_path / "monitor.log", config=path)
    await proc.wait_log("event=mqtt.connected")
    pub = Publisher(mosquitto.port)

    async def talk() -> None:
        while True:
            for d in talking:
                pub.publish(f"customs/aktau/inspection-1/xray_scanner/{d}/telemetry", "{}")
            await asyncio.sleep(0.25)

    async with asyncio.TaskGroup() as tg:
        talker = tg.create_task(talk())
        await wait_for(lambda: "xs-c" in alerts(port), timeout=15)
        talking.remove("xs-a")  # xs-a falls silent; its deadline is TIMEOUT from now
        silent_at = time.monotonic()
        await asyncio.sleep(BEFORE_RELOAD)

        # the route now takes critical alerts; xs-n is added, xs-c removed; a setting
        # that needs a restart is changed
        second = [*map(scanner, ["xs-a", "xs-b", "xs-d"]), scanner("xs-n")]
        write(path, servers, second, "critical", status_interval="2s")
        reloaded_at = time.time()
        proc.proc.send_signal(signal.SIGHUP)
        await proc.wait_log("event=config.reloaded")
        applied = time.monotonic() - silent_at
        listed = {d["device"]: d for d in get(port, "/api/devices")["devices"]}

        # an invalid file: refused, its problem said, the running config kept (had it
        # been taken, the route would take warnings only again, and xs-n be gone)
        write(path, servers, first, "warning", match=", site: [aktua]")
        proc.proc.send_signal(signal.SIGHUP)
        await proc.wait_log("event=config.reload_refused")

        await wait_for(lambda: len(webhook.received) >= 2, timeout=TIMEOUT + 10)
        after = alerts(port)
        talker.cancel()
    pub.close()
    log = proc.log()
    assert proc.terminate() == 0, log

    # the reload was in effect before xs-a's deadline: it fired on that deadline, and the
    # changed route told the crew
    assert applied < TIMEOUT, f"the reload took until {applied:.1f} s into the silence"
    told = {p["device"]: (event, p) for _, event, p in webhook.received}
    assert set(told) == {"xs-a", "xs-n"}, webhook.received
    event, fired = told["xs-a"]
    assert event == "firing" and fired["rule"] == "no_data"
    assert TIMEOUT <= fired["duration_s"] < LATE, fired
    # xs-n: expected from the reload on, its own grace (not alerted at once)
    assert "xs-n" in listed and listed["xs-n"]["up"] is None
    _, added = told["xs-n"]
    started = added["started_at"].replace("Z", "+00:00")
    assert datetime.fromisoformat(started).timestamp() >= reloaded_at - 1.5, added
    # xs-c: removed from the config, forgotten: its open alert resolved as such
    assert "xs-c" not in listed
    assert (after["xs-c"]["state"], after["xs-c"].get("resolution")) == ("resolved", "forgotten")
    assert "setting=status_interval" in log and "event=config.restart_needed" in log
    assert "notify.routes[0].match.site: unknown site 'aktua'" in log
    assert log.count("event=config.reloaded") == 1
