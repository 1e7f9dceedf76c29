"""The availability report against a scripted history with answers computed by hand."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import lineproto
from monitor.devservers import InfluxDB
from monitor.report import availability
from tests.helpers import ROOT

T0 = 1_790_000_000.0  # the window: [T0, T0 + 1 h)
HOUR = 3600.0
L = ("aktau", "inspection-1", "xray_scanner", "xs-01")


def status_at(device: str, t: float) -> tuple[int, str] | None:
    """The scripted hour (seconds from T0); None = the monitor was not running."""
    if device == "xs-01":
        if 600 <= t < 1200:
            return 0, "no_data"  # a 10 min outage
        if 1800 <= t < 3000:
            return 0, "maintenance"  # 20 min of planned maintenance
    if device == "rpm-01" and (300 <= t < 600 or 2000 <= t < 2300):
        return 0, "offline" if t < 1000 else "fault"  # two 5 min outages
    if device == "gb-01" and 1000 <= t < 1600:
        return None  # a monitor outage: no points at all
    return 1, "ok"


# device -> (availability %, unplanned s, planned s, outages, MTTR s, MTBF s, unknown s)
EXPECTED = {
    "xs-01": (75.0, 600, 1200, 1, 600, 1800, 0),
    "rpm-01": (round(100 * 3000 / 3600, 4), 600, 0, 2, 300, 1500, 0),
    # the point at 1000 - 15 = 985 s holds for max_gap = 45 s: unknown from 1030 to 1600
    "gb-01": (100.0, 0, 0, 0, None, None, 570),
}
KINDS = {"xs-01": "xray_scanner", "rpm-01": "radiation_portal", "gb-01": "gate_barrier"}


def write_history(influxd: InfluxDB, db: str) -> None:
    lines = []
    for device, kind in KINDS.items():
        for step in range(-4, 240):  # from a minute before the window
            t = step * 15.0
            status = status_at(device, t)
            if status is None:
                continue
            up, reason = status
            lines.append(
                lineproto.line(
                    "device_status",
                    {"site": "aktau", "area": "a1", "kind": kind, "device": device},
                    {"up": up, "state": "ready" if up else "offline", "reason": reason},
                    int((T0 + t) * 1000),
                )
            )
    q = urllib.parse.urlencode({"q": f"CREATE DATABASE {db}"})
    urllib.request.urlopen(f"{influxd.url}/query?{q}", data=b"")
    req = urllib.request.Request(
        f"{influxd.url}/write?db={db}&precision=ms", data="\n".join(lines).encode()
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 204


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
