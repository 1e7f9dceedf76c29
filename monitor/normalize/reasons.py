"""Why a message can be rejected (SPEC 3.3): the reasons, and how decoders say so."""

from __future__ import annotations

from dataclasses import dataclass

# Every reason a message can be rejected for, with what it means.
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
    "device_mismatch": "the message's kind contradicts the registered (or discovered) kind",
    "invalid_event": "event without a valid type",
    "malformed_sparkplug": "Sparkplug B payload is not a Tahu protobuf (or a birth lacks bdSeq)",
    "too_many_nodes": "a new Sparkplug edge node beyond sparkplug.max_nodes",
    "influx_rejected": "InfluxDB refused the point (e.g. a field type conflict)",
    "internal_error": "the monitor failed on this message (a bug: see the log once)",
}


@dataclass(frozen=True, slots=True)
class Rejected:
    """What ``Normalizer.normalize`` returns for a message it cannot use."""

    reason: str
    detail: str


class Reject(Exception):
    """Raised inside the decoders; ``Normalizer.normalize`` turns it into ``Rejected``."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
