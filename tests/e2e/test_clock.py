"""A wall-clock step (NTP, an operator) is not an outage (SPEC 7): durations, deadlines and
ages come from a monotonic clock, the wall clock only stamps points.

The monitor runs as its own process under libfaketime, which steps its wall clock and
leaves its monotonic clock alone, as a real NTP step does; the devices keep publishing.
A restart with the wall clock wrong (before NTP has set it) changes nothing either: the
stored times keep their meaning (SPEC 5).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import (
    ALERT_TIMEOUT,
    MonitorProcess,
    Publisher,
    SteppedClock,
    Talker,
    Webhook,
    rows,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = ["xs-a", "xs-b", "xs-c", "xs-d"]


def api_devices(port: int) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/devices", timeout=5) as r:
        return {d["device"]: d for d in json.load(r)["devices"]}


async def test_a_wall_clock_step_either_way_raises_no_alert_and_no_downtime(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
) -> None:
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=DEVICES)
    port = yaml.safe_load(path.read_text())["http"]["port"]
    clock = SteppedClock(tmp_path)
    monitor = MonitorProcess(tmp_path / "monitor.log", config=path, env=clock.env)
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, DEVICES, period=1.0)  # the alert loop wakes between messages
    seen: list[tuple[int, str, float | None, bool | None]] = []
    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await monitor.wait_log("mqtt.connected")
        await wait_for(
            lambda: all(d["up"] for d in api_devices(port).values()), timeout=ALERT_TIMEOUT + 10
        )
        for step in (+300, 0, -300):  # +5 min, back 5 min, back 5 min more
            clock.step(step)
            for _ in range(int(3 * ALERT_TIMEOUT / 0.5)):  # three no_data timeouts
                await asyncio.sleep(0.5)
                for d in (await asyncio.to_thread(api_devices, port)).values():
                    seen.append((step, d["device"], d["last_seen_age_s"], d["up"]))
        talking.cancel()
    pub.close()
    assert monitor.terminate() == 0
    assert webhook.events() == []  # no alert at all: not no_data, not site_silent
    bad = [s for s in seen if s[3] is not True or s[2] is None or not 0 <= s[2] < ALERT_TIMEOUT]
    assert not bad, f"ages or states that moved with the wall clock: {bad[:8]}"
    down = rows(influxd.url, database, "SELECT up, reason FROM device_status WHERE up = 0")
    assert down == [], "a step wrote downtime into device_status"
    ups = rows(influxd.url, database, "SELECT count(up) AS n FROM device_status GROUP BY device")
    assert {r["device"] for r in ups} == set(DEVICES)  # and statuses were written throughout


async def test_a_monitor_frozen_for_longer_than_the_timeouts_raises_no_alert(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    mosquitto: Mosquitto,
    webhook: Webhook,
) -> None:
    """SIGSTOP (a paused VM): on SIGCONT the messages waiting in the socket are read before
    anything counts as silence; the monitor's stop is not the devices' (SPEC 5)."""
    many = [f"xs-{i:03d}" for i in range(300)]  # a backlog that takes many socket reads
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=many)
    port = yaml.safe_load(path.read_text())["http"]["port"]
    monitor = MonitorProcess(tmp_path / "monitor.log", config=path)
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, many)
    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await monitor.wait_log("mqtt.connected")
        await wait_for(
            lambda: all(d["up"] for d in api_devices(port).values()), timeout=ALERT_TIMEOUT + 10
        )
        monitor.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(3 * ALERT_TIMEOUT)
        monitor.proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(2 * ALERT_TIMEOUT)
        devices = await asyncio.to_thread(api_devices, port)
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        )
        talking.cancel()
    pub.close()
    assert monitor.terminate() == 0
    assert webhook.events() == []
    assert all(d["up"] for d in devices.values()), devices
    assert "event=monitor.stalled" in monitor.log()
    assert "monitor_stalls_total 1.0" in metrics


# -- a start with the host's clock wrong (before NTP has set it): SPEC 5, restarts --------

ESCALATE_AFTER = 30.0  # far below the clock's error, as are the repeats (2 min)


async def test_a_restart_with_the_clock_20_min_fast_neither_repeats_nor_escalates_early(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    mosquitto: Mosquitto,
    webhook: Webhook,
) -> None:
    path = alert_config(
        channels=[f"webhook:{webhook.url}"],
        devices=["xs-a", "xs-b"],
        repeat="2m",
        escalate_after=f"{ESCALATE_AFTER:.0f}s",
    )
    clock = SteppedClock(tmp_path)
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-b"])  # xs-a is silent from the start
    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        first = MonitorProcess(tmp_path / "first.log", config=path, env=clock.env)
        await wait_for(lambda: len(webhook.received) >= 1, timeout=ALERT_TIMEOUT + 20)
        fired = webhook.received[0][0]
        assert await asyncio.to_thread(first.terminate) == 0
        clock.step(+20 * 60)  # the next start's wall clock is 20 min fast
        second = MonitorProcess(tmp_path / "second.log", config=path, env=clock.env)
        await second.wait_log("mqtt.connected")
        # the escalation comes when it is due by the time that really passed, and alone
        await wait_for(lambda: len(webhook.received) >= 2, timeout=ESCALATE_AFTER + 20)
        await asyncio.sleep(2.0)
        talking.cancel()
    pub.close()
    assert second.terminate() == 0
    assert webhook.events() == [
        ("xs-a", "no_data", "firing"),
        ("xs-a", "no_data", "escalation"),
    ]
    escalated = webhook.received[1][0] - fired
    assert escalated >= ESCALATE_AFTER - 1.0, f"escalated {escalated:.1f} s after firing"


async def test_a_restart_with_the_clock_1_h_slow_shows_no_device_up_that_was_not_heard(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    mosquitto: Mosquitto,
    webhook: Webhook,
) -> None:
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=DEVICES)
    port = yaml.safe_load(path.read_text())["http"]["port"]
    clock = SteppedClock(tmp_path)
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, DEVICES)
    seen: list[tuple[float, bool | None, str | None]] = []  # xs-a after the restart
    restarted = 0.0

    def look() -> bool:
        """xs-a's status noted; True once it is down for no_data."""
        try:
            d = api_devices(port)["xs-a"]
        except OSError:  # not listening yet
            return False
        seen.append((time.monotonic() - restarted, d["up"], d["reason"]))
        return d["up"] is False and d["reason"] == "no_data"

    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        first = MonitorProcess(tmp_path / "first.log", config=path, env=clock.env)
        await first.wait_log("mqtt.connected")
        await wait_for(
            lambda: all(d["up"] for d in api_devices(port).values()), timeout=ALERT_TIMEOUT + 10
        )
        talker.talking.discard("xs-a")  # xs-a dies as the monitor stops
        await asyncio.sleep(0.5)  # its last message reached this run, none waits for the next
        assert await asyncio.to_thread(first.terminate) == 0
        clock.step(-3600)  # the next start's wall clock is an hour slow
        restarted = time.monotonic()
        second = MonitorProcess(tmp_path / "second.log", config=path, env=clock.env)
        for _ in range(300):  # 30 s and more: the start, its grace, and a loaded machine
            if await asyncio.to_thread(look):
                break
            await asyncio.sleep(0.1)
        others = await asyncio.to_thread(api_devices, port)
        talking.cancel()
    pub.close()
    assert second.terminate() == 0
    assert seen and not [s for s in seen if s[1] is True], f"xs-a shown up: {seen[:8]}"
    # down on time: its fresh grace after the start, and the start itself (a loaded machine)
    assert seen[-1][0] < ALERT_TIMEOUT + 10, f"no_data only {seen[-1][0]:.1f} s after the start"
    assert all(d["up"] for name, d in others.items() if name != "xs-a"), others
