"""The MQTT source: an asyncio MQTT 5 subscriber with manual, in-order acknowledgement.

A protocol on the event loop receives whatever the socket has (often hundreds of
PUBLISHes per read), frames and decodes them in one pass (``wire.parse``) and
appends them to a bounded inbox that ingest takes in batches. Messages are acknowledged
(QoS 1 PUBACK) only once their points are stored, all of a batch's PUBACKs in one write.
The broker's unacknowledged window (our Receive Maximum) bounds what is in flight; when
the inbox is full anyway (QoS 0 outrunning us) the socket stops being read, which pushes
back on the broker instead of growing memory.

Why not paho's client (still used to publish, by the simulator and the tests): its
network thread reads each packet with several small ``recv`` calls, builds a message
object and calls back per packet, and queues each PUBACK with a lock and a wake-up
write; measured, that alone took about half of the collector's CPU (bench/README.md).

Acks are only valid on the connection that delivered the message: each message carries
its connection's generation, and a message from an earlier connection is never acked
(the broker redelivers it on the persistent session, and a duplicate write is harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Callable, Sequence

from monitor import logs
from monitor.backoff import backoff_delay
from monitor.clock import Clock
from monitor.config import MQTT, TLS
from monitor.errors import BrokerError
from monitor.lifecycle import Resource, always, leading
from monitor.model import BrokerOutage
from monitor.source import wire
from monitor.source.canary import Canary
from monitor.source.connection import REPLY_TIMEOUT_S, Connection, keep_alive, reply
from monitor.source.host_session import HostSession, Words
from monitor.source.inbox import Inbox
from monitor.source.wire import Message
from monitor.stats import Stats

__all__ = ["Inbox", "Message", "MqttSource"]

log = logs.get(__name__)

HEADER_ALLOWANCE = 2 + 65_535 + 2 + 4096  # topic length and topic, packet id, properties


def _tls_context(tls: TLS) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if tls.insecure:
        ctx.check_hostname = False  # the certificate is still verified against the CA
    return ctx


class MqttSource(Resource):
    """Owns the connection, the reconnect loop, the inbox and the ack stream."""

    def __init__(
        self,
        config: MQTT,
        subscriptions: list[str],
        stats: Stats,
        clock: Clock,
        *,
        max_payload: int | None = None,
        subscribed_before: Sequence[str] = (),
        inbox_max_bytes: int = 64 * 1024 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        # A PUBLISH longer than its payload limit plus the longest topic and some
        # properties is skipped as it streams in (the normalizer rejects the ones between).
        self._limit = (
            wire.MAX_REMAINING_LENGTH if max_payload is None else max_payload + HEADER_ALLOWANCE
        )
        self._subscriptions = subscriptions
        self._stats = stats
        self._clock = clock
        self._rng = rng or random.Random()
        self.may_connect: Callable[[], bool] = always  # the wiring's (SPEC 8.1)
        self._generation = 0
        self._tls: ssl.SSLContext | None = None
        # The inbox holds the whole unacknowledged window plus room for QoS 0 traffic.
        self._inbox = Inbox(config.receive_maximum + 10_000, inbox_max_bytes)
        self._inbox.on_room = self._resume
        self._conn: Connection | None = None
        self.connected = asyncio.Event()
        # Since when we have no broker (from the start until the first connection too):
        # the rules pause device alerts meanwhile. Monotonic.
        self.down_since: float | None = clock.monotonic()
        self.on_change: Callable[[bool], None] = lambda connected: None
        # What the persistent session was subscribed to (a topic dropped from the config
        # is unsubscribed), and where to say what it is subscribed to now.
        self._subscribed_before = list(subscribed_before)
        self.on_subscribed: Callable[[list[str]], None] = lambda topics: None
        self.refused: dict[str, str] = {}  # subscriptions the broker refused: reason
        self.downgraded: list[str] = []  # granted QoS 0: their messages are never acked
        canary = config.canary
        self._canary = (
            Canary(subscriptions, config.client_id, canary.timeout) if canary.enabled else None
        )
        self._canary_mids: set[int] = set()
        self._deaf = False  # outage() says: nothing heard (or the canary did not come back)
        self._listening = False  # outage() says: nothing heard yet on this connection
        self._connected_at = clock.monotonic()
        self.host: HostSession | None = None  # a Sparkplug host's own session (SPEC 3.4)

    def add_host_session(
        self,
        client_id: str,
        subscriptions: list[str],
        *,
        will: Callable[[], Words],
        on_connected: Callable[[], None],
        last_words: Callable[[], Words],
    ) -> HostSession:
        """A second connection with a clean session of its own, into the same inbox."""
        self.host = host = HostSession(
            self._config,
            client_id,
            subscriptions,
            self._inbox,
            self._stats,
            self._clock,
            will=will,
            on_connected=on_connected,
            last_words=last_words,
            open_connection=self._open,
            next_generation=self._next_generation,
            limit=self._limit,
            rng=self._rng,
        )
        host.may_connect = lambda: self.may_connect()  # set by the wiring after this
        return host

    def _next_generation(self) -> int:
        """Generations are unique across both connections: an ack finds its own."""
        self._generation += 1
        return self._generation

    # -- lifecycle --

    async def open(self) -> None:
        if self._config.tls.enabled:
            try:
                self._tls = _tls_context(self._config.tls)
            except (ssl.SSLError, OSError, ValueError) as e:
                raise BrokerError(f"TLS set-up failed (mqtt.tls files): {e}") from None

    async def aclose(self) -> None:
        self._inbox.close()
        if self.host is not None:
            await self.host.close()  # its offline STATE, then its DISCONNECT
        if self._conn is not None:
            # the DISCONNECT goes after any acks already written
            await self._conn.close()
        self._set_disconnected()

    # -- the connection loop --

    async def run(self) -> None:
        """Both sessions (the host's if there is one), until cancelled."""
        if self.host is None:
            await self._run()
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.host.run(), name="sparkplug-session")
            await self._run()

    async def _run(self) -> None:
        """Connect, stay connected, reconnect with jittered backoff; until cancelled."""
        cfg = self._config
        attempt = 0
        last_error = ""
        while True:
            # SPEC 8.1: a leader without its lease connects no more (a standby that took
            # over holds the shared client id now; connecting would throw it off)
            await leading(self.may_connect)
            try:
                conn, keepalive = await self._connect()
            except BrokerError as e:
                self._stats.broker_connect_failures += 1
                delay = backoff_delay(attempt, cfg.reconnect.initial, cfg.reconnect.max, self._rng)
                attempt += 1
                # One line per distinct error, not one per retry.
                if str(e) != last_error:
                    log.error(
                        "mqtt.connect_failed",
                        host=cfg.host,
                        port=cfg.port,
                        error=str(e),
                        retry_in_s=round(delay, 2),
                    )
                    last_error = str(e)
                await asyncio.sleep(delay)
                continue
            attempt, last_error = 0, ""
            async with asyncio.TaskGroup() as tg:  # both end with the connection
                tg.create_task(keep_alive(conn, keepalive), name="mqtt-keepalive")
                tg.create_task(self._sing(conn), name="mqtt-canary")
            self._set_disconnected()
            log.warning(
                "mqtt.disconnected",
                host=cfg.host,
                port=cfg.port,
                reason=conn.disconnect_reason or "connection lost",
            )
            await asyncio.sleep(
                backoff_delay(0, cfg.reconnect.initial, cfg.reconnect.max, self._rng)
            )

    async def _open(self, conn: Connection) -> None:
        cfg = self._config
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                await loop.create_connection(
                    lambda: conn,
                    cfg.host,
                    cfg.port,
                    ssl=self._tls,
                    server_hostname=cfg.host if self._tls else None,
                )
        except ssl.SSLCertVerificationError as e:
            raise BrokerError(
                f"TLS: the broker's certificate was not accepted ({e.verify_message});"
                " check mqtt.tls.ca_file and that mqtt.host matches the certificate"
            ) from None
        except ssl.SSLError as e:
            raise BrokerError(f"TLS handshake failed: {e.reason or e}") from None
        except TimeoutError:
            raise BrokerError("cannot connect: timed out") from None
        except OSError as e:
            raise BrokerError(f"cannot connect: {e.strerror or e}") from None

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
        self._conn = conn
        password = cfg.password.get_secret_value() if cfg.password else None
        conn.write(
            wire.connect(
                cfg.client_id,
                keepalive=int(cfg.keepalive),
                session_expiry=int(cfg.session_expiry),
                receive_maximum=cfg.receive_maximum,
                username=cfg.username,
                password=password,
            )
        )
        connack = await reply(conn, conn.connack, "CONNACK")
        if connack.failed:
            conn.abort()
            raise BrokerError(f"connection refused: {connack.reason}", reason_code=connack.reason)
        server_keepalive = connack.properties.get(wire.SERVER_KEEP_ALIVE)
        keepalive = float(server_keepalive) if isinstance(server_keepalive, int) else cfg.keepalive
        self._check_session(conn, connack.session_present)
        # Subscribed again on every connection: harmless with a session, needed without.
        conn.write(wire.subscribe(1, self._subscriptions))
        self._check_grants(await reply(conn, conn.suback, "SUBACK"))
        self._subscribed_before = list(self._subscriptions)
        self.on_subscribed(self._subscriptions)
        conn.on_puback = self._puback
        if self._canary is not None:
            self._canary.reset()
        self._connected_at = self._clock.monotonic()
        self._stats.broker_connected = True
        self._stats.broker_connects += 1
        self.down_since = None
        self.connected.set()
        self.on_change(True)
        log.info(
            "mqtt.connected",
            host=cfg.host,
            port=cfg.port,
            client_id=cfg.client_id,
            session_present=connack.session_present,
            subscriptions=",".join(self._subscriptions),
        )
        return conn, keepalive

    def _check_session(self, conn: Connection, present: bool) -> None:
        """A session we had and the broker does not: the messages it held are gone. One it
        has: topics no longer in the config are unsubscribed from it."""
        if not self._subscribed_before:
            return
        if not present:
            self._stats.broker_sessions_lost += 1
            log.warning(
                "mqtt.session_lost",
                client_id=self._config.client_id,
                consequence="messages the broker held for the monitor were dropped",
            )
            return
        stale = sorted(set(self._subscribed_before) - set(self._subscriptions))
        if stale:
            conn.write(wire.unsubscribe(2, stale))
            log.info("mqtt.unsubscribed", topics=",".join(stale), why="no longer in the config")

    def _check_grants(self, codes: list[int]) -> None:
        self.refused, self.downgraded = {}, []
        for topic, code in zip(self._subscriptions, codes, strict=False):
            if code >= 0x80:
                self.refused[topic] = wire.reason_name(wire.SUBACK, code)
                log.error("mqtt.subscribe_refused", topic=topic, reason=self.refused[topic])
            elif code == 0:
                self.downgraded.append(topic)
                log.warning(
                    "mqtt.subscribe_downgraded",
                    topic=topic,
                    consequence="granted QoS 0: its messages are never acknowledged, may be lost",
                )
        self._stats.subscriptions_refused = len(self.refused)
        self._stats.subscriptions_downgraded = len(self.downgraded)

    async def _sing(self, conn: Connection) -> None:
        """The canary (``canary.py``): one message per subscription every interval."""
        canary = self._canary
        if canary is None or not canary.topics:
            return
        while not conn.lost.is_set():
            if canary.refused is None:
                for topic in canary.topics:
                    self._canary_mids.add(conn.publish(topic, canary.payload()))
                canary.sent(self._clock.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.canary.interval):
                    await conn.lost.wait()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """Publish at QoS 1 on the current connection; False when there is none (the
        caller decides whether to try again after the next connect)."""
        conn = self._conn
        if conn is None or not self.connected.is_set() or conn.lost.is_set():
            return False
        conn.publish(topic, payload, retain)
        return True

    def _puback(self, mid: int, code: int) -> None:
        if mid not in self._canary_mids:
            return
        self._canary_mids.discard(mid)
        if code >= 0x80 and self._canary is not None and self._canary.refused is None:
            self._canary.refused = wire.reason_name(wire.PUBACK, code)
            log.error(
                "mqtt.canary_refused",
                reason=self._canary.refused,
                topics=",".join(self._canary.topics),
                consequence="a subscription that receives nothing cannot be told apart;"
                " let the monitor write these topics (README: The broker)",
            )

    def own(self, topic: str, payload: bytes) -> bool:
        """Whether a message is the source's own (its canary), not a device's."""
        canary = self._canary
        if canary is None:
            return False
        return canary.own(topic, payload)

    def outage(self) -> BrokerOutage | None:
        """The monitor's own outage on the broker side: since when, and what it is.

        Connected is not yet hearing: each connection is an outage until its first live
        message arrives (the canary itself, milliseconds later, where all is well; a
        device's where the canary is refused or disabled; not a retained one, which the
        broker resends at every subscribe, also through a broken bridge), so a deaf
        subscription never lets a device alert through whatever the timeouts. Once heard,
        only the canary can tell a deaf subscription from silent devices."""
        if self.down_since is not None:
            return BrokerOutage(self.down_since, "cannot reach the MQTT broker", connected=False)
        conn = self._conn
        if conn is None:
            return None
        now = self._clock.monotonic()
        canary = self._canary
        if conn.last_publish is None:
            if now - self._connected_at <= self._config.canary.timeout:
                self._listening = True
                return BrokerOutage(
                    self._connected_at, "has not heard from the MQTT broker yet", connected=True
                )
            return BrokerOutage(self._connected_at, self._deaf_now(self._why_unheard()), True)
        if canary is not None and canary.topics and canary.refused is None:
            deaf = canary.deaf_since(now, conn.last_publish)
            if deaf is not None:
                return BrokerOutage(deaf, self._deaf_now(self._canary_not_back(canary)), True)
        self._hearing()
        return None

    def _canary_not_back(self, canary: Canary) -> str:
        return (
            "is connected to the MQTT broker but hears nothing: its canary did not come"
            f" back within {canary.timeout:g} s on {', '.join(canary.topics)} (an ACL"
            " that denies reading, a broken bridge?)"
        )

    def _why_unheard(self) -> str:
        """Not one message since connecting, past the canary's timeout: the canary (if it
        sings) did not come back, and nothing else came either."""
        canary = self._canary
        if canary is not None and canary.topics and canary.refused is None:
            return self._canary_not_back(canary)
        if canary is not None and canary.refused is not None:
            canary_says = f"; the broker refuses its canary ({canary.refused}) too"
        else:
            canary_says = ""
        return (
            "is connected to the MQTT broker but hears nothing: not one message in the"
            f" {self._config.canary.timeout:g} s since it connected (an ACL that denies"
            f" reading, a broken bridge, or nothing publishing at all?){canary_says}"
        )

    def _deaf_now(self, why: str) -> str:
        if not self._deaf:
            self._deaf = True
            log.error("mqtt.deaf", why=why)
        return why

    def _hearing(self) -> None:
        if self._deaf:
            log.info("mqtt.hearing_again")
        if self._deaf or self._listening:
            self._deaf = self._listening = False
            self.on_change(True)  # devices get a fresh grace: we were not listening

    @property
    def canary_refused(self) -> str | None:
        return None if self._canary is None else self._canary.refused

    def _resume(self) -> None:
        if self._conn is not None:
            self._conn.resume()
        if self.host is not None:
            self.host.resume()

    def drop(self) -> None:
        """Drop the connection (the loop makes a new one): the broker then delivers again
        what was not acknowledged on it."""
        if self._conn is not None:
            self._conn.abort()

    def _set_disconnected(self) -> None:
        if self.connected.is_set():
            self.down_since = self._clock.monotonic()
            self.connected.clear()
            self._stats.broker_connected = False
            self.on_change(False)

    # -- the message stream --

    async def take(self, most: int) -> list[Message] | None:
        """The next received messages, at most ``most``, in arrival order; None once
        close_inbox() was called and everything received was taken."""
        return await self._inbox.get(most)

    def waiting(self) -> int:
        """How many received messages wait in the inbox."""
        return len(self._inbox)

    def close_inbox(self) -> None:
        """Stop delivering: take() returns None once what was received is taken."""
        self._inbox.close()

    def ack(self, messages: list[Message]) -> None:
        """PUBACK these messages, in the order given (the order they arrived)."""
        conn = self._conn
        host = self.host
        if host is not None and host.conn is not None:  # acks go where their messages came
            generation = host.conn.generation
            host.ack([m.mid for m in messages if m.qos and m.generation == generation], generation)
        if conn is None or conn.lost.is_set():
            return
        generation = conn.generation
        mids = [m.mid for m in messages if m.qos and m.generation == generation]
        if mids:
            conn.write(wire.pubacks(mids))
