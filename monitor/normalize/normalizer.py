"""Normalization: (topic, payload, receive time) -> a canonical Reading, or a rejection.

Pure and synchronous: profiles and the device registry are compiled from the config once,
and ``Normalizer.normalize`` does no I/O. A topic is routed to the decoder of the first
profile whose pattern matches it; every way a message can be unusable is a ``Rejected``
with a reason from ``REASONS``; nothing here raises on bad input.

A decoder is any ``(segments, payload, retained) -> Reading`` that raises ``Reject``: the
canonical one (``canonical.py``) and one per vendor profile (``vendor.py``). A reading keeps
its payload's timestamp, or none: the pipeline stamps those with the receive time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from monitor.config import Config, DeviceEntry
from monitor.model import Device, Reading
from monitor.normalize import canonical
from monitor.normalize.devices import Devices
from monitor.normalize.plates import Plates
from monitor.normalize.reasons import Reject, Rejected
from monitor.normalize.topics import TopicPattern, receives
from monitor.normalize.vendor import VendorDecoder

if TYPE_CHECKING:
    from monitor.normalize.sparkplug.decoder import SparkplugDecoder

SPARKPLUG = "spBv1.0"  # the topic namespace of Sparkplug B (SPEC 3.4)
Decoder = Callable[[dict[str, str], bytes, bool], Reading]
Route = tuple[TopicPattern, Decoder]


class Normalizer:
    """Compiled from a Config once; ``normalize`` is pure and never raises on input."""

    def __init__(self, config: Config) -> None:
        self._max_payload = int(config.ingest.max_payload_bytes)
        self._max_age_ms = int(config.ingest.max_age * 1000)
        self._max_skew_ms = int(config.ingest.max_clock_skew * 1000)
        patterns = [TopicPattern.compile(canonical.TOPIC)] if config.canonical else []
        patterns += [TopicPattern.compile(p.topic) for p in config.profiles.values()]
        devices = Devices(_owned(config, patterns), config.ingest.max_devices)
        self.registry: dict[str, Device] = devices.registry
        decoders: list[Decoder] = []
        key = config.passages.plate_key if config.passages else None
        plates = Plates(key.get_secret_value() if key else None)  # every decoder's (SPEC 9)
        if config.canonical:
            decoders.append(canonical.CanonicalDecoder(devices, plates).decode)
        decoders += [VendorDecoder(p, devices, plates).decode for p in config.profiles.values()]
        self._routes: list[Route] = list(zip(patterns, decoders, strict=True))
        # Candidate routes by first topic level, so a message tries one or two patterns;
        # a pattern starting with a {segment} is a candidate for every topic.
        wildcard = [r for r in self._routes if not r[0].root]
        self._by_root: dict[str, list[Route]] = {}
        for route in self._routes:
            if route[0].root:
                self._by_root.setdefault(route[0].root, []).append(route)
        for routes in self._by_root.values():
            routes.extend(wildcard)
        self._wildcard_routes = wildcard
        self.sparkplug: SparkplugDecoder | None = None
        if config.sparkplug.enabled:  # protobuf is imported only by configs that speak it
            from monitor.normalize.sparkplug.decoder import SparkplugDecoder

            self.sparkplug = SparkplugDecoder(config.sparkplug, devices, plates)

    @property
    def subscriptions(self) -> list[str]:
        topics = [p.subscription for p, _ in self._routes]
        if self.sparkplug is not None:
            topics += self.sparkplug.subscriptions
        return list(dict.fromkeys(topics))

    def normalize(
        self, topic: str, payload: bytes, received_ms: int, retained: bool = False
    ) -> Reading | list[Reading] | Rejected:
        """One reading, several (a Sparkplug message: one per device and timestamp; none
        for one that only changes an edge node's state), or why not."""
        if len(payload) > self._max_payload:
            return Rejected("payload_too_large", f"{len(payload)} bytes")
        levels = topic.split("/")
        if levels[0] == SPARKPLUG and self.sparkplug is not None:
            return self._sparkplug(levels, payload, received_ms)
        try:
            for pattern, decode in self._by_root.get(levels[0], self._wildcard_routes):
                segments = pattern.match(levels)
                if segments is not None:
                    reading = decode(segments, payload, retained)
                    self._check_age(reading, received_ms)
                    return reading
        except Reject as r:
            return Rejected(r.reason, r.detail)
        return Rejected("unknown_topic", "no profile matches the topic")

    def _sparkplug(
        self, levels: list[str], payload: bytes, received_ms: int
    ) -> list[Reading] | Rejected:
        assert self.sparkplug is not None
        try:
            readings = self.sparkplug.decode(levels, payload)
        except Reject as r:
            return Rejected(r.reason, r.detail)
        fresh = []
        for reading in readings:
            try:
                self._check_age(reading, received_ms)
            except Reject:
                self.sparkplug.counts.too_old += 1  # a historical metric beyond max_age
                continue
            fresh.append(reading)
        return fresh

    def _check_age(self, reading: Reading, received_ms: int) -> None:
        ts_ms = reading.ts_ms
        if ts_ms is None:
            return
        if ts_ms < received_ms - self._max_age_ms:
            raise Reject("too_old", f"timestamp {ts_ms} ms is older than max_age")
        if ts_ms > received_ms + self._max_skew_ms:
            reading.ts_ms = None  # the receive time instead
            reading.clock_skew = True


def _owned(config: Config, patterns: list[TopicPattern]) -> list[DeviceEntry]:
    """The registered devices this collector owns: all of them, or with ``mqtt.topics``
    set (collectors sharing the load by site, SPEC 8) those some topic of theirs is
    subscribed to. The others are another collector's to watch and alert on."""
    filters = config.mqtt.topics
    if filters is None:
        return list(config.devices)

    def owned(d: DeviceEntry) -> bool:
        values = {"device": d.id, "site": d.site, "area": d.area, "kind": d.kind}
        return any(receives(f, p.template(values)) for p in patterns for f in filters)

    return [d for d in config.devices if owned(d)]
