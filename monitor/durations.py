"""Durations, as the config writes them (``30s``, ``5m``) and as people read them.

One place for every duration the monitor prints: alert summaries, notifications, the CLI,
the reports and the status board (which gets the text from the API).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

_CONFIG_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_HUMAN_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
# Longer than anything the monitor waits for (MQTT's longest session expiry is 136 years),
# short enough that now plus any duration is still a date (before the year 9999) and a
# number every timer takes: 3000000d or 1e308 is a mistake, refused with its reason.
MAX_SECONDS = 1000 * 365.25 * 86400


def parse(value: Any) -> float:
    """``500ms``, ``30s``, ``5m``, ``1h``, ``7d`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or e.g. 30s, 5m, 1h, 7d")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (m := _CONFIG_RE.match(value)):
            seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        else:
            raise ValueError(f"invalid duration {value!r}: use e.g. 500ms, 30s, 5m, 1h, 7d")
    except OverflowError:  # an integer of hundreds of digits (JSON, YAML)
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds):
        raise ValueError("a duration must be a number (not NaN)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_SECONDS:
        raise ValueError("a duration cannot be longer than 1000 years")
    return seconds


def to_config(seconds: float) -> str:
    """The inverse of ``parse``: how the config would write it (``30s``, ``5m``, ``1h``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def brief(seconds: float) -> str:
    """One unit, for summaries and table cells: ``45 s``, ``5 min``, ``2.5 h``."""
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def human(seconds: float) -> str:
    """The two largest units, as a person says how long: ``45 s``, ``5 min 3 s``,
    ``1 h 2 min``, ``2 d 3 h`` (a zero second unit is left out: ``5 min``)."""
    s = max(0, round(seconds))
    for (unit, size), (next_unit, next_size) in itertools.pairwise(_HUMAN_UNITS):
        if s >= size:
            rest = s % size // next_size
            return f"{s // size} {unit}" + (f" {rest} {next_unit}" if rest else "")
    return f"{s} s"
