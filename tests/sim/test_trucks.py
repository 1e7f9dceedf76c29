"""The simulator's trucks, run through the real matcher: a day at the post in milliseconds."""

from __future__ import annotations

import random
import re
import statistics

from monitor.model import Device
from monitor.passages.matcher import Matcher, Passage, PlateRead, Rules
from monitor.sim.trucks import MIN, Post, kazakh_plate

DEVICES = [
    Device("anpr-01", "anpr_camera", "aktau", "gate-in"),
    Device("anpr-03", "anpr_camera", "aktau", "gate-out"),
    Device("anpr-05", "anpr_camera", "aktau", "inspection-1"),
    Device("xs-01", "xray_scanner", "aktau", "inspection-1"),
    Device("xs-02", "xray_scanner", "aktau", "inspection-1"),
    Device("rpm-01", "radiation_portal", "aktau", "gate-in"),
    Device("wb-01", "weighbridge", "aktau", "gate-in"),
]
RULES = Rules(
    frozenset({"gate-in"}),
    frozenset({"gate-out"}),
    {"inspection-1": "inspection"},
    max_dwell_ms=24 * 60 * MIN,
    min_confidence=80,
    debounce_ms=2 * MIN,
)
T0 = 1_790_000_000_000
HOUR = 60 * MIN


def day(down: tuple[int, int] | None = None, seed: int = 3) -> list[Passage]:
    """24 h of trucks; both scanners down between ``down`` hours (from T0), if given."""
    post = Post("aktau", DEVICES, random.Random(seed), trucks_per_hour=40, now_ms=T0)
    matcher = Matcher(RULES)
    passages: list[Passage] = []
    for minute in range(1, 24 * 60 + 1):
        now = T0 + minute * MIN
        is_down = down is not None and T0 + down[0] * HOUR <= now < T0 + down[1] * HOUR
        happenings = post.advance(now, lambda scanner, is_down=is_down: is_down)
        reads = sorted((h for h in happenings if h[0] == "read"), key=lambda h: h[2])
        for _, camera, t, data in reads:
            area = next(d.area for d in DEVICES if d.id == camera)
            plate, confidence = data["plate"], data["confidence"]
            assert isinstance(plate, str) and isinstance(confidence, float)
            for o in matcher.read(PlateRead("aktau", area, camera, plate, t, confidence)):
                if isinstance(o, Passage):
                    passages.append(o)
    return passages


def test_a_day_of_trucks_becomes_a_day_of_passages() -> None:
    passages = day()
    # 40 trucks an hour, less the 3 % read too unsure at the gates and those still inside
    assert 800 <= len(passages) <= 1000
    inspected = [p for p in passages if p.inspected]
    assert 0.18 <= len(inspected) / len(passages) <= 0.32
    plain = statistics.median(p.dwell_s for p in passages if not p.inspected)
    scanned = statistics.median(p.dwell_s for p in inspected)
    assert 20 * 60 <= plain <= 60 * 60  # documents only: 20 to 60 minutes
    assert scanned > plain + 20 * 60  # a scan adds its queue, the scan and the paperwork


def test_a_scanner_outage_raises_the_dwell_of_inspected_trucks() -> None:
    normal, outage = day(), day(down=(8, 11))

    def inspected_exiting_between(passages: list[Passage], lo: int, hi: int) -> float:
        return statistics.median(
            p.dwell_s
            for p in passages
            if p.inspected and T0 + lo * HOUR <= p.exit_ms < T0 + hi * HOUR
        )

    # the trucks queued during the 3 h outage leave after it, hours late
    assert inspected_exiting_between(outage, 11, 13) > 2 * inspected_exiting_between(normal, 11, 13)
    # trucks that were not inspected do not notice
    plain = [p.dwell_s for p in outage if not p.inspected and p.exit_ms >= T0 + 11 * HOUR]
    assert statistics.median(plain) < 60 * 60


def test_plates_look_kazakh() -> None:
    rng = random.Random(1)
    for _ in range(100):
        assert re.fullmatch(r"\d{3}[A-Z]{3}(0[1-9]|1\d|20)", kazakh_plate(rng))
