"""An MQTT 5 encoder independent of ours, written from the specification (section 3.3):
what the tests feed the monitor's decoder and scripted peers with."""

from __future__ import annotations

import struct


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
