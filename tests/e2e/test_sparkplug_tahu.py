"""The monitor as a Sparkplug host against a real edge node nobody here wrote (SPEC 3.4,
issue 20): Eclipse Tahu's JavaScript client and encoder (tests/tahu_edge.py), across a real
mosquitto, with alerts to a webhook and points in a real InfluxDB."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor.config import load_config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import ALERT_TIMEOUT, Webhook, rows, running_monitor, wait_for
from tests.sparkplug_wire import UINT32, Metric, payload
from tests.tahu_edge import TahuEdge, metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUP, NODE, HOST = "plc", "gw-1", "monitor-test"
DEVICES = ["xs-t1", "xs-t2"]


def sparkplug(**extra: object) -> str:
    settings = {
        "enabled": True,
        "host_id": HOST,
        "groups": {GROUP: {}},
        "reorder_timeout": "1s",
        "rebirth_interval": "3s",
        "fields": {
            "HV/kV": {"to": "tube_voltage_kv"},
            "Scans": {"to": "scans_total"},
            "Temp": {"to": "detector_temp_c"},
            "Interlock": {"to": "interlock_ok"},
        },
        **extra,
    }
    return "sparkplug: " + json.dumps(settings) + "\n"


THRESHOLD = """
  kinds:
    xray_scanner:
      no_data_timeout: 2s
      fault_for: 1s
      offline_for: 1s
      thresholds: [{name: hot, when: "detector_temp_c > 45", for: 1s, severity: critical}]
"""


class Sniffer:
    """A plain MQTT client on spBv1.0/# at QoS 1: what the monitor publishes there, and at
    which QoS it arrives (a QoS 1 subscription gets a QoS 0 publish as QoS 0)."""

    def __init__(self, port: int, topic: str = "spBv1.0/#") -> None:
        self.got: list[tuple[str, bytes, int, bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, msg.payload, msg.qos, msg.retain))

    def messages(self, where: Callable[[str], bool] = lambda t: True) -> list[Any]:
        with self._lock:
            return [m for m in self.got if where(m[0])]

    def states(self) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _, _ in self.messages(lambda t: t.endswith(f"/{HOST}"))]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sniffer(mosquitto: Mosquitto) -> Iterator[Sniffer]:
    s = Sniffer(mosquitto.port)
    yield s
    s.close()


@pytest.fixture
def edges() -> Iterator[list[TahuEdge]]:
    made: list[TahuEdge] = []
    yield made
    for e in made:
        e.close()


def scanner_metrics(base: int) -> list[dict[str, Any]]:
    """Every datatype a gateway sends, by alias (Tahu's encoder chooses the fields)."""
    return [
        metric("HV/kV", "Double", 150.5, alias=base + 1),
        metric("Scans", "UInt32", 4_000_000_000, alias=base + 2),
        metric("Interlock", "Boolean", True, alias=base + 3),
        metric("Temp", "Float", 30.5, alias=base + 4),
        metric("i8", "Int8", -8, alias=base + 5),
        metric("i16", "Int16", -1600, alias=base + 6),
        metric("i32", "Int32", -320000, alias=base + 7),
        metric("i64", "Int64", -(2**40), alias=base + 8),
        metric("u8", "UInt8", 250, alias=base + 9),
        metric("u16", "UInt16", 65000, alias=base + 10),
        metric("u64", "UInt64", {"$long": str(2**62)}, alias=base + 11),
        metric("mode", "String", "auto", alias=base + 12),
        metric("when", "DateTime", 1_700_000_000_000, alias=base + 13),
        metric("text", "Text", "fine", alias=base + 14),
        metric("state", "String", "ready", alias=base + 15),
    ]


def _num(v: Any) -> Any:
    """InfluxDB's JSON writes a large float without a point: compare as floats."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def config_for(
    alert_config: Callable[..., Path], webhook: Webhook, extra: str = "", alerts: str = ""
) -> Any:
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=DEVICES, extra=extra)
    if alerts:  # the kind's rules replaced (a threshold)
        text = path.read_text()
        text = re.sub(r"  kinds:\n    xray_scanner:\n      \{[^}]*\}\n", alerts.lstrip("\n"), text)
        path.write_text(text)
    return load_config(path)


def born_edge(port: int, edges: list[TahuEdge], **kw: Any) -> TahuEdge:
    devices = {d: scanner_metrics(100 * i) for i, d in enumerate(DEVICES)}
    edge = TahuEdge(port, GROUP, NODE, devices=devices, **kw)
    edges.append(edge)
    return edge


async def test_every_datatype_by_alias(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
    edges: list[TahuEdge],
) -> None:
    """Issue 20.1: UInt32 from long_value (where Tahu's encoders put it) was 0; and every
    other datatype as Tahu encodes it; a transient metric is not written."""
    config = config_for(alert_config, webhook, sparkplug())
    async with running_monitor(config):
        edge = born_edge(mosquitto.port, edges)
        await edge.until("births")
        values = [
            metric(None, "UInt32", 4_000_000_001, alias=2),
            metric(None, "Int8", -7, alias=5),
            metric(None, "UInt64", {"$long": str(2**62 + 1)}, alias=11),
            metric(None, "Float", 31.25, alias=4),
            metric("Debug", "Int32", 5, isTransient=True),  # not for a historian
        ]
        assert edge.data("xs-t1", values) == "sent"
        q = "SELECT * FROM xray_scanner WHERE device = 'xs-t1'"
        await wait_for(lambda: len(rows(influxd.url, database, q)) >= 2, timeout=15)
        birth, data = rows(influxd.url, database, q)[:2]
        assert {k: birth[k] for k in ("scans_total", "tube_voltage_kv", "interlock_ok")} == {
            "scans_total": 4_000_000_000,
            "tube_voltage_kv": 150.5,
            "interlock_ok": True,
        }
        assert {
            k: _num(birth[k])
            for k in ("i8", "i16", "i32", "i64", "u8", "u16", "u64", "mode", "when")
        } == {
            "i8": -8.0,
            "i16": -1600.0,
            "i32": -320000.0,
            "i64": float(-(2**40)),
            "u8": 250.0,
            "u16": 65000.0,
            "u64": float(2**62),
            "mode": "auto",
            "when": 1.7e12,
        }
        assert birth["detector_temp_c"] == 30.5 and birth["state"] == "ready"
        assert (data["scans_total"], data["i8"], _num(data["u64"]), data["detector_temp_c"]) == (
            4_000_000_001,
            -7.0,
            float(2**62 + 1),
            31.25,
        )
        assert "Debug" not in data or data["Debug"] is None


async def test_a_born_quiet_device_is_alive(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    edges: list[TahuEdge],
) -> None:
    """Issue 20.3: Sparkplug reports by exception; a born device that has not died is
    alive however long it is quiet: no no_data after its kind's timeout (2 s here)."""
    config = config_for(alert_config, webhook, sparkplug())
    async with running_monitor(config) as monitor:
        edge = born_edge(mosquitto.port, edges)
        await edge.until("births")
        # quiet now, three times the kind's no_data timeout: born and not dead is alive
        await asyncio.sleep(3 * ALERT_TIMEOUT + 1)
        assert [e for e in webhook.events() if e[1] == "no_data"] == []
        liveness = monitor.api._service.liveness
        now = monitor.api._service.clock.monotonic()
        for ds in liveness.devices.values():
            if ds.device.id in DEVICES:
                assert liveness.status(ds.device.key, now) == (True, "ready", "ok")


async def test_a_gateway_up_longer_than_max_age_dies_now(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
    edges: list[TahuEdge],
) -> None:
    """Issue 20.2: the NDEATH's timestamp is its Will's, made at connect; a gateway
    connected for longer than ingest.max_age died, and its devices never went offline."""
    config = config_for(alert_config, webhook, sparkplug() + "ingest: {max_age: 2s}\n")
    async with running_monitor(config):
        edge = born_edge(mosquitto.port, edges)
        await edge.until("births")
        await asyncio.sleep(3)  # connected longer than max_age
        edge.kill()  # the socket dies: mosquitto publishes Tahu's Will, its NDEATH
        died = time.time()
        await wait_for(
            lambda: sorted(d for d, rule, _ in webhook.events() if rule == "offline") == DEVICES,
            timeout=15,
        )
        q = "SELECT * FROM device_status WHERE device = 'xs-t1' AND reason = 'offline'"
        await wait_for(lambda: rows(influxd.url, database, q), timeout=10)
        down = rows(influxd.url, database, q)[0]
        assert down["reason"] == "offline" and abs(down["time"] / 1000 - died) < 10


async def test_store_and_forward_is_written_and_changes_nothing_live(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
    edges: list[TahuEdge],
) -> None:
    """Issue 20.4: a gateway that kept its data while its primary host (the monitor) was
    away flushes it as historical metrics after its births: written at its own times, but
    neither a fault nor a threshold of the past alerts now."""
    config = config_for(alert_config, webhook, sparkplug(), alerts=THRESHOLD)
    async with running_monitor(config):
        edge = born_edge(mosquitto.port, edges, primary_host=HOST)
        await edge.until("births")  # after our STATE said online
    # the monitor stopped: its STATE says offline, and the gateway keeps what it has
    await edge.until("state", 2)
    kept_at = int(time.time() * 1000)
    bad = [metric(None, "String", "fault", alias=15), metric(None, "Float", 80.0, alias=4)]
    assert edge.data("xs-t1", bad) == "stored"
    await asyncio.sleep(0.2)
    async with running_monitor(config):
        await edge.until("flushed", timeout=20)  # births (state ready), then the past as history
        q = "SELECT * FROM xray_scanner WHERE device = 'xs-t1' AND state = 'fault'"
        await wait_for(lambda: rows(influxd.url, database, q), timeout=15)
        [past] = rows(influxd.url, database, q)
        assert past["detector_temp_c"] == 80.0 and abs(past["time"] - kept_at) < 2000
        await asyncio.sleep(3)  # fault_for and the threshold's for (1 s) are long over
        assert [e for e in webhook.events() if e[1] in ("fault", "threshold:hot")] == []


async def test_a_swapped_pair_is_no_gap_and_real_gaps_are_asked_at_qos_0(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    edges: list[TahuEdge],
    sniffer: Sniffer,
) -> None:
    """Issue 20.6 (a reordered pair asked at once for a rebirth; a real gap within the
    30 s limit was never asked again) and 20.7 (NCMD at QoS 0)."""
    config = config_for(alert_config, webhook, sparkplug())
    async with running_monitor(config) as monitor:
        edge = born_edge(mosquitto.port, edges)
        await edge.until("births")

        def ncmds() -> list[Any]:
            return sniffer.messages(lambda t: "/NCMD/" in t)

        for scans in (1, 2):  # Tahu numbers them; the broker delivers them swapped
            edge.data("xs-t1", [metric(None, "UInt32", scans, alias=2)], hold=True)
        edge.send("release")
        edge.data("xs-t1", [metric(None, "UInt32", 3, alias=2)])
        await asyncio.sleep(2.5)  # past the reorder window (1 s)
        assert ncmds() == [] and edge.seen("ncmd") == []
        assert monitor.stats.sparkplug_seq_gaps == 0 and monitor.stats.sparkplug_reordered == 1

        edge.send("skip")  # a message lost
        edge.data("xs-t1", [metric(None, "UInt32", 4, alias=2)])
        await wait_for(lambda: len(edge.seen("ncmd")) == 1, timeout=10)
        # the sniffer is another subscriber: the broker may hand it the NCMD a moment later
        await wait_for(lambda: len(ncmds()) == 1, timeout=5)
        [(_, _, qos, retain)] = ncmds()
        assert (qos, retain) == (0, False)  # Sparkplug 3.0: NCMD at QoS 0, not retained
        command = edge.seen("ncmd")[0]
        assert command["metrics"] == [
            {"name": "Node Control/Rebirth", "type": "Boolean", "value": True}
        ]
        assert command["seq"] is None and command["timestamp"] > 0
        await edge.until("births", 2)  # Tahu's answer: a new birth
        asked = time.monotonic()
        edge.send("skip")  # another loss, within the 3 s between requests
        edge.data("xs-t1", [metric(None, "UInt32", 5, alias=2)])
        await wait_for(lambda: len(edge.seen("ncmd")) == 2, timeout=10)
        assert time.monotonic() - asked >= 2.5  # held back, then sent when the 3 s ended
        assert monitor.stats.sparkplug_seq_gaps == 2


async def test_host_duties_state_session_and_no_canary_under_spbv10(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    edges: list[TahuEdge],
    sniffer: Sniffer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 20.7: its own clean session; its STATE defended against a stale offline one
    (edge nodes waiting for it hold their births back); a clean stop's offline STATE has
    the stop's time; no canary under spBv1.0/."""
    monkeypatch.setenv("MONITOR_MQTT__CANARY__INTERVAL", "500ms")
    config = config_for(alert_config, webhook, sparkplug())
    async with running_monitor(config) as monitor:
        await wait_for(lambda: sniffer.states(), timeout=10)
        online = sniffer.states()[-1]
        assert online["online"] is True
        log = (mosquitto.workdir / "mosquitto.log").read_text()
        client = f"{config.mqtt.client_id}-sparkplug"
        assert re.search(rf"as {re.escape(client)} \(p5, c1,", log), log  # Clean Start

        # a stale offline STATE of ours (an old Will through a bridge), retained
        stale = {"online": False, "timestamp": online["timestamp"] - 1000}
        sniffer.client.publish(f"spBv1.0/STATE/{HOST}", json.dumps(stale), qos=1, retain=True)
        await wait_for(lambda: stale in sniffer.states(), timeout=15)
        await wait_for(lambda: sniffer.states()[-1] == online, timeout=15)  # answered
        retained = Sniffer(mosquitto.port, f"spBv1.0/STATE/{HOST}")  # what a newcomer sees
        await wait_for(lambda: retained.states(), timeout=15)
        assert retained.states() == [online]
        retained.close()
        # a Tahu gateway that names us its primary host births at once
        edge = born_edge(mosquitto.port, edges, primary_host=HOST)
        await edge.until("births")

        # a newer offline one (an old instance's clean stop): a new session, a newer time
        newer = {"online": False, "timestamp": int(time.time() * 1000) + 500}
        sniffer.client.publish(f"spBv1.0/STATE/{HOST}", json.dumps(newer), qos=1, retain=True)
        await wait_for(lambda: newer in sniffer.states(), timeout=15)
        await wait_for(
            lambda: (
                sniffer.states()[-1]["online"] is True
                and sniffer.states()[-1]["timestamp"] > newer["timestamp"]
            ),
            timeout=10,
        )
        await edge.until("births", 2, timeout=10)  # the gateway saw us go and come back
        await asyncio.sleep(1.5)  # three canary intervals
        assert monitor.stats.sparkplug_state_reasserted >= 2
        stopped_at = int(time.time() * 1000)
    # the stop's time, not the connect's (the Will's)
    with contextlib.suppress(AssertionError):
        await wait_for(lambda: sniffer.states()[-1]["online"] is False, timeout=15)
    last = sniffer.states()[-1]
    assert last["online"] is False and last["timestamp"] >= stopped_at, sniffer.states()
    assert sniffer.messages(lambda t: "_canary_" in t) == []


async def test_a_death_after_a_restart_is_honoured(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    edges: list[TahuEdge],
) -> None:
    """Issue 20.9: what the monitor knows of an edge node (its birth's bdSeq, its devices)
    survives a restart; an NDEATH from a node silent since is its death, not a stale one.
    (Without rebirth requests, which would make it birth again and hide the question.)"""
    config = config_for(alert_config, webhook, sparkplug(rebirth=False))
    async with running_monitor(config):
        edge = born_edge(mosquitto.port, edges)
        await edge.until("births")
        await asyncio.sleep(1.0)  # the node saved (every status tick)
    async with running_monitor(config) as monitor:
        await asyncio.sleep(1.0)
        edge.kill()
        await wait_for(
            lambda: sorted(d for d, rule, _ in webhook.events() if rule == "offline") == DEVICES,
            timeout=15,
        )
        assert monitor.stats.sparkplug_stale_deaths == 0


async def test_garbage_from_thousands_of_node_ids_is_bounded(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    edges: list[TahuEdge],
    sniffer: Sniffer,
) -> None:
    """Issue 20.8: every topic made edge-node state and every name a target; 20,000 NDATA
    to random node ids made 20,000 NCMDs in one tick. Now: no state before a birth, metric
    definitions bounded, commands at sparkplug.rebirth_rate (10/s) overall."""
    config = config_for(alert_config, webhook, sparkplug(max_metrics=2000))
    async with running_monitor(config) as monitor:
        edge = born_edge(mosquitto.port, edges)
        await edge.until("births")
        flood = Sniffer(mosquitto.port, "nothing")
        started = time.monotonic()
        for i in range(20_000):
            body = payload([Metric("x", i, UINT32)], seq=i % 256, timestamp=NOW_MS())
            flood.client.publish(f"spBv1.0/{GROUP}/NDATA/junk-{i}", body, qos=0)
        for i in range(200):  # 500 new names each, on the born node
            names = [Metric(f"new-{i}-{j}", j, UINT32) for j in range(500)]
            flood.client.publish(
                f"spBv1.0/{GROUP}/DDATA/{NODE}/xs-t1", payload(names, timestamp=NOW_MS()), qos=0
            )
        flood.client.publish("nothing", b"", qos=1).wait_for_publish(30)  # all of it sent
        await asyncio.sleep(3)
        elapsed = time.monotonic() - started
        ncmds = len(sniffer.messages(lambda t: "/NCMD/" in t))
        assert 0 < ncmds <= 10 * elapsed + 10 + 1  # rate * time + a second's burst
        stats = monitor.stats
        await wait_for(lambda: stats.sparkplug_too_many_metrics > 0, timeout=60)
        assert stats.sparkplug_nodes == 1  # the born one; garbage made none
        assert stats.sparkplug_rebirths_dropped > 0  # wishes beyond max_nodes: dropped
        flood.close()


def NOW_MS() -> int:
    return int(time.time() * 1000)
