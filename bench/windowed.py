"""A broker that caps the in-flight window itself, for tests and ``bench.drain``.

``WindowedBroker`` is a TCP proxy in front of a real broker that keeps at most ``window``
QoS 1/2 PUBLISHes unacknowledged towards each client, whatever the client's Receive
Maximum: what ejabberd (1) and EMQX (``max_inflight``, 32 by default) do. Mosquitto 2.0
cannot stand in: it caps MQTT 5 clients by their own Receive Maximum only, and after the
first PUBACK it sends a whole window more (measured on 2.0.11).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

from monitor.sim.devservers import free_port
from monitor.source import wire


class WindowedBroker:
    """``async with WindowedBroker(broker_port, window) as b``: clients connect to
    ``b.port``; ``most_in_flight`` is the largest window any client had."""

    def __init__(self, upstream_port: int, window: int) -> None:
        self.upstream_port = upstream_port
        self.window = window
        self.port = free_port()
        self.most_in_flight = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> WindowedBroker:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._clients:
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()

    async def _client(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        in_flight = 0
        held: collections.deque[bytes] = collections.deque()

        def release() -> None:
            nonlocal in_flight
            while held and in_flight < self.window:
                down_w.write(held.popleft())
                in_flight += 1
            self.most_in_flight = max(self.most_in_flight, in_flight)

        async def broker_to_client() -> None:
            async for first, packet in _packets(up_r):
                if first >> 4 == wire.PUBLISH and first & 0x06:
                    held.append(packet)
                    release()
                else:
                    down_w.write(packet)

        async def client_to_broker() -> None:
            nonlocal in_flight
            async for first, packet in _packets(down_r):
                if first >> 4 == wire.PUBACK:
                    in_flight -= 1
                    release()
                up_w.write(packet)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(broker_to_client())
                tg.create_task(client_to_broker())
        except* (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (up_w, down_w):
                w.close()
            self._clients.discard(task)


async def _packets(reader: asyncio.StreamReader) -> AsyncIterator[tuple[int, bytes]]:
    """(first byte, whole packet) as they come, until the connection ends."""
    buf = b""
    while chunk := await reader.read(65536):
        buf += chunk
        pos = 0
        while (head := wire.packet_header(buf, pos)) is not None:
            size = head[0] + head[1]
            if pos + size > len(buf):
                break
            yield buf[pos], buf[pos : pos + size]
            pos += size
        buf = buf[pos:]
