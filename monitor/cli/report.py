"""Reports from the InfluxDB history."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from monitor import durations
from monitor.cli.common import (
    ConfigOption,
    LangOption,
    add_row,
    app,
    complain,
    load,
    new_table,
    pick_language,
    show,
    styled,
)
from monitor.config import Config
from monitor.errors import MonitorError
from monitor.i18n import N_, Language, texts
from monitor.reports.availability import Availability, report
from monitor.reports.influxql import InfluxQuery
from monitor.reports.release_time import ReleaseTime
from monitor.reports.release_time import report as release_report

if TYPE_CHECKING:  # rich is imported when something is printed
    from rich.table import Table

T = TypeVar("T")

report_app = typer.Typer(help="Reports from the InfluxDB history.", no_args_is_help=True)
app.add_typer(report_app, name="report")


def _when(text: str, now: float) -> float:
    """``7d`` (ago), ``now``, or an RFC 3339 time."""
    if text == "now":
        return now
    try:
        return now - durations.parse(text)
    except ValueError:
        pass
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise typer.BadParameter(f"{text!r}: give a time zone, e.g. 2026-11-01T00:00:00+05:00")
    return dt.timestamp()


def _hours(seconds: float | None, lang: Language = "en") -> str:
    if seconds is None:
        return "-"
    return durations.brief(seconds) if lang == "en" else texts(lang).duration(seconds)


@report_app.command("availability")
def report_availability(
    since: Annotated[str, typer.Option(help="7d (ago) or RFC 3339")] = "7d",
    until: Annotated[str, typer.Option(help="now, 1d (ago) or RFC 3339")] = "now",
    site: Annotated[str | None, typer.Option()] = None,
    area: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    max_gap: Annotated[
        float | None,
        typer.Option(
            help="Seconds a status point holds without a newer one (default 3 x status_interval)."
        ),
    ] = None,
    config: ConfigOption = None,
    lang: LangOption = None,
) -> None:
    """Per device: availability %, unplanned downtime, planned maintenance, outages, MTTR,
    MTBF (definitions in the README)."""
    cfg = load(config)
    chosen = pick_language(lang, cfg.language)
    start, end = _window(since, until, fmt)
    gap = max_gap or 3 * cfg.status_interval
    where = {"site": site, "area": area, "kind": kind}
    rows = _queried(cfg, lambda query: report(query, start, end, gap, where))
    if _emitted(fmt, start, end, "devices", [r.as_dict() for r in rows]):
        return
    show(availability_table(rows, start, end, chosen))


def availability_table(rows: list[Availability], start: float, end: float, lang: Language) -> Table:
    """``monitor report availability`` as a table, in ``lang``."""
    t = texts(lang)
    table = new_table(
        N_("site"),
        N_("area"),
        N_("device"),
        N_("kind"),
        N_("availability"),
        N_("unplanned"),
        N_("planned"),
        N_("outages"),
        N_("MTTR"),
        N_("MTBF"),
        N_("unknown"),
        title=_title(N_("Availability"), start, end, lang),
        lang=lang,
    )
    for r in rows:
        pct = "-" if r.availability_pct is None else _pct(r.availability_pct, lang, 2)
        style = (
            "green"
            if (r.availability_pct or 0) >= 99
            else "yellow"
            if (r.availability_pct or 0) >= 95
            else "red"
        )
        add_row(
            table,
            r.site,
            r.area,
            r.device,
            t.kind(r.kind),
            styled(style, pct),
            _hours(r.unplanned_s, lang),
            _hours(r.planned_s, lang),
            str(r.outages),
            _hours(r.mttr_s, lang),
            _hours(r.mtbf_s, lang),
            _hours(r.unknown_s, lang),
        )
    return table


def _pct(value: float, lang: Language, digits: int) -> str:
    """``99.50 %`` (ru, kk: ``99,50 %``)."""
    return f"{texts(lang).number(value, digits)} %"


def _emitted(fmt: str, start: float, end: float, key: str, rows: list[dict[str, object]]) -> bool:
    """JSON or CSV on stdout (True), or nothing for a table (False)."""
    if fmt == "json":
        print(json.dumps({"since": start, "until": end, key: rows}, indent=2))
        return True
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["site"])
        writer.writeheader()
        writer.writerows(rows)
        return True
    return False


def _queried(cfg: Config, run: Callable[[InfluxQuery], T]) -> T:
    """A report's rows from InfluxDB; a failing query ends the command (exit 1), said once."""
    try:
        return run(InfluxQuery(cfg.influx))
    except (OSError, MonitorError) as e:  # also an unusable influx.ca_file
        complain(f"cannot query InfluxDB at {cfg.influx.url}: ", str(e))
        raise typer.Exit(1) from None


def _window(since: str, until: str, fmt: str) -> tuple[float, float]:
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")
    now = time.time()
    start, end = _when(since, now), _when(until, now)
    if end <= start:
        raise typer.BadParameter("--until must be after --since")
    return start, end


@report_app.command("release-time")
def report_release_time(
    since: Annotated[str, typer.Option(help="7d (ago) or RFC 3339")] = "7d",
    until: Annotated[str, typer.Option(help="now, 1d (ago) or RFC 3339")] = "now",
    site: Annotated[str | None, typer.Option()] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    config: ConfigOption = None,
    lang: LangOption = None,
) -> None:
    """Per site, all trucks and inspected yes/no: passages, mean, median, p90, p95 release
    time, the share released within 30/60/120 min, unmatched entries; and the downtime
    impact: dwell of passages that overlapped an equipment outage vs. the others."""
    cfg = load(config)
    chosen = pick_language(lang, cfg.language)
    start, end = _window(since, until, fmt)
    gap = 3 * cfg.status_interval
    max_dwell = cfg.passages.max_dwell if cfg.passages else 86400.0
    rows = _queried(cfg, lambda query: release_report(query, start, end, gap, max_dwell, site))
    if _emitted(fmt, start, end, "sites", [r.as_dict() for r in rows]):
        return
    show(release_table(rows, start, end, chosen))


def release_table(rows: list[ReleaseTime], start: float, end: float, lang: Language) -> Table:
    """``monitor report release-time`` as a table, in ``lang``."""
    t = texts(lang)
    table = new_table(
        N_("site"),
        N_("inspected"),
        N_("passages"),
        N_("mean"),
        N_("median"),
        N_("p90"),
        N_("p95"),
        N_("within 30 min"),
        N_("within 60 min"),
        N_("within 120 min"),
        N_("unmatched"),
        N_("outage: passages"),
        N_("outage: median"),
        N_("outage: p90"),
        N_("clear: passages"),
        N_("clear: median"),
        N_("clear: p90"),
        title=_title(N_("Release time"), start, end, lang),
        lang=lang,
    )
    for r in rows:
        add_row(
            table,
            r.site,
            t.gettext(INSPECTED[r.inspected]),
            str(r.passages),
            *(_hours(x, lang) for x in (r.mean_s, r.median_s, r.p90_s, r.p95_s)),
            *(
                "-" if x is None else _pct(x, lang, 1)
                for x in (r.within_30_min_pct, r.within_60_min_pct, r.within_120_min_pct)
            ),
            "" if r.unmatched is None else str(r.unmatched),
            str(r.outage_passages),
            _hours(r.outage_median_s, lang),
            _hours(r.outage_p90_s, lang),
            str(r.clear_passages),
            _hours(r.clear_median_s, lang),
            _hours(r.clear_p90_s, lang),
        )
    return table


INSPECTED = {"all": N_("all"), "yes": N_("yes"), "no": N_("no")}


def _title(what: str, start: float, end: float, lang: Language) -> str:
    """``Release time, 25 Nov, 19:00 – 26 Nov, 19:00 (Aktau time)``, in ``lang``."""
    t = texts(lang)
    return t.fill(
        t.gettext("%(report)s, %(start)s – %(end)s (Aktau time)"),
        report=t.gettext(what),
        start=t.when(start),
        end=t.when(end),
    )
