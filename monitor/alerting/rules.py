"""Rules (SPEC 5) as pure functions of a device's liveness and the time.

A rule's condition *holds* from some moment (``since``); it *fires* once it has held for
its ``for`` duration. ``no_data`` holds from the later of the last message and the start
of the current grace period (monitor start-up or broker reconnect), so the monitor's own
outage never counts as the equipment's.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from monitor import durations
from monitor.config import RULE_DEFAULTS, RULE_SETTINGS, Config, RuleOverrides, ThresholdRule
from monitor.model import THRESHOLD_RE, Device, DeviceKey, FieldValue, State

NO_DATA = "no_data"
OFFLINE = "offline"
FAULT = "fault"
THRESHOLD = "threshold"
MAX_METRICS = 64  # names of metrics remembered per device (the last values, for the API)
SITE_SILENT = "site_silent"
# The monitor's own troubles (SPEC 5): alerts of kind MONITOR_KIND, device = its instance.
BROKER_DOWN = "monitor_broker_down"
SPOOL_HIGH = "monitor_spool_high"
STATE_DIR = "monitor_state_dir"
MONITOR_KIND = "monitor"  # the kind of the monitor's own alerts
SITE_KIND = "site"  # the kind of a site_silent alert: the site speaks for its devices

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Threshold:
    """``detector_temp_c > 45`` held for ``for_s`` seconds."""

    name: str
    metric: str
    op: str
    value: float
    for_s: float
    severity: str

    @classmethod
    def parse(cls, name: str, expr: str, for_s: float, severity: str) -> Threshold:
        m = THRESHOLD_RE.match(expr)
        if m is None:
            raise ValueError(f"threshold {expr!r}: write it as '<metric> <op> <number>'")
        return cls(name, m.group(1), m.group(2), float(m.group(3)), for_s, severity)

    def holds(self, value: FieldValue) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return OPS[self.op](float(value), self.value)


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """One device's rule settings, as the conditions read them. Built by name from the
    config's ``RuleOverrides`` (``settings``), whose every setting is a field here; their
    defaults are ``config.RULE_DEFAULTS``, not here."""

    # None: no_data does not apply (a born Sparkplug device reports by exception, SPEC 3.4)
    no_data_timeout: float | None
    fault_for: float
    offline_for: float
    severity: str
    thresholds: tuple[Threshold, ...] = ()


@dataclass(slots=True)
class DeviceState:
    """What the rules need to know of one device (times in epoch seconds)."""

    device: Device
    last_seen: float | None = None
    state: str | None = None
    state_since: float | None = None
    online: bool | None = None
    offline_since: float | None = None
    code: str | None = None  # the vendor's status code, for the fault summary
    metrics: dict[str, FieldValue] = field(default_factory=dict)
    threshold_since: dict[str, float] = field(default_factory=dict)
    # Expected since (a device a reload registered, SPEC 10): its grace counts from then,
    # not from the run's start, which may be long past. None: the run's grace.
    expected_from: float | None = None

    def observe_metrics(
        self, fields: dict[str, FieldValue], at: float, thresholds: tuple[Threshold, ...]
    ) -> None:
        """The latest value of each metric (at most MAX_METRICS names: a publisher may
        invent a new one in every message), and since when each threshold holds."""
        metrics = self.metrics
        if len(metrics) < MAX_METRICS:
            metrics.update(fields)
        else:
            for key in fields.keys() & metrics.keys():
                metrics[key] = fields[key]
        for t in thresholds:
            if t.metric not in fields:
                continue
            if t.holds(fields[t.metric]):
                self.threshold_since.setdefault(t.name, at)
            else:
                self.threshold_since.pop(t.name, None)


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule whose condition holds for a device: since when, and when it fires."""

    rule: str  # no_data, offline, fault, or threshold:<name>
    since: float
    fires_at: float
    severity: str
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)  # what a summary in any language says


def _label(d: Device) -> str:
    return f"{d.id} ({d.kind}, {d.area})"


def _offline(ds: DeviceState) -> tuple[float, str, str] | None:
    """Since when and why a device is offline: its Last Will, or the state it reports."""
    if ds.online is False and ds.offline_since is not None:
        return ds.offline_since, " is offline: its connection was lost (Last Will)", "will"
    if ds.state == State.OFFLINE and ds.state_since is not None:
        return ds.state_since, " reports state offline", "state"
    return None


def grace_of(ds: DeviceState, grace_from: float) -> float:
    """Since when this device's silence counts at the most: the run's grace (start-up, a
    reconnect), or later for a device expected only since (``expected_from``)."""
    if ds.expected_from is None:
        return grace_from
    return max(grace_from, ds.expected_from)


def conditions(ds: DeviceState, rules: RuleSettings, grace_from: float) -> list[Condition]:
    """Every condition that holds for this device, firing or still pending."""
    grace_from = grace_of(ds, grace_from)
    d = ds.device
    out = []
    if (offline := _offline(ds)) is not None:
        since, why, how = offline
        out.append(
            Condition(
                OFFLINE,
                since,
                since + rules.offline_for,
                rules.severity,
                _label(d) + why,
                {"how": how},
            )
        )
    if ds.state == State.FAULT and ds.state_since is not None:
        code = f" (code {ds.code})" if ds.code else ""
        out.append(
            Condition(
                FAULT,
                ds.state_since,
                ds.state_since + rules.fault_for,
                rules.severity,
                f"{_label(d)} reports a fault{code}",
                {"code": ds.code},
            )
        )
    if rules.no_data_timeout is not None and (not out or out[0].rule != OFFLINE):
        # (offline already explains the silence)
        silent_from = max(ds.last_seen or grace_from, grace_from)
        out.append(
            Condition(
                NO_DATA,
                ds.last_seen if ds.last_seen is not None else grace_from,
                silent_from + rules.no_data_timeout,
                rules.severity,
                f"{_label(d)} sent no data for {durations.brief(rules.no_data_timeout)}",
                {"timeout_s": rules.no_data_timeout},
            )
        )
    for t in rules.thresholds:
        held_since = ds.threshold_since.get(t.name)
        if held_since is not None:
            value = ds.metrics.get(t.metric)
            out.append(
                Condition(
                    f"{THRESHOLD}:{t.name}",
                    held_since,
                    held_since + t.for_s,
                    t.severity,
                    f"{_label(d)} {t.metric} is {value} ({t.op} {t.value:g}) for"
                    f" {durations.brief(t.for_s)}",
                    {
                        "metric": t.metric,
                        "value": value,
                        "op": t.op,
                        "limit": t.value,
                        "for_s": t.for_s,
                    },
                )
            )
    return out


def firing(ds: DeviceState, rules: RuleSettings, grace_from: float, now: float) -> list[Condition]:
    return [c for c in conditions(ds, rules, grace_from) if c.fires_at <= now]


def next_deadline(
    ds: DeviceState, rules: RuleSettings, grace_from: float, now: float
) -> float | None:
    """When this device's next condition would fire, if nothing changes before then."""
    pending = [c.fires_at for c in conditions(ds, rules, grace_from) if c.fires_at > now]
    return min(pending) if pending else None


def silent_for(ds: DeviceState, grace_from: float, now: float) -> float:
    grace_from = grace_of(ds, grace_from)
    return now - max(ds.last_seen or grace_from, grace_from)


def settings(rules: RuleOverrides) -> RuleSettings:
    """The settings the conditions read, each by its name in the config: a setting there
    without a field in ``RuleSettings`` (or the other way round) fails here, at start."""
    said = {name: getattr(rules, name) for name in RULE_SETTINGS}
    return RuleSettings(**said, thresholds=_thresholds(rules.thresholds))


class RuleBook:
    """Rule settings per device, compiled from the config once: kind defaults (SPEC 5),
    the config's per-kind rules, then the registry entry's overrides."""

    def __init__(self, config: Config) -> None:
        kinds = {kind: config.alerts.rules(kind) for kind in RULE_DEFAULTS}
        self._by_kind = {kind: settings(rules) for kind, rules in kinds.items()}
        self._by_device: dict[DeviceKey, RuleSettings] = {}
        # Born Sparkplug devices (SPEC 3.4): no_data only as their entry or group sets it.
        self._quiet: dict[DeviceKey, RuleSettings] = {}
        self._born: dict[DeviceKey, tuple[Device, str]] = {}  # their group, for a reload
        self._explicit = {
            (e.site, e.id): e.no_data_timeout for e in config.devices if e.no_data_timeout
        }
        self._group_timeouts = {g: v.no_data_timeout for g, v in config.sparkplug.groups.items()}
        for entry in config.devices:
            rules = entry.over(kinds[entry.kind])
            self._by_device[(entry.site, entry.id)] = settings(rules)

    def __call__(self, device: Device) -> RuleSettings:
        key = device.key
        return self._quiet.get(key) or self._by_device.get(key) or self._by_kind[device.kind]

    def by_exception(self, device: Device, group: str, born: bool) -> None:
        """A Sparkplug device born (it reports by exception: quiet is alive, so no_data
        applies only as its registry entry or its group sets it) or dead (its death says it
        is offline; until born again no_data applies as to any device)."""
        key = device.key
        if not born:
            self._quiet.pop(key, None)
            self._born.pop(key, None)
            return
        self._born[key] = (device, group)
        base = self._by_device.get(key) or self._by_kind[device.kind]
        explicit = self._explicit.get(key)
        timeout = explicit if explicit is not None else self._group_timeouts.get(group)
        self._quiet[key] = replace(base, no_data_timeout=timeout)

    def carry_over(self, old: RuleBook) -> None:
        """This book replaces ``old`` (a reload, SPEC 10): the Sparkplug devices born
        meanwhile report by exception here too, with this book's settings."""
        for device, group in old._born.values():
            self.by_exception(device, group, born=True)


def _thresholds(entries: list[ThresholdRule]) -> tuple[Threshold, ...]:
    return tuple(Threshold.parse(t.name, t.when, t.for_, t.severity) for t in entries)
