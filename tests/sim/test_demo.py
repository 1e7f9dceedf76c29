"""`make demo`'s program, run briefly: servers, monitor, simulator, the scripted incident."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

REPORT = [sys.executable, "-m", "monitor", "report", "release-time"]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


class _NotTheDemos(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(503, "Debian's own influxd, not the demo's")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def system_influxd() -> Iterator[None]:
    """Something on :8086, as Debian's influxd is where its package started it: the demo's
    InfluxDB goes to another port, and what it prints must say which."""
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 8086), _NotTheDemos)
    except OSError:  # something is there already
        yield
        return
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()


@pytest.mark.usefixtures("system_influxd")
def test_demo_runs_the_incident_and_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.sim.demo",
            "--dir",
            str(tmp_path / "demo"),
            "--duration",
            "30",
            "--silent-at",
            "2",
            "--recover-at",
            "26",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    board = None
    influx_url = ""
    today: dict[str, int] = {}
    sparkplug_barrier: dict[str, object] = {}
    sites: dict[tuple[str, str], dict[str, float]] = {}
    inspected_median: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + 90
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.strip().startswith("InfluxDB"):
                influx_url = line.split()[1]
            if "Status board" in line:
                board = line.split()[2].rstrip("/")
                with urllib.request.urlopen(f"{board}/", timeout=5) as r:
                    assert b"Inspection equipment" in r.read()
            if "ALERT FIRING" in line and board is not None:  # the backfilled day is in
                with urllib.request.urlopen(f"{board}/api/passages", timeout=5) as r:
                    today = json.load(r)["today"]
                with urllib.request.urlopen(f"{board}/api/devices/gb-05", timeout=5) as r:
                    sparkplug_barrier = json.load(r)  # behind the Sparkplug gateway plc-01
                report = subprocess.run(
                    [*REPORT, "--since", "24h", "--format", "json"],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    env={**os.environ, "MONITOR_INFLUX__URL": influx_url},
                    check=True,
                )
                sites = {(r["site"], r["inspected"]): r for r in json.loads(report.stdout)["sites"]}
                # inspected trucks leaving after yesterday's scanner outage (14 h to 10 h
                # ago) against those of a calm morning before it
                for window in (("12h", "8h"), ("24h", "16h")):
                    out = subprocess.run(
                        [*REPORT, "--since", window[0], "--until", window[1], "--format", "json"],
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        env={**os.environ, "MONITOR_INFLUX__URL": influx_url},
                        check=True,
                    )
                    for r in json.loads(out.stdout)["sites"]:
                        if (r["site"], r["inspected"]) == ("aktau", "yes"):
                            inspected_median[window] = r["median_s"]
                printed = next(x for x in lines if "report release-time" in x).strip()
                # as a person pastes it: a shell, no MONITOR_* of ours, the config's InfluxDB
                # elsewhere (the demo's servers are on ports of their own)
                pasted = subprocess.run(
                    [
                        "bash",
                        "-c",
                        printed.replace(".venv/bin/monitor", f"{sys.executable} -m monitor"),
                    ],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    env={k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
                    check=False,
                )
                assert pasted.returncode == 0, printed + pasted.stderr
                assert "aktau" in pasted.stdout
            if time.monotonic() > deadline:
                break
        assert proc.wait(30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:  # Ctrl-C: the demo stops its servers and processes itself
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    out = "".join(lines)
    assert board is not None, out
    assert "ALERT FIRING xs-01 (xray_scanner, inspection-1) sent no data for 20 s" in out
    assert "ALERT RESOLVED xs-01" in out
    assert "stopped;" in out
    # a day of trucks, at once: on the board (from the monitor's state) and in the report
    assert sparkplug_barrier["up"] is True and sparkplug_barrier["last_seen_age_s"] < 5
    assert today["inside"] > 0
    assert today["passages"] > 0 or time.gmtime().tm_hour == 19  # local midnight, UTC+5
    assert 700 < sites[("aktau", "all")]["passages"] < 1100  # 40 trucks an hour
    inspected, plain = sites[("aktau", "yes")], sites[("aktau", "no")]
    assert inspected["median_s"] > plain["median_s"] + 20 * 60
    # the scripted outage made inspected trucks wait: ~110 against ~70 minutes (seed 7)
    assert inspected_median[("12h", "8h")] > 1.25 * inspected_median[("24h", "16h")]
    # the simulated post reached the monitor: the devices' data is in the monitor's state
    assert (tmp_path / "demo" / "state" / "state.db").exists()
