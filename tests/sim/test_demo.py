"""`make demo`'s program, run briefly: servers, monitor, simulator, the scripted incident."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
    deadline = time.monotonic() + 90
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Status board" in line:
                board = line.split()[2].rstrip("/")
                with urllib.request.urlopen(f"{board}/", timeout=5) as r:
                    assert b"Inspection equipment" in r.read()
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
    # the simulated post reached the monitor: the devices' data is in the monitor's state
    assert (tmp_path / "demo" / "state" / "state.db").exists()
