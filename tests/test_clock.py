"""The monotonic clock carried across restarts (clock.py, app.resume_clock), SPEC 5: a start
with the host's clock wrong neither repeats nor escalates early and shows no device up
that was not heard. The host's clocks, boot and NTP state are played by ``Host``; the
monitor is built by ``app.build`` over a real store, as ``monitor run`` builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import app
from monitor.app import Parts
from monitor.clock import BETWEEN_RUNS_S, Mark, SystemClock, resume_anchor, wall_offset
from monitor.config import load_config
from monitor.stats import Stats
from tests.helpers import ALERT_TIMEOUT, alerting_config

T0 = 1_790_000_000.0
REPEAT_S = 120.0
ESCALATE_S = 60.0


class Host:
    """The kernel as a test plays it: ``run`` passes time on both clocks, ``step`` moves
    only the wall clock, ``reboot`` starts a new boot (its monotonic clock from 0)."""

    def __init__(self, synced: bool = False) -> None:
        self.wall, self.mono, self.boot, self.synced = T0, 1000.0, "boot-1", synced

    def clock(self) -> SystemClock:
        return SystemClock(lambda: self.wall, lambda: self.mono, lambda: self.boot, self.is_synced)

    def is_synced(self) -> bool:
        return self.synced

    def run(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.wall += seconds

    def reboot(self, down: float, boot: str, uptime: float = 20.0) -> None:
        self.wall += down + uptime
        self.mono = uptime
        self.boot = boot


class Monitor:
    """``build`` and ``restore`` as ``monitor run`` does, the alert engine driven by hand
    (the broker taken as connected), ``stop`` saving what the stop saves."""

    def __init__(self, path: Path, host: Host) -> None:
        self.host = host
        self.parts: Parts = app.build(load_config(path), host.clock(), Stats())
        self.parts.restore()

    @property
    def now(self) -> float:
        return self.parts.clock.monotonic()

    def until(self, t: float) -> None:
        """The host's clocks on to this monotonic time."""
        self.host.run(t - self.now)

    def evaluate(self) -> list[tuple[str, str]]:
        """One pass of the engine (as the alert loop does it): who is told what."""
        p = self.parts
        p.engine.wall_offset = wall_offset(p.clock)
        out = p.engine.evaluate(p.liveness.devices, self.now, p.liveness.grace_from, None)
        p.store.save_alerts(out.changed.values())
        return sorted((n.payload["device"], n.event) for n in out.notifications)

    def hear(self, device: str) -> None:
        self.parts.liveness.devices[("aktau", device)].last_seen = self.now

    def status(self, device: str) -> tuple[bool, str, str] | None:
        return self.parts.liveness.status(("aktau", device), self.now)

    def stop(self, killed: bool = False) -> None:
        """As the stop does: last-seen times and the clock's mark saved (not if killed)."""
        if not killed:
            self.parts.status_tick()
        for close in (self.parts.store.close, self.parts.quarantine.close):
            close()
        if self.parts.spool is not None:
            self.parts.spool.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return alerting_config(
        tmp_path / "m.yaml",
        mqtt_port=1,
        influx_url="http://127.0.0.1:1",
        database="db",
        channels=["webhook:http://127.0.0.1:1/alerts"],
        devices=["xs-a", "xs-b"],
        repeat=f"{REPEAT_S:.0f}s",
        escalate_after=f"{ESCALATE_S:.0f}s",
    )


def first_run(config: Path, synced: bool = False) -> Host:
    """A run in which xs-b never speaks (no_data fired and notified at T0 + 3) and xs-a
    talks until the stop, at T0 + 13."""
    host = Host(synced)
    m = Monitor(config, host)
    m.until(T0 + 3)
    m.hear("xs-a")
    assert m.evaluate() == [("xs-b", "firing")]
    m.until(T0 + 13)
    m.hear("xs-a")
    m.stop()
    return host


def after_restart(config: Path, host: Host) -> Monitor:
    """The restarted monitor: xs-a (which died with the stop) is not up, and xs-b's alert
    is neither repeated nor escalated."""
    m = Monitor(config, host)
    assert m.status("xs-a") is None  # not heard since the start: unknown, not up
    assert m.evaluate() == []
    # and no part read the clock before it was carried on: the broker is away since now
    assert (m.parts.source.down_since, m.parts.api.started) == (m.now, m.now)
    return m


@pytest.mark.parametrize("step", [+20 * 60, -3600])
def test_same_boot_the_wall_clock_wrong_changes_nothing(config: Path, step: float) -> None:
    host = first_run(config)
    host.run(5)
    host.step(step)
    m = after_restart(config, host)
    host.run(ALERT_TIMEOUT + 0.5)  # on time, by the kernel's clock
    assert m.status("xs-a") == (False, "offline", "no_data")
    assert m.evaluate() == [("xs-a", "firing")]
    m.until(T0 + 3 + ESCALATE_S - 0.5)
    assert m.evaluate() == []
    m.until(T0 + 3 + ESCALATE_S)
    assert m.evaluate() == [("xs-b", "escalation")]
    m.until(T0 + 3 + REPEAT_S)
    assert ("xs-b", "repeat") in m.evaluate()
    # times shown on the wall clock as it reads now (stepped), not as it read at firing
    alert = m.parts.engine.open[("no_data", "aktau", "xs-b")]
    assert m.parts.engine.wall(alert.fired_at) == pytest.approx(host.wall - REPEAT_S)


@pytest.mark.parametrize("step", [+20 * 60, -3600, 0])
def test_another_boot_unsynchronized_counts_the_time_between_runs_as_nothing(
    config: Path, step: float
) -> None:
    host = first_run(config)
    host.reboot(down=300, boot="boot-2")
    host.step(step)
    m = after_restart(config, host)
    host.run(ALERT_TIMEOUT + 0.5)
    assert m.status("xs-a") == (False, "offline", "no_data")
    assert m.evaluate() == [("xs-a", "firing")]
    # late by the time the host was away, never early: 60 s after firing, of which 10
    # passed before the stop
    host.run(ESCALATE_S - 10 - ALERT_TIMEOUT - 1)
    assert m.evaluate() == []
    host.run(1)
    assert m.evaluate() == [("xs-b", "escalation")]


def test_another_boot_synchronized_trusts_the_wall_clock(config: Path) -> None:
    """NTP had set the clock before the stop and has set it again: the 5 min the host was
    away count, so the escalation and the repeat are due at once."""
    host = first_run(config, synced=True)
    host.reboot(down=300, boot="boot-2")
    m = Monitor(config, host)
    assert m.status("xs-a") is None  # a fresh grace at the start, as always
    assert m.evaluate() == [("xs-b", "escalation"), ("xs-b", "repeat")]
    assert m.now == pytest.approx(T0 + 13 + 300 + 20)


def test_the_wall_clock_trusted_only_if_it_was_synchronized_before_the_stop_too(
    config: Path,
) -> None:
    """The first run's clock was not set (its mark says so): the time between the runs by
    the wall clock could be anything, and counts as nothing."""
    host = first_run(config)
    host.synced = True  # synchronized now, not when the mark was written
    host.reboot(down=3600, boot="boot-2")
    after_restart(config, host)


def test_a_run_killed_between_two_marks(config: Path) -> None:
    """A repeat saved after the last mark (a SIGKILL before the next status tick): after a
    reboot the next one is due a repeat interval after it, not early nor later by the
    time since the mark."""
    host = first_run(config)
    m = Monitor(config, host)  # its mark at the start, T0 + 13
    m.until(T0 + 3 + REPEAT_S)
    assert m.evaluate() == [("xs-a", "firing"), ("xs-b", "escalation"), ("xs-b", "repeat")]
    m.stop(killed=True)
    host.reboot(down=60, boot="boot-2")
    host.step(+3600)
    m = after_restart(config, host)
    host.run(REPEAT_S - 0.5)
    assert ("xs-b", "repeat") not in m.evaluate()
    host.run(0.5)
    assert ("xs-b", "repeat") in m.evaluate()


def test_resume_anchor() -> None:
    mark = Mark("boot-1", anchor=T0, monotonic=T0 + 500, wall=T0 + 500, synchronized=True)
    nothing = lambda: None  # noqa: E731
    # the same boot: the same anchor, whatever the wall clock says
    same = resume_anchor(mark, nothing, "boot-1", False, wall=0.0, mono=600)
    assert (same.anchor, same.how, same.down_s) == (T0, "same_boot", 100)
    # the same boot id, but the kernel's clock behind the mark: not the same clock
    behind = resume_anchor(mark, nothing, "boot-1", True, wall=T0 + 900, mono=400)
    assert (behind.how, behind.anchor + 400) == ("wall_clock", T0 + 900)
    # no boot id here (not Linux): never taken for the same boot
    assert resume_anchor(mark, nothing, None, False, T0, 10).how == "unsynchronized"
    # another boot, not synchronized: on from the latest stored time
    later = resume_anchor(mark, lambda: T0 + 520, "boot-2", False, wall=T0 - 3600, mono=30)
    assert later.how == "unsynchronized"
    assert (later.anchor + 30, later.down_s) == (pytest.approx(T0 + 520), BETWEEN_RUNS_S)
    # another boot, synchronized: the wall clock, but never backwards
    slow = resume_anchor(mark, nothing, "boot-2", True, wall=T0, mono=30)
    assert (slow.anchor + 30, slow.down_s) == (pytest.approx(T0 + 500), BETWEEN_RUNS_S)
    # a state from before marks: its times read like the wall clock of the last run
    old = resume_anchor(None, lambda: T0 + 500, "boot-1", True, wall=T0 + 800, mono=30)
    assert (old.how, old.anchor + 30) == ("wall_clock", T0 + 800)
    # nothing stored: the wall clock
    fresh = resume_anchor(None, nothing, "boot-1", False, wall=T0, mono=30)
    assert (fresh.how, fresh.anchor + 30, fresh.down_s) == ("fresh", T0, None)


def test_a_mark_not_readable_is_no_mark() -> None:
    mark = Mark("b", 1.0, 2.0, 3.0, True)
    assert Mark.from_json(mark.to_json()) == mark
    for text in (None, "", "[]", "{}", '{"boot_id": null, "anchor": "x"}', "not json"):
        assert Mark.from_json(text) is None
