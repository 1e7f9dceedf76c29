"""The MQTT source: paho-mqtt 2.x behind a small asyncio adapter.

paho's network thread appends incoming PUBLISHes to a bounded inbox and wakes the event
loop at most once per batch (a hand-off per message would halve throughput). The asyncio
side takes whole batches, and acknowledges messages (manual ack, QoS 1) only once their
points are stored. The broker's unacknowledged window (MQTT 5 Receive Maximum) bounds
what is in flight; the inbox additionally blocks paho's thread, and so the socket, if
QoS 0 traffic ever outruns us.

Acks are only valid on the connection that delivered the message: each message carries
its connection's generation, and a message from an earlier connection is never acked
(the broker redelivers it on the persistent session, and a duplicate write is harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from monitor import logs
from monitor.backoff import backoff_delay
from monitor.clock import Clock
from monitor.config import MQTT
from monitor.errors import BrokerError
from monitor.stats import Stats

log = logs.get(__name__)

CONNACK_TIMEOUT_S = 10.0


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    generation: int  # which connection delivered it: acks are valid only on that one
    received_ms: int  # per message: two values of one PLC signal in a batch must not collide


class Inbox:
    """Thread -> asyncio hand-off in batches, bounded by message count and bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_items: int, max_bytes: int) -> None:
        self._loop = loop
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._items: list[Message] = []
        self._bytes = 0
        self._cond = threading.Condition()
        self._wake_pending = False
        self._closed = False
        self._ready = asyncio.Event()

    def put(self, msg: Message) -> None:
        """Called on paho's thread; blocks it while the inbox is full."""
        with self._cond:
            while (
                len(self._items) >= self._max_items or self._bytes >= self._max_bytes
            ) and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                return  # not acked: the broker redelivers it on the next session
            self._items.append(msg)
            self._bytes += len(msg.payload)
            if self._wake_pending:
                return
            self._wake_pending = True
        with contextlib.suppress(RuntimeError):  # the loop is closing: nothing to wake
            self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> list[Message] | None:
        """The next batch, or None once closed and drained."""
        while True:
            with self._cond:
                if self._items:
                    items, self._items, self._bytes = self._items, [], 0
                    self._wake_pending = False
                    self._cond.notify_all()
                    return items
                if self._closed:
                    return None
                self._wake_pending = False
            await self._ready.wait()
            self._ready.clear()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._ready.set()


class MqttSource:
    """Owns the paho client, the reconnect loop, the inbox and the ack stream."""

    def __init__(
        self,
        config: MQTT,
        subscriptions: list[str],
        stats: Stats,
        clock: Clock,
        *,
        inbox_max_bytes: int = 64 * 1024 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._subscriptions = subscriptions
        self._stats = stats
        self._clock = clock
        self._inbox_max_bytes = inbox_max_bytes
        self._rng = rng or random.Random()
        self._generation = 0
        self._client: paho.Client | None = None
        self._inbox: Inbox | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._suback: asyncio.Future[None] | None = None
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()
        # Wall-clock time since which we have no broker (from the start until the first
        # connection too): the rules pause device alerts meanwhile.
        self.down_since: float | None = clock.now()
        self.on_change: Callable[[bool], None] = lambda connected: None

    # -- lifecycle --

    async def __aenter__(self) -> MqttSource:
        self._loop = asyncio.get_running_loop()
        # The inbox holds the whole unacknowledged window plus room for QoS 0 traffic.
        self._inbox = Inbox(
            self._loop, self._config.receive_maximum + 10_000, self._inbox_max_bytes
        )
        try:
            self._client = self._make_client()
        except (ssl.SSLError, OSError, ValueError) as e:
            raise BrokerError(f"TLS set-up failed (mqtt.tls files): {e}") from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._client is not None
        assert self._inbox is not None
        self._inbox.close()
        client = self._client
        if client.is_connected():
            client.disconnect()  # queued after any acks, so those still reach the broker
        await asyncio.to_thread(client.loop_stop)
        self._set_disconnected()

    def _make_client(self) -> paho.Client:
        cfg = self._config
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,  # the asyncio side owns reconnecting, with jitter
        )
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password else None
            client.username_pw_set(cfg.username, password)
        if cfg.tls.enabled:
            client.tls_set(
                ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(cfg.tls.insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # -- paho callbacks (paho's thread) --

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call_soon(self._resolve_connack, reason)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call_soon(self._lost.set)
        self._call_soon(self._fail_connack, reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        assert self._inbox is not None
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers validate UTF-8; never trust that blindly
            topic = message._topic.decode("utf-8", "replace")
        # paho hands over bytes for received messages (bytearray only when publishing)
        payload = cast(bytes, message.payload)
        self._inbox.put(
            Message(
                topic,
                payload,
                message.qos,
                message.mid,
                message.retain,
                self._generation,
                int(self._clock.now() * 1000),
            )
        )

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        for topic, reason in zip(self._subscriptions, reasons, strict=False):
            if reason.is_failure:
                log.error("mqtt.subscribe_refused", topic=topic, reason=str(reason))
        self._call_soon(self._resolve_suback)

    def _call_soon(self, fn: Any, *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
            self._loop.call_soon_threadsafe(fn, *args)

    def _fail_connack(self, reason: ReasonCode) -> None:
        """Closed before CONNACK: say so now instead of waiting for a timeout."""
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(
                BrokerError(
                    f"the broker closed the connection before CONNACK ({reason}); with TLS: is a"
                    " client certificate required (mqtt.tls.cert_file/key_file)?"
                )
            )

    def _resolve_suback(self) -> None:
        if self._suback is not None and not self._suback.done():
            self._suback.set_result(None)

    def _resolve_connack(self, reason: ReasonCode) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    # -- the connection loop (asyncio) --

    async def run(self) -> None:
        """Connect, stay connected, reconnect with jittered backoff; until cancelled."""
        cfg = self._config
        attempt = 0
        last_error = ""
        while True:
            try:
                await self._connect()
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
            await self._lost.wait()
            self._set_disconnected()
            log.warning("mqtt.disconnected", host=cfg.host, port=cfg.port)
            await asyncio.to_thread(self._client_or_fail().loop_stop)
            await asyncio.sleep(
                backoff_delay(0, cfg.reconnect.initial, cfg.reconnect.max, self._rng)
            )

    def _client_or_fail(self) -> paho.Client:
        if self._client is None:
            raise RuntimeError("MqttSource used outside its context")
        return self._client

    async def _connect(self) -> None:
        client = self._client_or_fail()
        cfg = self._config
        assert self._loop is not None
        self._generation += 1
        self._lost.clear()
        self._connack = self._loop.create_future()
        self._suback = self._loop.create_future()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = int(cfg.session_expiry)
        props.ReceiveMaximum = cfg.receive_maximum
        try:
            await asyncio.to_thread(
                client.connect,
                cfg.host,
                cfg.port,
                int(cfg.keepalive),
                clean_start=False,
                properties=props,
            )
        except ssl.SSLCertVerificationError as e:
            raise BrokerError(
                f"TLS: the broker's certificate was not accepted ({e.verify_message});"
                " check mqtt.tls.ca_file and that mqtt.host matches the certificate"
            ) from None
        except ssl.SSLError as e:
            raise BrokerError(f"TLS handshake failed: {e.reason or e}") from None
        except OSError as e:
            raise BrokerError(f"cannot connect: {e.strerror or e}") from None
        client.loop_start()
        try:
            async with asyncio.timeout(CONNACK_TIMEOUT_S):
                reason = await self._connack
        except TimeoutError:
            await self._drop(client)
            raise BrokerError("no CONNACK from the broker") from None
        except BrokerError:
            await self._drop(client)
            raise
        if reason.is_failure:
            await self._drop(client)
            raise BrokerError(f"connection refused: {reason}", reason_code=str(reason))
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self._subscriptions])
        try:
            async with asyncio.timeout(CONNACK_TIMEOUT_S):
                await self._suback
        except TimeoutError:
            await self._drop(client)
            raise BrokerError("no SUBACK from the broker") from None
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
            subscriptions=",".join(self._subscriptions),
        )

    async def _drop(self, client: paho.Client) -> None:
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)

    def _set_disconnected(self) -> None:
        if self.connected.is_set():
            self.down_since = self._clock.now()
            self.connected.clear()
            self._stats.broker_connected = False
            self.on_change(False)

    # -- the message stream --

    async def batches(self) -> AsyncIterator[list[Message]]:
        """Batches of received messages, in arrival order, until close_inbox()."""
        assert self._inbox is not None
        while (batch := await self._inbox.get()) is not None:
            yield batch

    def close_inbox(self) -> None:
        """Stop delivering: batches() ends once what was received is taken."""
        assert self._inbox is not None
        self._inbox.close()

    def ack(self, messages: list[Message]) -> None:
        """PUBACK these messages, in the order given (the order they arrived)."""
        client = self._client_or_fail()
        generation = self._generation
        if not self.connected.is_set():
            return
        for m in messages:
            if m.qos and m.generation == generation:
                client.ack(m.mid, m.qos)
