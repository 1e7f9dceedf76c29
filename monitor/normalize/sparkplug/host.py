"""The monitor's duties as a Sparkplug Host Application (SPEC 3.4): its retained STATE, and
rebirth requests to edge nodes whose data it cannot follow.

It does not know the MQTT client: it is handed a ``publish`` function by the wiring.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from monitor import logs
from monitor.clock import Clock
from monitor.normalize.sparkplug.decoder import NAMESPACE, SparkplugDecoder
from monitor.schemas import sparkplug_b_pb2 as pb
from monitor.stats import Stats

log = logs.get(__name__)

REBIRTH_EVERY_S = 30.0  # at most one rebirth request per edge node in this long
REBIRTH_METRIC = "Node Control/Rebirth"
BOOLEAN = 11

Publish = Callable[[str, bytes, bool], bool]  # topic, payload, retain -> sent


def rebirth_request(now_ms: int) -> bytes:
    metric = pb.Payload.Metric(name=REBIRTH_METRIC, datatype=BOOLEAN, boolean_value=True)
    return pb.Payload(timestamp=now_ms, metrics=[metric]).SerializeToString()


class HostApplication:
    def __init__(self, host_id: str, decoder: SparkplugDecoder, clock: Clock, stats: Stats) -> None:
        self.topic = f"{NAMESPACE}/STATE/{host_id}"
        self._decoder = decoder
        self._clock = clock
        self._stats = stats
        self._birth_ms = 0
        self._asked: dict[tuple[str, str], float] = {}  # node -> when (monotonic)
        self.publish: Publish = lambda topic, payload, retain: False

    def will(self) -> tuple[str, bytes]:
        """For each CONNECT: STATE offline, with the timestamp its online will carry."""
        self._birth_ms = int(self._clock.now() * 1000)
        return self.topic, self._state(False)

    def connected(self) -> None:
        """After each CONNACK: STATE online (retained), so waiting edge nodes publish."""
        self.publish(self.topic, self._state(True), True)

    def tick(self) -> None:
        """Rebirth requests for the nodes the decoder could not follow, at most one per node
        per REBIRTH_EVERY_S; and the decoder's counts into the monitor's."""
        decoder = self._decoder
        now = self._clock.monotonic()
        for group, node in sorted(decoder.rebirth_wanted):
            last = self._asked.get((group, node))
            if last is not None and now - last < REBIRTH_EVERY_S:
                continue
            topic = f"{NAMESPACE}/{group}/NCMD/{node}"
            if self.publish(topic, rebirth_request(int(self._clock.now() * 1000)), False):
                self._asked[(group, node)] = now
                self._stats.sparkplug_rebirths_sent += 1
                log.info("sparkplug.rebirth_requested", group=group, node=node)
        decoder.rebirth_wanted.clear()
        counts = decoder.counts
        stats = self._stats
        stats.sparkplug_seq_gaps = counts.seq_gaps
        stats.sparkplug_unknown_aliases = counts.unknown_aliases
        stats.sparkplug_skipped_metrics = counts.skipped_metrics
        stats.sparkplug_stale_deaths = counts.stale_deaths

    def _state(self, online: bool) -> bytes:
        return json.dumps({"online": online, "timestamp": self._birth_ms}).encode()
