"""Per-device liveness: last seen (any channel), last status, canonical state.

Observations come from the ingest hot path; ``device_status`` points are derived from
them (SPEC 4): every ``status_interval`` for every known device and at every change.
All times here are monotonic (``Clock.monotonic``): ages never move with the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from monitor.alerting.rules import (
    NO_DATA,
    DeviceState,
    RuleSettings,
    conditions,
    grace_of,
    silent_for,
)
from monitor.model import Device, DeviceKey, Reading, State

Status = tuple[bool, str, str]  # (up, state, reason)


class StatusPoint(NamedTuple):
    """One ``device_status`` point (SPEC 4) but its timestamp, in the schema's order."""

    device: Device
    up: bool
    state: str
    reason: str
    last_seen_age_s: float | None


def device_status(
    ds: DeviceState, rules: RuleSettings, grace_from: float, now: float, in_maintenance: bool
) -> Status | None:
    """(up, state, reason); None while a never-seen device is still within its grace."""
    grace_from = grace_of(ds, grace_from)
    if in_maintenance or ds.state == State.MAINTENANCE:
        return False, State.MAINTENANCE.value, "maintenance"
    if ds.online is False or ds.state == State.OFFLINE:
        return False, State.OFFLINE.value, "offline"
    if ds.state == State.FAULT:
        return False, State.FAULT.value, "fault"
    timeout = rules.no_data_timeout
    if timeout is None:  # quiet is alive (a born Sparkplug device): up once heard
        if ds.last_seen is None:
            return None
        return True, ds.state or State.READY.value, "ok"
    if ds.last_seen is None and now - grace_from < timeout:
        return None
    if now - max(ds.last_seen or grace_from, grace_from) >= timeout:
        return False, State.OFFLINE.value, "no_data"
    if ds.last_seen is None or ds.last_seen < grace_from:
        return None  # seen before a restart, not since: unknown until it speaks or times out
    return True, ds.state or State.READY.value, "ok"


class Liveness:
    def __init__(
        self,
        registry: Iterable[Device],
        rules_of: Callable[[Device], RuleSettings],
        in_maintenance: Callable[[Device, float], bool],
    ) -> None:
        self._rules_of = rules_of
        self._in_maintenance = in_maintenance
        # by (site, id): the same id at two posts is two devices (SPEC 2)
        self.devices: dict[DeviceKey, DeviceState] = {d.key: DeviceState(d) for d in registry}
        self._written: dict[DeviceKey, Status] = {}
        self.since: dict[DeviceKey, float] = {}  # since when each is up / down (and why)
        self.grace_from = 0.0

    def restore(self, saved: Iterable[DeviceState]) -> None:
        """Last-seen times and states from before a restart (registry changes win)."""
        for ds in saved:
            current = self.devices.get(ds.device.key)
            if current is not None and current.device != ds.device:
                ds.device = current.device
            self.devices[ds.device.key] = ds

    def expect(self, registry: Iterable[Device], now: float) -> list[Device]:
        """The registry of a reloaded config (SPEC 10): a device known already keeps all
        that is known of it (last seen, state, timers: no fresh grace), with its entry's
        site, area and kind; a new one is expected from ``now`` on (its own grace). Returns
        the new ones."""
        added = []
        for d in registry:
            ds = self.devices.get(d.key)
            if ds is None:
                self.devices[d.key] = DeviceState(d, expected_from=now)
                added.append(d)
            elif ds.device != d:
                ds.device = d
        return added

    def rules_of(self, device: Device) -> RuleSettings:
        return self._rules_of(device)

    def use_rules(self, rules_of: Callable[[Device], RuleSettings]) -> None:
        """The rule settings of a reloaded config."""
        self._rules_of = rules_of

    def forget(self, key: DeviceKey) -> bool:
        """A device a person said is gone (SPEC 5): False if there was none."""
        self._written.pop(key, None)
        self.since.pop(key, None)
        return self.devices.pop(key, None) is not None

    def pause(self, seconds: float, now: float) -> None:
        """The monitor itself stood still for ``seconds`` (SIGSTOP, a paused VM): every
        device's timers stand still as long, as during a broker outage, so that what waits
        in the socket is read before anything counts as silence."""
        for ds in self.devices.values():
            for name in ("last_seen", "state_since", "offline_since", "expected_from"):
                t = getattr(ds, name)
                if t is not None:
                    setattr(ds, name, min(now, t + seconds))
            for rule, t in ds.threshold_since.items():
                ds.threshold_since[rule] = min(now, t + seconds)
        self.grace_from = min(now, self.grace_from + seconds)

    def observe(self, reading: Reading, received: float) -> bool:
        """Update from one message; True when the device's state changed (rules care)."""
        if reading.historical:  # store-and-forward: its time is past, it says nothing of now
            return False
        device = reading.device
        ds = self.devices.get(device.key)
        if ds is None:
            if reading.retained:
                # old news the broker resends at every subscribe (a decommissioned
                # device's Last Will, one a person forgot): no device is known by it alone
                return False
            ds = self.devices[device.key] = DeviceState(device)
        elif ds.device is not device:
            # the same device, moved (a discovered one's area follows its topic) or as
            # restored: what is known of it stays, its fault and its timers too
            ds.device = device
        changed = False
        if not reading.retained:  # a retained status is old news, not a sign of life
            ds.last_seen = received
            if reading.channel != "status" and ds.online is False:
                ds.online, ds.offline_since, changed = True, None, True
        if reading.online is not None and reading.online != ds.online:
            ds.online = reading.online
            ds.offline_since = None if reading.online else received
            changed = True
        state = reading.state
        if state is None and reading.online and ds.state == State.OFFLINE:
            state = State.READY.value  # "online" after its Last Will: offline no longer holds
        if state is not None and state != ds.state:
            ds.state, ds.state_since, changed = state, received, True
        if reading.code is not None:
            ds.code = reading.code
        if reading.fields and reading.channel == "telemetry":
            ds.observe_metrics(reading.fields, received, self._rules_of(device).thresholds)
        return changed

    def status_point(self, key: DeviceKey, now: float, force: bool = False) -> StatusPoint | None:
        """The device_status point, if it changed since the last one written (or force);
        None too for a device not known (only a retained message of it was heard)."""
        ds = self.devices.get(key)
        if ds is None:
            return None
        status = device_status(
            ds,
            self._rules_of(ds.device),
            self.grace_from,
            now,
            self._in_maintenance(ds.device, now),
        )
        if status is None or (not force and status == self._written.get(key)):
            return None
        previous = self._written.get(key)
        if previous is None or (previous[0], previous[2]) != (status[0], status[2]):
            self.since[key] = now  # up/down/why changed (not just ready <-> busy)
        self._written[key] = status
        up, state, reason = status
        age = None if ds.last_seen is None else max(0.0, now - ds.last_seen)
        return StatusPoint(ds.device, up, state, reason, age)

    def status_points(self, now: float, force: bool) -> list[StatusPoint]:
        """device_status of every device: all of them (force) or those that changed."""
        points = []
        for key in self.devices:
            point = self.status_point(key, now, force)
            if point is not None:
                points.append(point)
        return points

    def status(self, key: DeviceKey, now: float) -> Status | None:
        ds = self.devices[key]
        return device_status(
            ds,
            self._rules_of(ds.device),
            self.grace_from,
            now,
            self._in_maintenance(ds.device, now),
        )

    def pending(self, key: DeviceKey, now: float) -> list[str]:
        """Conditions on their way to an alert: a fault or Last Will still within its
        `for`, or a silence past half the no_data timeout (the board shows these amber)."""
        ds = self.devices[key]
        rules = self._rules_of(ds.device)
        silent = silent_for(ds, self.grace_from, now)
        half = (rules.no_data_timeout or 0.0) / 2
        return [
            c.rule
            for c in conditions(ds, rules, self.grace_from)
            if c.fires_at > now and (c.rule != NO_DATA or silent >= half)
        ]
