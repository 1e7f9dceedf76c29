"""The MQTT source against a real mosquitto: backpressure, keepalive, redelivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.clock import SystemClock
from monitor.config import MQTT
from monitor.sim.devservers import Mosquitto
from monitor.source.mqtt import Message, MqttSource
from monitor.stats import Stats
from tests.helpers import Publisher, wait_for
from tests.source.mqtt5 import publish_packet, utf8, varint

# -- the source against a real mosquitto --


def source_for(
    port: int,
    stats: Stats | None = None,
    subscriptions: tuple[str, ...] = ("t/#",),
    subscribed_before: tuple[str, ...] = (),
    **overrides: object,
) -> MqttSource:
    # the canary has tests of its own (tests/e2e/test_deaf_broker.py): not here
    overrides = {"canary": {"enabled": False}, **overrides}
    config = MQTT(port=port, client_id="test-source", **overrides)  # type: ignore[arg-type]
    return MqttSource(
        config,
        list(subscriptions),
        stats or Stats(),
        SystemClock(),
        subscribed_before=subscribed_before,
        inbox_max_bytes=4096,
    )


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.integration
async def test_a_full_inbox_pauses_the_socket_and_loses_nothing(mosquitto: Mosquitto) -> None:
    """A slow consumer with a 4 KiB inbox: reading stops and resumes; every message, in order."""
    n = 3000
    async with source_for(mosquitto.port) as source:
        runner = asyncio.create_task(source.run())
        await asyncio.wait_for(source.connected.wait(), 10)
        pub = Publisher(mosquitto.port)
        await asyncio.to_thread(pub.publish_all, [("t/x", str(i)) for i in range(n)])
        got: list[int] = []
        largest = 0
        while (batch := await source.take(100_000)) is not None:
            largest = max(largest, sum(len(m.payload) for m in batch))
            got.extend(int(m.payload) for m in batch)
            source.ack(batch)
            await asyncio.sleep(0.002)  # a slow sink
            if len(got) >= n:
                break
        await stop(runner)
        pub.client.disconnect()
        pub.client.loop_stop()
    assert got == list(range(n))
    # bounded: the inbox (4 KiB) plus at most one socket read (asyncio reads 256 KiB)
    assert largest < 4096 + 256 * 1024


@pytest.mark.integration
async def test_a_frozen_broker_is_detected_by_keepalive(mosquitto: Mosquitto) -> None:
    async with source_for(mosquitto.port, keepalive=1) as source:
        runner = asyncio.create_task(source.run())
        await asyncio.wait_for(source.connected.wait(), 10)
        assert mosquitto.proc is not None
        os.kill(mosquitto.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            await wait_for(lambda: not source.connected.is_set(), timeout=10, interval=0.05)
            silent = time.monotonic() - t0
        finally:
            os.kill(mosquitto.proc.pid, signal.SIGCONT)
        assert silent < 3  # 1.5 keepalives of silence, checked every half keepalive
        await asyncio.wait_for(source.connected.wait(), 15)  # and back once it thaws
        await stop(runner)


@pytest.mark.integration
async def test_unacked_messages_come_back_on_the_next_connection(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Acks for a dead connection's messages are not sent on the new one; the broker resends."""
    async with source_for(mosquitto.port) as source:
        runner = asyncio.create_task(source.run())
        await asyncio.wait_for(source.connected.wait(), 10)
        pub = Publisher(mosquitto.port)
        await asyncio.to_thread(pub.publish_all, [("t/x", str(i)) for i in range(10)])
        first = await source.take(100_000)
        while len(first) < 10:
            first += await source.take(100_000)
        mosquitto.restart()  # the connection dies with all ten unacknowledged
        await wait_for(lambda: not source.connected.is_set(), timeout=10, interval=0.05)
        await asyncio.wait_for(source.connected.wait(), 15)
        source.ack(first)  # too late: from the old connection, so nothing is sent
        again = await asyncio.wait_for(source.take(100_000), 10)
        assert sorted(int(m.payload) for m in again) == list(range(10))
        assert all(m.generation == first[0].generation + 1 for m in again)
        source.ack(again)
        await stop(runner)
        pub.client.disconnect()
        pub.client.loop_stop()


@pytest.mark.integration
@pytest.mark.slow
async def test_the_brokers_keepalive_overrides_ours(tmp_path: Path) -> None:
    """A broker capping keepalive at 10 s (MQTT 5 Server Keep Alive; mosquitto's minimum):
    we ping at its pace, so it never drops us for silence although we asked for 60 s."""
    broker = Mosquitto(tmp_path / "mosquitto", extra_conf="max_keepalive 10\n")
    broker.start()
    stats = Stats()
    try:
        async with source_for(broker.port, stats, keepalive=60) as source:
            runner = asyncio.create_task(source.run())
            await asyncio.wait_for(source.connected.wait(), 10)
            await asyncio.sleep(25)  # mosquitto drops a client silent for 1.5 x 10 s (+ 2 s)
            assert source.connected.is_set()
            assert stats.broker_connects == 1
            await stop(runner)
    finally:
        broker.stop()


async def test_the_brokers_reason_for_disconnecting_us_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mosquitto 2.0 closes without a DISCONNECT (even on a session take-over), so a
    scripted MQTT 5 peer says it: CONNACK, SUBACK, then DISCONNECT "Session taken over"."""
    reason = b"\x1f" + utf8("another monitor-aktau-1 connected")
    disconnect = b"\xe0" + varint(len(reason) + 2) + b"\x8e" + varint(len(reason)) + reason

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(b"\x20\x03\x00\x00\x00")
        await reader.read(1024)  # SUBSCRIBE
        writer.write(b"\x90\x04\x00\x01\x00\x01" + disconnect)
        await writer.drain()
        writer.close()

    caplog.set_level(logging.WARNING, logger="monitor.source.mqtt")
    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, source_for(port) as source:
        runner = asyncio.create_task(source.run())
        await wait_for(
            lambda: any(r.getMessage() == "mqtt.disconnected" for r in caplog.records),
            timeout=10,
            interval=0.05,
        )
        await stop(runner)
    reasons = [
        getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "mqtt.disconnected"
    ]
    assert reasons[0] == "Session taken over: another monitor-aktau-1 connected"


async def test_refused_and_downgraded_subscriptions_are_counted_and_kept() -> None:
    """A scripted MQTT 5 peer grants one subscription at QoS 0 and refuses another."""

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(b"\x20\x03\x00\x00\x00")
        await reader.read(1024)  # SUBSCRIBE
        writer.write(b"\x90\x06\x00\x01\x00\x01\x87\x00")  # t/#: ok, a/#: refused, b/#: QoS 0
        await writer.drain()
        await reader.read(1024)  # until the source leaves

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stats = Stats()
    async with (
        server,
        source_for(port, stats, ("t/#", "a/#", "b/#")) as source,
    ):
        runner = asyncio.create_task(source.run())
        await wait_for(lambda: source.connected.is_set(), timeout=10, interval=0.05)
        await stop(runner)
    assert source.refused == {"a/#": "Not authorized"}
    assert source.downgraded == ["b/#"]
    assert (stats.subscriptions_refused, stats.subscriptions_downgraded) == (1, 1)


@pytest.mark.integration
async def test_a_topic_dropped_from_the_config_leaves_the_persistent_session(
    mosquitto: Mosquitto,
) -> None:
    async with source_for(mosquitto.port, subscriptions=("a/#", "b/#")) as first:
        runner = asyncio.create_task(first.run())
        await wait_for(lambda: first.connected.is_set())
        await stop(runner)
    # restarted with b/# removed from the config; the session still has it
    async with source_for(
        mosquitto.port, subscriptions=("a/#",), subscribed_before=("a/#", "b/#")
    ) as second:
        runner = asyncio.create_task(second.run())
        await wait_for(lambda: second.connected.is_set())
        pub = Publisher(mosquitto.port)
        pub.publish_all([("b/x", b"not for us any more"), ("a/x", b"for us")])
        got: list[str] = []

        async def take() -> None:
            while (batch := await second.take(100_000)) is not None:
                got.extend(m.topic for m in batch)

        taking = asyncio.create_task(take())
        await wait_for(lambda: "a/x" in got)
        await asyncio.sleep(0.5)
        second.close_inbox()
        await taking
        await stop(runner)
        pub.close()
    assert got == ["a/x"]


@pytest.mark.integration
async def test_a_session_the_broker_lost_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    stats = Stats()
    try:
        async with source_for(broker.port, stats) as source:
            runner = asyncio.create_task(source.run())
            await wait_for(lambda: source.connected.is_set())
            broker.stop()
            (broker.workdir / "mosquitto.db").unlink()  # the broker forgets every session
            broker.start()
            await wait_for(lambda: stats.broker_connects == 2, timeout=15)
            await stop(runner)
    finally:
        broker.stop()
    assert stats.broker_sessions_lost == 1
    assert any(r.getMessage() == "mqtt.session_lost" for r in caplog.records)


# -- a packet over the limit, however the stream is split ---------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([10, 100, 5_000, 70_000, 300_000]), min_size=1, max_size=6),
    st.data(),
)
def test_packets_over_the_limit_are_skipped_wherever_the_stream_is_cut(
    sizes: list[int], data: st.DataObject
) -> None:
    from monitor.source.connection import HEAD_KEPT, Connection
    from monitor.source.inbox import Inbox

    limit = 4_000  # what the connection collects whole
    packets = [
        publish_packet(f"t/{i}", bytes([i % 251]) * size, 1, i + 1, False, b"")
        for i, size in enumerate(sizes)
    ]
    stream = b"".join(packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))

    async def receive() -> list[Message]:
        inbox = Inbox(10_000, 1 << 30)
        conn = Connection(1, SystemClock(), inbox, asyncio.get_running_loop(), limit)
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            conn.data_received(stream[a:b])
        inbox.close()
        return await inbox.get(100_000) or []

    got = asyncio.run(receive())
    assert [m.topic for m in got] == [f"t/{i}" for i in range(len(sizes))]
    for i, (m, size) in enumerate(zip(got, sizes, strict=True)):
        assert m.mid == i + 1
        over = size + 2 + len(f"t/{i}") + 2 + 1 > limit
        assert m.oversize == (size if over else 0)
        expected = bytes([i % 251]) * size
        assert m.payload == (expected[: len(m.payload)] if over else expected)
        if over:
            assert 0 < len(m.payload) <= HEAD_KEPT
