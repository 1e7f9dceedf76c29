"""The leadership against a real PostgreSQL (SPEC 8.1): one holder at a time, taken over
only after ``failover``, given up at once by a clean stop, and fenced: a leader whose
epoch is not current writes nothing, even when its own clock says it still leads (a VM
paused: the monotonic clock did not see the pause)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from monitor.alerting.engine import Alert
from monitor.alerting.store.postgres import PostgresStore
from monitor.ha.lease import Lease
from monitor.sim.devservers import Postgres
from tests.helpers import ManualClock

pytestmark = pytest.mark.integration

T0 = 1_790_000_000.0


class Mono:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def lease(url: str, holder: str, mono: Mono | None = None, failover: float = 20) -> Lease:
    heartbeat = min(5, failover / 4)
    return Lease(
        url, "monitor-aktau", heartbeat, failover, holder=holder, mono=mono or time.monotonic
    )


def alert(i: int) -> Alert:
    return Alert(
        f"a{i}", "no_data", "aktau", "a", "xray_scanner", f"xs-{i}", "critical", "s", T0, T0
    )


def test_one_holder_at_a_time_and_a_takeover_after_failover(postgres_url: str) -> None:
    a, b = lease(postgres_url, "a", failover=1), lease(postgres_url, "b", failover=1)
    assert a.acquire() and a.epoch == 1 and a.valid()
    assert not b.acquire() and b.epoch is None
    time.sleep(0.6)
    assert a.renew()
    time.sleep(0.6)
    assert not b.acquire()  # renewed 0.6 s ago: still a's
    time.sleep(1.2)  # a stopped renewing
    assert b.acquire() and b.epoch == 2
    assert not a.renew() and a.lost.is_set() and not a.valid()
    assert b.holder_now() == ("b", 2, None)
    b.release()  # a clean stop: the next takes it at once
    assert a.acquire() and a.epoch == 3
    a.close()
    b.close()


def test_a_leader_whose_epoch_is_gone_writes_nothing(postgres_url: str) -> None:
    mono = Mono()
    a, b = lease(postgres_url, "a", mono), lease(postgres_url, "b")
    assert a.acquire()
    store = PostgresStore(postgres_url, ManualClock(T0), fence=a.fence)
    store.save_alerts([alert(1)])
    assert store.flush(force=True)
    # a is paused; its lease runs out on the database's clock, b takes over; the pause
    # left a's own clock where it was, so only the epoch can stop its next write
    with a._db().cursor() as cur:
        cur.execute("UPDATE leadership SET renewed = now() - interval '1 hour'")
    assert b.acquire() and a.valid()
    store.save_alerts([alert(2)])
    assert not store.flush(force=True)
    assert store.problem is not None and "not the leader" in store.problem
    assert a.lost.is_set() and not a.valid()
    store.close()
    again = PostgresStore(postgres_url, ManualClock(T0))
    assert [x.id for x in again.alerts(open_only=False)] == ["a1"]
    again.close()
    a.close()
    b.close()


def test_a_leader_past_its_own_deadline_acts_no_more(postgres_url: str) -> None:
    mono = Mono()
    a = lease(postgres_url, "a", mono)
    assert a.acquire() and a.valid()
    mono.t += 20 - 5 - 0.01
    assert a.valid()
    mono.t += 0.02  # failover - heartbeat after the renewal it began: before any standby
    assert not a.valid()
    store = PostgresStore(postgres_url, ManualClock(T0), fence=a.fence)
    store.save_alerts([alert(1)])
    assert not store.flush(force=True)  # refused before the database is even asked
    store.close()
    a.close()


async def test_a_leader_cut_off_from_the_database_ingests_on_and_acts_no_more(
    postgres_server: Postgres, postgres_url: str
) -> None:
    """Past its deadline without an answer it sends and writes no state (``valid``) but
    ingests on (``may_ingest``); the database back, it leads on if the row is still its
    own, and steps down if another took it meanwhile."""
    a = Lease(postgres_url, "monitor-aktau", 0.3, 1.5, holder="a")
    assert a.acquire()
    keeping = asyncio.create_task(a.keep())
    await asyncio.sleep(0.5)
    postgres_server.stop()
    try:
        began = time.monotonic()
        await wait_until(lambda: not a.valid(), 5)
        assert time.monotonic() - began < 1.5 - 0.3 + 0.2  # before a standby could take over
        await asyncio.sleep(0.5)
        assert a.may_ingest() and a.cut_off and not a.lost.is_set()
    finally:
        postgres_server.start()
    await wait_until(lambda: a.valid() and not a.cut_off, 5)  # the same epoch: it leads on
    assert a.epoch == 1 and not a.lost.is_set()

    postgres_server.stop()
    try:
        await wait_until(lambda: a.cut_off, 5)
    finally:
        postgres_server.start()
    b = Lease(postgres_url, "monitor-aktau", 0.3, 1.5, holder="b")
    with b._db().cursor() as cur:  # a standby that reached the database took it over
        cur.execute("UPDATE leadership SET renewed = now() - interval '1 hour'")
    assert b.acquire()
    await asyncio.wait_for(a.lost.wait(), 5)
    assert not a.may_ingest() and not a.valid()
    await asyncio.wait_for(keeping, 1)
    a.close()
    b.close()


async def wait_until(cond: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "not within the limit"
        await asyncio.sleep(0.02)
