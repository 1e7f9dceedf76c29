"""Delivery guarantees across process boundaries: broker restarts and a killed collector."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import (
    HeldProxy,
    MonitorProcess,
    Publisher,
    monitor_config,
    rows,
    running_monitor,
    wait_for,
)

pytestmark = pytest.mark.integration

TOPIC = "customs/aktau/inspection-1/xray_scanner/xs-01/telemetry"


def stream(base_ms: int, n: int) -> list[tuple[str, str]]:
    """n telemetry messages, each its own point (distinct timestamps)."""
    return [(TOPIC, json.dumps({"ts": base_ms + i, "scans_total": i})) for i in range(n)]


def count(influxd: InfluxDB, database: str) -> int:
    r = rows(influxd.url, database, "SELECT count(scans_total) FROM xray_scanner")
    return int(r[0]["count"]) if r else 0


@pytest.mark.slow
async def test_broker_restart_during_qos1_stream_loses_nothing(
    configure: Callable[..., Config],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
) -> None:
    config = configure()
    n = 3000
    messages = stream(int(time.time() * 1000) - 600_000, n)
    pub = Publisher(mosquitto.port)

    def produce() -> None:  # ~1500 msg/s, the broker restarted twice on the way
        for i in range(0, n, 50):
            for topic, payload in messages[i : i + 50]:
                pub.publish(topic, payload)
            if i in (1000, 2000):
                mosquitto.restart()
            time.sleep(0.03)

    async with running_monitor(config) as mon:
        await asyncio.to_thread(produce)
        await wait_for(lambda: count(influxd, database) == n, timeout=60)
        assert mon.stats.broker_connects >= 3
    pub.close()


async def test_unacknowledged_messages_are_redelivered_after_sigkill(
    configure: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
) -> None:
    # A "database" that accepts connections and never answers: every write hangs.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", free_port()))
    blackhole.listen(16)
    port = blackhole.getsockname()[1]
    monitor_config(
        monkeypatch,
        mqtt_port=mosquitto.port,
        influx_url=f"http://127.0.0.1:{port}",
        database=database,
        state_dir=tmp_path / "state",
        client_id="monitor-kill",
        MONITOR_INFLUX__CREATE_DATABASE="false",
        MONITOR_INFLUX__TIMEOUT="5m",
    )
    first = MonitorProcess(tmp_path / "first.log")
    await first.wait_log("event=mqtt.connected")

    n = 500
    pub = Publisher(mosquitto.port)
    pub.publish_all(stream(int(time.time() * 1000) - 600_000, n))
    pub.close()
    # The collector received them and is stuck writing: its write reached the black hole.
    blackhole.settimeout(15)
    conn, _ = await asyncio.to_thread(blackhole.accept)
    request = await asyncio.to_thread(conn.recv, 4096)
    if request.startswith(b"GET /query?"):  # the field types, read at start: unanswered too
        conn, _ = await asyncio.to_thread(blackhole.accept)
        request = await asyncio.to_thread(conn.recv, 4096)
    assert request.startswith(b"POST /write?")
    await asyncio.sleep(0.5)
    first.kill()
    conn.close()
    blackhole.close()

    # Same client id, a working database: the broker redelivers every unacked message.
    config = configure(
        client_id="monitor-kill",
        MONITOR_INFLUX__CREATE_DATABASE="true",
        MONITOR_INFLUX__TIMEOUT="10s",
    )
    async with running_monitor(config):
        await wait_for(lambda: count(influxd, database) == n, timeout=30)


async def test_sigterm_flushes_acks_and_exits_zero(
    configure: Callable[..., Config],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
) -> None:
    """SIGTERM while points are held (InfluxDB has not answered the write yet): the stop
    waits for the write, acknowledges what it stored, and exits 0."""
    async with HeldProxy(influxd.port) as influx:
        configure(
            client_id="monitor-term",
            MONITOR_INFLUX__URL=f"http://127.0.0.1:{influx.port}",
            MONITOR_INFLUX__BATCH_SIZE="100000",
        )
        proc = MonitorProcess(tmp_path / "monitor.log")
        await proc.wait_log("event=mqtt.connected")
        n = 300
        pub = Publisher(mosquitto.port)
        influx.hold()
        pub.publish_all(stream(int(time.time() * 1000) - 600_000, n))
        await asyncio.sleep(1.0)
        assert count(influxd, database) == 0  # the writes are held in the proxy
        stopping = asyncio.create_task(asyncio.to_thread(proc.terminate))
        await asyncio.sleep(1.0)
        assert not stopping.done()  # waiting for InfluxDB, within stop_timeout
        influx.release()
        assert await stopping == 0
        assert count(influxd, database) == n  # written on the way out
        assert "event=monitor.stopped" in proc.log()

    # ... and acknowledged: a new session under the same id gets nothing redelivered.
    seen: list[bytes] = []
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="monitor-term",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_message = lambda c, u, m: seen.append(m.payload)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    client.connect("127.0.0.1", mosquitto.port, clean_start=False, properties=props)
    client.loop_start()
    await asyncio.sleep(1.5)
    client.disconnect()
    client.loop_stop()
    pub.close()
    assert seen == []
