"""The inbox: received messages waiting for ingest, bounded by count and by bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from monitor.source.wire import Message


class Inbox:
    """Received messages waiting for ingest, bounded by message count and bytes."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._items: list[Message] = []
        self._bytes = 0
        self._closed = False
        self._ready = asyncio.Event()
        self.on_room: Callable[[], None] = lambda: None

    def full(self) -> bool:
        return len(self._items) >= self._max_items or self._bytes >= self._max_bytes

    def extend(self, messages: list[Message], nbytes: int) -> None:
        if self._closed:
            return  # not acked: the broker redelivers them on the next session
        self._items.extend(messages)
        self._bytes += nbytes
        self._ready.set()

    async def get(self) -> list[Message] | None:
        """The next batch (everything waiting), or None once closed and drained."""
        while True:
            if self._items:
                items, self._items, self._bytes = self._items, [], 0
                self.on_room()
                return items
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        self._closed = True
        self._ready.set()
