"""The ingest pipeline: MQTT batches -> normalize -> line protocol -> batcher -> writer -> ack.

Two tasks: ``consume`` normalizes while ``flush`` writes the previous batch, so parsing
and the HTTP round trip overlap. One writer task writes batches in order and acks after
each, which keeps PUBACKs in the order the PUBLISHes arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from monitor import logs, schema
from monitor.batcher import Batcher
from monitor.clock import Clock
from monitor.errors import LineProtocolError
from monitor.liveness import Liveness
from monitor.mqtt import Message, MqttSource
from monitor.normalize import Normalizer, Rejected
from monitor.quarantine import Quarantine
from monitor.stats import Stats

log = logs.get(__name__)


class Sink(Protocol):
    async def write(self, lines: list[str]) -> None: ...


class Ingest:
    def __init__(
        self,
        source: MqttSource,
        normalizer: Normalizer,
        writer: Sink,
        quarantine: Quarantine,
        liveness: Liveness,
        batcher: Batcher,
        stats: Stats,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._source = source
        self._normalizer = normalizer
        self._writer = writer
        self._quarantine = quarantine
        self._liveness = liveness
        self._batcher = batcher
        self._stats = stats
        self._clock = clock
        self._on_change = on_change

    async def consume(self) -> None:
        """Normalize every received batch into the batcher, until the inbox is closed."""
        async for messages in self._source.batches():
            await self._batcher.wait_room()
            self._batcher.add(self.process(messages), messages)

    def process(self, messages: list[Message]) -> list[str]:
        """The per-message hot path: normalize, track liveness, serialize."""
        normalize = self._normalizer.normalize
        observe = self._liveness.observe
        reject = self._quarantine.reject
        lines: list[str] = []
        touched: set[str] = set()
        changed = False
        self._stats.messages_received += len(messages)
        for m in messages:
            received_ms = m.received_ms
            try:
                result = normalize(m.topic, m.payload, received_ms, m.retain)
                if isinstance(result, Rejected):
                    reject(m.topic, m.payload, result.reason, result.detail, received_ms)
                    continue
                if result.clock_skew:
                    self._stats.clock_skew += 1
                line = schema.reading_line(result)
            except LineProtocolError as e:  # the normalizer should prevent this
                reject(m.topic, m.payload, "invalid_value", str(e), received_ms)
                continue
            except Exception as e:
                self._internal_error(m, e, received_ms)
                continue
            if line is not None:
                lines.append(line)
            changed |= observe(result, received_ms / 1000)
            touched.add(result.device.id)
        # device_status at every change: once per device per batch, not per message
        now = self._clock.now()
        for device_id in touched:
            status_line = self._liveness.status_line(device_id, now)
            if status_line is not None:
                lines.append(status_line)
                changed = True
        if changed:
            self._on_change()
        return lines

    def _internal_error(self, m: Message, e: Exception, received_ms: int) -> None:
        if not self._stats.rejected_by_reason["internal_error"]:
            log.error("ingest.internal_error", topic=m.topic[:200], exc_info=True)
        self._quarantine.reject(
            m.topic, m.payload, "internal_error", f"{type(e).__name__}: {e}"[:300], received_ms
        )

    async def flush(self) -> None:
        """Write batches in order; ack each batch's messages once it is stored."""
        while (batch := await self._batcher.next()) is not None:
            await self._writer.write(batch.lines)
            self._quarantine.flush()  # rejected messages are acked too: keep them first
            self._source.ack(batch.acks)
