"""The pure matcher: plate reads and time in, passages out (SPEC 9)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.passages.matcher import (
    Changes,
    ExitWithoutEntry,
    LowConfidence,
    Matcher,
    OpenPassage,
    Passage,
    PlateRead,
    Rules,
    Unmatched,
)

MIN = 60_000
RULES = Rules(
    entry_areas=frozenset({"gate-in"}),
    exit_areas=frozenset({"gate-out"}),
    stage_of={"inspection-1": "inspection", "inspection-2": "inspection", "weigh": "weighing"},
    max_dwell_ms=24 * 60 * MIN,
    min_confidence=80.0,
    debounce_ms=2 * MIN,
)
T0 = 1_790_000_000_000


def read(
    area: str, minute: float, plate: str = "aaaa", site: str = "aktau", conf: float | None = 95.0
) -> PlateRead:
    return PlateRead(site, area, f"cam-{area}", plate, T0 + int(minute * MIN), conf)


def run(m: Matcher, *reads: PlateRead) -> list[object]:
    out: list[object] = []
    for r in reads:
        out += m.read(r)
    return out


def test_entry_stages_exit_is_one_inspected_passage() -> None:
    out = run(
        Matcher(RULES),
        read("gate-in", 0),
        read("weigh", 5),
        read("inspection-1", 20),
        read("inspection-2", 50),  # the same stage again: its first read counts
        read("gate-out", 95),
    )
    assert out == [
        Passage("aktau", "aaaa", "gate-in", "gate-out", T0, T0 + 95 * MIN,
                {"weighing": T0 + 5 * MIN, "inspection": T0 + 20 * MIN})
    ]  # fmt: skip
    p = out[0]
    assert isinstance(p, Passage)
    assert p.dwell_s == 95 * 60 and p.inspected


def test_a_passage_without_stage_reads_is_not_inspected() -> None:
    [p] = run(Matcher(RULES), read("gate-in", 0), read("gate-out", 30))
    assert isinstance(p, Passage) and not p.inspected and p.dwell_s == 1800


def test_reads_within_debounce_are_one_read() -> None:
    m = Matcher(RULES)
    out = run(
        m,
        read("gate-in", 0),
        read("gate-in", 1),  # the camera's burst
        read("gate-in", 2.5),  # within 2 min of the last: still the same truck at the gate
        read("gate-out", 40),
        read("gate-out", 41),
    )
    assert [type(o) for o in out] == [Passage]
    assert isinstance(out[0], Passage) and out[0].entry_ms == T0 and out[0].exit_ms == T0 + 40 * MIN


def test_a_new_entry_after_debounce_makes_the_open_one_unmatched() -> None:
    m = Matcher(RULES)
    out = run(m, read("gate-in", 0), read("gate-in", 10), read("gate-out", 30))
    assert isinstance(out[0], Unmatched) and out[0].why == "new_entry"
    assert out[0].passage.entry_ms == T0
    assert isinstance(out[1], Passage) and out[1].entry_ms == T0 + 10 * MIN


def test_exit_without_entry_and_exit_before_entry() -> None:
    m = Matcher(RULES)
    assert [type(o) for o in run(m, read("gate-out", 0))] == [ExitWithoutEntry]
    m.read(read("gate-in", 30, plate="bbbb"))
    assert [type(o) for o in m.read(read("gate-out", 20, plate="bbbb"))] == [ExitWithoutEntry]


def test_low_confidence_reads_are_counted_and_ignored() -> None:
    m = Matcher(RULES)
    out = run(m, read("gate-in", 0, conf=50), read("gate-out", 30))
    assert [type(o) for o in out] == [LowConfidence, ExitWithoutEntry]
    assert not m.open
    # a read without a confidence is taken as it is
    assert run(m, read("gate-in", 40, conf=None)) == [] and m.open


def test_max_dwell_by_time_and_by_a_late_exit() -> None:
    m = Matcher(RULES)
    m.read(read("gate-in", 0))
    assert m.expire(T0 + 24 * 60 * MIN) == []  # exactly max_dwell: still open
    [u] = m.expire(T0 + 24 * 60 * MIN + 1)
    assert isinstance(u, Unmatched) and u.why == "max_dwell" and not m.open

    m.read(read("gate-in", 0, plate="late"))
    out = m.read(read("gate-out", 25 * 60, plate="late"))
    assert [type(o) for o in out] == [Unmatched, ExitWithoutEntry]


def test_sites_and_plates_are_matched_apart() -> None:
    m = Matcher(RULES)
    out = run(
        m,
        read("gate-in", 0, site="aktau"),
        read("gate-in", 1, site="kuryk"),
        read("gate-in", 2, plate="bbbb"),
        read("gate-out", 10, site="kuryk"),
        read("gate-out", 20, plate="bbbb"),
        read("gate-out", 30, site="aktau"),
    )
    assert [(p.site, p.plate_hash, p.dwell_s) for p in out if isinstance(p, Passage)] == [
        ("kuryk", "aaaa", 9 * 60),
        ("aktau", "bbbb", 18 * 60),
        ("aktau", "aaaa", 30 * 60),
    ]


def test_areas_outside_the_config_are_ignored() -> None:
    m = Matcher(RULES)
    out = run(m, read("parking", 0), read("gate-out", 1))
    assert out == [ExitWithoutEntry(read("gate-out", 1))]


def restored(m: Matcher, saved: Changes) -> Matcher:
    """A matcher rebuilt from what a store would have kept of ``saved``."""
    open_ = {k: v for k, v in saved.open.items() if v is not None}
    reads = {k: v for k, v in saved.reads.items() if v is not None}
    closed = {k: v for k, v in saved.closed.items() if v is not None}
    return Matcher(m.rules, open_, reads, closed)


def test_redelivered_reads_change_nothing_and_an_exit_gives_the_same_passage() -> None:
    reads = [read("gate-in", 0), read("inspection-1", 10), read("gate-out", 60)]
    m = Matcher(RULES)
    [first] = run(m, *reads)
    again = restored(m, m.changes())
    out = run(again, *reads)  # a crash after the state was saved, before the ack
    assert out == [dataclasses.replace(first, again=True)]
    assert not again.open


def test_memory_of_reads_is_pruned_by_the_reads_time() -> None:
    m = Matcher(RULES)
    run(m, read("gate-in", 0), read("gate-out", 10))
    m.expire(T0 + 10 * MIN)
    assert m.last_read and m.closed  # within remember_ms
    m.read(read("gate-in", 200, plate="other"))
    m.expire(T0 + 200 * MIN)
    assert set(m.last_read) == {("aktau", "other", "gate-in")} and not m.closed
    changes = m.changes()
    assert changes.reads[("aktau", "aaaa", "gate-in")] is None
    assert changes.closed[("aktau", "aaaa")] is None


AREAS = ["gate-in", "gate-out", "inspection-1", "weigh", "parking"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(AREAS), st.sampled_from(["p1", "p2", "p3"]), st.integers(0, 30)),
        max_size=40,
    ),
    st.integers(0, 40),
)
def test_a_redelivered_tail_adds_no_new_outcome(
    steps: list[tuple[str, str, int]], crash_at: int
) -> None:
    """However reads go, a crash after the state was saved and the redelivery of the
    reads since the last ack yields nothing new: only the same passages again."""
    ts = T0
    reads = []
    for area, plate, gap in steps:
        ts += gap * MIN
        reads.append(PlateRead("aktau", area, "cam", plate, ts, 90.0))
    m = Matcher(RULES)
    acked = min(crash_at, len(reads))
    first = run(m, *reads)
    replay = run(restored(m, m.changes()), *reads[acked:])
    closed = [p for p in first if isinstance(p, Passage)]
    for o in replay:
        assert isinstance(o, Passage) and o.again
        assert o.exit_ms in {p.exit_ms for p in closed}


def test_open_passages_carry_their_entry_device() -> None:
    m = Matcher(RULES)
    m.read(read("gate-in", 0))
    assert m.open[("aktau", "aaaa")] == OpenPassage("aktau", "aaaa", "gate-in", "cam-gate-in", T0)
