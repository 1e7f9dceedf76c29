"""A small, strict InfluxDB line-protocol serializer (timestamps in microseconds).

Strict means: a value that InfluxDB would misread is refused with LineProtocolError
instead of being written wrongly. Measured on InfluxDB 1.6.7: names and tag values keep
backslashes literally (there is no ``\\\\`` escape there) and one ending in a backslash
cannot be parsed at all, so names, tag keys/values and field keys may not contain a
backslash or a control character; string field values may hold anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from monitor.errors import LineProtocolError
from monitor.model import (
    INT64_MAX,
    INT64_MIN,
    MAX_STRING_BYTES,
    RESERVED_NAMES,
    FieldValue,
    is_unicode,
    name_problem,
)

_MEASUREMENT_ESC = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR_ESC = str.maketrans({'"': r"\"", "\\": r"\\"})
_PLAIN = re.compile(r"[A-Za-z0-9_.\-:/]+\Z")  # needs no escaping at all (the common case)


def check_name(name: str, what: str) -> None:
    """Refuse a measurement, tag key, tag value or field key that cannot round-trip."""
    if _PLAIN.match(name):
        return
    problem = name_problem(name)
    if problem is not None:
        raise LineProtocolError(f"{what} {name!r} {problem}")


def _name(name: str, what: str, table: dict[int, str]) -> str:
    if _PLAIN.match(name):
        return name
    check_name(name, what)
    return name.translate(table)


def format_value(value: FieldValue) -> str:
    kind = type(value)
    if kind is float:  # the common case first; bool is not a float
        if math.isfinite(value):  # type: ignore[arg-type]
            return repr(value)
        raise LineProtocolError(f"{value} cannot be written to InfluxDB")
    if value is True:  # before int: bool is a subclass of int
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise LineProtocolError(f"integer {value} is outside int64")
        return f"{value}i"
    if isinstance(value, float):  # a float subclass
        return format_value(float(value))
    if isinstance(value, str):
        if not is_unicode(value):
            raise LineProtocolError("string field value is not valid Unicode (a lone surrogate)")
        if len(value) > MAX_STRING_BYTES // 4 and len(value.encode()) > MAX_STRING_BYTES:
            raise LineProtocolError("string field value longer than 64 KiB")
        return '"' + value.translate(_STR_ESC) + '"'
    raise LineProtocolError(f"unsupported field type {type(value).__name__}")


def head(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,k=v,...``; tags in key order (what InfluxDB would sort them to)."""
    parts = [_name(measurement, "measurement", _MEASUREMENT_ESC)]
    for key in sorted(tags):
        if key in RESERVED_NAMES:
            raise LineProtocolError(f"tag key {key!r} is reserved")
        parts.append(
            f",{_name(key, 'tag key', _KEY_ESC)}={_name(tags[key], 'tag value', _KEY_ESC)}"
        )
    return "".join(parts)


def field_set(fields: Mapping[str, FieldValue]) -> str:
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    keys = _field_keys
    parts = []
    for k, v in fields.items():
        if type(v) is float and v - v == 0.0:  # most fields: a finite float, inline
            parts.append(f"{keys.get(k) or field_key(k)}={v!r}")
        else:
            parts.append(f"{keys.get(k) or field_key(k)}={format_value(v)}")
    return ",".join(parts)


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    ts_us: int,
) -> str:
    """One point, timestamp in epoch microseconds."""
    return f"{head(measurement, tags)} {field_set(fields)} {int(ts_us)}"


# Field keys already checked and escaped: a handful per kind, looked up per field.
# Bounded, because unknown metrics bring keys chosen by whoever publishes.
_field_keys: dict[str, str] = {}
_FIELD_KEYS_MAX = 10_000


def field_key(key: str) -> str:
    if key in RESERVED_NAMES:
        raise LineProtocolError(f"field key {key!r} is reserved")
    escaped = _name(key, "field key", _KEY_ESC)
    if len(_field_keys) < _FIELD_KEYS_MAX:
        _field_keys[key] = escaped
    return escaped


# -- reading lines back: a field InfluxDB refuses for its type, taken out of a line --------

# A field of a line as this module writes it: key (escapes allowed), value (a string keeps
# its escaped quotes and backslashes).
_FIELD = re.compile(r'((?:[^\\=]|\\.)+)=("(?:[^"\\]|\\.)*"|[^, ]*)')
_HEAD = re.compile(r"(?:[^\\ ]|\\.)*")
_BOOLEANS = frozenset({"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})


def value_type(text: str) -> type:
    """The type of a field value as line protocol spells it: str, int, bool or float
    (an unsigned ``5u``, which this module never writes, is ``object``)."""
    if text.startswith('"'):
        return str
    if text.endswith("i"):
        return int
    if text.endswith("u"):
        return object
    if text in _BOOLEANS:
        return bool
    return float


def drop_field(line: str, measurement: str, key: str, keep: type) -> tuple[str | None, bool]:
    """``line`` without its field ``key`` if it is a point of ``measurement`` and that value
    is not of type ``keep``: (the line, None if no field is left; whether it was dropped)."""
    m = _name(measurement, "measurement", _MEASUREMENT_ESC)
    k = _name(key, "field key", _KEY_ESC)
    if not line.startswith(m) or line[len(m) : len(m) + 1] not in (",", " "):
        return line, False
    if f"{k}=" not in line:
        return line, False
    head = _HEAD.match(line)
    assert head is not None  # matches the empty string at least
    pos = head.end() + 1
    kept: list[str] = []
    dropped = False
    while True:
        f = _FIELD.match(line, pos)
        if f is None:  # not a line this module wrote: InfluxDB has the last word
            return line, False
        if f[1] == k and value_type(f[2]) is not keep:
            dropped = True
        else:
            kept.append(f[0])
        pos = f.end()
        if pos >= len(line) or line[pos] == " ":
            break
        pos += 1  # the comma
    if not dropped:
        return line, False
    if not kept:
        return None, True
    return f"{line[: head.end()]} {','.join(kept)}{line[pos:]}", True
