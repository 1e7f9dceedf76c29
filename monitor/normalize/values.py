"""Values in payloads -> values of the canonical model: JSON, numbers, text, timestamps.

Every function here raises ``Reject`` with a reason when a value cannot be used; none
raises anything else on bad input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from monitor.model import (
    INT64_MAX,
    INT64_MIN,
    KINDS,
    MAX_NAME_CHARS,
    MAX_STRING_BYTES,
    RESERVED_NAMES,
    FieldValue,
    Metric,
    is_unicode,
    name_problem,
)
from monitor.normalize.reasons import Reject

Converter = Callable[[str, Any], FieldValue]  # (key, JSON value) -> field value, or Reject


def _reject_constant(name: str) -> Any:
    raise Reject("non_finite", f"{name} is not a number InfluxDB can store")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(payload: bytes) -> Any:
    # orjson is about 3x faster. Whatever it refuses (invalid UTF-8, NaN, integers beyond
    # 64 bits, lone surrogates, deep nesting) goes to the standard library, which decides
    # and names the reason, so both parsers accept and reject alike.
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Reject("not_utf8", f"invalid UTF-8 at byte {e.start}") from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise Reject("malformed_json", f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise Reject("malformed_json", "nested too deeply") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise Reject("malformed_json", str(e)[:200]) from None


def parse_object(payload: bytes) -> dict[str, Any]:
    if not payload:
        raise Reject("empty_payload", "empty payload")
    obj = parse_json(payload)
    if not isinstance(obj, dict):
        raise Reject("not_object", f"JSON {type(obj).__name__}, expected an object")
    return obj


def _number(key: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Reject("wrong_type", f"{key}: expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise Reject("non_finite", f"{key}: {value}")
    return value


def to_float(key: str, value: Any) -> float:
    if type(value) is float and value - value == 0.0:  # the common case: a finite float
        return value
    num = _number(key, value)
    try:
        return float(num)
    except OverflowError:
        raise Reject("non_finite", f"{key}: integer too large for a float") from None


def _to_int(key: str, value: Any) -> int:
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    num = _number(key, value)
    if isinstance(num, float):
        if not num.is_integer():
            raise Reject("wrong_type", f"{key}: expected an integer, got {num}")
        num = int(num)
    if not INT64_MIN <= num <= INT64_MAX:
        raise Reject("invalid_value", f"{key}: {num} is outside the int64 range")
    return num


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Reject("wrong_type", f"{key}: expected true/false, got {value!r:.40}")


def to_str(key: str, value: Any, choices: frozenset[str] | None = None) -> str:
    if not isinstance(value, str):
        raise Reject("wrong_type", f"{key}: expected text, got {type(value).__name__}")
    if choices is not None and value not in choices:
        raise Reject("invalid_value", f"{key}: {value!r:.40} not one of {sorted(choices)}")
    if not is_unicode(value):
        raise Reject("invalid_value", f"{key[:40]!r}: not valid Unicode")
    if len(value) * 4 > MAX_STRING_BYTES and len(value.encode()) > MAX_STRING_BYTES:
        raise Reject("invalid_value", f"{key}: text longer than 64 KiB")
    return value


def _converter(metric: Metric) -> Converter:
    if metric.type == "float":
        return to_float
    if metric.type == "int":
        return _to_int
    if metric.type == "bool":
        return _to_bool
    choices = metric.choices
    return lambda key, value: to_str(key, value, choices)


def check_field_key(key: str) -> None:
    if len(key) > MAX_NAME_CHARS or key in RESERVED_NAMES:
        raise Reject("invalid_field_name", f"field name {key[:40]!r} cannot be stored")
    problem = name_problem(key)
    if problem is not None:
        raise Reject("invalid_field_name", f"field name {key[:40]!r} {problem}")


def generic(key: str, value: Any) -> FieldValue:
    """An unknown metric: kept as float, bool or text (never int, so that a field's type
    cannot flip between int and float from one message to the next)."""
    check_field_key(key)
    return generic_value(key, value)


def generic_value(key: str, value: Any) -> FieldValue:
    """``generic`` for a key already checked (a decoder that caches its keys)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return to_float(key, value)
    if isinstance(value, str):
        return to_str(key, value)
    raise Reject("wrong_type", f"{key}: {type(value).__name__} values are not stored")


# Per kind, each known metric's converter (the rest are ``generic``): the hot path's one
# lookup and one call per field.
CONVERTERS: dict[str, dict[str, Converter]] = {
    kind: {key: _converter(metric) for key, metric in metrics.items()}
    for kind, metrics in KINDS.items()
}


def metric_value(kind: str, key: str, value: Any) -> FieldValue:
    return CONVERTERS[kind].get(key, generic)(key, value)


def as_text(value: Any) -> str:
    """A vendor value as the text a value map is keyed by (``1``, ``true``, ``ready``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def plain_value(text: str) -> Any:
    """A plain payload as the most specific JSON-like value it spells."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise Reject("non_finite", f"plain value {text[:40]!r}")
    return value


# -- time ---------------------------------------------------------------------------------


def _epoch_to_ms(value: float | int, unit: str) -> int:
    if unit == "auto":  # by magnitude: seconds until 5138, then ms, us, ns
        magnitude = abs(value)
        unit = (
            "s"
            if magnitude < 1e11
            else "ms"
            if magnitude < 1e14
            else "us"
            if magnitude < 1e17
            else "ns"
        )
    factor = {"s": 1000.0, "ms": 1.0, "us": 0.001, "ns": 1e-6}[unit]
    return round(value * factor)


def parse_ts(value: Any, unit: str) -> int:
    """A payload timestamp -> epoch milliseconds; `unit` is ms, s, us, ns, rfc3339 or auto."""
    if type(value) is int and unit == "ms" and INT64_MIN <= value <= INT64_MAX:
        return value
    if isinstance(value, str) and unit in ("rfc3339", "auto", "ms"):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise Reject("bad_timestamp", f"{value[:40]!r} is not RFC 3339") from None
        if dt.tzinfo is None:
            raise Reject("bad_timestamp", f"{value[:40]!r} has no time zone")
        return round(dt.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float) or unit == "rfc3339":
        raise Reject("bad_timestamp", f"timestamp of type {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise Reject("bad_timestamp", "timestamp is not finite")
    try:
        return _epoch_to_ms(value, unit)
    except OverflowError:
        raise Reject("bad_timestamp", "timestamp out of range") from None
