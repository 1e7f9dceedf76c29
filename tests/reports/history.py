"""A scripted hour of `device_status` history with the availability figures worked out by
hand: the report's known answers, and data for the dashboards' queries."""

from __future__ import annotations

from monitor.sim.devservers import InfluxDB
from monitor.sink import lineproto
from tests.helpers import write_lines

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
    write_lines(influxd.url, db, lines, precision="ms")
