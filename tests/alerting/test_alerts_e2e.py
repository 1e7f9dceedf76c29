"""Downtime alerts end to end: real broker, real InfluxDB, real webhook and SMTP receivers."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from monitor.config import load_config
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import (
    ALERT_TIMEOUT,
    Publisher,
    Talker,
    Webhook,
    device_topic,
    rows,
    running_monitor,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC_KEYS = {
    "alert_id",
    "state",
    "rule",
    "severity",
    "site",
    "area",
    "kind",
    "device",
    "started_at",
    "resolved_at",
    "duration_s",
    "summary",
}


@contextlib.contextmanager
def lwt_device(port: int, device: str) -> Iterator[subprocess.Popen[bytes]]:
    """A device connection whose Last Will sets its status to offline."""
    proc = subprocess.Popen(
        [
            "mosquitto_sub",
            "-p",
            str(port),
            "-i",
            f"dev-{device}",
            "-t",
            f"cmd/{device}",
            "-k",
            "5",
            "--will-topic",
            device_topic(device, "status"),
            "--will-payload",
            "offline",
            "--will-retain",
            "--will-qos",
            "1",
        ]
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


async def test_silent_lastwill_and_fault_each_give_one_firing_and_one_resolved_webhook(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
) -> None:
    devices = ["xs-a", "xs-b", "xs-c", "xs-d"]
    config = load_config(alert_config(channels=[f"webhook:{webhook.url}"], devices=devices))
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, devices)
    async with running_monitor(config), asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        with lwt_device(mosquitto.port, "xs-b") as xs_b:
            pub.publish(device_topic("xs-b", "status"), "online", retain=True)
            await asyncio.sleep(1.5)
            began = time.time()
            talker.talking -= {"xs-a", "xs-b"}  # xs-a goes silent
            xs_b.kill()  # xs-b's connection dies: its Last Will says offline
            talker.state["xs-c"] = "fault"  # xs-c reports a fault and keeps talking
            await wait_for(lambda: len(webhook.received) >= 3, timeout=ALERT_TIMEOUT + 5)
            firing_latency = max(t for t, _, _ in webhook.received) - began
            assert sorted(webhook.events()) == [
                ("xs-a", "no_data", "firing"),
                ("xs-b", "offline", "firing"),
                ("xs-c", "fault", "firing"),
            ]
            await asyncio.sleep(1.0)  # nothing more while they stay down
            assert len(webhook.received) == 3

            talker.talking |= {"xs-a", "xs-b"}
            pub.publish(device_topic("xs-b", "status"), "online", retain=True)
            talker.state["xs-c"] = "ready"
            await wait_for(lambda: len(webhook.received) >= 6, timeout=5)
            await asyncio.sleep(1.0)
        talking.cancel()
    pub.close()

    assert firing_latency < ALERT_TIMEOUT + 5
    assert sorted(webhook.events()) == sorted(
        [
            ("xs-a", "no_data", "firing"),
            ("xs-a", "no_data", "resolved"),
            ("xs-b", "offline", "firing"),
            ("xs-b", "offline", "resolved"),
            ("xs-c", "fault", "firing"),
            ("xs-c", "fault", "resolved"),
        ]
    )
    for _, event, payload in webhook.received:
        assert set(payload) == SPEC_KEYS
        assert payload["state"] == event
        assert (payload["site"], payload["area"], payload["kind"], payload["severity"]) == (
            "aktau",
            "inspection-1",
            "xray_scanner",
            "critical",
        )
        if event == "resolved":
            assert payload["resolved_at"] is not None
            assert payload["duration_s"] > 0
        else:
            assert payload["resolved_at"] is None
    by = {(p["device"], p["state"]): p for _, _, p in webhook.received}
    assert by[("xs-a", "firing")]["summary"] == (
        "xs-a (xray_scanner, inspection-1) sent no data for 2 s"
    )
    assert by[("xs-a", "firing")]["alert_id"] == by[("xs-a", "resolved")]["alert_id"]

    # deliveries are counted in the monitor measurement (the health dashboard plots them)
    sent = rows(influxd.url, database, 'SELECT last("notifications_sent") AS n FROM monitor')
    assert sent[0]["n"] == 6
    # the transitions are in InfluxDB too
    got = rows(
        influxd.url,
        database,
        "SELECT alert_id, state, duration_s FROM alerts GROUP BY device, rule",
    )
    assert sorted((r["device"], r["rule"], r["state"]) for r in got) == sorted(
        (d, rule, s) for d, rule, s in webhook.events()
    )


async def test_an_alert_reaches_a_real_smtp_server(alert_config: Callable[..., Path]) -> None:
    mails: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append(envelope.content)
            return "250 OK"

    smtp = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        channel = (
            f"mailto://127.0.0.1:{smtp.port}?from=monitor@aktau.customs.kz"
            "&to=crew@aktau.customs.kz&mode=insecure"
        )
        config = load_config(alert_config(channels=[channel], devices=["xs-a"]))
        async with running_monitor(config):
            await wait_for(lambda: mails, timeout=ALERT_TIMEOUT + 10)
    finally:
        smtp.stop()
    msg = email.message_from_bytes(mails[0], policy=email.policy.default)
    assert msg["To"] == "crew@aktau.customs.kz"
    assert "DOWN: xs-a (X-ray scanner, aktau / inspection-1)" in msg["Subject"]
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "xs-a (X-ray scanner, inspection-1): no data for more than 2 seconds" in text
    assert "monitor ack " in text


async def test_broker_outage_is_one_monitor_alert_not_device_alerts(
    alert_config: Callable[..., Path], mosquitto: Mosquitto, webhook: Webhook
) -> None:
    devices = ["xs-a", "xs-b", "xs-c"]
    # a crew's route by site, area and kind still hears that the monitor hears nothing of
    # its equipment (issue 22: the monitor's alerts have site and area "*", kind monitor)
    match = {"site": ["aktau"], "area": ["inspection-1"], "kind": ["xray_scanner"]}
    config = load_config(
        alert_config(channels=[f"webhook:{webhook.url}"], devices=devices, match=match)
    )
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, devices)
    async with running_monitor(config), asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await asyncio.sleep(1.0)
        mosquitto.stop()
        await asyncio.sleep(3 * ALERT_TIMEOUT + 1)  # three times the timeout, and then some
        assert webhook.events() == [("monitor-m", "monitor_broker_down", "firing")]
        mosquitto.start()
        await wait_for(lambda: len(webhook.received) >= 2, timeout=10)
        await asyncio.sleep(ALERT_TIMEOUT + 1)  # the devices' fresh grace passes quietly
        talking.cancel()
    pub.close()
    assert webhook.events() == [
        ("monitor-m", "monitor_broker_down", "firing"),
        ("monitor-m", "monitor_broker_down", "resolved"),
    ]


async def test_restart_neither_repeats_nor_forgets(
    alert_config: Callable[..., Path], mosquitto: Mosquitto, webhook: Webhook
) -> None:
    devices = ["xs-a", "xs-d", "xs-e"]
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=devices)
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-d"])  # xs-a and xs-e are silent from the start
    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        async with running_monitor(load_config(path)):
            await wait_for(lambda: len(webhook.received) >= 2, timeout=ALERT_TIMEOUT + 5)
            await asyncio.sleep(0.5)
        assert sorted(webhook.events()) == [
            ("xs-a", "no_data", "firing"),
            ("xs-e", "no_data", "firing"),
        ]
        # while the monitor is down, xs-a recovers (the broker keeps it for our session)
        pub.publish_all([(device_topic("xs-a"), json.dumps({"scans_total": 2}))])
        talker.talking.add("xs-a")
        async with running_monitor(load_config(path)):
            await wait_for(lambda: len(webhook.received) >= 3, timeout=10)
            await asyncio.sleep(ALERT_TIMEOUT + 2)  # past xs-e's fresh grace: no second firing
        talking.cancel()
    pub.close()
    assert sorted(webhook.events()) == [
        ("xs-a", "no_data", "firing"),
        ("xs-a", "no_data", "resolved"),
        ("xs-e", "no_data", "firing"),
    ]
