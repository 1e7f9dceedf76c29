"""Sparkplug B payloads built by hand from the protobuf wire format, independently of the
monitor's generated classes (field numbers from the Tahu schema, SPEC 3.4)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# DataType numbers of the Tahu schema
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME = 9, 10, 11, 12, 13
BYTES, DATASET = 17, 16


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def length_delimited(field: int, data: bytes) -> bytes:
    return key(field, 2) + varint(len(data)) + data


@dataclass
class Metric:
    name: str | None = None
    value: object = None
    datatype: int | None = None
    alias: int | None = None
    timestamp: int | None = None
    historical: bool = False
    transient: bool = False
    null: bool = False
    # the value's field where an encoder puts it elsewhere than the usual one: "long"
    # (Tahu's Java and JavaScript encoders: UInt32 in long_value), "int"; raw bytes: a name
    # that is not UTF-8
    field: str | None = None
    raw_name: bytes | None = None

    def encode(self) -> bytes:
        out = b""
        if self.raw_name is not None:
            out += length_delimited(1, self.raw_name)
        elif self.name is not None:
            out += length_delimited(1, self.name.encode())
        if self.alias is not None:
            out += key(2, 0) + varint(self.alias)
        if self.timestamp is not None:
            out += key(3, 0) + varint(self.timestamp)
        if self.datatype is not None:
            out += key(4, 0) + varint(self.datatype)
        if self.historical:
            out += key(5, 0) + varint(1)
        if self.transient:
            out += key(6, 0) + varint(1)
        if self.null:
            return out + key(7, 0) + varint(1)
        dt, v = self.datatype, self.value
        if v is None:
            return out
        if self.field is not None:
            assert isinstance(v, int)
            return out + key({"int": 10, "long": 11}[self.field], 0) + varint(v % (1 << 64))
        if dt in (INT8, INT16, INT32):  # two's complement at the type's width, in uint32
            bits = {INT8: 8, INT16: 16, INT32: 32}[dt]
            assert isinstance(v, int)
            return out + key(10, 0) + varint(v % (1 << bits))
        if dt in (UINT8, UINT16, UINT32):
            assert isinstance(v, int)
            return out + key(10, 0) + varint(v)
        if dt in (INT64, UINT64, DATETIME):
            assert isinstance(v, int)
            return out + key(11, 0) + varint(v % (1 << 64))
        if dt == FLOAT:
            assert isinstance(v, float)
            return out + key(12, 5) + struct.pack("<f", v)
        if dt == DOUBLE:
            assert isinstance(v, float)
            return out + key(13, 1) + struct.pack("<d", v)
        if dt == BOOLEAN:
            return out + key(14, 0) + varint(int(bool(v)))
        if dt == STRING:
            assert isinstance(v, str)
            return out + length_delimited(15, v.encode())
        if dt == BYTES:
            assert isinstance(v, bytes)
            return out + length_delimited(16, v)
        if dt == DATASET:
            return out + length_delimited(17, key(1, 0) + varint(0))
        raise ValueError(f"datatype {dt}")


def payload(metrics: list[Metric], seq: int | None = None, timestamp: int | None = None) -> bytes:
    out = b""
    if timestamp is not None:
        out += key(1, 0) + varint(timestamp)
    for m in metrics:
        out += length_delimited(2, m.encode())
    if seq is not None:
        out += key(3, 0) + varint(seq)
    return out


def bd_seq(n: int) -> Metric:
    return Metric("bdSeq", n, INT64)
