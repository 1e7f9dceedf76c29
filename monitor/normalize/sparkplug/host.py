"""The monitor's duties as a Sparkplug Host Application (SPEC 3.4): its STATE (birth after
subscribing, Will, offline at a clean stop, online again if an offline STATE of its own id
appears while it runs), and rebirth requests to edge nodes whose data it cannot follow.

It does not know the MQTT client: the wiring hands it the host session's ``publish`` and
asks it for the Will at each CONNECT (``will``), for its birth once subscribed
(``connected``) and for its last words at a clean stop (``last_words``).

Commands are bounded whatever arrives: at most one rebirth request per node per
``rebirth_interval`` (a request held back by it goes out when it ends) and at most
``rebirth_rate`` per second over all nodes (a token bucket), so garbage from thousands of
node ids cannot make the monitor flood the broker.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from monitor import logs
from monitor.clock import Clock
from monitor.config import Sparkplug
from monitor.normalize.sparkplug.decoder import NAMESPACE, SparkplugDecoder
from monitor.schemas import sparkplug_b_pb2 as pb
from monitor.stats import Stats

log = logs.get(__name__)

REBIRTH_METRIC = "Node Control/Rebirth"
BOOLEAN = 11
REASSERT_EVERY_S = 1.0  # our STATE answered at most this often (an offline flood costs 1/s)

Publish = Callable[[str, bytes, bool, int], bool]  # topic, payload, retain, qos -> sent


def rebirth_request(now_ms: int) -> bytes:
    """NCMD Node Control/Rebirth = true, with the host's timestamp and no seq (Sparkplug
    3.0: tck-id-payloads-ncmd-timestamp, -ncmd-seq)."""
    metric = pb.Payload.Metric(
        name=REBIRTH_METRIC, timestamp=now_ms, datatype=BOOLEAN, boolean_value=True
    )
    return pb.Payload(timestamp=now_ms, metrics=[metric]).SerializeToString()


def _nowhere(topic: str, payload: bytes, retain: bool, qos: int) -> bool:
    return False


class HostApplication:
    def __init__(
        self,
        host_id: str,
        decoder: SparkplugDecoder,
        clock: Clock,
        stats: Stats,
        settings: Sparkplug,
    ) -> None:
        self.topic = f"{NAMESPACE}/STATE/{host_id}"
        self._decoder = decoder
        self._clock = clock
        self._stats = stats
        self._interval = settings.rebirth_interval
        self._rate = settings.rebirth_rate
        self._burst = max(1.0, settings.rebirth_rate)  # a second's worth at once
        self._tokens = self._burst
        self._filled_at: float | None = None
        self._birth_ms = 0
        self._asked: dict[tuple[str, str], float] = {}  # node -> when (monotonic), oldest first
        self._reasserted_at: float | None = None
        self.publish: Publish = _nowhere
        self.reconnect: Callable[[], None] = lambda: None  # a new session, a new timestamp

    def will(self) -> tuple[str, bytes]:
        """For each CONNECT: STATE offline, with the time of this CONNECT, which its online
        STATE will carry too (tck-id-host-topic-phid-birth-payload-timestamp)."""
        self._birth_ms = int(self._clock.now() * 1000)
        return self.topic, self._state(False, self._birth_ms)

    def connected(self) -> None:
        """Subscribed: STATE online (retained, QoS 1), the session's first publish. Then
        every node known is asked to rebirth: a death while we did not listen is lost with
        the session, and births tell who is still there (``SparkplugDecoder.resync``)."""
        self.publish(self.topic, self._state(True, self._birth_ms), True, 1)
        self._decoder.own_state_offline = None
        self._decoder.resync()

    def last_words(self) -> tuple[str, bytes]:
        """A clean stop: STATE offline with the stop's time, before the DISCONNECT
        (tck-id-host-topic-phid-death-payload-timestamp-disconnect-clean)."""
        return self.topic, self._state(False, int(self._clock.now() * 1000))

    def tick(self) -> None:
        """Our STATE defended; gaps whose reorder window ended; rebirth requests, bounded;
        the decoder's counts into the monitor's."""
        now = self._clock.monotonic()
        self._defend(now)
        decoder = self._decoder
        decoder.expire(now)
        self._ask(now)
        counts = decoder.counts
        stats = self._stats
        stats.sparkplug_seq_gaps = counts.seq_gaps
        stats.sparkplug_reordered = counts.reordered
        stats.sparkplug_unknown_aliases = counts.unknown_aliases
        stats.sparkplug_skipped_metrics = counts.skipped_metrics
        stats.sparkplug_invalid_names = counts.invalid_names
        stats.sparkplug_invalid_states = counts.invalid_states
        stats.sparkplug_transient_metrics = counts.transient
        stats.sparkplug_stale_deaths = counts.stale_deaths
        stats.sparkplug_too_old = counts.too_old
        stats.sparkplug_too_many_metrics = counts.too_many_metrics
        stats.sparkplug_rebirths_dropped = counts.rebirths_dropped
        stats.sparkplug_nodes = len(decoder.nodes)

    def _defend(self, now: float) -> None:
        """An offline STATE of our own id while we run (a stale Will delivered late through
        a bridge or a cluster, an old instance's clean stop) must not stand: edge nodes that
        name us their primary host would hold back their births. One no newer than our
        session's is answered with our online STATE again; a newer one would make edge
        nodes ignore that (they take no older timestamp), so a new session is made, whose
        STATE carries a new time."""
        seen = self._decoder.own_state_offline
        if seen is None:
            return
        if self._reasserted_at is not None and now - self._reasserted_at < REASSERT_EVERY_S:
            return  # held back: answered when the second is over
        self._decoder.own_state_offline = None
        self._reasserted_at = now
        self._stats.sparkplug_state_reasserted += 1
        if seen <= self._birth_ms:
            log.warning("sparkplug.state_reasserted", stale_offline_ms=seen)
            self.publish(self.topic, self._state(True, self._birth_ms), True, 1)
        else:
            log.warning("sparkplug.state_newer_offline", offline_ms=seen, ours_ms=self._birth_ms)
            self.reconnect()

    def _ask(self, now: float) -> None:
        """Rebirth requests: one per node per interval, ``rebirth_rate`` a second overall.
        A wish held back stays wanted and goes out once it may."""
        if self._filled_at is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
        asked = self._asked
        while asked:  # oldest first: forget the asks whose interval is over
            first = next(iter(asked))
            if now - asked[first] < self._interval:
                break
            del asked[first]
        wanted = self._decoder.rebirth_wanted
        sent: list[tuple[str, str]] = []
        for key in list(wanted):
            if self._tokens < 1:
                break
            if key in asked:
                continue  # asked within the interval: when it ends
            group, node = key
            topic = f"{NAMESPACE}/{group}/NCMD/{node}"
            # QoS 0, not retained (tck-id-topics-ncmd-mqtt)
            if not self.publish(topic, rebirth_request(int(self._clock.now() * 1000)), False, 0):
                break  # no session: they wait for it
            del wanted[key]
            asked[key] = now
            self._tokens -= 1
            sent.append(key)
        if sent:  # one line a tick, not one per node
            self._stats.sparkplug_rebirths_sent += len(sent)
            log.info(
                "sparkplug.rebirth_requested",
                count=len(sent),
                first=f"{sent[0][0]}/{sent[0][1]}",
                waiting=len(wanted),
            )

    @staticmethod
    def _state(online: bool, timestamp_ms: int) -> bytes:
        return json.dumps({"online": online, "timestamp": timestamp_ms}).encode()
