"""The alerting runtime: runs the pure AlertEngine at the right moments and carries out
what it decides (persist, record `alerts` and `device_status` points, hand notifications
to the notifier)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from monitor import logs
from monitor.alerting.engine import Alert, AlertEngine, Outcome, Scope, Trouble, Window
from monitor.alerting.liveness import Liveness, StatusPoint
from monitor.alerting.notify import Notifier
from monitor.alerting.store import Store
from monitor.clock import Clock, wall_offset
from monitor.model import BrokerOutage, DeviceKey
from monitor.stats import Stats

log = logs.get(__name__)


class Recorder(Protocol):
    """Where alerting's points go (the wiring writes them to InfluxDB)."""

    def statuses(self, points: list[StatusPoint]) -> None: ...

    def transitions(self, alerts: list[Alert], now: float) -> None: ...


# Evaluate at least this often, whatever the deadlines say: catches devices discovered
# since the last evaluation, and a maintenance window whose wall-clock start moved.
MAX_SLEEP_S = 5.0
# Waking this much later than planned means the monitor stood still (SIGSTOP, a paused VM,
# a starved process): device timers are paused by as much.
STALL_S = 1.0


@dataclass(eq=False)
class AlertService:
    engine: AlertEngine
    liveness: Liveness
    store: Store
    notifier: Notifier
    recorder: Recorder
    clock: Clock
    # the monitor's own outage on the broker side, or None
    broker_outage: Callable[[], BrokerOutage | None]
    # the monitor's own troubles: rule -> what it is while it holds, None when it does not
    monitor_conditions: Callable[[], dict[str, Trouble | None]] = dict
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    stats: Stats = field(default_factory=Stats)

    def _now(self) -> float:
        """Monotonic now; and how the engine shows times, should the wall clock have stepped."""
        self.engine.wall_offset = wall_offset(self.clock)
        return self.clock.monotonic()

    def poke(self) -> None:
        """Something changed (a device, the broker, a window): evaluate now."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            started = time.perf_counter()
            now = self._now()
            outage = self.evaluate(now)
            wake = self.engine.next_wakeup(
                self.liveness.devices,
                now,
                self.liveness.grace_from,
                None if outage is None else outage.since,
            )
            # A pass is O(devices), ~10 ms per 1,000 (bench/README). Resting twice its cost
            # keeps it under a third of a core however often ingest pokes: at 2,000 devices
            # that adds ~25 ms to an alert, at 20,000 ~0.4 s.
            await asyncio.sleep(2 * (time.perf_counter() - started))
            now = self._now()
            sleep = MAX_SLEEP_S if wake is None else min(MAX_SLEEP_S, max(0.0, wake - now))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sleep):
                    await self._wake.wait()
            late = self.clock.monotonic() - (now + sleep)
            if late > STALL_S:  # we stood still: our outage, not the devices'
                self.stats.stalls += 1
                log.warning("monitor.stalled", for_s=round(late, 1))
                self.liveness.pause(late, self.clock.monotonic())

    def evaluate(self, now: float) -> BrokerOutage | None:
        """One pass of the engine at ``now``; returns the broker outage it saw."""
        outage = self.broker_outage()
        outcome = self.engine.evaluate(
            self.liveness.devices,
            now,
            self.liveness.grace_from,
            None if outage is None else outage.since,
            self.monitor_conditions(),
            broker_down_why=None if outage is None else outage.why,
            broker_connected=outage is not None and outage.connected,
        )
        self._apply(outcome, now)
        if outage is None:  # e.g. a device passing its no_data deadline
            self.recorder.statuses(self.liveness.status_points(now, force=False))
        return outage

    def _apply(self, outcome: Outcome, now: float, extra: dict[str, str] | None = None) -> None:
        self.store.save_alerts(outcome.changed.values())
        self.recorder.transitions(outcome.transitions, now)
        for a in outcome.transitions:
            log.info(
                "alert." + a.state,
                alert_id=a.id,
                rule=a.rule,
                device=a.device,
                site=a.site,
                severity=a.severity,
                summary=a.summary,
            )
        self.notifier.submit(outcome.notifications, extra)

    # -- operators' actions (HTTP API) --

    def apply_forget(self, key: DeviceKey, resolution: str) -> None:
        """The engine's part of forgetting a device: its open alerts resolved, told."""
        now = self._now()
        self._apply(self.engine.forget(key, now, resolution), now)

    def acknowledge(self, alert_id: str, by: str) -> Alert | None:
        now = self._now()
        outcome = self.engine.acknowledge(alert_id, now, by)
        if outcome is None:
            return None
        self._apply(outcome, now, {"acked_by": by})
        return self.store.alert(alert_id)

    def add_window(
        self,
        scope: Scope,
        value: str,
        starts: float,
        ends: float,
        reason: str,
        created_by: str,
        site: str | None = None,
    ) -> Window:
        window_id = uuid.uuid4().hex[:10]
        window = Window(window_id, scope, value, starts, ends, reason, created_by, site)
        self.engine.windows[window.id] = window
        self.store.save_window(window)
        self._window_changed()
        return window

    def remove_window(self, window_id: str) -> bool:
        if self.engine.windows.pop(window_id, None) is None:
            return False
        self.store.delete_window(window_id)
        self._window_changed()
        return True

    def forget_windows_ended_before(self, t: float) -> None:
        """Maintenance windows added at run time that ended before ``t`` (wall clock)."""
        ended = [w for w in self.engine.windows.values() if w.created_by != "config" and w.ends < t]
        for w in ended:
            self.engine.windows.pop(w.id)
            self.store.delete_window(w.id)

    def _window_changed(self) -> None:
        self.recorder.statuses(self.liveness.status_points(self._now(), force=False))
        self.poke()
