"""The quarantine: bounded on disk, rate-limited in the log, counted by reason."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from monitor.normalize.quarantine import Quarantine
from monitor.stats import Stats
from tests.helpers import ManualClock


def test_quarantine_stays_within_its_bound(tmp_path: Path) -> None:
    stats = Stats()
    q = Quarantine(tmp_path, max_bytes=20_000, clock=ManualClock(), stats=stats)
    for i in range(2000):
        q.reject("customs/a/b/xray_scanner/x/telemetry", b"x" * 100, "malformed_json", f"#{i}", 0)
    q.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["quarantine.1.jsonl", "quarantine.jsonl"]
    assert sum(f.stat().st_size for f in files) <= 20_000
    assert stats.quarantine_bytes == sum(f.stat().st_size for f in files)
    # the newest records are kept
    last = json.loads((tmp_path / "quarantine.jsonl").read_text().splitlines()[-1])
    assert last["detail"] == "#1999"
    assert stats.rejected_by_reason["malformed_json"] == 2000


def test_huge_payloads_are_truncated_in_quarantine(tmp_path: Path) -> None:
    q = Quarantine(tmp_path, max_bytes=10_000_000, clock=ManualClock(), stats=Stats())
    q.reject("t", b"\xff" * 10_000_000, "payload_too_large", "10 MB", 0)
    q.close()
    (record,) = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert record["payload_bytes"] == 10_000_000
    assert record["payload_truncated"] is True
    assert len(record["payload_b64"]) < 100_000


def test_log_once_per_reason_per_minute(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    q = Quarantine(tmp_path, max_bytes=1_000_000, clock=clock, stats=Stats())
    caplog.set_level(logging.WARNING, logger="monitor.quarantine")
    for _ in range(100):
        q.reject("t", b"{", "malformed_json", "d", 0)
        q.reject("t", b"[]", "not_object", "d", 0)
    assert [r.reason for r in caplog.records] == ["malformed_json", "not_object"]  # type: ignore[attr-defined]
    clock.advance(59)
    q.reject("t", b"{", "malformed_json", "d", 0)
    assert len(caplog.records) == 2
    clock.advance(2)
    q.reject("t", b"{", "malformed_json", "d", 0)
    assert len(caplog.records) == 3
    assert caplog.records[-1].similar_since_last_log == 100  # type: ignore[attr-defined]
    q.close()
