"""The passages runtime over the real SQLite store: today's figures, a restart, a full disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import Passages
from monitor.model import Device, Reading
from monitor.passages.store import PassageStore
from monitor.passages.tracker import PassageTracker
from monitor.stats import Stats
from tests.helpers import ManualClock, SmallDisk

SETTINGS = Passages.model_validate(
    {"plate_key": "x" * 16, "stages": {"inspection": ["inspection-1"]}}
)
# 2026-09-22 12:00 in Aktau (07:00 UTC): "today" began at 19:00 UTC the day before
NOON_AKTAU = 1_790_060_400.0
MIN = 60_000


def plate_read(area: str, plate_hash: str, ts_ms: int) -> Reading:
    device = Device(f"cam-{area}", "anpr_camera", "aktau", area)
    fields = {"plate_hash": plate_hash, "confidence": 95.0}
    return Reading(device, "event", ts_ms, dict(fields), event_type="plate_read")


def tracker(path: Path, clock: ManualClock) -> PassageTracker:
    return PassageTracker(SETTINGS, PassageStore(path), Stats(), clock)


def test_today_counts_since_local_midnight_and_a_restart_keeps_open_passages(
    tmp_path: Path,
) -> None:
    clock = ManualClock(NOON_AKTAU)
    now_ms = int(NOON_AKTAU * 1000)
    t = tracker(tmp_path / "passages.db", clock)
    midnight_ms = now_ms - 12 * 60 * MIN  # local midnight: 19:00 UTC the day before
    # released yesterday (local), not counted today
    t.read(plate_read("gate-in", "y", midnight_ms - 100 * MIN), midnight_ms - 100 * MIN)
    t.read(plate_read("gate-out", "y", midnight_ms - MIN), midnight_ms - MIN)
    for i, dwell_min in enumerate((30, 40, 50, 60, 120)):
        exit_ms = now_ms - (i + 1) * 10 * MIN
        t.read(plate_read("gate-in", f"p{i}", exit_ms - dwell_min * MIN), exit_ms - dwell_min * MIN)
        t.read(plate_read("gate-out", f"p{i}", exit_ms), exit_ms)
    t.read(plate_read("gate-in", "inside", now_ms - 5 * MIN), now_ms - 5 * MIN)
    t.save()
    today = t.today()
    assert today.since_ms == midnight_ms
    assert (today.passages, today.median_s, today.p90_s, today.inside) == (5, 3000, 7200, 1)
    t.store.close()

    again = tracker(tmp_path / "passages.db", clock)  # a restart
    assert again.today().passages == 5 and again.today().inside == 1
    [passage] = again.read(plate_read("gate-out", "inside", now_ms), now_ms)
    assert passage.dwell_s == 300  # type: ignore[union-attr]
    assert again.today().inside == 0


@pytest.mark.integration
def test_a_full_disk_costs_no_read_and_is_written_when_space_returns(
    small_disk: SmallDisk,
) -> None:
    clock = ManualClock(NOON_AKTAU)
    now_ms = int(NOON_AKTAU * 1000)
    path = small_disk.path / "passages.db"
    t = tracker(path, clock)
    small_disk.fill()
    for i in range(300):  # enough to need new pages
        t.read(plate_read("gate-in", f"{i:04d}" * 8, now_ms - i), now_ms - i)
        t.save()  # never raises
    assert t.problem is not None and "full" in t.problem
    assert len(t.matcher.open) == 300  # the truth is in memory meanwhile
    small_disk.free()
    t.save()
    assert t.problem is None
    t.store.close()
    assert len(tracker(path, clock).matcher.open) == 300


def test_only_an_anpr_cameras_plate_read_is_a_read(tmp_path: Path) -> None:
    """SPEC 9: a gate barrier's plate_read, whatever plate_hash it carries, is no read."""
    clock = ManualClock(NOON_AKTAU)
    now_ms = int(NOON_AKTAU * 1000)
    stats = Stats()
    t = PassageTracker(SETTINGS, PassageStore(tmp_path / "passages.db"), stats, clock)
    for area, ts_ms in (("gate-in", now_ms - 30 * MIN), ("gate-out", now_ms)):
        forged = plate_read(area, "a" * 16, ts_ms)
        forged.device = Device(f"gb-{area}", "gate_barrier", "aktau", area)
        assert t.read(forged, ts_ms) == []
    assert stats.plate_reads_not_camera == 2
    assert t.today().passages == 0 and t.today().inside == 0
    t.read(plate_read("gate-in", "b" * 16, now_ms - 30 * MIN), now_ms - 30 * MIN)
    assert [type(o).__name__ for o in t.read(plate_read("gate-out", "b" * 16, now_ms), now_ms)] == [
        "Passage"
    ]
