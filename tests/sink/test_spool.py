"""The disk spool: durable, ordered, bounded; the spooling writer's decisions."""

from __future__ import annotations

import asyncio
import sqlite3
import zlib
from pathlib import Path

from monitor.errors import InfluxUnavailable
from monitor.sink.spool import Spool, SpoolingWriter
from monitor.stats import Stats


def test_append_oldest_remove_in_order_and_across_reopen(tmp_path: Path) -> None:
    stats = Stats()
    spool = Spool(tmp_path / "spool.db", 10_000_000, stats)
    for i in range(3):
        assert spool.append([f"m v={i}i {i}", f"m w={i}i {i}"])
    assert (spool.batches, spool.points, stats.spool_points) == (3, 6, 6)
    assert stats.spool_bytes == spool.bytes > 0
    spool.close()

    again = Spool(tmp_path / "spool.db", 10_000_000, Stats())  # after a restart
    assert (again.batches, again.points) == (3, 6)
    seen = []
    while (item := again.oldest()) is not None:
        batch_id, lines, precision = item
        assert precision == "us"
        seen.append(lines[0])
        again.remove(batch_id)
    assert seen == ["m v=0i 0", "m v=1i 1", "m v=2i 2"]
    assert (again.bytes, again.batches, again.points) == (0, 0, 0)


def test_batches_spooled_by_a_version_that_wrote_milliseconds_replay_as_such(
    tmp_path: Path,
) -> None:
    old = sqlite3.connect(tmp_path / "spool.db")
    old.execute(
        "CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " points INTEGER NOT NULL, data BLOB NOT NULL)"
    )
    old.execute("INSERT INTO batches (points, data) VALUES (1, ?)", (zlib.compress(b"m v=1i 5"),))
    old.commit()
    old.close()
    spool = Spool(tmp_path / "spool.db", 10_000_000, Stats())
    assert spool.append(["m v=2i 6000"])
    first = spool.oldest()
    assert first is not None and first[1:] == (["m v=1i 5"], "ms")
    spool.remove(first[0])
    second = spool.oldest()
    assert second is not None and second[1:] == (["m v=2i 6000"], "us")


def test_a_full_spool_refuses_and_keeps_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", 200, Stats())
    assert spool.append(["a v=1i 1"])
    big = [f"m,device=xs-{i} v={i * 7919 % 1000003}i {i}" for i in range(500)]
    assert not spool.append(big)
    assert spool.batches == 1
    assert 0 < spool.fill <= 1


class FakeInflux:
    """Stands in for InfluxWriter in these decision tests (the real one has its own)."""

    def __init__(self) -> None:
        self.up = False
        self.written: list[list[str]] = []

    async def write(
        self, lines: list[str], give_up_after: float | None = None, precision: str = "us"
    ) -> None:
        if not self.up:
            raise InfluxUnavailable("down")
        self.written.append(lines)


async def test_down_spools_then_replays_in_order_when_back(tmp_path: Path) -> None:
    influx = FakeInflux()
    stats = Stats()
    spool = Spool(tmp_path / "spool.db", 10_000_000, stats)
    sink = SpoolingWriter(influx, spool, stats, live_give_up=0.01, retry_max=0.05)  # type: ignore[arg-type]
    replay = asyncio.create_task(sink.replay())
    for i in range(5):
        await asyncio.wait_for(sink.write([f"b{i}"]), 1)  # returns: spooled, so ackable
    assert sink.influx_down
    assert spool.batches == 5
    influx.up = True
    for _ in range(100):
        if spool.batches == 0:
            break
        await asyncio.sleep(0.02)
    assert influx.written == [[f"b{i}"] for i in range(5)]
    assert not sink.influx_down
    assert stats.points_replayed == 5
    await sink.write(["live"])  # straight to InfluxDB again
    assert influx.written[-1] == ["live"]
    replay.cancel()


async def test_full_spool_holds_the_write_until_there_is_room(tmp_path: Path) -> None:
    influx = FakeInflux()
    stats = Stats()
    spool = Spool(tmp_path / "spool.db", 300, stats)
    sink = SpoolingWriter(influx, spool, stats, live_give_up=0.01, retry_max=0.05)  # type: ignore[arg-type]
    filler = [f"m,device=xs-{i} v={i * 7919 % 1000003}i {i}" for i in range(40)]
    while spool.append(filler):
        pass
    blocked = asyncio.create_task(sink.write(filler))
    await asyncio.sleep(0.1)
    assert not blocked.done()  # not stored anywhere: not acknowledged
    assert stats.spool_refusals == 1
    influx.up = True
    replay = asyncio.create_task(sink.replay())
    await asyncio.wait_for(blocked, 2)
    replay.cancel()
