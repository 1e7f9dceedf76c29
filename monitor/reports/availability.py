"""Availability per device, from the `device_status` history in InfluxDB.

Definitions (also in the README):
- A device's status is a step function: each `device_status` point holds until the next
  one, but at most ``max_gap`` (default 3 x status_interval). Time not covered that way
  (the monitor itself was down) is *unknown* and left out of every figure.
- monitored = known time in the window; planned = time with reason `maintenance`;
  unplanned = other time with up = 0; up = time with up = 1.
- availability % = up / (monitored - planned) x 100: planned maintenance is not held
  against the equipment.
- outages = number of unplanned-down periods that begin in the window (or are already
  under way at its start); MTTR = unplanned / outages; MTBF = up / outages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from monitor.reports.influxql import Query, unpack

Point = tuple[float, bool, str]  # (time s, up, reason)


@dataclass
class Availability:
    site: str
    area: str
    kind: str
    device: str
    monitored_s: float
    up_s: float
    unplanned_s: float
    planned_s: float
    unknown_s: float
    outages: int
    availability_pct: float | None
    mttr_s: float | None
    mtbf_s: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def availability(
    points: Iterable[Point],
    since: float,
    until: float,
    max_gap: float,
    labels: tuple[str, str, str, str],
) -> Availability:
    """Pure: the figures for one device. Points may start before `since` (the status at the
    window's start) and must be in time order."""
    up = unplanned = planned = 0.0
    outages = 0
    was_down = False
    pts = list(points)
    for i, (t, is_up, reason) in enumerate(pts):
        nxt = pts[i + 1][0] if i + 1 < len(pts) else until
        end = min(nxt, t + max_gap, until)
        start = max(t, since)
        if end <= start:  # wholly before the window
            continue
        span = end - start
        down = not is_up and reason != "maintenance"
        if reason == "maintenance":
            planned += span
        elif is_up:
            up += span
        else:
            unplanned += span
        if down and not was_down:
            outages += 1
        was_down = down and end == nxt  # a gap (unknown) ends an outage's continuity
    monitored = up + unplanned + planned
    base = monitored - planned
    return Availability(
        *labels,
        monitored_s=monitored,
        up_s=up,
        unplanned_s=unplanned,
        planned_s=planned,
        unknown_s=max(0.0, (until - since) - monitored),
        outages=outages,
        availability_pct=round(100 * up / base, 4) if base > 0 else None,
        mttr_s=unplanned / outages if outages else None,
        mtbf_s=up / outages if outages else None,
    )


def outages(points: Iterable[Point], until: float, max_gap: float) -> list[tuple[float, float]]:
    """Pure: the unplanned-down periods (start, end) of one device's status points (in time
    order), each point holding until the next, ``max_gap`` or ``until`` at the most."""
    pts = list(points)
    out: list[tuple[float, float]] = []
    for i, (t, is_up, reason) in enumerate(pts):
        if is_up or reason == "maintenance":
            continue
        nxt = pts[i + 1][0] if i + 1 < len(pts) else until
        end = min(nxt, t + max_gap, until)
        if end <= t:
            continue
        if out and out[-1][1] == t:  # the same outage, point after point
            out[-1] = (out[-1][0], end)
        else:
            out.append((t, end))
    return out


def status_series(
    query: Query, lo_s: float, hi_s: float, filters: dict[str, str | None]
) -> list[tuple[dict[str, str], list[Point]]]:
    """Each device's `device_status` points in [lo_s, hi_s), with its tags."""
    series = query(
        f"SELECT up, reason FROM device_status WHERE time >= {int(lo_s * 1000)}ms"
        f" AND time < {int(hi_s * 1000)}ms{_where(filters)} GROUP BY site, area, kind, device"
    )
    out = []
    for s in series:
        tags, cols, values = unpack(s)
        t_i, up_i, reason_i = cols.index("time"), cols.index("up"), cols.index("reason")
        points = [
            (v[t_i] / 1000, bool(v[up_i]), str(v[reason_i])) for v in values if v[up_i] is not None
        ]
        out.append((tags, points))
    return out


def _where(filters: dict[str, str | None]) -> str:
    clauses = [f"{k} = '{v.replace(chr(39), '')}'" for k, v in filters.items() if v]
    return "".join(f" AND {c}" for c in clauses)


def report(
    query: Query, since: float, until: float, max_gap: float, filters: dict[str, str | None]
) -> list[Availability]:
    """Every device with status points in (or just before) the window."""
    out = [
        availability(
            points,
            since,
            until,
            max_gap,
            (tags["site"], tags["area"], tags["kind"], tags["device"]),
        )
        for tags, points in status_series(query, since - max_gap, until, filters)
    ]
    out.sort(key=lambda a: (a.site, a.area, a.kind, a.device))
    return out
