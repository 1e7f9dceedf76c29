"""Batching of points between the ingest task and the writer task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# Whatever the source needs back to acknowledge what a batch's lines came from (the
# batcher only carries them, in order).
Ack = TypeVar("Ack")


@dataclass(slots=True)
class Batch(Generic[Ack]):
    lines: list[str] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)


class Batcher(Generic[Ack]):
    """Collects lines (and the ack tokens of what they came from) for the writer.

    A batch is due at once when nothing more is coming (``idle``: the broker may be
    waiting for our acks before it sends more, so waiting on a timer would waste its
    window), when it reaches ``max_points`` or ``max_bytes``, and at the latest
    ``max_delay`` after its first line. While the writer is busy lines accumulate, so
    batches grow with the load. It holds at most twice ``max_points`` and ``max_bytes``:
    beyond that ``wait_room`` holds ingest back (and the broker holds the rest)."""

    def __init__(self, max_points: int, max_delay: float, max_bytes: int = 8 << 20) -> None:
        self.max_points = max_points
        self._max_delay = max_delay
        self._max_bytes = max_bytes
        self._batch: Batch[Ack] = Batch()
        self._bytes = 0
        self._first_at: float | None = None
        self._idle = False
        self._changed = asyncio.Event()
        self._room = asyncio.Event()
        self._closed = False

    def add(self, lines: list[str], acks: Sequence[Ack] = ()) -> None:
        if not lines and not acks:
            return
        if self._first_at is None:
            self._first_at = asyncio.get_running_loop().time()
            self._changed.set()
        self._batch.lines.extend(lines)
        self._batch.acks.extend(acks)
        self._bytes += sum(map(len, lines))
        if self._full(1):
            self._changed.set()

    def idle(self) -> None:
        """Nothing more is coming for now: what is held is due."""
        self._idle = True
        self._changed.set()

    def _full(self, times: int) -> bool:
        return (
            len(self._batch.lines) >= times * self.max_points
            or self._bytes >= times * self._max_bytes
        )

    async def wait_room(self) -> None:
        while self._full(2):
            self._room.clear()
            await self._room.wait()

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def next(self) -> Batch[Ack] | None:
        """The next batch to write, or None once closed and empty."""
        loop = asyncio.get_running_loop()
        while True:
            if self._first_at is not None:
                due = self._first_at + self._max_delay
                if self._closed or self._idle or self._full(1) or loop.time() >= due:
                    return self._take()
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(due):
                        await self._changed.wait()
            elif self._closed:
                return None
            else:
                self._changed.clear()
                await self._changed.wait()

    def _take(self) -> Batch[Ack]:
        batch, self._batch, self._first_at = self._batch, Batch(), None
        self._bytes, self._idle = 0, False
        self._room.set()
        return batch
