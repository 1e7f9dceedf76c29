"""Jittered exponential backoff, shared by every reconnect / retry loop."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential with equal jitter: half of the step fixed, half random, capped.

    Jitter keeps many collectors (or one collector's channels) from retrying in step.
    """
    ceiling: float = min(maximum, initial * 2.0 ** min(attempt, 30))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)
