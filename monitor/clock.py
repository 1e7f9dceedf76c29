"""The one place that reads the wall clock; everything else gets a Clock passed in."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def now_ms(clock: Clock) -> int:
    return int(clock.now() * 1000)
