"""The MQTT 5 receive path: framing and decoding (pure), and the source against a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import mqtt_wire
from monitor.clock import SystemClock
from monitor.config import MQTT
from monitor.devservers import Mosquitto
from monitor.mqtt import Message, MqttSource
from monitor.stats import Stats
from tests.helpers import Publisher, wait_for

# -- an independent encoder, written from the MQTT 5 specification (section 3.3) --


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte + 128 if n else byte)
        if not n:
            return bytes(out)


def utf8(s: str) -> bytes:
    return struct.pack("!H", len(s.encode())) + s.encode()


def publish_packet(
    topic: str, payload: bytes, qos: int, mid: int, retain: bool, props: bytes
) -> bytes:
    body = utf8(topic) + (struct.pack("!H", mid) if qos else b"") + varint(len(props)) + props
    body += payload
    return bytes([0x30 | qos << 1 | int(retain)]) + varint(len(body)) + body


properties = st.lists(
    st.one_of(
        st.integers(0, 2**32 - 1).map(lambda v: b"\x02" + struct.pack("!I", v)),  # expiry
        st.text(max_size=20).map(lambda s: b"\x03" + utf8(s)),  # content type
        st.integers(1, 2**28 - 1).map(lambda v: b"\x0b" + varint(v)),  # subscription id
        st.tuples(st.text(max_size=300), st.text(max_size=10)).map(
            lambda kv: b"\x26" + utf8(kv[0]) + utf8(kv[1])  # user property, maybe > 127 bytes
        ),
    ),
    max_size=3,
).map(b"".join)

publishes = st.builds(
    lambda topic, payload, qos, mid, retain, props: (
        Message(topic, payload, qos, mid if qos else 0, retain, 7, 1000),
        publish_packet(topic, payload, qos, mid, retain, props),
    ),
    st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=60),
    st.binary(max_size=400),
    st.sampled_from([0, 1]),
    st.integers(1, 65535),
    st.booleans(),
    properties,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(publishes, min_size=1, max_size=30), st.data())
def test_a_stream_split_anywhere_decodes_to_the_same_messages(
    items: list[tuple[Message, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(packet for _, packet in items) + b"\xd0\x00"  # and a PINGRESP
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    got: list[Message] = []
    controls: list[mqtt_wire.Control] = []
    rest = b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        buf = rest + stream[a:b]
        used = mqtt_wire.parse(buf, 7, 1000, got, controls)
        rest = buf[used:]
    assert rest == b""
    assert got == [m for m, _ in items]
    assert [(c.type, c.body) for c in controls] == [(mqtt_wire.PINGRESP, b"")]


def test_control_packets_decode() -> None:
    connack = mqtt_wire.connack(b"\x01\x00" + b"\x06" + b"\x13\x00\x3c" + b"\x21\x00\x14")
    assert connack.session_present and not connack.failed
    assert connack.properties[mqtt_wire.SERVER_KEEP_ALIVE] == 60
    refused = mqtt_wire.connack(b"\x00\x86\x00")
    assert refused.failed and refused.reason == "Bad user name or password"
    assert mqtt_wire.suback(b"\x00\x01\x00\x01\x87") == (1, [1, 0x87])
    reason = b"\x1f" + utf8("maintenance")
    assert mqtt_wire.disconnect_reason(b"\x8e" + varint(len(reason)) + reason) == (
        "Session taken over: maintenance"
    )


def test_outgoing_packets_are_byte_exact() -> None:
    assert mqtt_wire.pubacks([1, 0x1234]) == b"\x40\x02\x00\x01\x40\x02\x12\x34"
    assert mqtt_wire.subscribe(1, ["a/#"]) == b"\x82\x09\x00\x01\x00\x00\x03a/#\x01"
    connect = mqtt_wire.connect(
        "id", keepalive=30, session_expiry=60, receive_maximum=1000, username="u", password="p"
    )
    props = b"\x11\x00\x00\x00\x3c\x21\x03\xe8"
    body = b"\x00\x04MQTT\x05\xc0\x00\x1e" + bytes([len(props)]) + props
    body += utf8("id") + utf8("u") + utf8("p")
    assert connect == b"\x10" + varint(len(body)) + body


@pytest.mark.parametrize(
    "packet",
    [
        b"\x30\xff\xff\xff\xff\x01",  # remaining length over 4 bytes
        b"\x32\x05\x00\x09abc",  # topic runs past the packet
        b"\x36\x06\x00\x01a\x00\x01\x00",  # QoS 3
    ],
)
def test_malformed_packets_are_refused(packet: bytes) -> None:
    with pytest.raises((mqtt_wire.ProtocolError, IndexError)):
        mqtt_wire.parse(packet + b"\x00" * 8, 1, 0, [], [])


# -- the source against a real mosquitto --


def source_for(port: int, stats: Stats | None = None, **overrides: object) -> MqttSource:
    config = MQTT(port=port, client_id="test-source", **overrides)  # type: ignore[arg-type]
    return MqttSource(config, ["t/#"], stats or Stats(), SystemClock(), inbox_max_bytes=4096)


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
        async for batch in source.batches():
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
        first = await anext(aiter(source.batches()))
        while len(first) < 10:
            first += await anext(aiter(source.batches()))
        mosquitto.restart()  # the connection dies with all ten unacknowledged
        await wait_for(lambda: not source.connected.is_set(), timeout=10, interval=0.05)
        await asyncio.wait_for(source.connected.wait(), 15)
        source.ack(first)  # too late: from the old connection, so nothing is sent
        again = await asyncio.wait_for(anext(aiter(source.batches())), 10)
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

    caplog.set_level(logging.WARNING, logger="monitor.mqtt")
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
