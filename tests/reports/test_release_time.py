"""The release-time report (SPEC 9) against passages with figures worked out by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.reports.availability import outages
from monitor.reports.release_time import Released, ReleaseTime, nearest_rank, release_time
from monitor.sim.devservers import InfluxDB
from monitor.sink import lineproto
from tests.helpers import ROOT, write_lines

T0 = 1_790_000_000.0
# (entry s, exit s, inspected) from T0; an outage of aktau's scanner from 5000 to 6000 s
# meets D and E (they were inside then), not A, B or C.
AKTAU = {
    "A": (0, 1200, False),  # 20 min
    "B": (0, 2400, False),  # 40 min
    "C": (600, 4200, True),  # 60 min
    "D": (1000, 8200, True),  # 120 min
    "E": (2000, 11000, True),  # 150 min
}
OUTAGE = (5000.0, 6000.0)

# Worked out by hand. all: dwell 1200 2400 3600 7200 9000; mean 23400 / 5 = 4680; median
# 3600; p90 and p95 by nearest rank: ceil(4.5) = ceil(4.75) = 5th = 9000; within 30 / 60 /
# 120 min: 1, 3, 4 of 5. During the outage D, E: median (7200 + 9000) / 2 = 8100, p90 the
# 2nd = 9000; clear A, B, C: median 2400, p90 the 3rd = 3600.
EXPECTED = {
    ("aktau", "all"): dict(
        passages=5, mean_s=4680, median_s=3600, p90_s=9000, p95_s=9000,
        within_30_min_pct=20.0, within_60_min_pct=60.0, within_120_min_pct=80.0,
        unmatched=2, outage_passages=2, outage_median_s=8100, outage_p90_s=9000,
        clear_passages=3, clear_median_s=2400, clear_p90_s=3600,
    ),
    # yes: 3600 7200 9000; mean 6600; p90 ceil(2.7) = 3rd; within: 0, 1, 2 of 3
    ("aktau", "yes"): dict(
        passages=3, mean_s=6600, median_s=7200, p90_s=9000, p95_s=9000,
        within_30_min_pct=0.0, within_60_min_pct=33.33, within_120_min_pct=66.67,
        unmatched=None, outage_passages=2, outage_median_s=8100, outage_p90_s=9000,
        clear_passages=1, clear_median_s=3600, clear_p90_s=3600,
    ),
    # no: 1200 2400; mean = median 1800; p90 ceil(1.8) = 2nd; within: 1, 2, 2 of 2
    ("aktau", "no"): dict(
        passages=2, mean_s=1800, median_s=1800, p90_s=2400, p95_s=2400,
        within_30_min_pct=50.0, within_60_min_pct=100.0, within_120_min_pct=100.0,
        unmatched=None, outage_passages=0, outage_median_s=None, outage_p90_s=None,
        clear_passages=2, clear_median_s=1800, clear_p90_s=2400,
    ),
    # kuryk: one truck that came in and never left, nothing released
    ("kuryk", "all"): dict(
        passages=0, mean_s=None, median_s=None, p90_s=None, p95_s=None,
        within_30_min_pct=None, within_60_min_pct=None, within_120_min_pct=None,
        unmatched=1, outage_passages=0, outage_median_s=None, outage_p90_s=None,
        clear_passages=0, clear_median_s=None, clear_p90_s=None,
    ),
}  # fmt: skip


def check(rows: list[ReleaseTime] | list[dict[str, object]]) -> None:
    got = {}
    for r in rows:
        d = r.as_dict() if isinstance(r, ReleaseTime) else r
        got[(d["site"], d["inspected"])] = d
    for key, figures in EXPECTED.items():
        for name, value in figures.items():
            assert got[key][name] == pytest.approx(value), (key, name)


def test_release_time_matches_the_hand_computed_figures() -> None:
    passages = [Released("aktau", i, T0 + a, T0 + b) for a, b, i in AKTAU.values()]
    rows = release_time(
        passages,
        {"aktau": [(T0 + OUTAGE[0], T0 + OUTAGE[1])]},
        {"aktau": 2, "kuryk": 1},
    )
    assert [(r.site, r.inspected) for r in rows] == [
        ("aktau", "all"),
        ("aktau", "yes"),
        ("aktau", "no"),
        ("kuryk", "all"),
        ("kuryk", "yes"),
        ("kuryk", "no"),
    ]
    check(rows)


def test_nearest_rank() -> None:
    assert nearest_rank([], 90) is None
    assert nearest_rank([5.0], 90) == 5.0
    assert nearest_rank([float(i) for i in range(1, 11)], 90) == 9.0
    assert nearest_rank([float(i) for i in range(1, 11)], 95) == 10.0


def test_outages_join_points_and_end_at_gaps_and_the_window() -> None:
    points = [
        (0.0, True, "ok"),
        (100.0, False, "offline"),
        (160.0, False, "no_data"),
        (200.0, True, "ok"),
        (300.0, False, "maintenance"),
        (400.0, False, "fault"),
    ]
    assert outages(points, until=450, max_gap=1000) == [(100, 200), (400, 450)]
    assert outages(points, until=450, max_gap=30) == [(100, 130), (160, 190), (400, 430)]


def write(influxd: InfluxDB, db: str) -> None:
    lines = []
    for name, (entry, exit_, inspected) in AKTAU.items():
        tags = {"site": "aktau", "entry_area": "gate-in", "exit_area": "gate-out"}
        tags["inspected"] = "yes" if inspected else "no"
        fields = {"dwell_s": float(exit_ - entry), "plate_hash": f"{name * 16}"}
        lines.append(lineproto.line("passages", tags, fields, int((T0 + exit_) * 1e6)))
    for site, n in (("aktau", 2), ("kuryk", 1)):
        for i in range(n):
            tags = {"site": site, "area": "gate-in", "kind": "anpr_camera", "device": "cam"}
            lines.append(
                lineproto.line(
                    "events",
                    {**tags, "type": "passage_unmatched"},
                    {"plate_hash": f"u{i}", "n": 1},
                    int((T0 + 100 + i) * 1e6),
                )
            )
    # the scanner's status every 15 s (the monitor's status_interval): down 5000-6000 s
    for step in range(-100, 800):
        t = T0 + 15 * step
        down = T0 + OUTAGE[0] <= t < T0 + OUTAGE[1]
        lines.append(
            lineproto.line(
                "device_status",
                {
                    "site": "aktau",
                    "area": "inspection-1",
                    "kind": "xray_scanner",
                    "device": "xs-01",
                },
                {"up": 0 if down else 1, "reason": "fault" if down else "ok", "state": "ready"},
                int(t * 1e6),
            )
        )
    write_lines(influxd.url, db, lines)


@pytest.mark.integration
def test_the_command_reports_them_from_influxdb(
    influxd: InfluxDB, database: str, tmp_path: Path
) -> None:
    write(influxd, database)
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"influx: {{url: '{influxd.url}', database: {database}}}\n")
    iso = lambda t: datetime.fromtimestamp(t, UTC).isoformat()  # noqa: E731
    args = [sys.executable, "-m", "monitor", "report", "release-time", "-c", str(cfg)]
    args += ["--since", iso(T0), "--until", iso(T0 + 12_000)]
    run = lambda *more: subprocess.run(  # noqa: E731
        [*args, *more], capture_output=True, text=True, cwd=ROOT, check=True,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    check(json.loads(run("--format", "json").stdout)["sites"])
    csv_lines = run("--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("site,inspected,passages,mean_s,median_s,p90_s,p95_s")
    assert len(csv_lines) == 7
    table = run().stdout
    assert "Release time" in table and "aktau" in table and "kuryk" in table
    only = json.loads(run("--format", "json", "--site", "kuryk").stdout)["sites"]
    assert {r["site"] for r in only} == {"kuryk"}
    # the headings, the rows' words and durations in the reader's language
    ru = run("--lang", "ru").stdout
    assert "Время выпуска" in ru and "время Актау" in ru and "медиана" in ru
    assert "1 час 18 минут" in ru  # the mean of aktau's all row: 4680 s
    kk = run("--lang", "kk").stdout
    assert "Шығару уақыты" in kk and "1 сағат 18 минут" in kk and "иә" in kk
