"""The canonical model (SPEC section 2): device kinds, their metrics, and device states."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, NamedTuple

FieldValue = float | int | bool | str

# Limits of a value in the canonical model: what every store the monitor writes to can hold.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_STRING_BYTES = 64 * 1024  # InfluxDB 1.x refuses longer string field values
MAX_NAME_CHARS = 128  # a metric name; ids, sites and areas are shorter (see the regexes)
RESERVED_NAMES = frozenset({"time"})  # InfluxDB refuses a field or tag named "time"
# Measured on InfluxDB 1.6.7: names keep backslashes literally and one ending in a
# backslash cannot be parsed at all; control characters end a line.
_FORBIDDEN_IN_NAMES = re.compile(r"[\\\x00-\x1f\x7f]")


def is_unicode(text: str) -> bool:
    """False for text with lone surrogates ("\\ud800" in JSON), which UTF-8 cannot carry."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def name_problem(name: str) -> str | None:
    """Why a name (of a metric, tag or measurement) cannot be stored; None if it can."""
    if not name:
        return "is empty"
    if _FORBIDDEN_IN_NAMES.search(name):
        return "contains a backslash or control character"
    if not is_unicode(name):
        return "is not valid Unicode (a lone surrogate)"
    return None


DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Sites and areas become tags too; the same shape keeps them safe and readable.
NAME_RE = DEVICE_ID_RE
EVENT_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")
# A threshold rule's condition: "<metric> <op> <number>"
THRESHOLD_RE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$"
)


class State(StrEnum):
    READY = "ready"
    BUSY = "busy"
    STANDBY = "standby"
    WARMING_UP = "warming_up"
    MAINTENANCE = "maintenance"
    FAULT = "fault"
    OFFLINE = "offline"


STATES: frozenset[str] = frozenset(s.value for s in State)

MetricType = Literal["float", "int", "bool", "str"]


@dataclass(frozen=True, slots=True)
class Metric:
    type: MetricType
    choices: frozenset[str] | None = None  # allowed values of a string metric


def _m(type_: MetricType, *choices: str) -> Metric:
    return Metric(type_, frozenset(choices) if choices else None)


KINDS: dict[str, dict[str, Metric]] = {
    "xray_scanner": {
        "tube_voltage_kv": _m("float"),
        "tube_current_ma": _m("float"),
        "detector_temp_c": _m("float"),
        "scans_total": _m("int"),
        "scan_duration_s": _m("float"),
        "interlock_ok": _m("bool"),
    },
    "radiation_portal": {
        "gamma_cps": _m("float"),
        "neutron_cps": _m("float"),
        "occupied": _m("bool"),
        "alarm": _m("str", "none", "gamma", "neutron", "gamma_neutron"),
    },
    "gate_barrier": {
        "position": _m("str", "open", "closed", "moving"),
        "cycles_total": _m("int"),
        "motor_current_a": _m("float"),
    },
    "anpr_camera": {
        "reads_total": _m("int"),
        "read_confidence_pct": _m("float"),
        "temp_c": _m("float"),
    },
    "weighbridge": {
        "weight_kg": _m("float"),
        "zero_offset_kg": _m("float"),
    },
}

# Named unit conversions for vendor profiles (`convert:`). mR/h -> uSv/h uses the
# radiation-portal rule of thumb 1 R ~ 1 rem = 10 mSv.
CONVERSIONS: dict[str, tuple[float, float]] = {  # name -> (scale, offset): v * scale + offset
    "V->kV": (0.001, 0.0),
    "mV->kV": (1e-6, 0.0),
    "uA->mA": (0.001, 0.0),
    "A->mA": (1000.0, 0.0),
    "mA->A": (0.001, 0.0),
    "degF->degC": (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "K->degC": (1.0, -273.15),
    "mR/h->uSv/h": (10.0, 0.0),
    "uR/h->uSv/h": (0.01, 0.0),
    "nSv/h->uSv/h": (0.001, 0.0),
    "lb->kg": (0.45359237, 0.0),
    "t->kg": (1000.0, 0.0),
    "ms->s": (0.001, 0.0),
    "cpm->cps": (1.0 / 60.0, 0.0),
}

Channel = Literal["telemetry", "status", "event"]


# A device is its site and id (SPEC 2): posts name their equipment alike, so ``gb-01`` at
# Aktau and ``gb-01`` at Kuryk are two devices. Everything keyed per device uses this.
DeviceKey = tuple[str, str]  # (site, id)


@dataclass(frozen=True, slots=True)
class Device:
    """Where a device lives; these become the ``site``/``area``/``kind``/``device`` tags."""

    id: str
    kind: str
    site: str
    area: str
    # (site, id), made once: the hot path keys liveness and its caches by it per message
    key: DeviceKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.site, self.id))


def key_text(key: DeviceKey) -> str:
    """A device as people and logs name it: ``aktau/gb-01``."""
    return f"{key[0]}/{key[1]}"


@dataclass(slots=True)
class Reading:
    """One normalized message of one device.

    ``online`` is set by status messages (``online``/``offline``); ``state`` by any
    message that carries a canonical state; ``fields`` are metrics (telemetry) or event
    payload fields (event).
    """

    device: Device
    channel: Channel
    ts_ms: int | None  # the payload's own time (epoch ms); None: stamped when received
    fields: dict[str, FieldValue] = field(default_factory=dict)
    state: str | None = None
    online: bool | None = None
    code: str | None = None
    event_type: str | None = None
    retained: bool = False  # a retained status is old news: it must not count as "seen"
    clock_skew: bool = False  # the device's timestamp was in the future and was replaced
    # Written at its own time, but no live state (Sparkplug store-and-forward, SPEC 3.4):
    # not the device's state, not a threshold's timer, not its liveness.
    historical: bool = False


# SPEC 5 and 6: what a maintenance window may be, wherever it comes from (the config, the
# API, a row an older version saved). Times are wall-clock seconds (UTC).
WINDOW_SCOPES = ("device", "kind", "area", "site")
EARLIEST_TIME = 0.0  # 1970-01-01T00:00:00Z
END_OF_9999 = 253_402_300_800.0  # 10000-01-01T00:00:00Z: a time is before it
MAX_WINDOW_S = 366 * 86400.0


def time_problem(t: float) -> str | None:
    """Why a time cannot be taken (outside the years 1970-9999, UTC); None if it can."""
    if not EARLIEST_TIME <= t < END_OF_9999:  # NaN too
        return "is outside the years 1970 to 9999 (UTC)"
    return None


def window_problem(
    scope: str, value: str, starts: float, ends: float, site: str | None = None
) -> str | None:
    """Why a maintenance window cannot be kept; None if it can. ``value`` is not quoted
    back: it may be anything a client sent. ``site``: the one site it is limited to."""
    if site is not None and not NAME_RE.match(site):
        return "a site name must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
    if scope not in WINDOW_SCOPES:
        return f"scope must be one of {', '.join(WINDOW_SCOPES)}"
    if scope == "kind":
        if value not in KINDS:
            return f"kind must be one of {', '.join(KINDS)}"
    elif not DEVICE_ID_RE.match(value):  # NAME_RE is the same shape
        name = {"device": "a device id", "area": "an area name"}.get(scope, f"a {scope} name")
        return f"{name} must match ^[A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}$"
    for what, t in (("starts", starts), ("ends", ends)):
        if problem := time_problem(t):
            return f"{what} {problem}"
    if ends <= starts:
        return "the window must end after it starts"
    if ends - starts > MAX_WINDOW_S:
        days = (ends - starts) / 86400
        return f"a window is at most 366 days long; this one is {days:.1f} days"
    return None


class BrokerOutage(NamedTuple):
    """The monitor's own outage on the broker side (``MqttSource.outage``): since when,
    what it is (English, for the log, ``/health`` and SPEC 5's summary), and whether the
    monitor is connected meanwhile (a subscription that hears nothing) or cannot reach
    the broker at all; the alert's text in other languages says which."""

    since: float
    why: str
    connected: bool
