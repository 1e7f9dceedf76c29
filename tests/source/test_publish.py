"""The source's publish path against a real mosquitto: retained QoS 1 publishes, and a Will
that the broker publishes when the connection dies or when we leave saying so."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor.clock import SystemClock
from monitor.config import MQTT
from monitor.sim.devservers import Mosquitto
from monitor.source.mqtt import MqttSource
from monitor.stats import Stats
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
TOPIC = "spBv1.0/STATE/test-host"


class Watcher:
    """A paho subscriber that records what arrives on TOPIC (and whether it was retained)."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(TOPIC, qos=1)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.payload, msg.retain))

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p for p, _ in self.got]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def source(port: int, will: bytes) -> MqttSource:
    config = MQTT(port=port, client_id="test-host", canary={"enabled": False})  # type: ignore[arg-type]
    return MqttSource(config, ["nothing/#"], Stats(), SystemClock(), will=lambda: (TOPIC, will))


async def test_a_retained_publish_and_the_will_when_the_connection_dies(
    mosquitto: Mosquitto,
) -> None:
    async with source(mosquitto.port, b"gone") as src:
        runner = asyncio.create_task(src.run())
        await asyncio.wait_for(src.connected.wait(), 10)
        assert src.publish(TOPIC, b"here", retain=True)
        await asyncio.sleep(0.3)
        late = Watcher(mosquitto.port)  # subscribes after: gets it because it was retained
        await wait_for(lambda: late.got == [(b"here", True)], timeout=5)
        conn = src._conn
        assert conn is not None
        conn.abort()  # the connection dies without DISCONNECT: the broker sends the Will
        await wait_for(lambda: b"gone" in late.payloads(), timeout=5)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        late.close()


async def test_leaving_publishes_the_will_too(mosquitto: Mosquitto) -> None:
    watcher = Watcher(mosquitto.port)
    async with source(mosquitto.port, b"left") as src:
        runner = asyncio.create_task(src.run())
        await asyncio.wait_for(src.connected.wait(), 10)
        assert src.publish(TOPIC, b"here", retain=True)
        await wait_for(lambda: watcher.payloads() == [b"here"], timeout=5)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    # aclose: DISCONNECT with reason 0x04, so edge nodes learn the host went away
    await wait_for(lambda: watcher.payloads() == [b"here", b"left"], timeout=5)
    watcher.close()


async def test_no_publish_without_a_connection(mosquitto: Mosquitto) -> None:
    src = source(mosquitto.port, b"x")
    assert src.publish(TOPIC, b"y") is False
