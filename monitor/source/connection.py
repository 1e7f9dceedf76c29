"""One TCP/TLS connection to the broker: framing in (whole reads decoded in one pass by
``wire.parse``), packets out, and a packet over the limit skipped as it streams in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from monitor import logs
from monitor.clock import Clock, now_us
from monitor.errors import BrokerError
from monitor.source import wire
from monitor.source.inbox import Inbox
from monitor.source.wire import Message

log = logs.get(__name__)

T = TypeVar("T")

# Of a packet over the limit, what is kept: its topic and properties, and enough of its
# payload for the quarantine to show what it was.
HEAD_KEPT = 128 * 1024
REPLY_TIMEOUT_S = 10.0  # for CONNACK, SUBACK, and the TCP/TLS connection itself
CLOSE_TIMEOUT_S = 2.0


@dataclass(slots=True)
class _Skipping:
    """A packet over the limit, passing through: its first bytes are kept, the rest not."""

    first: int  # its fixed header's first byte
    size: int  # its body's length
    left: int  # bytes of its body still to come
    head: bytearray  # the first bytes of its body (up to HEAD_KEPT)
    received_us: int


class Connection(asyncio.Protocol):
    """One TCP/TLS connection to the broker: framing in, packets out.

    A packet longer than ``limit`` is not collected: its first HEAD_KEPT bytes are kept and
    the rest is skipped as it streams in, so it costs its transfer and no more memory; it
    reaches the inbox, in its place in the stream, with ``oversize`` set."""

    def __init__(
        self,
        generation: int,
        clock: Clock,
        inbox: Inbox,
        loop: asyncio.AbstractEventLoop,
        limit: int = wire.MAX_REMAINING_LENGTH,
    ) -> None:
        self.generation = generation
        self._clock = clock
        self._inbox = inbox
        self._loop = loop
        self._limit = limit
        self._rest = b""
        self._skipping: _Skipping | None = None
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[wire.ConnAck] = loop.create_future()
        self.suback: asyncio.Future[list[int]] = loop.create_future()
        self.lost = asyncio.Event()
        self.last_received = loop.time()
        self.paused = False
        self.disconnect_reason: str | None = None
        self.on_puback: Callable[[int, int], None] = lambda mid, code: None
        self._next_mid = 0
        self.last_publish: float | None = None  # when a message last arrived (monotonic)

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.last_received = self._loop.time()
        try:
            while data:  # more than once only around a packet over the limit
                data = self._receive(data)
        except (wire.ProtocolError, IndexError) as e:
            log.error("mqtt.protocol_error", error=str(e) or "truncated packet")
            self.abort()

    def _receive(self, data: bytes) -> bytes:
        """Take what ``data`` completes; return what follows a packet over the limit."""
        if self._skipping is not None:
            return self._skip(data)
        buf = self._rest + data if self._rest else data
        messages: list[Message] = []
        controls: list[wire.Control] = []
        received_us = now_us(self._clock)
        used = wire.parse(buf, self.generation, received_us, messages, controls, self._limit)
        self._deliver(messages, used)
        for control in controls:
            self._control(control)
        header = wire.packet_header(buf, used) if len(buf) - used >= 2 else None
        if header is None or header[1] <= self._limit:
            self._rest = buf[used:]
            return b""
        header_size, size = header
        self._rest = b""
        self._skipping = _Skipping(buf[used], size, size, bytearray(), received_us)
        return buf[used + header_size :]

    def _skip(self, data: bytes) -> bytes:
        s = self._skipping
        assert s is not None
        take = min(len(data), s.left)
        if len(s.head) < HEAD_KEPT:
            s.head += data[: min(take, HEAD_KEPT - len(s.head))]
        s.left -= take
        if s.left:
            return b""
        self._skipping = None
        message = wire.truncated_publish(
            s.first, bytes(s.head), self.generation, s.received_us, s.size
        )
        self._deliver([message], len(s.head))
        return data[take:]

    def _deliver(self, messages: list[Message], nbytes: int) -> None:
        # Heard the broker: a live message. Retained ones are resent at every subscribe,
        # also through a bridge that delivers nothing live (SPEC 7): not a sign of hearing.
        if messages and (not messages[-1].retain or any(not m.retain for m in messages)):
            self.last_publish = self._clock.monotonic()
        if messages:
            self._inbox.extend(messages, nbytes)
            if self._inbox.full() and self.transport is not None:
                self.transport.pause_reading()
                self.paused = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        # Not the socket error itself: a TLS alert or a reset, by timing, for one cause,
        # and the reconnect loop logs each distinct message once.
        why = f" ({self.disconnect_reason})" if self.disconnect_reason else ""
        fail(
            self.connack,
            BrokerError(
                f"the broker closed the connection before CONNACK{why}; with TLS: is a"
                " client certificate required (mqtt.tls.cert_file/key_file)?"
            ),
        )
        fail(self.suback, BrokerError(f"the broker closed the connection before SUBACK{why}"))

    # -- packets --

    def _control(self, packet: wire.Control) -> None:
        try:
            if packet.type == wire.CONNACK and not self.connack.done():
                self.connack.set_result(wire.connack(packet.body))
            elif packet.type == wire.SUBACK and not self.suback.done():
                self.suback.set_result(wire.suback(packet.body)[1])
            elif packet.type == wire.PUBACK:
                self.on_puback(*wire.puback(packet.body))
            elif packet.type == wire.DISCONNECT:
                self.disconnect_reason = wire.disconnect_reason(packet.body)
                log.warning("mqtt.disconnected_by_broker", reason=self.disconnect_reason)
        except wire.ProtocolError as e:
            log.error("mqtt.protocol_error", error=str(e))
            self.abort()
        # PINGRESP needs nothing: any byte received proves the broker alive.

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 1) -> int:
        """Publish at QoS 1 (the packet id, which the PUBACK brings back) or 0 (0)."""
        if not qos:
            self.write(wire.publish(topic, payload, 0, retain, qos=0))
            return 0
        self._next_mid = self._next_mid % 65535 + 1
        self.write(wire.publish(topic, payload, self._next_mid, retain))
        return self._next_mid

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = False
            self.last_received = self._loop.time()  # we were not listening meanwhile
            self.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def close(self, with_will: bool = False, broker_closes: bool = False) -> None:
        """DISCONNECT after whatever was written (acks), then close once it is flushed;
        ``with_will``: asking the broker to publish our Will (we are going away);
        ``broker_closes``: leave the socket to the broker, which may still be writing to
        us (a message of ours coming back): closed under it, its write fails before it
        reads our DISCONNECT, and it publishes our Will after all (mosquitto does)."""
        if self.write(wire.DISCONNECT_WITH_WILL if with_will else wire.DISCONNECT_PACKET):
            assert self.transport is not None
            if not broker_closes:
                self.transport.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.lost.wait()
        except TimeoutError:
            self.abort()


async def keep_alive(conn: Connection, keepalive: float) -> None:
    """PINGREQ every half keepalive; drop a connection silent for 1.5 keepalives."""
    if keepalive <= 0:
        await conn.lost.wait()
        return
    loop = asyncio.get_running_loop()
    while not conn.lost.is_set():
        try:
            async with asyncio.timeout(keepalive / 2):
                await conn.lost.wait()
        except TimeoutError:
            pass
        if conn.lost.is_set():
            return
        if not conn.paused and loop.time() - conn.last_received > keepalive * 1.5:
            log.warning("mqtt.keepalive_timeout", silent_for_s=round(keepalive * 1.5, 1))
            conn.abort()
            continue
        conn.write(wire.PINGREQ_PACKET)


def fail(future: asyncio.Future[Any], error: BrokerError) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # nobody may await it any more: not an unretrieved error


async def reply(conn: Connection, reply: asyncio.Future[T], what: str) -> T:
    """The broker's answer to what we sent, or the connection dropped if none comes."""
    try:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            return await reply
    except TimeoutError:
        conn.abort()
        raise BrokerError(f"no {what} from the broker") from None
