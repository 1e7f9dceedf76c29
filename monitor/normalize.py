"""Normalization: (topic, payload, receive time) -> a canonical Reading, or a rejection.

Pure and synchronous: profiles and the device registry are compiled from the config once,
and ``Normalizer.normalize`` does no I/O. Every way a message can be unusable is a
``Rejected`` with a reason from REASONS; nothing here raises on bad input.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from monitor.config import Config, FieldMap, Profile
from monitor.errors import LineProtocolError
from monitor.lineproto import (
    INT64_MAX,
    INT64_MIN,
    MAX_STRING_BYTES,
    RESERVED_KEYS,
    check_name,
    check_utf8,
)
from monitor.model import (
    CONVERSIONS,
    DEVICE_ID_RE,
    EVENT_TYPE_RE,
    KINDS,
    NAME_RE,
    STATES,
    Channel,
    Device,
    FieldValue,
    Metric,
    Reading,
)

CANONICAL_ROOT = "customs"
CANONICAL_CHANNELS: frozenset[str] = frozenset({"telemetry", "status", "event"})
DEFAULT_AREA = "unassigned"

# Every reason a message can be rejected for (SPEC 3.3), with what it means.
REASONS: dict[str, str] = {
    "payload_too_large": "payload over ingest.max_payload_bytes",
    "empty_payload": "empty payload",
    "not_utf8": "payload is not UTF-8 text",
    "malformed_json": "payload is not valid JSON",
    "not_object": "JSON payload is not an object",
    "non_finite": "NaN, Infinity or a number too large for a float",
    "wrong_type": "a value has the wrong type (e.g. text for a number, nested object)",
    "invalid_value": "a value is out of range or not one of the allowed values",
    "invalid_field_name": "a metric name cannot be stored (empty, 'time', control chars)",
    "invalid_state": "state is not a canonical state / unmapped vendor code",
    "bad_timestamp": "timestamp missing a zone, unparseable or of the wrong type",
    "too_old": "timestamp older than ingest.max_age",
    "unknown_topic": "no profile matches the topic",
    "invalid_topic": "site or area segment is not a valid name",
    "invalid_device_id": "device id does not match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    "unknown_kind": "kind is not a canonical device kind",
    "unknown_device": "device not in the registry and the topic does not say its site/kind",
    "invalid_event": "event without a valid type",
    "influx_rejected": "InfluxDB refused the point (e.g. a field type conflict)",
    "internal_error": "the monitor failed on this message (a bug: see the log once)",
}


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _reject_constant(name: str) -> Any:
    raise _Reject("non_finite", f"{name} is not a number InfluxDB can store")


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
        raise _Reject("not_utf8", f"invalid UTF-8 at byte {e.start}") from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise _Reject("malformed_json", f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise _Reject("malformed_json", "nested too deeply") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise _Reject("malformed_json", str(e)[:200]) from None


def _parse_object(payload: bytes) -> dict[str, Any]:
    if not payload:
        raise _Reject("empty_payload", "empty payload")
    obj = parse_json(payload)
    if not isinstance(obj, dict):
        raise _Reject("not_object", f"JSON {type(obj).__name__}, expected an object")
    return obj


# -- values -------------------------------------------------------------------------------


def _number(key: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject("wrong_type", f"{key}: expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Reject("non_finite", f"{key}: {value}")
    return value


def _to_float(key: str, value: Any) -> float:
    if type(value) is float and math.isfinite(value):  # the common case, checked cheaply
        return value
    num = _number(key, value)
    try:
        return float(num)
    except OverflowError:
        raise _Reject("non_finite", f"{key}: integer too large for a float") from None


def _to_int(key: str, value: Any) -> int:
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    num = _number(key, value)
    if isinstance(num, float):
        if not num.is_integer():
            raise _Reject("wrong_type", f"{key}: expected an integer, got {num}")
        num = int(num)
    if not INT64_MIN <= num <= INT64_MAX:
        raise _Reject("invalid_value", f"{key}: {num} is outside the int64 range")
    return num


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _Reject("wrong_type", f"{key}: expected true/false, got {value!r:.40}")


def _to_str(key: str, value: Any, choices: frozenset[str] | None = None) -> str:
    if not isinstance(value, str):
        raise _Reject("wrong_type", f"{key}: expected text, got {type(value).__name__}")
    if choices is not None and value not in choices:
        raise _Reject("invalid_value", f"{key}: {value!r:.40} not one of {sorted(choices)}")
    try:
        check_utf8(value, key)
    except LineProtocolError:
        raise _Reject("invalid_value", f"{key[:40]!r}: not valid Unicode") from None
    if len(value) * 4 > MAX_STRING_BYTES and len(value.encode()) > MAX_STRING_BYTES:
        raise _Reject("invalid_value", f"{key}: text longer than 64 KiB")
    return value


def _coerce(metric: Metric, key: str, value: Any) -> FieldValue:
    if metric.type == "float":
        return _to_float(key, value)
    if metric.type == "int":
        return _to_int(key, value)
    if metric.type == "bool":
        return _to_bool(key, value)
    return _to_str(key, value, metric.choices)


def _check_field_key(key: str) -> None:
    if len(key) > 128 or key in RESERVED_KEYS:
        raise _Reject("invalid_field_name", f"field name {key[:40]!r} cannot be stored")
    try:
        check_name(key, "field name")
    except LineProtocolError as e:
        raise _Reject("invalid_field_name", str(e)[:200]) from None


def _generic(key: str, value: Any) -> FieldValue:
    """An unknown metric: kept as float, bool or text (never int, so that a field's type
    cannot flip between int and float from one message to the next)."""
    _check_field_key(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _to_float(key, value)
    if isinstance(value, str):
        return _to_str(key, value)
    raise _Reject("wrong_type", f"{key}: {type(value).__name__} values are not stored")


def metric_value(kind_metrics: dict[str, Metric], key: str, value: Any) -> FieldValue:
    metric = kind_metrics.get(key)
    return _generic(key, value) if metric is None else _coerce(metric, key, value)


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
            raise _Reject("bad_timestamp", f"{value[:40]!r} is not RFC 3339") from None
        if dt.tzinfo is None:
            raise _Reject("bad_timestamp", f"{value[:40]!r} has no time zone")
        return round(dt.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float) or unit == "rfc3339":
        raise _Reject("bad_timestamp", f"timestamp of type {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Reject("bad_timestamp", "timestamp is not finite")
    try:
        return _epoch_to_ms(value, unit)
    except OverflowError:
        raise _Reject("bad_timestamp", "timestamp out of range") from None


# -- topics -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """``scanners/{device}/data`` compiled: literal levels to check, named levels to take."""

    text: str
    length: int
    literals: tuple[tuple[int, str], ...]
    names: tuple[tuple[int, str], ...]

    @classmethod
    def compile(cls, text: str) -> TopicPattern:
        levels = text.split("/")
        literals, names = [], []
        for i, level in enumerate(levels):
            if level.startswith("{") and level.endswith("}"):
                names.append((i, level[1:-1]))
            else:
                literals.append((i, level))
        return cls(text, len(levels), tuple(literals), tuple(names))

    @property
    def subscription(self) -> str:
        levels = self.text.split("/")
        for i, _ in self.names:
            levels[i] = "+"
        return "/".join(levels)

    def match(self, levels: list[str]) -> dict[str, str] | None:
        if len(levels) != self.length:
            return None
        for i, literal in self.literals:
            if levels[i] != literal:
                return None
        return {name: levels[i] for i, name in self.names}


def _root(pattern: TopicPattern) -> str:
    return pattern.literals[0][1] if pattern.literals and pattern.literals[0][0] == 0 else ""


def _device_id(value: str) -> str:
    if not DEVICE_ID_RE.match(value):
        raise _Reject("invalid_device_id", f"device id {value[:70]!r}")
    return value


def _name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise _Reject("invalid_topic", f"{what} {value[:70]!r} is not a valid name")
    return value


# -- profiles -----------------------------------------------------------------------------

Decoder = Callable[[dict[str, str], bytes, int, bool], Reading]


@dataclass(frozen=True, slots=True)
class _Mapping:
    """A compiled FieldMap."""

    source: str
    path: tuple[str, ...]
    to: str
    scale: float
    offset: float
    map: dict[str, str] | None

    @classmethod
    def compile(cls, source: str, fm: FieldMap) -> _Mapping:
        scale, offset = CONVERSIONS[fm.convert] if fm.convert else (1.0, 0.0)
        # A conversion followed by an extra scale/offset: v*s1+o1, then *s2+o2.
        return cls(
            source,
            tuple(source.split(".")),
            fm.to,
            scale * fm.scale,
            offset * fm.scale + fm.offset,
            dict(fm.map) if fm.map is not None else None,
        )

    def apply(self, value: Any) -> Any:
        if self.map is not None:
            text = _as_text(value)
            if text not in self.map:
                reason = "invalid_state" if self.to == "state" else "invalid_value"
                raise _Reject(reason, f"{self.source}: unmapped value {text[:40]!r}")
            return self.map[text]
        if self.scale == 1.0 and self.offset == 0.0:
            return value
        return _to_float(self.source, value) * self.scale + self.offset


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _plain_value(text: str) -> Any:
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
        raise _Reject("non_finite", f"plain value {text[:40]!r}")
    return value


def _lookup(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = obj
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


_MISSING = object()


class Normalizer:
    """Compiled from a Config once; ``normalize`` is pure and never raises on input."""

    def __init__(self, config: Config) -> None:
        self._max_payload = int(config.ingest.max_payload_bytes)
        self._max_age_ms = int(config.ingest.max_age * 1000)
        self._max_skew_ms = int(config.ingest.max_clock_skew * 1000)
        self._max_discovered = config.ingest.max_devices
        self.registry: dict[str, Device] = {
            d.id: Device(d.id, d.kind, d.site, d.area) for d in config.devices
        }
        self._discovered: dict[tuple[str | None, str, str | None, str], Device] = {}
        self._routes: list[tuple[TopicPattern, Decoder]] = []
        if config.canonical:
            pattern = TopicPattern.compile(
                CANONICAL_ROOT + "/{site}/{area}/{kind}/{device}/{channel}"
            )
            self._routes.append((pattern, self._canonical))
        for profile in config.profiles.values():
            self._routes.append((TopicPattern.compile(profile.topic), self._vendor(profile)))
        # Candidate routes by first topic level, so a message tries one or two patterns;
        # a pattern starting with a {segment} is a candidate for every topic.
        wildcard = [r for r in self._routes if not _root(r[0])]
        self._by_root: dict[str, list[tuple[TopicPattern, Decoder]]] = {}
        for route in self._routes:
            if root := _root(route[0]):
                self._by_root.setdefault(root, []).append(route)
        for routes in self._by_root.values():
            routes.extend(wildcard)
        self._wildcard_routes = wildcard

    @property
    def subscriptions(self) -> list[str]:
        return list(dict.fromkeys(p.subscription for p, _ in self._routes))

    def normalize(
        self, topic: str, payload: bytes, received_ms: int, retained: bool = False
    ) -> Reading | Rejected:
        if len(payload) > self._max_payload:
            return Rejected("payload_too_large", f"{len(payload)} bytes")
        levels = topic.split("/")
        try:
            for pattern, decode in self._by_root.get(levels[0], self._wildcard_routes):
                segments = pattern.match(levels)
                if segments is not None:
                    reading = decode(segments, payload, received_ms, retained)
                    self._check_age(reading, received_ms)
                    return reading
        except _Reject as r:
            return Rejected(r.reason, r.detail)
        return Rejected("unknown_topic", "no profile matches the topic")

    def _check_age(self, reading: Reading, received_ms: int) -> None:
        if reading.ts_ms < received_ms - self._max_age_ms:
            raise _Reject("too_old", f"timestamp {reading.ts_ms} ms is older than max_age")
        if reading.ts_ms > received_ms + self._max_skew_ms:
            reading.ts_ms = received_ms
            reading.clock_skew = True

    # -- devices --

    def _device(self, segments: dict[str, str], profile: Profile | None) -> Device:
        registered = self.registry.get(segments["device"])
        if registered is not None:  # its id was validated with the configuration
            return registered
        kind = segments.get("kind") or (profile.kind if profile else None)
        site = segments.get("site") or (profile.site if profile else None)
        area = segments.get("area") or (profile.area if profile else None) or DEFAULT_AREA
        key = (site, area, kind, segments["device"])
        device = self._discovered.get(key)
        if device is not None:  # validated when first seen
            return device
        device_id = _device_id(segments["device"])
        if kind is None or site is None:
            raise _Reject("unknown_device", f"{device_id} is not registered")
        if kind not in KINDS:
            raise _Reject("unknown_kind", f"kind {kind[:70]!r}")
        if len(self._discovered) >= self._max_discovered:
            raise _Reject("unknown_device", "ingest.max_devices discovered devices reached")
        # Interned: thousands of devices share a handful of sites, areas and kinds.
        site, area = sys.intern(_name(site, "site")), sys.intern(_name(area, "area"))
        device = Device(device_id, sys.intern(kind), site, area)
        self._discovered[(site, area, device.kind, device_id)] = device
        return device

    # -- canonical profile (SPEC 3.1) --

    def _canonical(
        self, segments: dict[str, str], payload: bytes, received_ms: int, retained: bool
    ) -> Reading:
        channel = segments["channel"]
        if channel not in CANONICAL_CHANNELS:
            raise _Reject("unknown_topic", f"channel {channel[:40]!r}")
        device = self._device(segments, None)
        if channel == "status":
            return _status(device, payload, received_ms, retained)
        obj = _parse_object(payload)
        ts_ms = parse_ts(obj.pop("ts"), "ms") if "ts" in obj else received_ms
        if channel == "event":
            return _event(device, obj, ts_ms)
        state = obj.pop("state", None)
        if state is not None and state not in STATES:
            raise _Reject("invalid_state", f"state {str(state)[:40]!r}")
        metrics = KINDS[device.kind]
        fields = {k: metric_value(metrics, k, v) for k, v in obj.items() if v is not None}
        return Reading(device, "telemetry", ts_ms, fields, state=state)

    # -- vendor profiles (SPEC 3.2) --

    def _vendor(self, profile: Profile) -> Decoder:
        mappings = {src: _Mapping.compile(src, fm) for src, fm in profile.fields.items()}
        keep_unmapped = profile.unmapped == "keep"
        ts_field = profile.timestamp.field if profile.timestamp else None
        ts_unit = profile.timestamp.unit if profile.timestamp else "auto"
        state_field = profile.state.field if profile.state else None
        state_map = dict(profile.state.map) if profile.state else {}
        consumed_roots = {m.path[0] for m in mappings.values()}
        consumed_roots.update(x for x in (ts_field, state_field) if x)
        channel: Channel = profile.channel

        def apply(
            device: Device, fields: dict[str, FieldValue], m: _Mapping, raw: Any
        ) -> str | None:
            value = m.apply(raw)
            if m.to == "state":
                return str(value)
            fields[m.to] = metric_value(KINDS[device.kind], m.to, value)
            return None

        def decode_json(
            segments: dict[str, str], payload: bytes, received_ms: int, retained: bool
        ) -> Reading:
            device = self._device(segments, profile)
            if channel == "status":
                return _status(device, payload, received_ms, retained)
            obj = _parse_object(payload)
            ts_ms = received_ms
            if ts_field is not None and obj.get(ts_field) is not None:
                ts_ms = parse_ts(obj[ts_field], ts_unit)
            state = None
            if state_field is not None and obj.get(state_field) is not None:
                code = _as_text(obj[state_field])
                state = state_map.get(code)
                if state is None:
                    raise _Reject("invalid_state", f"{state_field}: unmapped code {code[:40]!r}")
            fields: dict[str, FieldValue] = {}
            for m in mappings.values():
                raw = _lookup(obj, m.path)
                if raw is not _MISSING and raw is not None:
                    state = apply(device, fields, m, raw) or state
            if keep_unmapped:
                metrics = KINDS[device.kind]
                for key, value in obj.items():
                    if key not in consumed_roots and value is not None and key not in fields:
                        fields[key] = metric_value(metrics, key, value)
            return Reading(device, "telemetry", ts_ms, fields, state=state)

        def decode_plain(
            segments: dict[str, str], payload: bytes, received_ms: int, retained: bool
        ) -> Reading:
            device = self._device(segments, profile)
            if channel == "status":
                return _status(device, payload, received_ms, retained)
            if not payload.strip():
                raise _Reject("empty_payload", "empty payload")
            try:
                text = payload.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise _Reject("not_utf8", f"invalid UTF-8 at byte {e.start}") from None
            signal = segments.get("signal", "value")
            fields: dict[str, FieldValue] = {}
            state = None
            m = mappings.get(signal)
            if m is not None:
                state = apply(device, fields, m, _plain_value(text))
            elif keep_unmapped:
                fields[signal] = metric_value(KINDS[device.kind], signal, _plain_value(text))
            return Reading(device, "telemetry", received_ms, fields, state=state)

        return decode_json if profile.format == "json" else decode_plain


def _status(device: Device, payload: bytes, received_ms: int, retained: bool) -> Reading:
    """``online`` / ``offline`` (the Last Will) or JSON ``{"state", "code", "ts"}``."""
    text = payload.strip()
    if text in (b"online", b"offline"):
        online = text == b"online"
        return Reading(
            device,
            "status",
            received_ms,
            online=online,
            state=None if online else "offline",
            retained=retained,
        )
    obj = _parse_object(payload)
    ts_ms = parse_ts(obj["ts"], "ms") if obj.get("ts") is not None else received_ms
    state = obj.get("state")
    if state is not None and state not in STATES:
        raise _Reject("invalid_state", f"state {str(state)[:40]!r}")
    code = obj.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, str | int)):
        raise _Reject("wrong_type", "code: expected text or an integer")
    if isinstance(code, str):
        _to_str("code", code)
    return Reading(
        device,
        "status",
        ts_ms,
        state=state,
        online=state != "offline" if state else None,
        code=None if code is None else str(code)[:64],
        retained=retained,
    )


def _event(device: Device, obj: dict[str, Any], ts_ms: int) -> Reading:
    event_type = obj.pop("type", None)
    if not isinstance(event_type, str) or not EVENT_TYPE_RE.match(event_type):
        raise _Reject("invalid_event", f"event type {str(event_type)[:40]!r}")
    fields = {k: _generic(k, v) for k, v in obj.items() if v is not None}
    return Reading(device, "event", ts_ms, fields, event_type=event_type)
