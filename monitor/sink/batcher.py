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
    """Collects lines (and the ack tokens of what they came from) until ``max_points`` or
    ``max_delay`` after the first one; holds at most twice ``max_points`` (backpressure)."""

    def __init__(self, max_points: int, max_delay: float) -> None:
        self._max_points = max_points
        self._max_delay = max_delay
        self._batch: Batch[Ack] = Batch()
        self._first_at: float | None = None
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
        if len(self._batch.lines) >= self._max_points:
            self._changed.set()

    async def wait_room(self) -> None:
        while len(self._batch.lines) >= 2 * self._max_points:
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
                if self._closed or len(self._batch.lines) >= self._max_points or loop.time() >= due:
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
        self._room.set()
        return batch
