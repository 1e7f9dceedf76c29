"""A second MQTT session beside the persistent one: a Sparkplug host application's (SPEC 3.4).

Sparkplug 3.0 asks of a host application a session with Clean Start and Session Expiry 0
(tck-id-message-flow-phid-sparkplug-clean-session-50), its STATE as the Will, its
subscriptions made before anything is published, and its STATE birth as the first message
it publishes. The canonical topics need the opposite: a persistent session that keeps what
arrives while the monitor is away (SPEC 7). One MQTT connection has one session, so the
host gets a connection of its own; its messages go into the same inbox and through the same
pipeline, and are acknowledged the same way, after their points are stored (a message not
acknowledged when the connection drops is gone with the session: the edge nodes keep
their data while our STATE says offline, and send it as historical metrics).

It does not speak Sparkplug: the wiring hands it the Will to register at each CONNECT, what
to do once subscribed, and the last words to publish before a clean DISCONNECT.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from monitor import logs
from monitor.backoff import backoff_delay
from monitor.clock import Clock
from monitor.config import MQTT
from monitor.errors import BrokerError
from monitor.lifecycle import always, leading
from monitor.source import wire
from monitor.source.connection import Connection, keep_alive, reply
from monitor.source.inbox import Inbox
from monitor.stats import Stats

log = logs.get(__name__)

Words = tuple[str, bytes]  # topic, payload: QoS 1, retained
LAST_WORDS_TIMEOUT_S = 1.0  # a clean stop waits this long at most for its STATE's PUBACK


class HostSession:
    """Owns the host's connection and its reconnect loop; feeds the shared inbox."""

    def __init__(
        self,
        config: MQTT,
        client_id: str,
        subscriptions: list[str],
        inbox: Inbox,
        stats: Stats,
        clock: Clock,
        *,
        will: Callable[[], Words],
        on_connected: Callable[[], None],
        last_words: Callable[[], Words],
        open_connection: Callable[[Connection], Awaitable[None]],
        next_generation: Callable[[], int],
        limit: int = wire.MAX_REMAINING_LENGTH,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self.client_id = client_id
        self.subscriptions = subscriptions
        self._inbox = inbox
        self._stats = stats
        self._clock = clock
        self._will = will
        self._on_connected = on_connected
        self._last_words = last_words
        self._open = open_connection
        self._next_generation = next_generation
        self._limit = limit
        self._rng = rng or random.Random()
        self.conn: Connection | None = None
        self.connected = False
        self.refused: dict[str, str] = {}
        self.may_connect: Callable[[], bool] = always  # the source's (SPEC 8.1)

    async def run(self) -> None:
        """Connect, stay connected, reconnect with jittered backoff; until cancelled."""
        cfg = self._config
        attempt = 0
        last_error = ""
        while True:
            # SPEC 8.1: no new connection without the lease (it would throw the leader's off)
            await leading(self.may_connect)
            try:
                conn, keepalive = await self._connect()
            except BrokerError as e:
                delay = backoff_delay(attempt, cfg.reconnect.initial, cfg.reconnect.max, self._rng)
                attempt += 1
                if str(e) != last_error:
                    log.error("sparkplug.session_failed", client_id=self.client_id, error=str(e))
                    last_error = str(e)
                await asyncio.sleep(delay)
                continue
            attempt, last_error = 0, ""
            await keep_alive(conn, keepalive)
            self.connected = False
            self._stats.sparkplug_session_connected = False
            log.warning(
                "sparkplug.session_lost",
                client_id=self.client_id,
                reason=conn.disconnect_reason or "connection lost",
            )
            await asyncio.sleep(
                backoff_delay(0, cfg.reconnect.initial, cfg.reconnect.max, self._rng)
            )

    async def _connect(self) -> tuple[Connection, float]:
        cfg = self._config
        conn = Connection(
            self._next_generation(),
            self._clock,
            self._inbox,
            asyncio.get_running_loop(),
            self._limit,
        )
        await self._open(conn)
        self.conn = conn
        password = cfg.password.get_secret_value() if cfg.password else None
        conn.write(
            wire.connect(
                self.client_id,
                keepalive=int(cfg.keepalive),
                session_expiry=0,  # Sparkplug 3.0: Clean Start and no session after it
                receive_maximum=cfg.receive_maximum,
                clean_start=True,
                username=cfg.username,
                password=password,
                will=self._will(),
            )
        )
        connack = await reply(conn, conn.connack, "CONNACK")
        if connack.failed:
            conn.abort()
            raise BrokerError(f"connection refused: {connack.reason}", reason_code=connack.reason)
        server_keepalive = connack.properties.get(wire.SERVER_KEEP_ALIVE)
        keepalive = float(server_keepalive) if isinstance(server_keepalive, int) else cfg.keepalive
        # subscribed before anything is published (tck-id-message-flow-phid-sparkplug-subscription)
        conn.write(wire.subscribe(1, self.subscriptions))
        codes = await reply(conn, conn.suback, "SUBACK")
        self.refused = {
            t: wire.reason_name(wire.SUBACK, c)
            for t, c in zip(self.subscriptions, codes, strict=False)
            if c >= 0x80
        }
        for topic, reason in self.refused.items():
            log.error("sparkplug.subscribe_refused", topic=topic, reason=reason)
        self.connected = True
        self._stats.sparkplug_session_connected = True
        self._on_connected()  # its STATE birth: the first message it publishes
        log.info(
            "sparkplug.session_connected",
            client_id=self.client_id,
            subscriptions=",".join(self.subscriptions),
        )
        return conn, keepalive

    def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 1) -> bool:
        """Publish on the host's connection; False when there is none."""
        conn = self.conn
        if conn is None or not self.connected or conn.lost.is_set():
            return False
        conn.publish(topic, payload, retain, qos)
        return True

    def reconnect(self) -> None:
        """A new session (a new Will, so a new STATE timestamp): a clean DISCONNECT, so the
        broker drops the old Will instead of publishing it, and the loop connects again."""
        conn = self.conn
        if conn is not None and not conn.lost.is_set() and conn.transport is not None:
            conn.write(wire.DISCONNECT_PACKET)
            conn.transport.close()  # after the DISCONNECT is written

    def ack(self, mids: list[int], generation: int) -> None:
        conn = self.conn
        if mids and conn is not None and conn.generation == generation and not conn.lost.is_set():
            conn.write(wire.pubacks(mids))

    def resume(self) -> None:
        if self.conn is not None:
            self.conn.resume()

    async def close(self) -> None:
        """A clean stop: the offline STATE with the stop's time, then DISCONNECT (the
        broker then drops the Will, whose time is the connect's)."""
        conn = self.conn
        if conn is None or conn.lost.is_set():
            return
        if self.connected:
            topic, payload = self._last_words()
            acked = asyncio.Event()
            mid = conn.publish(topic, payload, retain=True)
            conn.on_puback = lambda m, code: acked.set() if m == mid else None
            with contextlib.suppress(TimeoutError):  # the broker has it before we go
                async with asyncio.timeout(LAST_WORDS_TIMEOUT_S):
                    await acked.wait()
        self.connected = False
        await conn.close(with_will=False, broker_closes=True)
