"""The two clocks, read in one place; everything else gets a Clock passed in.

- ``now()``: the wall clock, for timestamps (points, records, what people read). It steps
  when NTP or an operator sets the time.
- ``monotonic()``: for every deadline, duration and age. It never steps. Its values read
  like epoch seconds (the kernel's monotonic clock plus an anchor), so times kept in the
  store still mean something after a restart; shown to people they are converted with
  ``wall()``, which adds whatever the wall clock says differently.

The anchor outlives the process (``SystemClock.resume``, ``Mark``): within one boot the
kernel's monotonic clock keeps counting across restarts, so the next run takes the same
anchor and every stored time keeps its exact meaning, whatever the wall clock says at
that start (before NTP has set it: SPEC 5). Across a reboot, or with the state moved to
another host, the wall clock is the only measure of the time between the runs, and it
is trusted only when the kernel says it is synchronized; otherwise that time is taken as
nothing, so that no repeat or escalation comes early and no device seems heard since.
"""

from __future__ import annotations

import ctypes
import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # a new random one at every boot
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronized (STA_UNSYNC)
_TIMEX_SIZE = 512  # more than struct timex is anywhere; modes=0 (read only) is all zeros
# The least time between two runs, counted when nothing better is known: the runs did not
# overlap, so a time saved by the last is before anything the next one reads.
BETWEEN_RUNS_S = 0.001


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds that never step, read like epoch seconds (see the module's doc)."""
        ...


def boot_id() -> str | None:
    """This boot's id (Linux; the host's, in a container); None where there is none."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def synchronized() -> bool:
    """Whether the kernel says NTP (timesyncd, chrony, ntpd) has set the wall clock; False
    where it cannot tell (no adjtimex, refused by a sandbox): the safe answer here."""
    try:
        state = int(_libc().adjtimex(ctypes.create_string_buffer(_TIMEX_SIZE)))
    except (OSError, AttributeError):
        return False
    return 0 <= state < _TIME_ERROR


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Mark:
    """What the next start needs to carry the monotonic clock on: the boot and anchor it
    was read with, and the last moment this run was known alive, on both clocks."""

    boot_id: str | None
    anchor: float
    monotonic: float
    wall: float
    synchronized: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> Mark | None:
        """None for nothing, or for what is not a mark (written by another version)."""
        if text is None:
            return None
        try:
            data = json.loads(text)
            return cls(
                None if data["boot_id"] is None else str(data["boot_id"]),
                float(data["anchor"]),
                float(data["monotonic"]),
                float(data["wall"]),
                bool(data["synchronized"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Resumed:
    anchor: float
    how: str  # same_boot, wall_clock (synchronized), unsynchronized, fresh
    down_s: float | None  # the time between the runs, as counted (None: nothing before)


def resume_anchor(
    mark: Mark | None,
    latest: Callable[[], float | None],
    boot: str | None,
    synced: bool,
    wall: float,
    mono: float,
) -> Resumed:
    """The anchor of this run (its monotonic time is the kernel's ``mono`` plus it).

    ``mark``: the last run's; ``latest``: the latest time in the store (later than the
    mark after a run killed between two marks; read only after a reboot); ``boot``,
    ``synced``, ``wall``, ``mono``: this boot's id, whether the kernel says the wall clock
    is synchronized, the two clocks now."""
    if (
        mark is not None
        and boot is not None
        and mark.boot_id == boot
        # and the same kernel clock, gone on since the mark (not a time namespace's)
        and mark.monotonic - mark.anchor <= mono
    ):
        return Resumed(mark.anchor, "same_boot", mono + mark.anchor - mark.monotonic)
    stored = [t for t in (None if mark is None else mark.monotonic, latest()) if t is not None]
    last = max(stored, default=None)
    if last is None:  # nothing stored that this clock must agree with
        return Resumed(wall - mono, "fresh", None)
    # The wall clock when the last run was last alive; without a mark (a state from before
    # marks) the stored times themselves read like the wall clock.
    wall_then = last if mark is None else mark.wall + (last - mark.monotonic)
    if synced and (mark is None or mark.synchronized):
        down = max(BETWEEN_RUNS_S, wall - wall_then)
        return Resumed(last + down - mono, "wall_clock", down)
    return Resumed(last + BETWEEN_RUNS_S - mono, "unsynchronized", BETWEEN_RUNS_S)


class SystemClock:
    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        boot: Callable[[], str | None] = boot_id,
        synced: Callable[[], bool] = synchronized,
    ) -> None:
        """The host's clocks; tests hand in their own sources to play a reboot."""
        self._wall, self._mono, self._synced = wall, mono, synced
        self._boot = functools.cache(boot)  # one boot for the life of a process
        self._anchor = wall() - mono()

    def now(self) -> float:
        return self._wall()

    def monotonic(self) -> float:
        return self._mono() + self._anchor

    def resume(self, mark: Mark | None, latest: Callable[[], float | None]) -> Resumed:
        """Take the anchor the stored times were written with (see ``resume_anchor``).
        Before any part reads ``monotonic()``: what it read before would mean nothing."""
        resumed = resume_anchor(
            mark, latest, self._boot(), self._synced(), self._wall(), self._mono()
        )
        self._anchor = resumed.anchor
        return resumed

    def mark(self) -> Mark:
        """Now, for the next start: saved at start, every status tick and at the stop."""
        return Mark(self._boot(), self._anchor, self.monotonic(), self._wall(), self._synced())


def now_us(clock: Clock) -> int:
    """The wall clock in epoch microseconds: the precision points are written with."""
    return int(clock.now() * 1_000_000)


def wall_offset(clock: Clock) -> float:
    """What the wall clock says minus the monotonic clock: 0 until either stepped (NTP, a
    start with the clock wrong, a reboot)."""
    return clock.now() - clock.monotonic()


def wall(clock: Clock, t: float | None) -> float | None:
    """A monotonic time as the wall clock would say it now."""
    return None if t is None else t + wall_offset(clock)
