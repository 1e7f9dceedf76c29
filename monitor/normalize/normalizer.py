"""Normalization: (topic, payload, receive time) -> a canonical Reading, or a rejection.

Pure and synchronous: profiles and the device registry are compiled from the config once,
and ``Normalizer.normalize`` does no I/O. A topic is routed to the decoder of the first
route whose pattern matches it; every way a message can be unusable is a ``Rejected``
with a reason from ``REASONS``; nothing here raises on bad input.

A route is a topic pattern, a name and a decoder, made together (``Route``): the canonical
one (``canonical.py``) and one per vendor profile (``vendor.py``). A decoder is any
``(segments, payload, retained) -> Reading | list[Reading]`` that raises ``Reject`` for bad
input; ``segments`` are the pattern's named levels. A reading keeps its payload's timestamp,
or none: the pipeline stamps those with the receive time. Sparkplug B is no route: its
topics (``spBv1.0/...``) go to its own stateful decoder, with its own rules of age.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, NamedTuple

from monitor.clock import Clock
from monitor.config import CANONICAL_ROUTE, SPARKPLUG_ROUTE, Config, SparkplugGroup
from monitor.model import Device, DeviceKey, Reading
from monitor.normalize import canonical
from monitor.normalize.devices import Devices
from monitor.normalize.plates import Plates
from monitor.normalize.reasons import Reject, Rejected
from monitor.normalize.topics import TopicPattern, covers, receives
from monitor.normalize.vendor import VendorDecoder

if TYPE_CHECKING:
    from monitor.normalize.sparkplug.decoder import SparkplugDecoder

SPARKPLUG = "spBv1.0"  # the topic namespace of Sparkplug B (SPEC 3.4)
# (segments, payload, retained) -> one reading, or several (none: nothing to write)
Decoder = Callable[[dict[str, str], bytes, bool], Reading | list[Reading]]


class Route(NamedTuple):
    """A topic pattern and the decoder of what comes on it, under one name: ``canonical``
    or a profile's (what ``devices[].profile`` names and ``monitor decode`` says)."""

    pattern: TopicPattern
    name: str
    decode: Decoder


class Normalizer:
    """Compiled from a Config once; ``normalize`` is pure and never raises on input."""

    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        sparkplug: SparkplugDecoder | None = None,
    ) -> None:
        """``sparkplug``: the decoder of the normalizer this one replaces (a reload keeps
        the edge nodes; ``take_over`` gives it this registry)."""
        self._max_payload = int(config.ingest.max_payload_bytes)
        self._max_age_ms = int(config.ingest.max_age * 1000)
        self._max_skew_ms = int(config.ingest.max_clock_skew * 1000)
        devices = self._devices = Devices(config.devices, config.ingest.max_devices)
        self.registry: dict[DeviceKey, Device] = devices.registry
        self.ownership = Ownership(config)
        shares = {
            d.key: self.ownership.share(d, devices.declared[d.key]) for d in self.registry.values()
        }
        # The registered devices this collector expects to hear (silent ones are down),
        # and those it watches once it hears them (another collector's subscriptions may
        # carry them instead: README, Scale).
        self.expected = [d for d in self.registry.values() if shares[d.key] == "all"]
        self.heard_only = [d for d in self.registry.values() if shares[d.key] == "some"]
        key = config.passages.plate_key if config.passages else None
        plates = Plates(key.get_secret_value() if key else None)  # every decoder's (SPEC 9)
        self._routes: list[Route] = []
        self._by_root: dict[str, list[Route]] = {}
        self._wildcard_routes: list[Route] = []
        if config.canonical:
            decoder = canonical.CanonicalDecoder(devices, plates)
            self.add_route(canonical.TOPIC, CANONICAL_ROUTE, decoder.decode)
        for name, p in config.profiles.items():
            self.add_route(p.topic, name, VendorDecoder(name, p, devices, plates).decode)
        self.sparkplug: SparkplugDecoder | None = None
        if config.sparkplug.enabled and sparkplug is not None:
            self.sparkplug = sparkplug
        elif config.sparkplug.enabled:  # protobuf is imported only by configs that speak it
            from monitor.normalize.sparkplug.decoder import SparkplugDecoder

            host_id = config.sparkplug.host_id or config.mqtt.client_id
            self.sparkplug = SparkplugDecoder(config.sparkplug, devices, plates, host_id, clock)

    def add_route(self, topic: str, name: str, decode: Decoder) -> None:
        """Route topics matching ``topic`` (a pattern, ``scanners/{device}/data``) to
        ``decode``, after the routes before it: the first that matches takes a message."""
        route = Route(TopicPattern.compile(topic), name, decode)
        self._routes.append(route)
        # Candidate routes by first topic level, so a message tries one or two patterns;
        # a pattern starting with a {segment} is a candidate for every topic.
        wildcard = [r for r in self._routes if not r.pattern.root]
        by_root: dict[str, list[Route]] = {}
        for r in self._routes:
            if r.pattern.root:
                by_root.setdefault(r.pattern.root, []).append(r)
        for routes in by_root.values():
            routes.extend(wildcard)
        self._by_root, self._wildcard_routes = by_root, wildcard

    @property
    def routes(self) -> list[Route]:
        """Every route, in the order they are tried."""
        return list(self._routes)

    def route_of(self, topic: str) -> str | None:
        """The name of the route a message on ``topic`` goes to (``sparkplug`` for
        Sparkplug B's), as ``normalize`` picks it; None: no route takes it."""
        levels = topic.split("/")
        if levels[0] == SPARKPLUG and self.sparkplug is not None:
            return SPARKPLUG_ROUTE
        for route in self._by_root.get(levels[0], self._wildcard_routes):
            if route.pattern.match(levels) is not None:
                return route.name
        return None

    def owns(self, device: Device) -> bool:
        """Whether this collector's subscriptions may carry the device's data: a device
        restored from the store that they no longer do is another collector's now."""
        declared = self._devices.declared.get(device.key)
        return self.ownership.share(device, declared) != "none"

    def remember(self, devices: Iterable[Device]) -> None:
        """Devices discovered before a restart (``Devices.remember``)."""
        self._devices.remember(devices)

    def forget(self, key: DeviceKey) -> None:
        """A discovered device a person said is gone (SPEC 5)."""
        self._devices.forget(key)

    @property
    def discovered(self) -> list[Device]:
        """The devices found on topics, not registered."""
        return self._devices.discovered

    def take_over(self) -> None:
        """This normalizer replaces another (a reload, SPEC 10): the Sparkplug decoder it
        was given resolves devices in this registry from now on."""
        if self.sparkplug is not None:
            self.sparkplug.use_devices(self._devices)

    @property
    def subscriptions(self) -> list[str]:
        topics = [r.pattern.subscription for r in self._routes]
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
            for pattern, _, decode in self._by_root.get(levels[0], self._wildcard_routes):
                segments = pattern.match(levels)
                if segments is not None:
                    result = decode(segments, payload, retained)
                    if isinstance(result, list):
                        # one message, one verdict: a reading too old rejects the message
                        # (quarantined whole), as a single reading would (SPEC 3.3)
                        for reading in result:
                            self._check_age(reading, received_ms)
                    else:
                        self._check_age(result, received_ms)
                    return result
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
                if reading.channel == "status":
                    # a birth or a death takes effect when received, whatever its payload's
                    # time says (an NDEATH's is its Will's, made at connect: SPEC 3.4)
                    reading.ts_ms = None
                else:
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


Share = Literal["all", "some", "none"]


class Ownership:
    """Which devices this collector watches and alerts on (SPEC 8): those whose data its
    subscriptions (``mqtt.topics``) carry. A device's data may come by the canonical
    topics, by each vendor profile that fits it (its kind, its site) and by Sparkplug; an
    entry's ``profile`` says which one it really speaks."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self._filters = config.mqtt.topics  # None: one collector, every device its own
        self._canonical = TopicPattern.compile(canonical.TOPIC) if config.canonical else None
        self._profiles = {
            name: (TopicPattern.compile(p.topic), p) for name, p in config.profiles.items()
        }
        sp = config.sparkplug
        groups = sp.groups.items() if sp.groups else [("+", SparkplugGroup())]
        self._groups = list(groups) if sp.enabled else []

    def templates(self, device: Device, declared: str | None = None) -> list[list[str]]:
        """The topics (levels, "+" for any) this device's data may come on."""
        values = {"device": device.id, "site": device.site, "area": device.area}
        values["kind"] = device.kind
        out: list[list[str]] = []
        if self._canonical is not None and declared in (None, CANONICAL_ROUTE):
            out.append(self._canonical.template(values))
        for name, (pattern, p) in self._profiles.items():
            if declared not in (None, name) or p.kind not in (None, device.kind):
                continue
            if p.site not in (None, device.site):
                continue
            out.append(pattern.template(values))
        if declared in (None, SPARKPLUG_ROUTE):
            for group, g in self._groups:
                if g.site in (None, device.site):  # an edge node's own metrics, a device's
                    out.append([SPARKPLUG, group, "+", device.id])
                    out.append([SPARKPLUG, group, "+", "+", device.id])
        return out

    def share(self, device: Device, declared: str | None = None) -> Share:
        """How much of the device's data this collector's subscriptions carry: all of it
        (it is ours), some (another collector may hear it: ours once we do), none."""
        filters = self._filters
        if filters is None:
            return "all"
        templates = self.templates(device, declared)
        if not any(receives(f, t) for t in templates for f in filters):
            return "none"
        # all: every topic it may speak on is ours (a filter of one Sparkplug group covers
        # none of "any group"); some: another collector may hear it instead
        return "all" if all(any(covers(f, t) for f in filters) for t in templates) else "some"
