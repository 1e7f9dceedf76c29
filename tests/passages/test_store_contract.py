"""One suite, both stores of open passages (SPEC 8.1, 9): SQLite under state_dir and a
real PostgreSQL (a private cluster, tests/conftest.py). Each test saves, closes the store
(a restart, or the next leader taking over), opens it again and reads what the tracker
relies on: the open passages, the last reads, the recently closed ones and the board's
released passages."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from monitor.alerting.store.postgres import PostgresStore
from monitor.errors import StateVersionError
from monitor.ha.lease import Lease
from monitor.passages.matcher import Changes, OpenPassage, Passage
from monitor.passages.store import PassageStore, Store
from monitor.passages.store_postgres import PostgresPassageStore
from monitor.passages.tracker import PassageTracker
from monitor.sim.devservers import Postgres
from monitor.stats import Stats
from tests.helpers import ManualClock, SmallDisk, down
from tests.passages.test_tracker import MIN, NOON_AKTAU, SETTINGS, plate_read

T0_MS = int(NOON_AKTAU * 1000)
DAY = 86_400_000


@dataclass
class Backend:
    """How to open the store again (same place) and how to make its database refuse."""

    name: str
    open: Callable[[], Store]
    refusing: Callable[[], contextlib.AbstractContextManager[None]]
    clock: ManualClock  # its monotonic clock paces PostgreSQL's retries


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = ManualClock(NOON_AKTAU)
    if request.param == "sqlite":
        disk = SmallDisk(tmp_path / "disk")

        try:
            yield Backend(
                "sqlite", lambda: PassageStore(disk.path / "passages.db"), disk.full, clock
            )
        finally:
            disk.unmount()
        return
    server: Postgres = request.getfixturevalue("postgres_server")
    url: str = request.getfixturevalue("postgres_url")

    yield Backend(
        "postgres",
        lambda: PostgresPassageStore(url, mono=clock.monotonic),
        lambda: down(server),
        clock,
    )


def entered(plate: str, ms: int = T0_MS, **stages: int) -> OpenPassage:
    return OpenPassage("aktau", plate, "gate-in", f"cam-{plate}", ms, dict(stages))


def released(plate: str, exit_ms: int, dwell_min: int = 30, **stages: int) -> Passage:
    entry = exit_ms - dwell_min * MIN
    return Passage("aktau", plate, "gate-in", "gate-out", entry, exit_ms, dict(stages))


def opened(*passages: OpenPassage) -> Changes:
    """Changes that open these passages, with their entry reads."""
    return Changes(
        open={(p.site, p.plate_hash): p for p in passages},
        reads={(p.site, p.plate_hash, p.entry_area): p.entry_ms for p in passages},
    )


def reopened(backend: Backend, store: Store) -> Store:
    store.close()
    return backend.open()


def test_changes_and_their_removals_come_back_after_a_restart(backend: Backend) -> None:
    store = backend.open()
    assert store.load() == ({}, {}, {})
    inspected = entered("b", T0_MS - 20 * MIN, inspection=T0_MS - 10 * MIN)
    done = released("c", T0_MS - 5 * MIN, inspection=T0_MS - 20 * MIN)
    first = opened(entered("a"), inspected, entered("gone"))
    first.closed[("aktau", "c")] = done
    first.closed[("aktau", "old")] = released("old", T0_MS - 90 * MIN)
    store.save(first, [done], 0)
    # the newest change of each key is what counts; None deletes
    later = Changes(
        open={("aktau", "gone"): None, ("aktau", "a"): entered("a", T0_MS + 1)},
        reads={("aktau", "gone", "gate-in"): None, ("aktau", "a", "gate-in"): T0_MS + 1},
        closed={("aktau", "old"): None},
    )
    store.save(later, [], 0)
    assert store.problem is None
    store = reopened(backend, store)
    open_, reads, closed = store.load()
    assert open_ == {("aktau", "a"): entered("a", T0_MS + 1), ("aktau", "b"): inspected}
    assert reads == {
        ("aktau", "a", "gate-in"): T0_MS + 1,
        ("aktau", "b", "gate-in"): inspected.entry_ms,
    }
    assert closed == {("aktau", "c"): done}
    store.close()


def test_released_passages_are_read_since_a_time_and_forgotten_before_another(
    backend: Backend,
) -> None:
    store = backend.open()
    old = released("old", T0_MS - 3 * DAY)
    yesterday = released("y", T0_MS - DAY, dwell_min=90)
    today = [
        released("t1", T0_MS - 2 * MIN, 40, inspection=T0_MS - 30 * MIN),
        released("t0", T0_MS - 9 * MIN),
    ]
    store.save(Changes(), [old, yesterday, *today], T0_MS - 4 * DAY)
    assert [r[1] for r in store.released(0)] == ["old", "y", "t0", "t1"]  # by exit time
    assert store.released(T0_MS - 10 * MIN) == [
        ("aktau", "t0", T0_MS - 9 * MIN, 1800.0, False),
        ("aktau", "t1", T0_MS - 2 * MIN, 2400.0, True),
    ]
    store.save(Changes(), [released("t2", T0_MS)], T0_MS - 2 * DAY)  # "old" is forgotten
    assert [r[1] for r in store.released(0)] == ["y", "t0", "t1", "t2"]
    store = reopened(backend, store)
    assert [r[1] for r in store.released(0)] == ["y", "t0", "t1", "t2"]
    assert [r[1] for r in store.released(T0_MS - 5 * MIN)] == ["t1", "t2"]
    store.close()


@pytest.mark.integration
def test_what_the_database_refuses_stays_pending_and_is_written_with_the_next_save(
    backend: Backend,
) -> None:
    store = backend.open()
    store.save(opened(entered("a")), [], 0)
    assert store.problem is None
    many = [entered(f"{i:04d}" * 8, T0_MS - i) for i in range(300)]  # enough to need pages
    with backend.refusing():
        # a itself is released meanwhile: its deletion waits too
        store.save(Changes(open={("aktau", "a"): None}), [released("a", T0_MS)], 0)
        store.save(opened(*many), [], 0)  # never raises
        assert store.problem is not None
        assert [r[1] for r in store.released(T0_MS)] == ["a"]  # the board sees what waits
        store.save(Changes(), [], 0)  # still refused: still waiting, still no raise
        assert store.problem is not None
    backend.clock.advance(10)  # past PostgreSQL's retry pacing
    store.save(Changes(), [], 0)  # nothing new: what waited is written
    assert store.problem is None
    store = reopened(backend, store)
    open_, reads, _ = store.load()
    assert len(open_) == 300 and ("aktau", "a") not in open_
    assert len(reads) == 301  # a's entry read is remembered (the matcher forgets it later)
    assert [r[1] for r in store.released(T0_MS)] == ["a"]
    store.close()


async def test_asave_has_written_when_it_returns(backend: Backend) -> None:
    """The acks follow ``asave``: by then another process reads what it saved."""
    store = backend.open()
    saves = [
        store.asave(opened(entered("a", T0_MS + i)), [released(f"r{i}", T0_MS + i)], 0)
        for i in range(5)
    ]
    await asyncio.gather(*saves)  # in a burst: the last one's change is the one kept
    other = backend.open()  # beside it, as the next leader (or a restart) would
    open_, _, _ = other.load()
    assert open_ == {("aktau", "a"): entered("a", T0_MS + 4)}
    assert len(other.released(0)) == 5
    other.close()
    store.close()


def test_a_tracker_on_either_store_keeps_today_and_open_passages_over_a_restart(
    backend: Backend,
) -> None:
    t = PassageTracker(SETTINGS, backend.open(), Stats(), backend.clock)
    for i, dwell_min in enumerate((30, 40, 50)):
        exit_ms = T0_MS - (i + 1) * 10 * MIN
        t.read(plate_read("gate-in", f"p{i}", exit_ms - dwell_min * MIN), exit_ms - dwell_min * MIN)
        t.read(plate_read("inspection-1", f"p{i}", exit_ms - MIN), exit_ms - MIN)
        t.read(plate_read("gate-out", f"p{i}", exit_ms), exit_ms)
    t.read(plate_read("gate-in", "inside", T0_MS - 5 * MIN), T0_MS - 5 * MIN)
    t.save()
    t.store.close()
    again = PassageTracker(SETTINGS, backend.open(), Stats(), backend.clock)  # a restart
    today = again.today()
    assert (today.passages, today.median_s, today.inside) == (3, 2400, 1)
    # a redelivered exit (a backlog after a crash) is the same passage, not a new one
    [same] = again.read(plate_read("gate-out", "p0", T0_MS - 10 * MIN), T0_MS - 10 * MIN)
    assert isinstance(same, Passage) and same.again
    [passage] = again.read(plate_read("gate-out", "inside", T0_MS), T0_MS)
    assert isinstance(passage, Passage) and passage.dwell_s == 300
    again.store.close()


# -- PostgreSQL only: the leadership and the schema --------------------------------------


@pytest.mark.integration
def test_a_fenced_save_writes_nothing_and_the_next_leader_finds_the_state_before_it(
    postgres_url: str,
) -> None:
    a = Lease(postgres_url, "monitor-aktau", 5, 20, holder="a")
    b = Lease(postgres_url, "monitor-aktau", 5, 20, holder="b")
    assert a.acquire()
    store = PostgresPassageStore(postgres_url, a.fence)
    earlier = released("r", T0_MS - 60 * MIN)
    store.save(opened(entered("a")), [earlier], 0)
    assert store.problem is None
    # a is paused; its lease runs out on the database's clock and b takes over; a's own
    # clock did not see the pause, so only the epoch stops its next write
    with a._db().cursor() as cur:
        cur.execute("UPDATE leadership SET renewed = now() - interval '1 hour'")
    assert b.acquire() and a.valid()
    store.save(
        Changes(open={("aktau", "a"): None, ("aktau", "x"): entered("x")}),
        [released("a", T0_MS)],
        T0_MS,  # and no forgetting either
    )
    assert store.problem is not None and "not the leader" in store.problem
    assert store.fenced and a.lost.is_set()
    b.release()
    assert a.acquire()  # a leads again, but this store holds a past leader's changes
    store.save(Changes(), [], 0)  # nor later: a new leader's parts load the state anew
    store.close()
    taking_over = PostgresPassageStore(postgres_url, a.fence)
    open_, _, _ = taking_over.load()
    assert open_ == {("aktau", "a"): entered("a")}
    assert [r[1] for r in taking_over.released(0)] == ["r"]
    taking_over.save(Changes(open={("aktau", "a"): None}), [released("a", T0_MS)], 0)
    assert taking_over.problem is None
    taking_over.close()
    a.close()
    b.close()


@pytest.mark.integration
def test_a_save_refused_while_cut_off_is_written_once_the_lease_is_renewed(
    postgres_url: str,
) -> None:
    """Past its deadline a leader writes nothing; the database answering with its own
    epoch (nobody could take over meanwhile), what waited is written."""
    now = [1000.0]
    a = Lease(postgres_url, "monitor-aktau", 5, 20, holder="a", mono=lambda: now[0])
    assert a.acquire()
    store = PostgresPassageStore(postgres_url, a.fence, mono=lambda: now[0])
    now[0] += 16  # past failover - heartbeat: cut off
    store.save(opened(entered("a")), [], 0)
    assert store.problem is not None and not store.term_over
    assert a.renew() and a.valid()  # the same epoch
    now[0] += 6  # past the retry pacing
    store.save(Changes(), [], 0)
    assert store.problem is None
    store.close()
    again = PostgresPassageStore(postgres_url)
    assert again.load()[0] == {("aktau", "a"): entered("a")}
    again.close()
    a.close()


@pytest.mark.integration
def test_passages_live_beside_alerting_with_a_schema_version_of_their_own(
    postgres_url: str,
) -> None:
    alerting = PostgresStore(postgres_url, ManualClock(NOON_AKTAU))
    store = PostgresPassageStore(postgres_url)
    store.save(opened(entered("a")), [], 0)
    store.close()
    alerting.close()
    with PostgresPassageStore(postgres_url)._connect() as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {t for t in tables if t.startswith("passage_")} == {
            "passage_schema_version",
            "passage_open",
            "passage_last_reads",
            "passage_closed",
            "passage_released",
        }
        assert conn.execute("SELECT version FROM passage_schema_version").fetchall() == [(1,)]
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        conn.execute("UPDATE passage_schema_version SET version = 2")  # a newer monitor's
    with pytest.raises(StateVersionError, match="passages"):
        PostgresPassageStore(postgres_url)
    PostgresStore(postgres_url, ManualClock(NOON_AKTAU)).close()  # alerting's own: still fine


@pytest.mark.integration
def test_a_database_restarted_between_two_saves_costs_no_failed_save(
    postgres_server: Postgres, postgres_url: str
) -> None:
    store = PostgresPassageStore(postgres_url)
    store.save(opened(entered("a")), [], 0)
    postgres_server.stop()
    postgres_server.start()  # the store's connection is broken, and it does not know yet
    store.save(opened(entered("b")), [], 0)
    assert store.problem is None
    store.close()
    again = PostgresPassageStore(postgres_url)
    assert set(again.load()[0]) == {("aktau", "a"), ("aktau", "b")}
    again.close()


@pytest.mark.integration
async def test_a_write_refused_while_newer_changes_were_taken_does_not_undo_them(
    postgres_url: str,
) -> None:
    """The reads go on while a write is under way: if the database refuses it, what it
    held goes back under what was taken meanwhile, never over it."""
    clock = ManualClock(NOON_AKTAU)
    inside, refuse = threading.Event(), threading.Event()

    def failing_once(cur: object) -> None:  # the first write hangs, then fails
        if not refuse.is_set():
            refuse.set()
            inside.wait(5)
            raise psycopg.OperationalError("the connection was lost")

    store = PostgresPassageStore(postgres_url, failing_once, mono=clock.monotonic)
    first = asyncio.create_task(store.asave(opened(entered("a", T0_MS)), [], 0))
    await asyncio.to_thread(lambda: refuse.wait(5))  # that write is under way
    second = asyncio.create_task(store.asave(opened(entered("a", T0_MS + 1)), [], 0))
    await asyncio.sleep(0.05)  # taken on the loop, waiting for the first write
    inside.set()
    await asyncio.gather(first, second)
    assert store.problem is not None
    clock.advance(10)
    store.save(Changes(), [], 0)
    assert store.problem is None
    store.close()
    again = PostgresPassageStore(postgres_url)
    assert again.load()[0] == {("aktau", "a"): entered("a", T0_MS + 1)}
    again.close()


@pytest.mark.integration
async def test_close_does_not_wait_on_the_loop_for_a_write_that_hangs(postgres_url: str) -> None:
    """A step-down while the database hangs: the loop goes on; the write, once it ends,
    closes the connection."""
    inside, hanging = threading.Event(), threading.Event()

    def hangs(cur: object) -> None:
        inside.set()
        hanging.wait(5)

    store = PostgresPassageStore(postgres_url, hangs)
    writing = asyncio.create_task(store.asave(opened(entered("a")), [], 0))
    await asyncio.to_thread(lambda: inside.wait(5))
    began = time.monotonic()
    store.close()
    assert time.monotonic() - began < 1
    hanging.set()
    await writing
    assert store._conn is None
