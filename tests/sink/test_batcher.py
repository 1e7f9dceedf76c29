"""The batcher: flush by size, by age, on close; acks travel with their lines."""

from __future__ import annotations

import asyncio

from monitor.sink.batcher import Batcher
from monitor.source.mqtt import Message


def msg(mid: int) -> Message:
    return Message("t", b"{}", 1, mid, False, 1, 0)


async def test_flushes_when_full_without_waiting_for_the_timer() -> None:
    b = Batcher(max_points=3, max_delay=60)
    b.add(["a", "b"], [msg(1)])
    b.add(["c"], [msg(2)])
    batch = await asyncio.wait_for(b.next(), 1)
    assert batch is not None
    assert batch.lines == ["a", "b", "c"]
    assert [m.mid for m in batch.acks] == [1, 2]


async def test_flushes_a_partial_batch_after_max_delay() -> None:
    b = Batcher(max_points=1000, max_delay=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    b.add(["a"])
    batch = await asyncio.wait_for(b.next(), 1)
    assert batch is not None
    assert batch.lines == ["a"]
    assert 0.04 <= loop.time() - started < 0.5


async def test_messages_without_points_are_still_acked() -> None:
    b = Batcher(max_points=10, max_delay=0.01)
    b.add([], [msg(7)])  # e.g. a rejected message: quarantined, then acked
    batch = await asyncio.wait_for(b.next(), 1)
    assert batch is not None
    assert (batch.lines, [m.mid for m in batch.acks]) == ([], [7])


async def test_close_flushes_what_is_held_then_ends() -> None:
    b = Batcher(max_points=1000, max_delay=60)
    b.add(["a"], [msg(1)])
    b.close()
    batch = await asyncio.wait_for(b.next(), 1)
    assert batch is not None
    assert batch.lines == ["a"]
    assert await asyncio.wait_for(b.next(), 1) is None


async def test_backpressure_when_the_writer_falls_behind() -> None:
    b = Batcher(max_points=2, max_delay=60)
    b.add(["a", "b", "c", "d"])
    waiter = asyncio.create_task(b.wait_room())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # twice max_points held: the consumer must wait
    await b.next()
    await asyncio.wait_for(waiter, 1)
