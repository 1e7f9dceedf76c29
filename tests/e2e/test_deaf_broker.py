"""A broker that accepts the subscription but delivers nothing is the monitor's own outage
(SPEC 7): no device alert, one monitor alert, /health 503 saying why, whether the canary
comes through, is refused or is disabled: hearing nothing at all since connecting is the
sign. A refused canary on a broker that does deliver is a warning, not an outage.

Real mosquitto with an acl_file: it grants the SUBACK and silently delivers nothing the
ACL does not let the monitor read."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, load_config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import (
    ALERT_TIMEOUT,
    Publisher,
    Talker,
    Webhook,
    alerting_config,
    device_topic,
    rows,
    running_monitor,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = ["xs-a", "xs-b", "xs-c"]


def write_acl(tmp_path: Path, monitor_may: str) -> Path:
    acl = tmp_path / "acl"
    acl.write_text(
        f"# anonymous clients: the devices\ntopic readwrite #\nuser monitor\n{monitor_may}\n"
    )
    return acl


def broker_with_acl(tmp_path: Path, monitor_may: str) -> Iterator[Mosquitto]:
    acl = write_acl(tmp_path, monitor_may)
    broker = Mosquitto(tmp_path / "acl-broker", extra_conf=f"acl_file {acl}\n")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def deaf_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The monitor may write (its canaries go out) but read nothing."""
    yield from broker_with_acl(tmp_path, "topic write customs/#")


@pytest.fixture
def mute_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The monitor may neither read nor write customs/#: nothing comes, its canary is
    refused."""
    yield from broker_with_acl(tmp_path, "topic readwrite elsewhere/#")


@pytest.fixture
def no_canary_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The monitor may read everything but write nothing: its canary is refused."""
    yield from broker_with_acl(tmp_path, "topic read customs/#")


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


@pytest.fixture
def config_for(
    tmp_path: Path,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Mosquitto], Config]:
    """The alerting test config against a given broker, as user `monitor`, with a quick
    canary (every 1 s, deaf after 2 s)."""
    monkeypatch.setenv("MONITOR_MQTT__USERNAME", "monitor")
    monkeypatch.setenv("MONITOR_MQTT__CANARY__INTERVAL", "1s")
    monkeypatch.setenv("MONITOR_MQTT__CANARY__TIMEOUT", "2s")

    def make(broker: Mosquitto) -> Config:
        path = alerting_config(
            tmp_path / "m.yaml",
            mqtt_port=broker.port,
            influx_url=influxd.url,
            database=database,
            channels=[f"webhook:{webhook.url}"],
            devices=DEVICES,
        )
        return load_config(path)

    return make


async def test_a_broker_that_delivers_nothing_is_the_monitors_outage(
    config_for: Callable[[Mosquitto], Config], deaf_broker: Mosquitto, webhook: Webhook
) -> None:
    config = config_for(deaf_broker)
    pub = Publisher(deaf_broker.port)
    talker = Talker(pub, DEVICES)  # the devices publish all along; the monitor hears none
    async with running_monitor(config) as monitor, asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        port = monitor.api.port
        assert port is not None
        _, body = await wait_for(
            lambda: (r := get(port, "/health"))[0] == 503 and "hears nothing" in str(r[1]) and r,
            timeout=15,
        )
        assert any("canary did not come back" in reason for reason in body["reasons"])
        await wait_for(
            lambda: ("monitor-m", "monitor_broker_down", "firing") in webhook.events(), timeout=15
        )
        await asyncio.sleep(3 * ALERT_TIMEOUT)  # well past every device's no_data timeout
        talking.cancel()
    pub.close()
    assert webhook.events() == [("monitor-m", "monitor_broker_down", "firing")]
    summary = webhook.received[0][2]["summary"]
    assert "hears nothing" in summary and "equipment alerts are paused" in summary


async def test_a_refused_canary_is_a_warning_and_alerts_still_work(
    config_for: Callable[[Mosquitto], Config], no_canary_broker: Mosquitto, webhook: Webhook
) -> None:
    config = config_for(no_canary_broker)
    pub = Publisher(no_canary_broker.port)
    talker = Talker(pub, DEVICES)
    async with running_monitor(config) as monitor, asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        port = monitor.api.port
        assert port is not None
        # 200 once the first device message is heard, with the warning
        _, body = await wait_for(
            lambda: (r := get(port, "/health"))[0] == 200 and r[1]["warnings"] and r, timeout=15
        )
        assert "refused the monitor's canary" in body["warnings"][0]
        talker.talking.discard("xs-a")  # a real outage is still alerted
        await wait_for(lambda: ("xs-a", "no_data", "firing") in webhook.events(), timeout=15)
        talking.cancel()
    pub.close()
    assert ("monitor-m", "monitor_broker_down", "firing") not in webhook.events()


@pytest.mark.parametrize("canary", ["refused", "disabled"])
async def test_hearing_nothing_since_connecting_is_the_outage_without_a_canary(
    config_for: Callable[[Mosquitto], Config],
    mute_broker: Mosquitto,
    webhook: Webhook,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    canary: str,
) -> None:
    """Refused or disabled, no canary tells the silence: the silence itself does. Three
    devices publish every 0.5 s and the monitor hears none: no device alert, no
    site_silent, one monitor_broker_down, /health 503; the first message heard ends it."""
    if canary == "disabled":
        monkeypatch.setenv("MONITOR_MQTT__CANARY__ENABLED", "false")
    config = config_for(mute_broker)
    pub = Publisher(mute_broker.port)
    talker = Talker(pub, DEVICES, period=0.5)
    broker_down = ("monitor-m", "monitor_broker_down")
    async with running_monitor(config) as monitor, asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        port = monitor.api.port
        assert port is not None
        _, body = await wait_for(
            lambda: (r := get(port, "/health"))[0] == 503 and "hears nothing" in str(r[1]) and r,
            timeout=15,
        )
        [reason] = [r for r in body["reasons"] if r.startswith("MQTT")]
        assert "not one message in the 2 s since it connected" in reason
        if canary == "refused":
            assert "the broker refuses its canary (Not authorized)" in reason
            assert "refused the monitor's canary" in body["warnings"][0]
        else:
            assert body["warnings"] == []
        await wait_for(lambda: (*broker_down, "firing") in webhook.events(), timeout=15)
        await asyncio.sleep(3 * ALERT_TIMEOUT)  # well past every device's no_data timeout
        assert webhook.events() == [(*broker_down, "firing")]
        assert "hears nothing" in webhook.received[0][2]["summary"]
        assert (await asyncio.to_thread(get, port, "/health"))[0] == 503
        # nor is the silence written as the devices' downtime
        statuses = await asyncio.to_thread(
            rows, influxd.url, database, "SELECT up FROM device_status"
        )
        assert [r for r in statuses if r["up"] == 0] == []

        # the broker lets the monitor read: the first message heard ends the outage
        write_acl(tmp_path, "topic read customs/#")
        assert mute_broker.proc is not None
        mute_broker.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: get(port, "/health")[0] == 200, timeout=15)
        await wait_for(lambda: (*broker_down, "resolved") in webhook.events(), timeout=15)
        await asyncio.sleep(2 * ALERT_TIMEOUT)  # the devices talk: a fresh grace, no alert
        talking.cancel()
    pub.close()
    assert webhook.events() == [(*broker_down, "firing"), (*broker_down, "resolved")]


async def test_retained_messages_are_not_hearing_the_broker(
    config_for: Callable[[Mosquitto], Config],
    mosquitto: Mosquitto,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken bridge: the broker still holds the devices' retained statuses and resends
    them at every subscribe, but nothing live comes. Those are not the broker heard: with
    no canary, the silence is the monitor's outage, not three devices' (review of 19)."""
    monkeypatch.setenv("MONITOR_MQTT__CANARY__ENABLED", "false")
    config = config_for(mosquitto)
    pub = Publisher(mosquitto.port)
    for device in DEVICES:  # what the devices left before the bridge broke
        pub.publish(device_topic(device, "status"), "online", retain=True).wait_for_publish(5)
    pub.close()
    broker_down = ("monitor-m", "monitor_broker_down")
    async with running_monitor(config) as monitor:
        port = monitor.api.port
        assert port is not None
        await wait_for(
            lambda: (r := get(port, "/health"))[0] == 503 and "hears nothing" in str(r[1]),
            timeout=15,
        )
        await wait_for(lambda: (*broker_down, "firing") in webhook.events(), timeout=15)
        await asyncio.sleep(3 * ALERT_TIMEOUT)
    assert webhook.events() == [(*broker_down, "firing")]
