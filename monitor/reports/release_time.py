"""Release time per site, from the `passages` history in InfluxDB (SPEC 9).

Definitions (also in the README):
- A passage is in the window when its exit (its point's time) is. Its dwell (release time)
  is exit - entry, ``dwell_s``.
- Per site, one row for all passages and one each for inspected yes/no: how many, mean,
  median, p90 and p95 of the dwell (percentiles by nearest rank: the smallest dwell with at
  least that share of passages at or below it), and the share released within 30, 60
  and 120 minutes. ``unmatched``: entries in the window that never reached an exit
  (`events` of type `passage_unmatched`), on the site's "all" row.
- Downtime impact: a passage overlapped an outage when its stay [entry, exit] met an
  unplanned-down period (`device_status` up = 0, not maintenance) of any equipment in its
  site; median and p90 dwell of those passages, beside the median and p90 of the others.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from monitor.reports.availability import outages, status_series
from monitor.reports.influxql import Query, unpack

WITHIN_MIN = (30, 60, 120)


@dataclass(frozen=True)
class Released:
    site: str
    inspected: bool
    entry_s: float
    exit_s: float

    @property
    def dwell_s(self) -> float:
        return self.exit_s - self.entry_s


@dataclass
class ReleaseTime:
    site: str
    inspected: str  # all, yes, no
    passages: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None
    p95_s: float | None
    within_30_min_pct: float | None
    within_60_min_pct: float | None
    within_120_min_pct: float | None
    unmatched: int | None  # on the "all" row
    outage_passages: int
    outage_median_s: float | None
    outage_p90_s: float | None
    clear_passages: int
    clear_median_s: float | None
    clear_p90_s: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def nearest_rank(sorted_values: Sequence[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def figures(
    site: str,
    inspected: str,
    passages: Iterable[Released],
    site_outages: Sequence[tuple[float, float]],
    unmatched: int | None,
) -> ReleaseTime:
    """Pure: one row."""
    passages = list(passages)
    dwell = sorted(p.dwell_s for p in passages)
    during: list[float] = []
    clear: list[float] = []
    for p in passages:
        hit = any(start < p.exit_s and end > p.entry_s for start, end in site_outages)
        (during if hit else clear).append(p.dwell_s)
    during.sort()
    clear.sort()
    n = len(dwell)

    def within(minutes: int) -> float | None:
        return round(100 * sum(d <= minutes * 60 for d in dwell) / n, 2) if n else None

    return ReleaseTime(
        site=site,
        inspected=inspected,
        passages=n,
        mean_s=statistics.fmean(dwell) if dwell else None,
        median_s=_median(dwell),
        p90_s=nearest_rank(dwell, 90),
        p95_s=nearest_rank(dwell, 95),
        within_30_min_pct=within(30),
        within_60_min_pct=within(60),
        within_120_min_pct=within(120),
        unmatched=unmatched,
        outage_passages=len(during),
        outage_median_s=_median(during),
        outage_p90_s=nearest_rank(during, 90),
        clear_passages=len(clear),
        clear_median_s=_median(clear),
        clear_p90_s=nearest_rank(clear, 90),
    )


def release_time(
    passages: Iterable[Released],
    outages_by_site: dict[str, list[tuple[float, float]]],
    unmatched_by_site: dict[str, int],
) -> list[ReleaseTime]:
    """Pure: every site's rows, all / inspected yes / no."""
    by_site: dict[str, list[Released]] = defaultdict(list)
    for p in passages:
        by_site[p.site].append(p)
    rows = []
    for site in sorted(set(by_site) | set(unmatched_by_site)):
        ps = by_site.get(site, [])
        outs = outages_by_site.get(site, [])
        rows.append(figures(site, "all", ps, outs, unmatched_by_site.get(site, 0)))
        for flag, label in ((True, "yes"), (False, "no")):
            rows.append(figures(site, label, [p for p in ps if p.inspected == flag], outs, None))
    return rows


def _quote(value: str) -> str:
    return "'" + value.replace("\\\\", "").replace("'", "") + "'"


def report(
    query: Query, since: float, until: float, max_gap: float, max_dwell: float, site: str | None
) -> list[ReleaseTime]:
    where = f"time >= {int(since * 1000)}ms AND time < {int(until * 1000)}ms"
    if site:
        where += f" AND site = {_quote(site)}"
    passages = []
    for s in query(f"SELECT dwell_s FROM passages WHERE {where} GROUP BY site, inspected"):
        tags, cols, values = unpack(s)
        t_i, d_i = cols.index("time"), cols.index("dwell_s")
        for v in values:
            if v[d_i] is None:
                continue
            exit_s = v[t_i] / 1000
            passages.append(
                Released(tags["site"], tags["inspected"] == "yes", exit_s - v[d_i], exit_s)
            )
    unmatched: dict[str, int] = {}
    for s in query(
        f"SELECT count(n) FROM events WHERE type = 'passage_unmatched' AND {where} GROUP BY site"
    ):
        tags, _, values = unpack(s)
        unmatched[tags["site"]] = int(values[0][1])
    # Statuses back to the earliest entry a passage in the window can have had.
    outages_by_site: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for tags, points in status_series(query, since - max_dwell - max_gap, until, {"site": site}):
        outages_by_site[tags["site"]].extend(outages(points, until, max_gap))
    return release_time(passages, outages_by_site, unmatched)
