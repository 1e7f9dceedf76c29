"""The InfluxDB schema (SPEC 4): which measurement, tags and fields each thing becomes.

Timestamps are epoch microseconds: payload times keep their milliseconds, receive times
need the finer precision to keep one point per message (``pipeline.py``).
"""

from __future__ import annotations

from typing import Protocol

from monitor.clock import Clock
from monitor.model import KINDS, Device, DeviceKey, FieldValue, Reading
from monitor.sink import lineproto
from monitor.sink.fieldtypes import FieldTypes
from monitor.stats import Stats


class AlertFacts(Protocol):
    """What an `alerts` point records of an alert (alerting's ``Alert`` has it all)."""

    id: str
    rule: str
    site: str
    area: str
    kind: str
    device: str
    severity: str
    summary: str

    @property
    def state(self) -> str: ...  # read-only here: the alert's own type is narrower


ALERTS = "alerts"
DEVICE_STATUS = "device_status"
EVENTS = "events"
PASSAGES = "passages"
MONITOR = "monitor"

_METRIC_TYPES: dict[str, type] = {"float": float, "int": int, "bool": bool, "str": str}

# The fields whose type the schema fixes (SPEC 2 and 4); the rest are learned (fieldtypes).
FIXED_TYPES: dict[str, dict[str, type]] = {
    **{
        kind: {**{k: _METRIC_TYPES[m.type] for k, m in metrics.items()}, "state": str}
        for kind, metrics in KINDS.items()
    },
    # n on every event; plate_hash and why on the passages' own events (SPEC 9)
    EVENTS: {"n": int, "plate_hash": str, "why": str},
    DEVICE_STATUS: {"up": int, "state": str, "reason": str, "last_seen_age_s": float},
    ALERTS: {"alert_id": str, "state": str, "duration_s": float, "summary": str},
    PASSAGES: {"dwell_s": float, "plate_hash": str},
    MONITOR: {"write_latency_ms": float},  # and every counter an integer (monitor_line)
}


def field_types(stats: Stats, clock: Clock) -> FieldTypes:
    """A monitor's table of field types (one per monitor: what it learns is its database's)."""
    return FieldTypes(FIXED_TYPES, stats, clock)


# The tag part of a device's telemetry line never changes: escape it once per device.
# Keyed by (site, id) and checked by identity: hashing the Device costs more than the rest.
_heads: dict[DeviceKey, tuple[Device, str]] = {}


def _telemetry_head(device: Device) -> str:
    cached = _heads.get(device.key)
    if cached is not None and cached[0] is device:
        return cached[1]
    head = lineproto.head(
        device.kind, {"site": device.site, "area": device.area, "device": device.id}
    )
    _heads[device.key] = (device, head)
    return head


def reading_line(reading: Reading, ts_us: int, types: FieldTypes) -> str | None:
    """The point of a telemetry or event message, each field in its one type (``types``);
    None when it carries nothing to store, or nothing is left to."""
    device = reading.device
    if reading.channel == "telemetry":
        fields: dict[str, FieldValue] = reading.fields
        state = reading.state
        if state is None or not fields or "state" in fields:
            if state is not None:
                fields = {**fields, "state": state}
            field_set = types.field_set(device.kind, fields)
            if not field_set:
                return None
            return f"{_telemetry_head(device)} {field_set} {ts_us}"
        # the common case, without copying the fields to add the state (always a string)
        field_set = types.field_set(device.kind, fields)
        state_field = f"state={lineproto.format_value(state)}"
        if field_set:
            return f"{_telemetry_head(device)} {field_set},{state_field} {ts_us}"
        return f"{_telemetry_head(device)} {state_field} {ts_us}"

    if reading.channel == "event":
        return event_line(device, reading.event_type or "unknown", reading.fields, ts_us, types)
    return None


def event_line(
    device: Device,
    event_type: str,
    fields: dict[str, FieldValue],
    ts_us: int,
    types: FieldTypes | None = None,
) -> str:
    """An event's point; ``types`` checks the fields of a device's event (the monitor's own
    have their fixed types)."""
    # n=1 on every event so that count(n) counts events whatever their payload.
    head = lineproto.head(
        EVENTS,
        {
            "site": device.site,
            "area": device.area,
            "kind": device.kind,
            "device": device.id,
            "type": event_type,
        },
    )
    all_fields = {**fields, "n": 1}
    field_set = (
        lineproto.field_set(all_fields) if types is None else types.field_set(EVENTS, all_fields)
    )
    return f"{head} {field_set} {int(ts_us)}"


class PassageFacts(Protocol):
    """What a `passages` point records of a closed passage (SPEC 9)."""

    @property
    def site(self) -> str: ...
    @property
    def plate_hash(self) -> str: ...
    @property
    def entry_area(self) -> str: ...
    @property
    def exit_area(self) -> str: ...
    @property
    def entry_ms(self) -> int: ...
    @property
    def exit_ms(self) -> int: ...
    @property
    def stages(self) -> dict[str, int]: ...


def passage_line(p: PassageFacts) -> str:
    """One point per closed passage, at its exit time."""
    fields: dict[str, FieldValue] = {
        "dwell_s": (p.exit_ms - p.entry_ms) / 1000,
        "plate_hash": p.plate_hash,
    }
    for stage, ms in sorted(p.stages.items()):
        fields[f"{stage}_s"] = (ms - p.entry_ms) / 1000
    tags = {
        "site": p.site,
        "entry_area": p.entry_area,
        "exit_area": p.exit_area,
        "inspected": "yes" if p.stages else "no",
    }
    return lineproto.line(PASSAGES, tags, fields, plate_time_us(p.exit_ms, p.plate_hash))


def plate_time_us(ts_ms: int, plate_hash: str) -> int:
    """A plate's point time: its millisecond, and microseconds from its hash, so that two
    trucks through one gate in one millisecond stay two points, and a point written again
    (a redelivered read) lands on itself."""
    return ts_ms * 1000 + int(plate_hash[:8], 16) % 1000


def device_status_line(
    device: Device,
    up: bool,
    state: str,
    reason: str,
    last_seen_age_s: float | None,
    ts_us: int,
) -> str:
    fields: dict[str, FieldValue] = {"up": int(up), "state": state, "reason": reason}
    if last_seen_age_s is not None:
        fields["last_seen_age_s"] = float(last_seen_age_s)
    return lineproto.line(
        DEVICE_STATUS,
        {"site": device.site, "area": device.area, "kind": device.kind, "device": device.id},
        fields,
        ts_us,
    )


def monitor_line(instance: str, stats: Stats, latency_ms: float | None, ts_us: int) -> str:
    fields: dict[str, FieldValue] = {
        "messages_received": stats.messages_received,
        "messages_rejected": stats.messages_rejected,
        "points_written": stats.points_written,
        "points_quarantined": stats.points_quarantined,
        "field_type_conflicts": stats.field_type_conflicts,
        "write_errors": stats.write_errors,
        "spool_bytes": stats.spool_bytes,
        "spool_points": stats.spool_points,
        "spool_refusals": stats.spool_refusals,
        "points_replayed": stats.points_replayed,
        "quarantine_bytes": stats.quarantine_bytes,
        "broker_connected": int(stats.broker_connected),
        "clock_skew": stats.clock_skew,
        "notifications_sent": stats.notifications_sent,
        "notifications_failed": stats.notifications_failed,
        "notifications_given_up": stats.notifications_given_up,
        "quarantine_write_errors": stats.quarantine_write_errors,
        "task_restarts": sum(stats.task_restarts.values()),
        "broker_sessions_lost": stats.broker_sessions_lost,
        "subscriptions_refused": stats.subscriptions_refused,
        "stalls": stats.stalls,
        "passages_closed": stats.passages_closed,
        "passages_unmatched": stats.passages_unmatched,
        "exits_without_entry": stats.exits_without_entry,
        "plate_reads_low_confidence": stats.plate_reads_low_confidence,
        "plate_reads_not_camera": stats.plate_reads_not_camera,
        "sparkplug_seq_gaps": stats.sparkplug_seq_gaps,
        "sparkplug_unknown_aliases": stats.sparkplug_unknown_aliases,
        "sparkplug_skipped_metrics": stats.sparkplug_skipped_metrics,
        "sparkplug_stale_deaths": stats.sparkplug_stale_deaths,
        "sparkplug_rebirths_sent": stats.sparkplug_rebirths_sent,
        "sparkplug_reordered": stats.sparkplug_reordered,
        "sparkplug_invalid_names": stats.sparkplug_invalid_names,
        "sparkplug_invalid_states": stats.sparkplug_invalid_states,
        "sparkplug_transient_metrics": stats.sparkplug_transient_metrics,
        "sparkplug_too_old": stats.sparkplug_too_old,
        "sparkplug_too_many_metrics": stats.sparkplug_too_many_metrics,
        "sparkplug_rebirths_dropped": stats.sparkplug_rebirths_dropped,
        "sparkplug_state_reasserted": stats.sparkplug_state_reasserted,
        "sparkplug_nodes": stats.sparkplug_nodes,
    }
    if latency_ms is not None:
        fields["write_latency_ms"] = float(latency_ms)
    for reason, n in stats.rejected_by_reason.items():
        fields[f"rejected_{reason}"] = n
    return lineproto.line(MONITOR, {"instance": instance}, fields, ts_us)


def alert_line(alert: AlertFacts, duration_s: float, ts_us: int) -> str:
    """One point per alert transition (firing, acknowledged, resolved)."""
    return lineproto.line(
        ALERTS,
        {
            "site": alert.site,
            "area": alert.area,
            "kind": alert.kind,
            "device": alert.device,
            "rule": alert.rule,
            "severity": alert.severity,
        },
        {
            "alert_id": alert.id,
            "state": alert.state,
            "duration_s": float(duration_s),
            "summary": alert.summary,
        },
        ts_us,
    )
