"""The alert lifecycle (SPEC 5): firing -> acknowledged -> resolved, and who is told when.

``AlertEngine`` is deterministic: given the devices' states, the time, the broker's state
and the maintenance windows, ``evaluate`` returns the transitions to record and the
notifications to send. It does no I/O and reads no clock; the runtime (``service.py``)
persists what it returns and hands notifications to the notifier.

Times are monotonic seconds (``Clock.monotonic``): a wall-clock step moves no deadline.
Where a time is shown (payloads, summaries) ``wall_offset``, which the runtime keeps up to
date, turns it into wall-clock time; maintenance windows are wall-clock times, as people
set them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from monitor.alerting import rules
from monitor.alerting.rules import (
    BROKER_DOWN,
    MONITOR_KIND,
    NO_DATA,
    SITE_KIND,
    SITE_SILENT,
    DeviceState,
    RuleSettings,
)
from monitor.alerting.texts import summary as localized_summary
from monitor.config import Route as RouteConfig
from monitor.i18n import Language
from monitor.model import Device, DeviceKey, State

AlertState = Literal["firing", "acknowledged", "resolved"]
Event = Literal["firing", "repeat", "escalation", "acknowledged", "resolved"]
Scope = Literal["device", "kind", "area", "site"]
AlertKey = tuple[str, str, str]  # (rule, site, device): one open alert each (SPEC 5)

BROKER_DOWN_AFTER_S = 30.0
SITE_SILENT_RATIO = 0.8
SITE_SILENT_MIN_DEVICES = 3
MONITOR_SITE = "*"  # the site of the monitor's own alerts: its troubles are every site's
# Why an alert was resolved other than by its device recovering: a person said the device
# is gone (SPEC 5), or its sites went to another collector (SPEC 8).
FORGOTTEN = "forgotten"
UNOWNED = "unowned"


def rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Alert:
    id: str
    rule: str
    site: str
    area: str
    kind: str
    device: str
    severity: str
    summary: str
    started_at: float  # when the condition began (e.g. the last message before the silence)
    fired_at: float
    state: AlertState = "firing"
    resolved_at: float | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    grouped_by: str | None = None  # the site_silent alert that speaks for this one
    members: list[str] = field(default_factory=list)  # site_silent: the silent devices
    notified: dict[str, float] = field(default_factory=dict)  # route -> last notified at
    escalated: list[str] = field(default_factory=list)  # routes escalated on
    facts: dict[str, Any] = field(default_factory=dict)  # for the summary in other languages

    @property
    def key(self) -> AlertKey:
        return (self.rule, self.site, self.device)

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"

    def duration(self, now: float) -> float:
        return max(
            0.0, (self.resolved_at if self.resolved_at is not None else now) - self.started_at
        )

    def payload(
        self, now: float, state: AlertState | None = None, wall_offset: float = 0.0
    ) -> dict[str, Any]:
        """The webhook JSON (SPEC 5, contract); times shown on the wall clock."""
        return {
            "alert_id": self.id,
            "state": state or self.state,
            "rule": self.rule,
            "severity": self.severity,
            "site": self.site,
            "area": self.area,
            "kind": self.kind,
            "device": self.device,
            "started_at": rfc3339(self.started_at + wall_offset),
            "resolved_at": rfc3339(
                None if self.resolved_at is None else self.resolved_at + wall_offset
            ),
            "duration_s": round(self.duration(now), 3),
            "summary": self.summary,
            # resolved not because it recovered: a person said the device is gone
            **({"resolution": r} if (r := self.facts.get("resolution")) else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Trouble:
    """One of the monitor's own troubles while it holds: SPEC 5's English summary, and
    the facts its summary in another language says (``monitor.alerting.texts``)."""

    summary: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """A maintenance window for a device, a kind, an area or a whole site; ``site`` limits
    it to one site (SPEC 2: ``gb-01`` and ``gate-in`` may be at two posts)."""

    id: str
    scope: Scope
    value: str
    starts: float
    ends: float
    reason: str = ""
    created_by: str = "config"
    site: str | None = None

    def covers(self, device: Device, now: float) -> bool:
        if not self.starts <= now < self.ends:
            return False
        if self.site is not None and device.site != self.site:
            return False
        target: str = getattr(device, "id" if self.scope == "device" else self.scope)
        return target == self.value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Route:
    name: str
    channels: tuple[str, ...]
    escalate_to: tuple[str, ...]
    repeat_interval: float
    escalate_after: float
    severity: frozenset[str] | None = None
    kind: frozenset[str] | None = None
    site: frozenset[str] | None = None
    area: frozenset[str] | None = None
    language: Language | None = None  # its crew's; None: English, SPEC 5's JSON as it is

    @classmethod
    def from_config(cls, r: RouteConfig) -> Route:
        def opt(values: Sequence[str] | None) -> frozenset[str] | None:
            return frozenset(values) if values is not None else None

        return cls(
            r.name,
            tuple(r.channels),
            tuple(r.escalate_to),
            r.repeat_interval,
            r.escalate_after,
            opt(r.match.severity),
            opt(r.match.kind),
            opt(r.match.site),
            opt(r.match.area),
            r.language,
        )

    def matches(self, a: Alert) -> bool:
        """Whether an alert of this severity, kind, site and area is the route's, by its
        ``match`` alone (``AlertEngine.routed`` says who hears the monitor's own and a
        site's alerts)."""
        return self.takes(a.severity, a.kind, a.site, a.area)

    def takes(self, severity: str, kind: str, site: str, area: str) -> bool:
        return all(
            allowed is None or value in allowed
            for allowed, value in (
                (self.severity, severity),
                (self.kind, kind),
                (self.site, site),
                (self.area, area),
            )
        )


@dataclass(frozen=True)
class Notification:
    alert_id: str
    event: Event
    route: str
    channels: tuple[str, ...]
    payload: dict[str, Any]
    language: Language | None = None  # the route's
    facts: dict[str, Any] = field(default_factory=dict)  # the alert's, for its language


@dataclass
class Outcome:
    transitions: list[Alert] = field(default_factory=list)  # snapshots, for `alerts` points
    changed: dict[str, Alert] = field(default_factory=dict)  # to persist
    notifications: list[Notification] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.transitions += other.transitions
        self.changed.update(other.changed)
        self.notifications += other.notifications


def _cleared(alert: Alert, ds: DeviceState, holding: Mapping[str, rules.Condition]) -> bool:
    """An open alert ends when its condition is false, not merely pending again: after a
    restart or a broker outage no_data is pending anew, but only a message ends it."""
    if alert.rule == NO_DATA:
        return ds.last_seen is not None and ds.last_seen > alert.started_at
    return alert.rule not in holding


def _snapshot(a: Alert) -> Alert:
    return Alert.from_dict(a.to_dict())


class AlertEngine:
    def __init__(
        self,
        routes: Iterable[Route],
        settings_of: Callable[[Device], RuleSettings],
        instance: str,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
        broker_down_after: float = BROKER_DOWN_AFTER_S,
    ) -> None:
        self.routes = list(routes)
        self.broker_down_after = broker_down_after
        self.settings_of = settings_of
        self.instance = instance
        self.new_id = new_id
        self.open: dict[AlertKey, Alert] = {}
        self.windows: dict[str, Window] = {}
        self.wall_offset = 0.0  # wall clock - monotonic clock, for showing times
        # the alert on the status board (http.public_url), for people on a phone: None
        # without one (SPEC 10); the webhook JSON carries it as ``url``
        self.link: Callable[[str], str | None] = lambda alert_id: None

    def wall(self, t: float) -> float:
        return t + self.wall_offset

    # -- state loaded from the store after a restart --

    def restore(self, alerts: Iterable[Alert], windows: Iterable[Window]) -> None:
        self.open = {a.key: a for a in alerts if a.is_open}
        self.windows = {w.id: w for w in windows}
        groups = {a.id for a in self.open.values() if a.rule == SITE_SILENT}
        for a in self.open.values():
            if a.grouped_by is not None and a.grouped_by not in groups:
                a.grouped_by = None  # its site alert ended meanwhile: it speaks for itself

    def _payload(self, alert: Alert, now: float, state: AlertState | None = None) -> dict[str, Any]:
        payload = alert.payload(now, state, self.wall_offset)
        if (url := self.link(alert.id)) is not None:
            payload["url"] = url  # SPEC 5's JSON extended, never renamed
        return payload

    @staticmethod
    def _notification(
        alert: Alert,
        event: Event,
        route: Route,
        channels: tuple[str, ...],
        payload: dict[str, Any],
    ) -> Notification:
        """The route's copy: with ``summary_localized`` when the route has a language
        other than English (SPEC 5: an English route's JSON is exactly the contract's)."""
        if route.language is not None and route.language != "en":
            payload = {
                **payload,
                "summary_localized": localized_summary(payload, alert.facts, route.language),
            }
        return Notification(
            alert.id, event, route.name, channels, payload, route.language, dict(alert.facts)
        )

    def in_maintenance(self, device: Device, now: float) -> bool:
        at = self.wall(now)
        return any(w.covers(device, at) for w in self.windows.values())

    # -- evaluation --

    def evaluate(
        self,
        devices: Mapping[DeviceKey, DeviceState],
        now: float,
        grace_from: float,
        broker_down_since: float | None,
        monitor_conditions: Mapping[str, Trouble | None] | None = None,
        broker_down_why: str | None = None,
        broker_connected: bool = False,
    ) -> Outcome:
        """``monitor_conditions``: the monitor's own troubles (e.g. ``monitor_spool_high``)
        -> a ``Trouble`` while it holds, None when it does not. ``broker_down_why``: what
        the broker outage since ``broker_down_since`` is (unreachable, or deaf: then
        ``broker_connected``)."""
        out = Outcome()
        for rule, trouble in (monitor_conditions or {}).items():
            key = (rule, MONITOR_SITE, self.instance)
            if trouble is not None and key not in self.open:
                alert = self._monitor_alert(rule, "warning", trouble, now, now)
                self._fire(out, alert)
            elif trouble is None and key in self.open:
                self._resolve(out, self.open[key], now)
        broker_key = (BROKER_DOWN, MONITOR_SITE, self.instance)
        if broker_down_since is not None:
            # Data is stale while we cannot hear the broker: no device alert fires or
            # resolves; after broker_down_after one alert says so.
            if now - broker_down_since >= self.broker_down_after and broker_key not in self.open:
                why = broker_down_why or "cannot reach the MQTT broker"
                trouble = Trouble(
                    f"monitor {self.instance} {why}: equipment alerts are paused",
                    {"connected": broker_connected},
                )
                alert = self._monitor_alert(
                    BROKER_DOWN, "critical", trouble, broker_down_since, now
                )
                self._fire(out, alert)
        else:
            if broker_key in self.open:
                self._resolve(out, self.open[broker_key], now)
            self._evaluate_devices(out, devices, now, grace_from)
        self._notify(out, devices, now)
        return out

    def _monitor_alert(
        self, rule: str, severity: str, trouble: Trouble, since: float, now: float
    ) -> Alert:
        """An alert about the monitor itself (kind ``monitor``, device: its instance)."""
        return Alert(
            self.new_id(),
            rule,
            MONITOR_SITE,
            "*",
            MONITOR_KIND,
            self.instance,
            severity,
            trouble.summary,
            since,
            now,
            facts=dict(trouble.facts),
        )

    def _evaluate_devices(
        self,
        out: Outcome,
        devices: Mapping[DeviceKey, DeviceState],
        now: float,
        grace_from: float,
    ) -> None:
        new_no_data: list[Alert] = []
        open_by_device: dict[DeviceKey, list[Alert]] = {}
        for a in self.open.values():
            if a.kind not in (SITE_KIND, MONITOR_KIND):
                open_by_device.setdefault((a.site, a.device), []).append(a)
        for key, ds in devices.items():
            d = ds.device
            holding = {c.rule: c for c in rules.conditions(ds, self.settings_of(d), grace_from)}
            for rule, cond in holding.items():
                if cond.fires_at <= now and (rule, d.site, d.id) not in self.open:
                    alert = Alert(
                        self.new_id(),
                        rule,
                        d.site,
                        d.area,
                        d.kind,
                        d.id,
                        cond.severity,
                        cond.summary,
                        cond.since,
                        now,
                        facts=cond.facts,
                    )
                    self._fire(out, alert)
                    if rule == NO_DATA:
                        new_no_data.append(alert)
            for alert in open_by_device.get(key, ()):
                if _cleared(alert, ds, holding):
                    self._resolve(out, alert, now)
        self._group_sites(out, devices, new_no_data, now, grace_from)

    def _group_sites(
        self,
        out: Outcome,
        devices: Mapping[DeviceKey, DeviceState],
        new_no_data: list[Alert],
        now: float,
        grace_from: float,
    ) -> None:
        """One site_silent alert instead of fifty no_data ones (SPEC 5)."""
        for site_alert in [a for a in self.open.values() if a.rule == SITE_SILENT]:
            spoke = any(
                (ds := devices.get((site_alert.site, m))) is not None
                and ds.last_seen is not None
                and ds.last_seen > site_alert.fired_at
                for m in site_alert.members
            )
            if spoke or not site_alert.members:
                self._resolve(out, site_alert, now)
                self._ungroup(out, site_alert)
        for alert in new_no_data:
            group = self.open.get((SITE_SILENT, alert.site, alert.site))
            if group is None:
                group = self._site_silent(out, devices, alert, now, grace_from)
            elif not self._fell_silent_with(alert, group):
                continue  # a later outage of its own: told on its own
            if group is not None:
                alert.grouped_by = group.id
                if alert.device not in group.members:
                    group.members = sorted([*group.members, alert.device])
                    out.changed[group.id] = group
                out.changed[alert.id] = alert

    def _ungroup(self, out: Outcome, site_alert: Alert) -> None:
        for a in self.open.values():
            if a.grouped_by == site_alert.id:
                a.grouped_by = None  # still down after the site came back: tell
                out.changed[a.id] = a

    def _fell_silent_with(self, alert: Alert, site_alert: Alert) -> bool:
        """Whether a device's silence is the site's: it was already silent when the site
        alert fired, and fell silent within its own timeout of the site's silence. One that
        was still talking then is a new outage, told on its own (SPEC 5)."""
        if alert.device in site_alert.members:
            return True
        timeout = alert.facts.get("timeout_s", 0.0)
        began = alert.started_at
        return began <= site_alert.fired_at and abs(began - site_alert.started_at) <= timeout

    def _site_silent(
        self,
        out: Outcome,
        devices: Mapping[DeviceKey, DeviceState],
        trigger: Alert,
        now: float,
        grace_from: float,
    ) -> Alert | None:
        """A site_silent alert if most of the site's devices fell silent together with
        ``trigger`` (each silent for at least half its timeout, its silence beginning
        within its timeout of the trigger's). A device silent since long before is down
        for reasons of its own: neither counted nor a member."""
        site = trigger.site
        began = trigger.started_at
        on_site = []
        silent = []
        for ds in devices.values():
            if ds.device.site != site:
                continue
            timeout = self.settings_of(ds.device).no_data_timeout
            if timeout is None:
                continue  # reports by exception: its quiet is no silence (SPEC 3.4)
            last = ds.last_seen if ds.last_seen is not None else rules.grace_of(ds, grace_from)
            if last < began - timeout and rules.silent_for(ds, grace_from, now) >= timeout:
                continue  # its own outage, from before this one
            on_site.append(ds)
            if rules.silent_for(ds, grace_from, now) >= timeout / 2:
                silent.append(ds)
        if len(on_site) < SITE_SILENT_MIN_DEVICES or len(silent) < SITE_SILENT_RATIO * len(on_site):
            return None
        # since the first of them fell silent, as their own no_data alerts say it (a
        # silence that began before a restart began then)
        since = min(
            ds.last_seen if ds.last_seen is not None else rules.grace_of(ds, grace_from)
            for ds in silent
        )
        alert = Alert(
            self.new_id(),
            SITE_SILENT,
            site,
            "*",
            SITE_KIND,
            site,
            "critical",
            f"site {site}: {len(silent)} of {len(on_site)} devices went silent together"
            f" since {rfc3339(self.wall(since))} (network link or switch down?)",
            since,
            now,
            members=sorted(ds.device.id for ds in silent),
            facts={"silent": len(silent), "devices": len(on_site)},
        )
        self._fire(out, alert)
        return alert

    def forget(self, key: DeviceKey, now: float, resolution: str = FORGOTTEN) -> Outcome:
        """A device a person said is gone (SPEC 5), or no longer this collector's: its
        open alerts resolved for that reason; a site alert it was the last member of ends
        with it."""
        out = Outcome()
        site, device_id = key
        for alert in [a for a in self.open.values() if (a.site, a.device) == key]:
            if alert.kind in (SITE_KIND, MONITOR_KIND):
                continue
            alert.facts = {**alert.facts, "resolution": resolution}
            self._resolve(out, alert, now)
        for site_alert in [a for a in self.open.values() if a.rule == SITE_SILENT]:
            if site_alert.site == site and device_id in site_alert.members:
                site_alert.members = [m for m in site_alert.members if m != device_id]
                out.changed[site_alert.id] = site_alert
                if not site_alert.members:
                    self._resolve(out, site_alert, now)
                    self._ungroup(out, site_alert)
        return out

    def _fire(self, out: Outcome, alert: Alert) -> None:
        self.open[alert.key] = alert
        out.transitions.append(_snapshot(alert))
        out.changed[alert.id] = alert

    def _resolve(self, out: Outcome, alert: Alert, now: float) -> None:
        alert.state = "resolved"
        alert.resolved_at = now
        del self.open[alert.key]
        out.transitions.append(_snapshot(alert))
        out.changed[alert.id] = alert
        for route in self.routes:
            if route.name in alert.notified:
                channels = route.channels + (
                    route.escalate_to if route.name in alert.escalated else ()
                )
                out.notifications.append(
                    self._notification(
                        alert, "resolved", route, channels, self._payload(alert, now)
                    )
                )

    def acknowledge(self, alert_id: str, now: float, by: str) -> Outcome | None:
        """Stops repeats and escalation; None if no open alert has this id."""
        alert = next((a for a in self.open.values() if a.id == alert_id), None)
        if alert is None:
            return None
        out = Outcome()
        if alert.state == "acknowledged":
            return out
        alert.state = "acknowledged"
        alert.acked_at = now
        alert.acked_by = by
        out.transitions.append(_snapshot(alert))
        out.changed[alert.id] = alert
        for route in self.routes:
            if route.name in alert.notified:
                out.notifications.append(
                    self._notification(
                        alert, "acknowledged", route, route.channels, self._payload(alert, now)
                    )
                )
        return out

    # -- who is told what, now --

    def suppressed(
        self, alert: Alert, devices: Mapping[DeviceKey, DeviceState], now: float
    ) -> bool:
        if alert.grouped_by is not None:
            return True
        if alert.rule == SITE_SILENT:  # planned works at the site: its members in windows
            members = [devices.get((alert.site, m)) for m in alert.members]
            return all(
                ds is not None
                and (ds.state == State.MAINTENANCE or self.in_maintenance(ds.device, now))
                for ds in members
            )
        ds = devices.get((alert.site, alert.device))
        if ds is None:
            return False
        return ds.state == State.MAINTENANCE or self.in_maintenance(ds.device, now)

    def routed(self, route: Route, alert: Alert, devices: Mapping[DeviceKey, DeviceState]) -> bool:
        """Whether a route hears this alert (SPEC 10). The monitor's own troubles are every
        site's and every kind's (site and area ``*``): a route by site, area or kind would
        never match them, so severity alone decides. A ``site_silent`` alert speaks for its
        devices' alerts, which it holds back: it reaches every route that would have
        received one of them (a route by area, kind or a device's severity)."""
        if alert.kind == MONITOR_KIND:
            return route.severity is None or alert.severity in route.severity
        if route.matches(alert):
            return True
        if alert.rule != SITE_SILENT:
            return False
        for member in alert.members:
            ds = devices.get((alert.site, member))
            if ds is None:
                continue
            d = ds.device  # its own alert: its no_data, with its rules' severity
            if route.takes(self.settings_of(d).severity, d.kind, d.site, d.area):
                return True
        return False

    def _notify(self, out: Outcome, devices: Mapping[DeviceKey, DeviceState], now: float) -> None:
        for alert in self.open.values():
            if self.suppressed(alert, devices, now):
                continue
            for route in self.routes:
                if not self.routed(route, alert, devices):
                    continue
                last = alert.notified.get(route.name)
                if last is None:
                    self._send(out, alert, route, "firing", route.channels, now)
                elif alert.state == "firing" and now - last >= route.repeat_interval:
                    self._send(out, alert, route, "repeat", route.channels, now)
                if (
                    alert.state == "firing"
                    and route.escalate_to
                    and route.name not in alert.escalated
                    and route.name in alert.notified
                    and now - alert.fired_at >= route.escalate_after
                ):
                    alert.escalated.append(route.name)
                    self._send(out, alert, route, "escalation", route.escalate_to, now, touch=False)

    def _send(
        self,
        out: Outcome,
        alert: Alert,
        route: Route,
        event: Event,
        channels: tuple[str, ...],
        now: float,
        touch: bool = True,
    ) -> None:
        if touch:
            alert.notified[route.name] = now
        out.changed[alert.id] = alert
        payload = self._payload(alert, now, "firing")
        out.notifications.append(self._notification(alert, event, route, channels, payload))

    def next_wakeup(
        self,
        devices: Mapping[DeviceKey, DeviceState],
        now: float,
        grace_from: float,
        broker_down_since: float | None,
    ) -> float | None:
        """The earliest moment evaluate() could have something new to say."""
        times: list[float] = []
        if broker_down_since is not None:
            times.append(broker_down_since + self.broker_down_after)
        else:
            for ds in devices.values():
                t = rules.next_deadline(ds, self.settings_of(ds.device), grace_from, now)
                if t is not None:
                    times.append(t)
        for alert in self.open.values():
            for route in self.routes:
                last = alert.notified.get(route.name)
                if last is not None and alert.state == "firing":
                    times.append(last + route.repeat_interval)
                    if route.escalate_to and route.name not in alert.escalated:
                        times.append(alert.fired_at + route.escalate_after)
        for w in self.windows.values():
            times.extend(t - self.wall_offset for t in (w.starts, w.ends))
        future = [t for t in times if t > now]
        return min(future) if future else None
