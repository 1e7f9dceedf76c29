"""A broker that keeps few messages in flight (its own cap, or our receive_maximum): the
monitor writes as soon as nothing more is coming, so a backlog drains at about the window
per write, not per flush_interval (ejabberd allows 1 in flight, EMQX 32 by default)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

import pytest

from bench import load
from bench.windowed import WindowedBroker
from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import device_topic, rows, running_monitor

pytestmark = pytest.mark.integration


def stored(influxd: InfluxDB, database: str) -> int:
    r = rows(influxd.url, database, "SELECT count(scans_total) FROM xray_scanner")
    return int(r[0]["count"]) if r else 0


@pytest.mark.parametrize(
    ("capped_by", "window", "messages", "floor"),
    [
        # msg/s floors (the targets); waiting for the 100 ms flush timer: 10 and 320
        ("monitor", 1, 300, 150),  # mqtt.receive_maximum: 1, on mosquitto
        ("broker", 1, 300, 150),  # ejabberd's window, whatever the monitor asks
        ("broker", 32, 6000, 3000),  # EMQX's default max_inflight
    ],
)
async def test_a_backlog_drains_at_the_window_per_write_not_per_flush_interval(
    configure: Callable[..., Config],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    capped_by: str,
    window: int,
    messages: int,
    floor: float,
) -> None:
    """Published at once by a fast publisher of its own, the backlog waits in the broker
    while the monitor, connected, drains it through the window; timed from the first
    publish to the last point stored. (Measured here: ~700 msg/s through a window of 1.)"""
    base = int(time.time() * 1000) - 60_000
    backlog = [
        (device_topic("xs-01"), json.dumps({"ts": base + i, "scans_total": i}).encode())
        for i in range(messages)
    ]
    async with contextlib.AsyncExitStack() as stack:
        if capped_by == "broker":
            broker = await stack.enter_async_context(WindowedBroker(mosquitto.port, window))
            config = configure(MONITOR_MQTT__PORT=str(broker.port))
        else:
            config = configure(MONITOR_MQTT__RECEIVE_MAXIMUM=str(window))
        assert config.influx.flush_interval == pytest.approx(0.1)
        await stack.enter_async_context(running_monitor(config))
        started = time.monotonic()
        await asyncio.to_thread(load.publish_all, mosquitto.port, backlog, "backlog")
        while (n := await asyncio.to_thread(stored, influxd, database)) < messages:
            if time.monotonic() - started > 4 * messages / floor:
                break
            await asyncio.sleep(0.05)
        rate = n / (time.monotonic() - started)
        if capped_by == "broker":
            assert broker.most_in_flight == window  # the cap held, and was reached
    assert n == messages, f"{n} of {messages} stored at {rate:.0f} msg/s"
    assert rate >= floor, f"{rate:.0f} msg/s with {window} in flight"
    print(f"RATE {capped_by} {window}: {rate:.0f} msg/s")
