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

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self._max_items or self._bytes >= self._max_bytes

    def extend(self, messages: list[Message], nbytes: int) -> None:
        if self._closed:
            return  # not acked: the broker redelivers them on the next session
        self._items.extend(messages)
        self._bytes += nbytes
        self._ready.set()

    async def get(self, most: int) -> list[Message] | None:
        """The next batch (what is waiting, at most ``most``), or None once closed and
        drained. Taking a batch's worth at a time gets the first write out early and keeps
        what ingest holds at once bounded, however large the broker's window."""
        while True:
            if self._items:
                if len(self._items) <= most:
                    items, self._items, self._bytes = self._items, [], 0
                else:
                    items = self._items[:most]
                    del self._items[:most]
                    self._bytes -= self._bytes * most // (most + len(self._items))
                self.on_room()
                return items
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        self._closed = True
        self._ready.set()
