"""The canonical profile (SPEC 3.1): ``customs/{site}/{area}/{kind}/{device}/{channel}``.

Also the status payload every profile's status channel speaks: ``online``, ``offline``
(the Last Will) or JSON ``{"state", "code", "ts"}``.
"""

from __future__ import annotations

from typing import Any

from monitor.config import CANONICAL_ROUTE
from monitor.model import EVENT_TYPE_RE, STATES, Device, Reading
from monitor.normalize.devices import Devices
from monitor.normalize.plates import ANPR_CAMERA, PLATE_READ, Plates
from monitor.normalize.reasons import Reject
from monitor.normalize.values import (
    CONVERTERS,
    generic,
    parse_object,
    parse_ts,
    to_float,
    to_str,
)

TOPIC = "customs/{site}/{area}/{kind}/{device}/{channel}"
ROUTE = CANONICAL_ROUTE
CHANNELS: frozenset[str] = frozenset({"telemetry", "status", "event"})


class CanonicalDecoder:
    def __init__(self, devices: Devices, plates: Plates | None = None) -> None:
        self._devices = devices
        self._plates = plates or Plates()  # without a plate key, plates are dropped

    def decode(self, segments: dict[str, str], payload: bytes, retained: bool) -> Reading:
        channel = segments["channel"]
        if channel not in CHANNELS:
            raise Reject("unknown_topic", f"channel {channel[:40]!r}")
        device = self._devices.resolve(
            segments["device"], segments["site"], segments["area"], segments["kind"], ROUTE
        )
        if channel == "status":
            return decode_status(device, payload, retained)
        obj = parse_object(payload)
        # Whatever the kind or channel, a plate is hashed or dropped first (SPEC 9); only
        # an ANPR camera's plate read must have one.
        read = channel == "event" and device.kind == ANPR_CAMERA and obj.get("type") == PLATE_READ
        self._plates.take(obj, required=read)
        ts_ms = parse_ts(obj.pop("ts"), "ms") if "ts" in obj else None
        if channel == "event":
            if read:
                _check_confidence(obj)
            return _event(device, obj, ts_ms, retained)
        state = obj.pop("state", None)
        if state is not None and state not in STATES:
            raise Reject("invalid_state", f"state {str(state)[:40]!r}")
        convert = CONVERTERS[device.kind]
        fields = {k: convert.get(k, generic)(k, v) for k, v in obj.items() if v is not None}
        return Reading(device, "telemetry", ts_ms, fields, state=state, retained=retained)


def _check_confidence(obj: dict[str, Any]) -> None:
    """A plate read's ``confidence``, if it has one, is a percentage."""
    confidence = obj.get("confidence")
    if confidence is not None:
        value = to_float("confidence", confidence)
        if not 0 <= value <= 100:
            raise Reject("invalid_value", f"confidence: {value} is not a percentage")
        obj["confidence"] = value


def decode_status(device: Device, payload: bytes, retained: bool) -> Reading:
    """``online`` / ``offline`` (the Last Will) or JSON ``{"state", "code", "ts"}``."""
    text = payload.strip()
    if text in (b"online", b"offline"):
        online = text == b"online"
        return Reading(
            device,
            "status",
            None,
            online=online,
            state=None if online else "offline",
            retained=retained,
        )
    obj = parse_object(payload)
    ts_ms = parse_ts(obj["ts"], "ms") if obj.get("ts") is not None else None
    state = obj.get("state")
    if state is not None and state not in STATES:
        raise Reject("invalid_state", f"state {str(state)[:40]!r}")
    code = obj.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, str | int)):
        raise Reject("wrong_type", "code: expected text or an integer")
    if isinstance(code, str):
        to_str("code", code)
    return Reading(
        device,
        "status",
        ts_ms,
        state=state,
        online=state != "offline" if state else None,
        code=None if code is None else str(code)[:64],
        retained=retained,
    )


def _event(device: Device, obj: dict[str, Any], ts_ms: int | None, retained: bool) -> Reading:
    event_type = obj.pop("type", None)
    if not isinstance(event_type, str) or not EVENT_TYPE_RE.match(event_type):
        raise Reject("invalid_event", f"event type {str(event_type)[:40]!r}")
    fields = {k: generic(k, v) for k, v in obj.items() if v is not None}
    return Reading(device, "event", ts_ms, fields, event_type=event_type, retained=retained)
