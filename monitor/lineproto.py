"""A small, strict InfluxDB line-protocol serializer (millisecond timestamps).

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
from monitor.model import FieldValue

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_STRING_BYTES = 64 * 1024  # InfluxDB 1.x refuses longer string field values

_MEASUREMENT_ESC = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR_ESC = str.maketrans({'"': r"\"", "\\": r"\\"})
_FORBIDDEN_IN_NAMES = re.compile(r"[\\\x00-\x1f\x7f]")
_PLAIN = re.compile(r"[A-Za-z0-9_.\-:/]+\Z")  # needs no escaping at all (the common case)
RESERVED_KEYS = frozenset({"time"})  # InfluxDB refuses a field or tag named "time"


def check_utf8(text: str, what: str) -> None:
    """JSON escapes can make lone surrogates ("\\ud800"), which UTF-8 cannot carry."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise LineProtocolError(f"{what} is not valid Unicode (a lone surrogate)") from None


def check_name(name: str, what: str) -> None:
    """Refuse a measurement, tag key, tag value or field key that cannot round-trip."""
    if not name:
        raise LineProtocolError(f"empty {what}")
    if _PLAIN.match(name):
        return
    if _FORBIDDEN_IN_NAMES.search(name):
        raise LineProtocolError(f"{what} {name!r} contains a backslash or control character")
    check_utf8(name, what)


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
        check_utf8(value, "string field value")
        if len(value) > MAX_STRING_BYTES // 4 and len(value.encode()) > MAX_STRING_BYTES:
            raise LineProtocolError("string field value longer than 64 KiB")
        return '"' + value.translate(_STR_ESC) + '"'
    raise LineProtocolError(f"unsupported field type {type(value).__name__}")


def head(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,k=v,...``; tags in key order (what InfluxDB would sort them to)."""
    parts = [_name(measurement, "measurement", _MEASUREMENT_ESC)]
    for key in sorted(tags):
        if key in RESERVED_KEYS:
            raise LineProtocolError(f"tag key {key!r} is reserved")
        parts.append(
            f",{_name(key, 'tag key', _KEY_ESC)}={_name(tags[key], 'tag value', _KEY_ESC)}"
        )
    return "".join(parts)


def field_set(fields: Mapping[str, FieldValue]) -> str:
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    keys = _field_keys
    return ",".join([f"{keys.get(k) or field_key(k)}={format_value(v)}" for k, v in fields.items()])


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    ts_ms: int,
) -> str:
    """One point, timestamp in milliseconds."""
    return f"{head(measurement, tags)} {field_set(fields)} {int(ts_ms)}"


# Field keys already checked and escaped: a handful per kind, looked up per field.
# Bounded, because unknown metrics bring keys chosen by whoever publishes.
_field_keys: dict[str, str] = {}
_FIELD_KEYS_MAX = 10_000


def field_key(key: str) -> str:
    if key in RESERVED_KEYS:
        raise LineProtocolError(f"field key {key!r} is reserved")
    escaped = _name(key, "field key", _KEY_ESC)
    if len(_field_keys) < _FIELD_KEYS_MAX:
        _field_keys[key] = escaped
    return escaped
