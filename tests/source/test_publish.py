"""The Sparkplug host's own session against a real mosquitto (SPEC 3.4): Clean Start, its
birth once subscribed, its Will when the connection dies, its last words at a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import re
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


def source(port: int, will: bytes, words: list[str]) -> MqttSource:
    """A source with a Sparkplug host's session: ``will`` its Will, "here" published once
    subscribed, "bye" its last words at a clean stop; ``words`` says what it was asked."""
    config = MQTT(port=port, client_id="test-host", canary={"enabled": False})  # type: ignore[arg-type]
    src = MqttSource(config, ["nothing/#"], Stats(), SystemClock())

    def the_will() -> tuple[str, bytes]:
        words.append("will")
        return TOPIC, will

    def connected() -> None:
        words.append("connected")
        session.publish(TOPIC, b"here", True)

    def last_words() -> tuple[str, bytes]:
        words.append("last")
        return TOPIC, b"bye"

    session = src.add_host_session(
        "test-host-sparkplug",
        [TOPIC],
        will=the_will,
        on_connected=connected,
        last_words=last_words,
    )
    return src


async def test_the_host_session_is_clean_publishes_once_subscribed_and_has_its_will(
    mosquitto: Mosquitto,
) -> None:
    words: list[str] = []
    async with source(mosquitto.port, b"gone", words) as src:
        runner = asyncio.create_task(src.run())
        host = src.host
        assert host is not None
        await wait_for(lambda: host.connected, timeout=10)
        assert words == ["will", "connected"]
        late = Watcher(mosquitto.port)  # subscribes after: gets it because it was retained
        await wait_for(lambda: late.got == [(b"here", True)], timeout=15)
        # Sparkplug 3.0: Clean Start (mosquitto's log says c1), the persistent one c0
        log = (mosquitto.workdir / "mosquitto.log").read_text()
        assert re.search(r"as test-host-sparkplug \(p5, c1,", log), log
        assert re.search(r"as test-host \(p5, c0,", log), log
        conn = host.conn
        assert conn is not None
        conn.abort()  # the connection dies without DISCONNECT: the broker sends the Will
        await wait_for(lambda: b"gone" in late.payloads(), timeout=15)
        await wait_for(lambda: words.count("connected") == 2, timeout=10)  # and it is back
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        late.close()


async def test_a_clean_stop_says_its_last_words_and_not_its_will(mosquitto: Mosquitto) -> None:
    watcher = Watcher(mosquitto.port)
    words: list[str] = []
    async with source(mosquitto.port, b"left", words) as src:
        runner = asyncio.create_task(src.run())
        await wait_for(lambda: watcher.payloads() == [b"here"], timeout=10)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    # aclose: the last words (the stop's time in real life), then a DISCONNECT that drops the
    # Will (whose time is the connect's)
    await wait_for(lambda: len(watcher.payloads()) >= 2, timeout=15)
    assert watcher.payloads()[:2] == [b"here", b"bye"], watcher.payloads()
    await asyncio.sleep(0.5)
    assert watcher.payloads() == [b"here", b"bye"]
    watcher.close()


async def test_no_publish_without_a_connection(mosquitto: Mosquitto) -> None:
    src = source(mosquitto.port, b"x", [])
    assert src.publish(TOPIC, b"y") is False
    assert src.host is not None and src.host.publish(TOPIC, b"y") is False
