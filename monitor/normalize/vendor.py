"""Vendor profiles (SPEC 3.2): a topic pattern, a payload format, a timestamp, field
mappings with unit conversion and value maps, and a status-code map, compiled once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.config import FieldMap, Profile
from monitor.model import CONVERSIONS, Channel, Device, FieldValue, Reading
from monitor.normalize.canonical import decode_status
from monitor.normalize.devices import Devices
from monitor.normalize.plates import KeyKind, Plates, harmless, key_kind
from monitor.normalize.reasons import Reject
from monitor.normalize.values import (
    as_text,
    metric_value,
    parse_object,
    parse_ts,
    plain_value,
    to_float,
)


@dataclass(frozen=True, slots=True)
class Mapping:
    """A compiled FieldMap: where one vendor value goes, and how it is converted."""

    source: str
    path: tuple[str, ...]
    to: str
    scale: float
    offset: float
    map: dict[str, str] | None

    @classmethod
    def compile(cls, source: str, fm: FieldMap) -> Mapping:
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

    @property
    def plate(self) -> KeyKind:
        """Whether this maps a plate (its source's path or its target names one): such a
        value is hashed or dropped, never mapped or converted (SPEC 9)."""
        return max(key_kind(self.to), *(key_kind(part) for part in self.path))

    def apply(self, value: Any) -> Any:
        if self.map is not None:
            text = as_text(value)
            if text not in self.map:
                reason = "invalid_state" if self.to == "state" else "invalid_value"
                raise Reject(reason, f"{self.source}: unmapped value {text[:40]!r}")
            return self.map[text]
        if self.scale == 1.0 and self.offset == 0.0:
            return value
        return to_float(self.source, value) * self.scale + self.offset

    def put(self, device: Device, fields: dict[str, FieldValue], raw: Any) -> str | None:
        """Map ``raw`` into ``fields``; returns the canonical state if it maps to ``state``."""
        value = self.apply(raw)
        if self.to == "state":
            return str(value)
        fields[self.to] = metric_value(device.kind, self.to, value)
        return None


_MISSING = object()


def _lookup(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = obj
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


class VendorDecoder:
    """One profile compiled: ``decode`` finds the device, then reads the status payload or
    the profile's telemetry format (json or plain)."""

    def __init__(
        self, name: str, profile: Profile, devices: Devices, plates: Plates | None = None
    ) -> None:
        self._name = name
        self._profile = profile
        self._devices = devices
        self._plates = plates or Plates()
        mappings = [Mapping.compile(src, fm) for src, fm in profile.fields.items()]
        self._mappings = {m.source: m for m in mappings if not m.plate}
        # about a plate: mapped only if its value is no text (SPEC 9)
        self._about = {m.source: m for m in mappings if m.plate is KeyKind.ABOUT}
        self._plate_mappings = {m.source: m for m in mappings if m.plate is KeyKind.PLATE}
        self._keep_unmapped = profile.unmapped == "keep"
        self._ts_field = profile.timestamp.field if profile.timestamp else None
        self._ts_unit = profile.timestamp.unit if profile.timestamp else "auto"
        self._state_field = profile.state.field if profile.state else None
        self._state_map = dict(profile.state.map) if profile.state else {}
        consumed = {m.path[0] for m in mappings}
        consumed.update(x for x in (self._ts_field, self._state_field) if x)
        self._consumed_roots = consumed
        self._channel: Channel = profile.channel
        self._telemetry = self._json if profile.format == "json" else self._plain

    def decode(self, segments: dict[str, str], payload: bytes, retained: bool) -> Reading:
        p = self._profile
        device = self._devices.resolve(
            segments["device"],
            segments.get("site") or p.site,
            segments.get("area") or p.area,
            segments.get("kind") or p.kind,
            self._name,
        )
        if self._channel == "status":
            return decode_status(device, payload, retained)
        reading = self._telemetry(device, segments, payload)
        reading.retained = retained
        return reading

    def _json(self, device: Device, segments: dict[str, str], payload: bytes) -> Reading:
        obj = parse_object(payload)
        ts_ms = None
        ts_field = self._ts_field
        if ts_field is not None and obj.get(ts_field) is not None:
            ts_ms = parse_ts(obj[ts_field], self._ts_unit)
        state = None
        state_field = self._state_field
        if state_field is not None and obj.get(state_field) is not None:
            code = as_text(obj[state_field])
            state = self._state_map.get(code)
            if state is None:
                raise Reject("invalid_state", f"{state_field}: unmapped code {code[:40]!r}")
        fields: dict[str, FieldValue] = {}
        plates = [
            raw
            for m in self._plate_mappings.values()
            if (raw := _lookup(obj, m.path)) is not _MISSING
        ]
        for m in self._about.values():
            raw = _lookup(obj, m.path)
            if raw is not _MISSING and raw is not None and harmless(raw):
                state = m.put(device, fields, raw) or state
        plates += self._plates.strip(obj)  # and every other plate-like key's text is gone
        for m in self._mappings.values():
            raw = _lookup(obj, m.path)
            if raw is not _MISSING and raw is not None:
                state = m.put(device, fields, raw) or state
        if self._keep_unmapped:
            consumed = self._consumed_roots
            for key, value in obj.items():
                if key not in consumed and value is not None and key not in fields:
                    fields[key] = metric_value(device.kind, key, value)
        self._hash_into(fields, plates)
        return Reading(device, "telemetry", ts_ms, fields, state=state)

    def _hash_into(self, fields: dict[str, FieldValue], plates: list[Any]) -> None:
        plate_hash = self._plates.first(plates)
        if plate_hash is not None:
            fields["plate_hash"] = plate_hash

    def _plain(self, device: Device, segments: dict[str, str], payload: bytes) -> Reading:
        if not payload.strip():
            raise Reject("empty_payload", "empty payload")
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise Reject("not_utf8", f"invalid UTF-8 at byte {e.start}") from None
        signal = segments.get("signal", "value")
        fields: dict[str, FieldValue] = {}
        state = None
        kind = KeyKind.NONE
        m = self._mappings.get(signal)
        if m is None:
            if signal in self._plate_mappings:
                kind = KeyKind.PLATE
            elif (m := self._about.get(signal)) is not None:
                kind = KeyKind.ABOUT
            elif self._keep_unmapped:
                kind = key_kind(signal)
        if kind is KeyKind.PLATE:  # anpr/{device}/{signal}: anpr/cam-1/plate = 123ABC02
            self._hash_into(fields, [text])
            return Reading(device, "telemetry", None, fields)
        value = plain_value(text)
        if kind and not harmless(value):
            pass  # about a plate, and text: perhaps one
        elif m is not None:
            state = m.put(device, fields, value)
        elif self._keep_unmapped:
            fields[signal] = metric_value(device.kind, signal, value)
        return Reading(device, "telemetry", None, fields, state=state)
