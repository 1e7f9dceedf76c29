"""The two clocks, read in one place; everything else gets a Clock passed in.

- ``now()``: the wall clock, for timestamps (points, records, what people read). It steps
  when NTP or an operator sets the time.
- ``monotonic()``: for every deadline, duration and age. It never steps. Its values read
  like epoch seconds (it is the wall clock at start-up plus the monotonic time since), so
  times kept in the store still mean something after a restart; shown to people they are
  converted with ``wall()``, which adds whatever the wall clock stepped since.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds that never step, anchored to the wall clock at start-up."""
        ...


class SystemClock:
    def __init__(self) -> None:
        self._anchor = time.time() - time.monotonic()

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic() + self._anchor


def now_us(clock: Clock) -> int:
    """The wall clock in epoch microseconds: the precision points are written with."""
    return int(clock.now() * 1_000_000)


def wall_offset(clock: Clock) -> float:
    """How far the wall clock stepped since start-up (0 when it never did)."""
    return clock.now() - clock.monotonic()


def wall(clock: Clock, t: float | None) -> float | None:
    """A monotonic time as the wall clock would say it now."""
    return None if t is None else t + wall_offset(clock)
