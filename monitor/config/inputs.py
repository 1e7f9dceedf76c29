"""What comes in: ingest limits, passages, vendor profiles, Sparkplug, the device
registry."""

from pathlib import Path
from typing import Literal, Self

from pydantic import (
    ByteSize,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from monitor.config.alerts import RuleOverrides
from monitor.config.values import (
    MAX_MQTT_PACKET,
    SPARKPLUG_ID_RE,
    Duration,
    Interval,
    Kind,
    Name,
    Section,
    _read_secret,
)
from monitor.model import (
    CONVERSIONS,
    DEVICE_ID_RE,
    STATES,
)


class Ingest(Section):
    max_payload_bytes: ByteSize = Field(ByteSize(256 * 1024), gt=0, le=MAX_MQTT_PACKET)
    max_age: Interval = 7 * 86400.0
    max_clock_skew: Duration = 300.0
    quarantine_max_bytes: ByteSize = ByteSize(64 * 1024 * 1024)
    # Devices discovered from canonical topics (beyond the registry): a publisher spraying
    # made-up device ids must not grow memory without bound.
    max_devices: int = Field(50_000, ge=1)


class Passages(Section):
    """Truck passages from plate reads (SPEC 9). Absent: off; present in the YAML or
    through any MONITOR_PASSAGES__* variable (the plate key alone, say): on."""

    entry_areas: list[Name] = Field(["gate-in"], min_length=1)
    exit_areas: list[Name] = Field(["gate-out"], min_length=1)
    stages: dict[Name, list[Name]] = {}  # stage -> the areas whose reads mark it
    max_dwell: Interval = 86400.0
    min_confidence: float = Field(80.0, ge=0, le=100)
    debounce: Duration = Field(120.0, ge=0)
    # The key of the plates' keyed hash: from MONITOR_PASSAGES__PLATE_KEY or this file.
    plate_key: SecretStr | None = None
    plate_key_file: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        key = _read_secret(self.plate_key, self.plate_key_file, "plate_key")
        if key is None or len(key.get_secret_value()) < 16:
            raise ValueError(
                "plate reads need a secret plate key of at least 16 characters: set "
                "MONITOR_PASSAGES__PLATE_KEY or passages.plate_key_file"
            )
        object.__setattr__(self, "plate_key", key)
        roles: dict[str, str] = {}
        named = [("entry", a) for a in self.entry_areas] + [("exit", a) for a in self.exit_areas]
        named += [(f"stage {s}", a) for s, areas in self.stages.items() for a in areas]
        for role, area in named:
            if roles.setdefault(area, role) != role:
                raise ValueError(f"area {area!r} is both {roles[area]} and {role}")
        return self


ValueMap = dict[str, str]


class FieldMap(Section):
    """Where one vendor value goes: a canonical metric (or ``state``), converted."""

    to: str
    convert: str | None = None  # a named conversion, see model.CONVERSIONS
    scale: float = 1.0
    offset: float = 0.0
    map: ValueMap | None = None  # vendor value (as text) -> canonical value

    @field_validator("convert")
    @classmethod
    def _convert(cls, v: str | None) -> str | None:
        if v is not None and v not in CONVERSIONS:
            raise ValueError(f"unknown conversion {v!r} (known: {', '.join(CONVERSIONS)})")
        return v

    @model_validator(mode="after")
    def _state_map(self) -> Self:
        if self.to == "state":
            if not self.map:
                raise ValueError("a field mapped to state needs a map of vendor values")
            _check_states(self.map)
        return self


class StateMap(Section):
    field: str
    map: ValueMap

    @field_validator("map")
    @classmethod
    def _states(cls, v: ValueMap) -> ValueMap:
        _check_states(v)
        return v


def _check_states(mapping: ValueMap) -> None:
    if bad := sorted({v for v in mapping.values() if v not in STATES}):
        raise ValueError(f"{bad} not canonical states ({', '.join(sorted(STATES))})")


class Timestamp(Section):
    field: str = "ts"
    unit: Literal["ms", "s", "us", "ns", "rfc3339", "auto"] = "auto"


class Profile(Section):
    """A vendor topic/payload format mapped onto the canonical model (SPEC 3.2)."""

    topic: str
    format: Literal["json", "plain"] = "json"
    kind: Kind | None = None  # when neither the topic nor the registry gives it
    site: str | None = None
    area: str | None = None
    # status: the payload is online/offline or {"state": ...}, as on canonical status topics
    channel: Literal["telemetry", "status"] = "telemetry"
    timestamp: Timestamp | None = None
    state: StateMap | None = None
    # json: keyed by payload key (dotted for nested); plain: keyed by the {signal} segment.
    fields: dict[str, FieldMap] = {}
    unmapped: Literal["keep", "drop"] = "keep"

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        levels = v.split("/")
        if any(("+" in lv or "#" in lv) for lv in levels) or not all(levels):
            raise ValueError("use {name} segments, not MQTT wildcards, and no empty levels")
        names = [lv[1:-1] for lv in levels if lv.startswith("{") and lv.endswith("}")]
        if "device" not in names:
            raise ValueError("the topic needs a {device} segment")
        allowed = {"device", "site", "area", "kind", "signal"}
        if bad := set(names) - allowed:
            raise ValueError(f"unknown segment(s) {sorted(bad)}; allowed: {sorted(allowed)}")
        return v


class SparkplugGroup(Section):
    """Defaults for the devices of one Sparkplug group that the registry does not name."""

    site: Name | None = None
    area: Name | None = None
    kind: Kind | None = None
    fields: dict[str, FieldMap] = {}  # metric name -> canonical, over sparkplug.fields
    # Sparkplug reports by exception: a born device is alive however quiet (SPEC 3.4), so
    # no_data applies to this group's devices only when set here (or in their entry).
    no_data_timeout: Interval | None = None


class Sparkplug(Section):
    """Eclipse Sparkplug B 3.0 (SPEC 3.4): the monitor as a Host Application."""

    enabled: bool = False
    host_id: str | None = None  # spBv1.0/STATE/{host_id}; default: mqtt.client_id
    # The host's own MQTT session (Clean Start, expiry 0, its STATE as Will), beside the
    # persistent one: default "<mqtt.client_id>-sparkplug".
    client_id: str | None = Field(None, min_length=1, max_length=128)
    groups: dict[str, SparkplugGroup] = {}  # subscribed to; none: every group
    rebirth: bool = True  # ask a node to rebirth on a seq gap or an unknown alias
    # A seq gap not filled within this asks for a rebirth (clustered brokers reorder
    # across topics); 0: at once.
    reorder_timeout: Duration = Field(2.0, ge=0)
    rebirth_interval: Interval = 30.0  # at most one rebirth request per node in this long
    rebirth_rate: float = Field(10.0, gt=0)  # rebirth requests per second, all nodes together
    max_nodes: int = Field(1000, ge=1)  # edge nodes known; a new one beyond: too_many_nodes
    max_metrics: int = Field(100_000, ge=1)  # metric definitions (device, name), all nodes
    fields: dict[str, FieldMap] = {}  # metric name -> canonical metric (as in profiles)
    unmapped: Literal["keep", "drop"] = "keep"

    @field_validator("host_id")
    @classmethod
    def _host_id(cls, v: str | None) -> str | None:
        if v is not None and not SPARKPLUG_ID_RE.match(v):
            raise ValueError("must be a valid MQTT topic level without +, # or /")
        return v

    @field_validator("groups")
    @classmethod
    def _group_ids(cls, v: dict[str, SparkplugGroup]) -> dict[str, SparkplugGroup]:
        if bad := [g for g in v if not SPARKPLUG_ID_RE.match(g)]:
            raise ValueError(f"{bad} are not Sparkplug group ids (no +, #, / or empty)")
        return v


class DeviceEntry(RuleOverrides):
    """A registered device: where it is, how it speaks, and its own rule settings (over its
    kind's)."""

    id: str
    kind: Kind
    site: Name
    area: Name
    name: str | None = None  # a human label for the status board
    # How it speaks: a profile's name, "canonical" or "sparkplug". Optional; it says which
    # collector owns the device (SPEC 8) and which entry a topic without a site means.
    profile: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not DEVICE_ID_RE.match(v):
            raise ValueError("device id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
        return v
