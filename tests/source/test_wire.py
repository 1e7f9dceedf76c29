"""The MQTT 5 wire codec: framing and decoding as pure functions over bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.source import wire
from monitor.source.wire import Message
from tests.source.mqtt5 import publish_packet, utf8, varint

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
    controls: list[wire.Control] = []
    rest = b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        buf = rest + stream[a:b]
        used = wire.parse(buf, 7, 1000, got, controls)
        rest = buf[used:]
    assert rest == b""
    assert got == [m for m, _ in items]
    assert [(c.type, c.body) for c in controls] == [(wire.PINGRESP, b"")]


def test_control_packets_decode() -> None:
    connack = wire.connack(b"\x01\x00" + b"\x06" + b"\x13\x00\x3c" + b"\x21\x00\x14")
    assert connack.session_present and not connack.failed
    assert connack.properties[wire.SERVER_KEEP_ALIVE] == 60
    refused = wire.connack(b"\x00\x86\x00")
    assert refused.failed and refused.reason == "Bad user name or password"
    assert wire.suback(b"\x00\x01\x00\x01\x87") == (1, [1, 0x87])
    reason = b"\x1f" + utf8("maintenance")
    assert wire.disconnect_reason(b"\x8e" + varint(len(reason)) + reason) == (
        "Session taken over: maintenance"
    )


def test_outgoing_packets_are_byte_exact() -> None:
    assert wire.pubacks([1, 0x1234]) == b"\x40\x02\x00\x01\x40\x02\x12\x34"
    assert wire.subscribe(1, ["a/#"]) == b"\x82\x09\x00\x01\x00\x00\x03a/#\x01"
    connect = wire.connect(
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
    with pytest.raises((wire.ProtocolError, IndexError)):
        wire.parse(packet + b"\x00" * 8, 1, 0, [], [])
