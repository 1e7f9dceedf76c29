"""The pipeline's own rules, with a scripted source and sink: writes overlap but acks keep
the order of arrival; a lone message is written at once, not after a timer; a backlog is
taken in growing chunks. (Across a real broker and InfluxDB: tests/e2e.)"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.alerting.engine import AlertEngine
from monitor.alerting.liveness import Liveness
from monitor.alerting.rules import RuleBook
from monitor.config import Config, load_config
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.quarantine import Quarantine
from monitor.pipeline import FIRST_CHUNK, WRITES_IN_FLIGHT, Ingest
from monitor.sink.batcher import Batcher
from monitor.stats import Stats
from tests.helpers import SHIPPED_CONFIG, ManualClock, device_topic, wait_for


@dataclass
class Msg:
    topic: str
    payload: bytes
    retain: bool = False
    received_us: int = 1_790_000_000_000_000
    oversize: int = 0


class ScriptedSource:
    """Hands out what it is given; records the sizes asked for and the acks."""

    def __init__(self) -> None:
        self.inbox: list[Msg] = []
        self.asked: list[int] = []
        self.acked: list[Msg] = []
        self.closed = False
        self._arrived = asyncio.Event()

    def give(self, messages: list[Msg]) -> None:
        self.inbox.extend(messages)
        self._arrived.set()

    def close(self) -> None:
        self.closed = True
        self._arrived.set()

    async def take(self, most: int) -> list[Msg] | None:
        while not self.inbox:
            if self.closed:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        self.asked.append(most)
        got, self.inbox = self.inbox[:most], self.inbox[most:]
        return got

    def ack(self, messages: list[Msg]) -> None:
        self.acked.extend(messages)

    def own(self, topic: str, payload: bytes) -> bool:
        return False

    def waiting(self) -> int:
        return len(self.inbox)


class GatedSink:
    """Each write waits for its gate: the test decides the order writes finish in."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.gates: list[asyncio.Event] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail: set[int] = set()

    async def write(self, lines: list[str]) -> None:
        n = len(self.writes)
        self.writes.append(lines)
        gate = asyncio.Event()
        self.gates.append(gate)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await gate.wait()
        finally:
            self.in_flight -= 1
        if n in self.fail:
            raise RuntimeError(f"write {n} failed")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(SHIPPED_CONFIG)


def ingest(
    config: Config, source: ScriptedSource, sink: GatedSink, batcher: Batcher[Msg]
) -> Ingest[Msg]:
    clock, stats = ManualClock(), Stats()
    normalizer, rules = Normalizer(config), RuleBook(config)
    engine = AlertEngine([], rules, "test")
    return Ingest(
        source,  # type: ignore[arg-type]  # the scripted one speaks the Source protocol
        normalizer,
        sink,
        Quarantine(Path(tempfile.mkdtemp()), 1 << 20, clock, stats),
        Liveness(normalizer.registry.values(), rules, engine.in_maintenance),
        batcher,
        stats,
        clock,
    )


def telemetry(i: int) -> Msg:
    return Msg(device_topic("xs-01"), b'{"scans_total": %d}' % i)


async def test_writes_overlap_but_acks_keep_the_order_of_arrival(config: Config) -> None:
    source, sink = ScriptedSource(), GatedSink()
    pipe = ingest(config, source, sink, Batcher(10, 10.0))
    flushing = asyncio.create_task(pipe.flush())
    first, second = [telemetry(i) for i in range(10)], [telemetry(i) for i in range(10, 20)]
    pipe.batcher.add(pipe.process(first), first)  # a full batch: due at once
    await wait_for(lambda: len(sink.writes) == 1)
    pipe.batcher.add(pipe.process(second), second)
    await wait_for(lambda: len(sink.writes) == 2)  # both written at once ...
    assert sink.most_in_flight == WRITES_IN_FLIGHT == 2
    sink.gates[1].set()  # ... the second is stored first
    await asyncio.sleep(0.05)
    assert source.acked == []  # but nothing is acked before the first batch is stored
    sink.gates[0].set()
    await wait_for(lambda: len(source.acked) == 20)
    assert source.acked == first + second
    pipe.batcher.close()
    await asyncio.wait_for(flushing, 5)


async def test_no_more_than_the_window_is_written_at_once(config: Config) -> None:
    source, sink = ScriptedSource(), GatedSink()
    pipe = ingest(config, source, sink, Batcher(5, 10.0))
    flushing = asyncio.create_task(pipe.flush())
    for k in range(4):
        batch = [telemetry(5 * k + i) for i in range(5)]
        pipe.batcher.add(pipe.process(batch), batch)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(sink.writes) == WRITES_IN_FLIGHT  # the others wait for a slot
    for _ in range(4):
        await wait_for(lambda: len(sink.gates) > 0 and not all(g.is_set() for g in sink.gates))
        next(g for g in sink.gates if not g.is_set()).set()
        await asyncio.sleep(0.01)
    await wait_for(lambda: len(source.acked) == 20)
    assert sink.most_in_flight == WRITES_IN_FLIGHT
    pipe.batcher.close()
    await asyncio.wait_for(flushing, 5)


async def test_a_failed_write_acks_nothing_after_it(config: Config) -> None:
    source, sink = ScriptedSource(), GatedSink()
    sink.fail = {0}
    pipe = ingest(config, source, sink, Batcher(10, 10.0))
    flushing = asyncio.create_task(pipe.flush())
    first, second = [telemetry(i) for i in range(10)], [telemetry(i) for i in range(10, 20)]
    pipe.batcher.add(pipe.process(first), first)
    await wait_for(lambda: len(sink.writes) == 1)
    pipe.batcher.add(pipe.process(second), second)
    await wait_for(lambda: len(sink.writes) == 2)
    sink.gates[1].set()
    sink.gates[0].set()
    with pytest.raises(ExceptionGroup) as failed:
        await asyncio.wait_for(flushing, 5)
    assert failed.group_contains(RuntimeError, match="write 0 failed")
    assert source.acked == []  # the broker delivers both again


async def test_a_lone_message_is_written_at_once_not_after_the_flush_interval(
    config: Config,
) -> None:
    """The broker may be waiting for this ack before it sends more (a small window)."""
    source, sink = ScriptedSource(), GatedSink()
    pipe = ingest(config, source, sink, Batcher(5000, 10.0))  # a 10 s timer, never reached
    tasks = [asyncio.create_task(pipe.consume()), asyncio.create_task(pipe.flush())]
    source.give([telemetry(1)])
    await wait_for(lambda: len(sink.writes) == 1, timeout=1.0)
    sink.gates[0].set()
    await wait_for(lambda: len(source.acked) == 1, timeout=1.0)
    source.close()
    await asyncio.wait_for(tasks[0], 5)
    pipe.batcher.close()
    await asyncio.wait_for(tasks[1], 5)


async def test_a_backlog_is_taken_in_chunks_that_double(config: Config) -> None:
    source, sink = ScriptedSource(), GatedSink()
    pipe = ingest(config, source, sink, Batcher(5000, 10.0))
    source.give([telemetry(i) for i in range(20_000)])
    source.close()
    consuming = asyncio.create_task(pipe.consume())
    flushing = asyncio.create_task(pipe.flush())
    while not consuming.done():
        for gate in sink.gates:
            gate.set()
        await asyncio.sleep(0.001)
    await consuming
    pipe.batcher.close()
    while not flushing.done():
        for gate in sink.gates:
            gate.set()
        await asyncio.sleep(0.001)
    assert len(source.acked) == 20_000
    assert source.asked[:6] == [FIRST_CHUNK * 2**k for k in range(5)] + [5000]
