"""MQTT 5 on the wire: the few packets a subscriber sends, and decoding what it receives.

Pure functions over bytes, no I/O. ``parse`` is the receive hot path: it frames every
complete packet in a buffer in one pass and decodes PUBLISHes inline, so a 64 KiB read
carrying hundreds of messages costs one Python loop, not a read and a callback per
packet (paho's receive path, which measured at about 20 µs per message on its own).
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field

from paho.mqtt.reasoncodes import ReasonCode

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT, AUTH = 12, 13, 14, 15

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"  # normal disconnection, no properties
DISCONNECT_WITH_WILL = b"\xe0\x01\x04"  # reason 0x04: the broker publishes the Will

_PUBACK = struct.Struct(">BBH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

# Property identifier -> how its value is encoded (MQTT 5, section 2.2.2.2).
_BYTE, _U16_T, _U32_T, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _U32_T, 0x03: _UTF8, 0x08: _UTF8, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _U32_T, 0x12: _UTF8, 0x13: _U16_T, 0x15: _UTF8, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _U32_T, 0x19: _BYTE, 0x1A: _UTF8, 0x1C: _UTF8, 0x1F: _UTF8, 0x21: _U16_T,
    0x22: _U16_T, 0x23: _U16_T, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32_T,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}  # fmt: skip
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
MAX_REMAINING_LENGTH = 268_435_455  # what a variable byte integer of four bytes holds


class ProtocolError(Exception):
    """The broker sent something that is not MQTT 5 as we speak it: drop the connection."""


@dataclass(slots=True)
class Message:
    """A received PUBLISH."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    generation: int  # which connection delivered it: acks are valid only on that one
    received_us: int  # wall clock, epoch microseconds
    oversize: int = 0  # a payload over the limit: its real size (``payload`` is its start)


@dataclass(slots=True)
class Control:
    """Any packet but PUBLISH: its type and its body."""

    type: int
    body: bytes


@dataclass(slots=True)
class ConnAck:
    session_present: bool
    reason_code: int
    properties: dict[int, object] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.reason_code >= 0x80

    @property
    def reason(self) -> str:
        return reason_name(CONNACK, self.reason_code)


def reason_name(packet_type: int, code: int) -> str:
    try:
        return str(ReasonCode(packet_type, identifier=code))
    except KeyError:
        return f"reason code 0x{code:02x}"


# -- encoding --


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return _U16.pack(len(b)) + b


def packet(first_byte: int, body: bytes) -> bytes:
    """A packet from its fixed header's first byte and its body."""
    return bytes([first_byte]) + _varint(len(body)) + body


def connect(
    client_id: str,
    *,
    keepalive: int,
    session_expiry: int,
    receive_maximum: int,
    clean_start: bool = False,
    username: str | None = None,
    password: str | None = None,
    will: tuple[str, bytes] | None = None,
) -> bytes:
    """CONNECT; ``will``: (topic, payload) published by the broker, QoS 1 and retained,
    when the connection ends without a normal DISCONNECT."""
    flags = (0x02 if clean_start else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    flags |= 0x04 | 0x08 | 0x20 if will is not None else 0  # Will, its QoS 1, retained
    props = b"\x11" + _U32.pack(session_expiry) + b"\x21" + _U16.pack(receive_maximum)
    body = b"\x00\x04MQTT\x05" + bytes([flags]) + _U16.pack(keepalive)
    body += _varint(len(props)) + props + _utf8(client_id)
    if will is not None:
        topic, message = will
        body += b"\x00" + _utf8(topic) + _U16.pack(len(message)) + message  # no properties
    if username is not None:
        body += _utf8(username)
    if password is not None:
        body += _U16.pack(len(password.encode())) + password.encode()
    return packet(CONNECT << 4, body)


def subscribe(mid: int, topics: list[str], qos: int = 1) -> bytes:
    body = _U16.pack(mid) + b"\x00" + b"".join(_utf8(t) + bytes([qos]) for t in topics)
    return packet(SUBSCRIBE << 4 | 0x02, body)


def unsubscribe(mid: int, topics: list[str]) -> bytes:
    body = _U16.pack(mid) + b"\x00" + b"".join(_utf8(t) for t in topics)
    return packet(UNSUBSCRIBE << 4 | 0x02, body)


def publish(topic: str, payload: bytes, mid: int, retain: bool = False, qos: int = 1) -> bytes:
    """A PUBLISH without properties, QoS 1 (``mid`` its packet id) or QoS 0 (none)."""
    first = PUBLISH << 4 | (0x02 if qos else 0) | (0x01 if retain else 0)
    packet_id = _U16.pack(mid) if qos else b""
    return packet(first, _utf8(topic) + packet_id + b"\x00" + payload)


def pubacks(mids: list[int]) -> bytes:
    """PUBACKs (success, no properties: the 2-byte form MQTT 5 allows), in this order."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, mid) for mid in mids])


# -- decoding --


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(buf):
            raise ProtocolError("truncated variable byte integer")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
        if shift > 21:
            raise ProtocolError("variable byte integer longer than 4 bytes")


def properties(buf: bytes, i: int) -> tuple[dict[int, object], int]:
    """The property block starting at i, and the index after it."""
    length, i = _read_varint(buf, i)
    end = i + length
    if end > len(buf):
        raise ProtocolError("property block runs past the packet")
    out: dict[int, object] = {}
    while i < end:
        ident = buf[i]
        kind = _PROPERTY_TYPES.get(ident)
        i += 1
        value: object
        if kind == _BYTE:
            value, i = buf[i], i + 1
        elif kind == _U16_T:
            value, i = _U16.unpack_from(buf, i)[0], i + 2
        elif kind == _U32_T:
            value, i = _U32.unpack_from(buf, i)[0], i + 4
        elif kind == _VARINT:
            value, i = _read_varint(buf, i)
        elif kind in (_UTF8, _BINARY):
            n = _U16.unpack_from(buf, i)[0]
            raw = buf[i + 2 : i + 2 + n]
            value, i = (raw.decode("utf-8", "replace") if kind == _UTF8 else raw), i + 2 + n
        elif kind == _PAIR:
            n = _U16.unpack_from(buf, i)[0]
            m = _U16.unpack_from(buf, i + 2 + n)[0]
            value, i = None, i + 4 + n + m  # user properties: not used by a subscriber
        else:
            raise ProtocolError(f"unknown property 0x{ident:02x}")
        out[ident] = value
    if i != end:
        raise ProtocolError("property block length mismatch")
    return out, end


def connack(body: bytes) -> ConnAck:
    if len(body) < 2:
        raise ProtocolError("CONNACK too short")
    props = properties(body, 2)[0] if len(body) > 2 else {}
    return ConnAck(bool(body[0] & 1), body[1], props)


def suback(body: bytes) -> tuple[int, list[int]]:
    """(packet id, one reason code per topic: the granted QoS, or >= 0x80 refused)."""
    if len(body) < 3:
        raise ProtocolError("SUBACK too short")
    _, i = properties(body, 2)
    return _U16.unpack_from(body)[0], list(body[i:])


def puback(body: bytes) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK: 0 is success, >= 0x80 a refusal."""
    if len(body) < 2:
        raise ProtocolError("PUBACK too short")
    return _U16.unpack_from(body)[0], body[2] if len(body) > 2 else 0


def disconnect_reason(body: bytes) -> str:
    """Why the broker disconnected us (MQTT 5 servers say so)."""
    code = body[0] if body else 0
    text = reason_name(DISCONNECT, code)
    if len(body) > 1:
        with contextlib.suppress(ProtocolError, struct.error, IndexError):
            reason_string = properties(body, 1)[0].get(REASON_STRING)
            if reason_string:
                text += f": {reason_string}"
    return text


def parse(
    buf: bytes,
    generation: int,
    received_us: int,
    publishes: list[Message],
    controls: list[Control],
    limit: int = MAX_REMAINING_LENGTH,
) -> int:
    """Decode every complete packet in buf; return how many bytes were consumed.

    PUBLISHes go to ``publishes`` (decoded here: this is the per-message hot path),
    everything else to ``controls``. Stops before a packet longer than ``limit`` (see
    ``packet_header``: the caller skips it as it streams in). Raises ProtocolError (or
    IndexError) on a malformed packet.
    """
    n = len(buf)
    pos = 0
    append = publishes.append
    while pos + 2 <= n:
        first = buf[pos]
        # Remaining length: a variable byte integer, almost always one or two bytes.
        i = pos + 1
        byte = buf[i]
        length = byte & 0x7F
        shift = 7
        while byte & 0x80:
            i += 1
            if i >= n:
                return pos  # the length itself is incomplete
            if shift > 21:
                raise ProtocolError("remaining length longer than 4 bytes")
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            shift += 7
        if length > limit:
            return pos
        start = i + 1
        end = start + length
        if end > n:
            return pos
        if first >> 4 == PUBLISH:
            qos = (first >> 1) & 3
            topic_len = (buf[start] << 8) | buf[start + 1]
            j = start + 2 + topic_len
            raw_topic = buf[start + 2 : j]
            if qos:
                if qos == 3:
                    raise ProtocolError("PUBLISH with QoS 3")
                mid = (buf[j] << 8) | buf[j + 1]
                j += 2
            else:
                mid = 0
            props_len = buf[j]
            if props_len < 0x80:
                j += 1 + props_len  # topic aliases are off (we never allow any), skip all
            else:
                props_len, j = _read_varint(buf, j)
                j += props_len
            if j > end:
                raise ProtocolError("PUBLISH header runs past the packet")
            try:
                topic = raw_topic.decode()
            except UnicodeDecodeError:  # brokers validate UTF-8; never trust that blindly
                topic = raw_topic.decode("utf-8", "replace")
            append(Message(topic, buf[j:end], qos, mid, bool(first & 1), generation, received_us))
        else:
            controls.append(Control(first >> 4, buf[start:end]))
        pos = end
    return pos


def packet_header(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(size of the fixed header, remaining length) of the packet at ``pos``, or None
    while its length is not all in ``buf``."""
    try:
        length, i = _read_varint(buf, pos + 1)
    except ProtocolError:
        if len(buf) - pos < 5:
            return None  # truncated: more is coming
        raise
    return i - pos, length


def truncated_publish(
    first: int, head: bytes, generation: int, received_us: int, size: int
) -> Message:
    """A PUBLISH of which only ``head`` (the first bytes of its body) was kept: decoded as
    if it ended there, its payload the start of the real one, ``size`` bytes in all."""
    out: list[Message] = []
    parse(packet(first, head), generation, received_us, out, [])
    if len(out) != 1:
        raise ProtocolError("an oversized packet that is not a PUBLISH")
    message = out[0]
    message.oversize = size - (len(head) - len(message.payload))
    return message
