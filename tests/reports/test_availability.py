"""The availability report against a scripted history with answers computed by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.reports.availability import availability
from monitor.sim.devservers import InfluxDB
from tests.helpers import ROOT
from tests.reports.history import EXPECTED, HOUR, T0, L, write_history


@pytest.mark.integration
def test_report_matches_the_hand_computed_figures(
    influxd: InfluxDB, database: str, tmp_path: Path
) -> None:
    write_history(influxd, database)
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"influx: {{url: '{influxd.url}', database: {database}}}\n")
    iso = lambda t: datetime.fromtimestamp(t, UTC).isoformat()  # noqa: E731
    args = [
        sys.executable,
        "-m",
        "monitor",
        "report",
        "availability",
        "-c",
        str(cfg),
        "--since",
        iso(T0),
        "--until",
        iso(T0 + HOUR),
        "--max-gap",
        "45",
    ]
    out = subprocess.run(
        [*args, "--format", "json"], capture_output=True, text=True, cwd=ROOT, check=True
    )
    got = {d["device"]: d for d in json.loads(out.stdout)["devices"]}
    assert set(got) == set(EXPECTED)
    for device, (pct, unplanned, planned, outages, mttr, mtbf, unknown) in EXPECTED.items():
        d = got[device]
        assert (
            d["availability_pct"],
            d["unplanned_s"],
            d["planned_s"],
            d["outages"],
            d["mttr_s"],
            d["mtbf_s"],
            d["unknown_s"],
        ) == pytest.approx((pct, unplanned, planned, outages, mttr, mtbf, unknown)), device

    table = subprocess.run(
        [*args, "--kind", "xray_scanner"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert "xs-01" in table.stdout and "75.00 %" in table.stdout and "rpm-01" not in table.stdout
    csv_out = subprocess.run(
        [*args, "--format", "csv"], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert csv_out.stdout.splitlines()[0].startswith("site,area,kind,device,monitored_s")
    assert len(csv_out.stdout.splitlines()) == 4


def test_an_outage_under_way_at_the_start_counts_and_ends_with_the_window() -> None:
    pts = [(T0 - 30, False, "no_data"), (T0 + 60, True, "ok")]
    a = availability(pts, T0, T0 + 120, 300, L)
    assert (a.unplanned_s, a.up_s, a.outages, a.mttr_s, a.availability_pct) == (60, 60, 1, 60, 50.0)


def test_gaps_are_unknown_not_downtime() -> None:
    pts = [(T0, True, "ok"), (T0 + 1000, False, "fault")]
    a = availability(pts, T0, T0 + 1100, 45, L)
    assert (a.up_s, a.unplanned_s, a.unknown_s) == (45, 45, 1010)


def test_maintenance_is_excluded_from_the_denominator() -> None:
    pts = [(T0, False, "maintenance"), (T0 + 50, True, "ok")]
    a = availability(pts, T0, T0 + 100, 100, L)
    assert (a.planned_s, a.availability_pct, a.outages) == (50, 100.0, 0)


def test_no_data_at_all() -> None:
    a = availability([], T0, T0 + 100, 45, L)
    assert (a.monitored_s, a.availability_pct, a.unknown_s) == (0, None, 100)
