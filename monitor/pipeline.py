"""The ingest pipeline, where the stages meet: source -> normalize -> sink -> ack.

Two tasks: ``consume`` normalizes each received chunk (quarantining what is rejected,
telling liveness what was seen) into the batcher, while ``flush`` writes the batches before
it, so parsing and the HTTP round trips overlap. Writes overlap too (two at a time), but a
batch is acked only after every batch before it, which keeps acknowledgements in the order
the messages arrived.

The pipeline knows its source and sink only by the small protocols below; ``Points`` is
the other way into the same batches, for what alerting and the monitor itself record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from monitor import logs
from monitor.alerting.engine import Alert
from monitor.alerting.liveness import Liveness, StatusPoint
from monitor.clock import Clock, now_us
from monitor.errors import LineProtocolError
from monitor.model import Device, DeviceKey, FieldValue, Reading
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.plates import PLATE_READ
from monitor.normalize.quarantine import Quarantine
from monitor.normalize.reasons import Rejected
from monitor.passages.matcher import ExitWithoutEntry, Outcome, Passage, Unmatched
from monitor.sink import schema
from monitor.sink.batcher import Batch, Batcher
from monitor.sink.fieldtypes import FieldTypes
from monitor.stats import Stats

log = logs.get(__name__)

# The first chunk of a backlog: small, so its points are stored (and acked) in
# milliseconds; each next chunk doubles, up to a batch.
FIRST_CHUNK = 250
# Batches written at once. InfluxDB takes concurrent writes on more cores and overlaps
# their fsyncs: two measured 1.8x one on influxd 1.6.7 (5,000-point batches, loopback).
WRITES_IN_FLIGHT = 2


class Received(Protocol):
    """A message as the pipeline reads it; the source's own type also carries its ack."""

    topic: str
    payload: bytes
    retain: bool
    received_us: int  # wall clock, epoch microseconds
    oversize: int  # over the payload limit: its real size (the payload is its start)


M = TypeVar("M", bound=Received)


class Source(Protocol[M]):
    async def take(self, most: int) -> list[M] | None:
        """The next received messages, at most ``most``, in arrival order; None once the
        source is closed and emptied."""
        ...

    def ack(self, messages: list[M]) -> None:
        """Acknowledge these (their points are stored), in the order given."""
        ...

    def own(self, topic: str, payload: bytes) -> bool:
        """Whether a message the decoders reject is the source's own (its canary)."""
        ...

    def waiting(self) -> int:
        """How many received messages wait to be taken."""
        ...


class Passages(Protocol):
    def read(self, reading: Reading, ts_ms: int) -> list[Outcome]:
        """A plate read, at its time: the passages it closed or gave up, if any."""
        ...

    async def asave(self) -> None:
        """Keep what the reads changed (before their messages are acknowledged)."""
        ...


class Sink(Protocol):
    async def write(self, lines: list[str]) -> None:
        """Return once every line is stored (or durably kept to be stored)."""
        ...


@dataclass(eq=False)
class Ingest(Generic[M]):
    source: Source[M]
    normalizer: Normalizer
    sink: Sink
    quarantine: Quarantine
    liveness: Liveness
    batcher: Batcher[M]
    stats: Stats
    clock: Clock
    on_change: Callable[[], None] = lambda: None  # a device's state changed: alerting cares
    passages: Passages | None = None  # SPEC 9, when configured
    types: FieldTypes | None = None  # SPEC 4's one type per field: the writer's, shared
    _stamps: dict[tuple[DeviceKey, str], int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.types is None:
            self.types = schema.field_types(self.stats, self.clock)

    async def consume(self) -> None:
        """Normalize every received batch into the batcher, until the source is closed.

        A backlog is taken in chunks that start small and double up to a batch's worth:
        the first points are written after milliseconds, not after the first 5,000."""
        chunk = FIRST_CHUNK
        assert self.types is not None
        await self.types.settled()  # InfluxDB's field types, read at start (the writer)
        while (messages := await self.source.take(chunk)) is not None:
            await self.batcher.wait_room()
            self.batcher.add(self.process(messages), messages)
            if self.source.waiting():
                chunk = min(2 * chunk, self.batcher.max_points)
            else:  # nothing arrived meanwhile: write (then ack) now; the next burst starts small
                self.batcher.idle()
                chunk = FIRST_CHUNK

    def process(self, messages: list[M]) -> list[str]:
        """The per-message hot path: normalize, track liveness, serialize."""
        normalize = self.normalizer.normalize
        observe = self.liveness.observe
        reject = self.quarantine.reject
        own = self.source.own
        passages = self.passages
        lines: list[str] = []
        touched: set[DeviceKey] = set()
        changed = False
        seen = self.clock.monotonic()  # when we heard from them (a batch is milliseconds)
        own_messages = 0
        reading_line = schema.reading_line
        types = self.types
        assert types is not None
        for m in messages:
            received_us = m.received_us
            received_ms = received_us // 1000
            if m.oversize:  # skipped as it streamed in: only its start is here
                size = m.oversize
                reject(m.topic, m.payload, "payload_too_large", f"{size} bytes", received_ms, size)
                continue
            try:
                result = normalize(m.topic, m.payload, received_ms, m.retain)
                if isinstance(result, Rejected):
                    if own(m.topic, m.payload):  # the canary: nobody's bad input
                        own_messages += 1
                    else:
                        reject(m.topic, m.payload, result.reason, result.detail, received_ms)
                    continue
                # most messages are one reading; a Sparkplug message may be several, or none
                readings = result if isinstance(result, list) else (result,)
                made: list[tuple[Reading, str | None]] = []
                for reading in readings:
                    if reading.clock_skew:
                        self.stats.clock_skew += 1
                    line = None
                    if reading.ts_ms is not None:
                        line = reading_line(reading, reading.ts_ms * 1000, types)
                    elif not reading.retained and reading.channel != "status":
                        # retained without a time of its own: old news, not a point (SPEC 4)
                        line = reading_line(reading, self._stamp(reading, received_us), types)
                    made.append((reading, line))
            except LineProtocolError as e:  # the normalizer should prevent this
                reject(m.topic, m.payload, "invalid_value", str(e), received_ms)
                continue
            except Exception as e:
                self._internal_error(m, e, received_ms)
                continue
            for reading, line in made:
                if line is not None:
                    lines.append(line)
                if (
                    reading.event_type == PLATE_READ
                    and passages is not None
                    and not reading.retained
                ):
                    ts_ms = received_ms if reading.ts_ms is None else reading.ts_ms
                    lines += passage_lines(passages.read(reading, ts_ms))
                changed |= observe(reading, seen)
                touched.add(reading.device.key)
        self.stats.messages_received += len(messages) - own_messages
        # device_status at every change: once per device per batch, not per message
        ts_us = now_us(self.clock)
        for key in touched:
            point = self.liveness.status_point(key, seen)
            if point is not None:
                lines.append(schema.device_status_line(*point, ts_us))
                changed = True
        if changed:
            self.on_change()
        return lines

    def _stamp(self, reading: Reading, received_us: int) -> int:
        """The receive time, unique within the reading's series: the messages of one socket
        read share a receive time, and each must stay a point of its own (SPEC 4)."""
        key = (reading.device.key, reading.channel)
        last = self._stamps.get(key, 0)
        ts_us = received_us if received_us > last else last + 1
        self._stamps[key] = ts_us
        return ts_us

    def _internal_error(self, m: M, e: Exception, received_ms: int) -> None:
        if not self.stats.rejected_by_reason["internal_error"]:
            log.error("ingest.internal_error", topic=m.topic[:200], exc_info=True)
        self.quarantine.reject(
            m.topic, m.payload, "internal_error", f"{type(e).__name__}: {e}"[:300], received_ms
        )

    async def flush(self) -> None:
        """Write batches, ``WRITES_IN_FLIGHT`` at a time; ack each batch's messages once
        it and every batch before it are stored, so acks keep the order of arrival."""
        slots = asyncio.Semaphore(WRITES_IN_FLIGHT)
        before: asyncio.Task[None] | None = None
        async with asyncio.TaskGroup() as tg:
            while (batch := await self.batcher.next()) is not None:
                await slots.acquire()
                before = tg.create_task(self._store(batch, before, slots))

    async def _store(
        self, batch: Batch[M], before: asyncio.Task[None] | None, slots: asyncio.Semaphore
    ) -> None:
        try:
            await self.sink.write(batch.lines)
            if before is not None:
                await before  # it failed: so does this (the TaskGroup stops them all)
            self.quarantine.flush()  # rejected messages are acked too: keep them first
            if self.passages is not None:
                await self.passages.asave()  # so are the plate reads the passages are made of
            self.source.ack(batch.acks)
        finally:
            slots.release()


class Points:
    """Points that are no message's: alerting's and the monitor's own, into the batches,
    stamped with the wall clock."""

    def __init__(self, batcher: Batcher[M], instance: str, stats: Stats, clock: Clock) -> None:
        self._add: Callable[[list[str]], object] = batcher.add
        self._instance = instance
        self._stats = stats
        self._clock = clock

    def statuses(self, points: Iterable[StatusPoint]) -> None:
        ts_us = now_us(self._clock)
        self._add([schema.device_status_line(*p, ts_us) for p in points])

    def transitions(self, alerts: Iterable[Alert], now: float) -> None:
        """Alert transitions at ``now`` (monotonic: their durations)."""
        ts_us = now_us(self._clock)
        self._add([schema.alert_line(a, a.duration(now), ts_us) for a in alerts])

    def passages(self, outcomes: list[Outcome]) -> None:
        """Passages given up (``max_dwell``) by the clock, not by a read."""
        self._add(passage_lines(outcomes))

    def monitor(self) -> None:
        """The `monitor` measurement: the collector's own counters."""
        latency = self._stats.take_latency_ms()
        line = schema.monitor_line(self._instance, self._stats, latency, now_us(self._clock))
        self._add([line])


def passage_lines(outcomes: list[Outcome]) -> list[str]:
    """SPEC 9's points: a closed passage in `passages`; an entry that never left and an exit
    that never entered as events of the camera that read them (`passage_unmatched`,
    `exit_without_entry`), at the read's time, so a redelivered read writes them again
    onto themselves."""
    lines: list[str] = []
    for o in outcomes:
        if isinstance(o, Passage):
            lines.append(schema.passage_line(o))
        elif isinstance(o, Unmatched):
            p = o.passage
            camera = Device(p.entry_device, "anpr_camera", p.site, p.entry_area)
            fields: dict[str, FieldValue] = {"plate_hash": p.plate_hash, "why": o.why}
            ts_us = schema.plate_time_us(p.entry_ms, p.plate_hash)
            lines.append(schema.event_line(camera, "passage_unmatched", fields, ts_us))
        elif isinstance(o, ExitWithoutEntry):
            r = o.read
            camera = Device(r.device, "anpr_camera", r.site, r.area)
            ts_us = schema.plate_time_us(r.ts_ms, r.plate_hash)
            lines.append(
                schema.event_line(camera, "exit_without_entry", {"plate_hash": r.plate_hash}, ts_us)
            )
    return lines
