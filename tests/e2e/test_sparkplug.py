"""A Sparkplug B edge node against the monitor, across a real mosquitto (SPEC 3.4).

The edge node is paho with payloads built by hand from the wire format (tests/sparkplug_wire),
independent of the monitor's generated classes; its Will is its NDEATH, as a real one's is."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor.config import load_config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import Webhook, rows, running_monitor, wait_for
from tests.sparkplug_wire import BOOLEAN, DOUBLE, UINT32, Metric, bd_seq, payload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUP, NODE = "rail-gate-plc", "plc-01"
DEVICES = ["xs-sp1", "xs-sp2"]
SPARKPLUG = f"""
sparkplug:
  enabled: true
  host_id: monitor-test
  groups: {{{GROUP}: {{}}}}
  fields:
    "HV/kV": {{to: tube_voltage_kv}}
    "Scans": {{to: scans_total}}
    "Interlock": {{to: interlock_ok}}
"""


class EdgeNode:
    """An edge node's MQTT session: NDEATH as its Will, births, data with a seq, NCMDs."""

    def __init__(self, port: int, bd: int) -> None:
        self.bd = bd
        self.seq = 0
        self.commands: list[bytes] = []
        self.states: list[bytes] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"edge-{NODE}"
        )
        self.client.will_set(self.topic("NDEATH"), payload([bd_seq(bd)]), qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.subscribe(f"spBv1.0/{GROUP}/NCMD/{NODE}", qos=1)
        self.client.subscribe("spBv1.0/STATE/#", qos=1)
        self.client.loop_start()

    @staticmethod
    def topic(kind: str, device: str | None = None) -> str:
        return "/".join(["spBv1.0", GROUP, kind, NODE, *([device] if device else [])])

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            (self.commands if "/NCMD/" in msg.topic else self.states).append(msg.payload)

    def send(self, kind: str, metrics: list[Metric], device: str | None = None) -> None:
        seq = 0 if kind == "NBIRTH" else self.seq
        body = payload(metrics, seq=seq, timestamp=int(time.time() * 1000))
        self.client.publish(self.topic(kind, device), body, qos=1).wait_for_publish(5)
        self.seq = (seq + 1) % 256

    def birth(self) -> None:
        self.send("NBIRTH", [bd_seq(self.bd), Metric("Node Control/Rebirth", False, BOOLEAN)])
        for i, device in enumerate(DEVICES):
            self.send(
                "DBIRTH",
                [
                    Metric("HV/kV", 150.0, DOUBLE, alias=10 * i + 1),
                    Metric("Scans", 100, UINT32, alias=10 * i + 2),
                    Metric("Interlock", True, BOOLEAN, alias=10 * i + 3),
                ],
                device,
            )

    def data(self, scans: int) -> None:
        for i, device in enumerate(DEVICES):
            self.send(
                "DDATA",
                [
                    Metric(alias=10 * i + 1, value=148.5, datatype=DOUBLE),
                    Metric(alias=10 * i + 2, value=scans, datatype=UINT32),
                ],
                device,
            )

    def rebirths(self) -> int:
        with self._lock:
            return sum(b"Node Control/Rebirth" in c for c in self.commands)

    def vanish(self) -> None:
        """The connection drops without DISCONNECT: the broker publishes the NDEATH."""
        sock = cast(socket.socket, self.client.socket())
        sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()


async def test_an_edge_node_births_data_gaps_and_death(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
) -> None:
    config = load_config(
        alert_config(channels=[f"webhook:{webhook.url}"], devices=DEVICES, extra=SPARKPLUG)
    )
    async with running_monitor(config) as monitor:
        node = EdgeNode(mosquitto.port, bd=3)
        # the host's STATE, retained: online, with the timestamp its Will also carries
        await wait_for(lambda: node.states, timeout=5)
        state = json.loads(node.states[-1])
        assert state["online"] is True and state["timestamp"] > 0

        node.birth()
        talking = True

        async def talk() -> None:
            scans = 100
            while talking:
                scans += 1
                await asyncio.to_thread(node.data, scans)
                await asyncio.sleep(0.3)

        talker = asyncio.create_task(talk())
        await wait_for(
            lambda: len(rows(influxd.url, database, "SELECT * FROM xray_scanner")) >= 6,
            timeout=10,
        )
        points = rows(influxd.url, database, "SELECT * FROM xray_scanner WHERE device = 'xs-sp1'")
        assert points[-1]["tube_voltage_kv"] == 148.5 and points[-1]["scans_total"] > 100
        assert points[0]["interlock_ok"] is True  # from the birth
        devices = {d.device.id: d for d in monitor.api._service.liveness.devices.values()}
        assert devices["xs-sp1"].online is True

        # a seq gap: exactly one rebirth request, however many gaps follow within 30 s
        node.seq = (node.seq + 5) % 256
        await wait_for(lambda: node.rebirths() == 1, timeout=5)
        node.seq = (node.seq + 5) % 256
        await asyncio.sleep(1.5)
        assert node.rebirths() == 1
        assert monitor.stats.sparkplug_seq_gaps >= 1
        assert monitor.stats.sparkplug_rebirths_sent == 1
        node.birth()  # the node answers with a new birth

        # an NDEATH of an older session (another bdSeq) changes nothing
        node.client.publish(node.topic("NDEATH"), payload([bd_seq(2)]), qos=1).wait_for_publish(5)
        await asyncio.sleep(1.5)
        assert all(devices[d].online for d in DEVICES)
        assert not [e for e in webhook.events() if e[1] == "offline"]

        # the node's connection dies: its Will (NDEATH, bdSeq 3) puts both devices offline
        talking = False
        await talker
        node.vanish()
        await wait_for(
            lambda: sorted(d for d, rule, ev in webhook.events() if rule == "offline") == DEVICES,
            timeout=10,
        )
        await asyncio.sleep(1.5)  # and one alert each, not more
        offline = [e for e in webhook.events() if e[1] == "offline"]
        assert sorted(d for d, _, _ in offline) == DEVICES
        assert monitor.stats.sparkplug_stale_deaths == 1


async def test_the_hosts_state_says_offline_when_it_stops(
    alert_config: Callable[..., Path], mosquitto: Mosquitto, webhook: Webhook
) -> None:
    config = load_config(
        alert_config(channels=[f"webhook:{webhook.url}"], devices=DEVICES, extra=SPARKPLUG)
    )
    async with running_monitor(config):
        node = EdgeNode(mosquitto.port, bd=0)
        await wait_for(lambda: node.states, timeout=5)
    await wait_for(lambda: len(node.states) == 2, timeout=5)
    first, last = (json.loads(s) for s in node.states)
    assert (first["online"], last["online"]) == (True, False)
    # a clean stop: offline with the stop's time, not the Will's (the connect's), which the
    # broker drops (Sparkplug 3.0, tck-id-host-topic-phid-death-payload-timestamp-disconnect-clean)
    assert last["timestamp"] > first["timestamp"]
    with contextlib.suppress(Exception):
        node.client.disconnect()
        node.client.loop_stop()
