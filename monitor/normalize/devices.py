"""Which device a message is from: the registry, or discovered from the topic."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from monitor.config import DeviceEntry, Profile
from monitor.model import DEVICE_ID_RE, KINDS, NAME_RE, Device
from monitor.normalize.reasons import Reject

DEFAULT_AREA = "unassigned"


class Devices:
    """The registry from the config, and the devices discovered on canonical (or vendor)
    topics that say their site and kind; discovery is bounded by ``max_discovered``."""

    def __init__(self, entries: Iterable[DeviceEntry], max_discovered: int) -> None:
        self.registry: dict[str, Device] = {
            d.id: Device(d.id, d.kind, d.site, d.area) for d in entries
        }
        self._max_discovered = max_discovered
        self._discovered: dict[tuple[str | None, str, str | None, str], Device] = {}

    def resolve(self, segments: dict[str, str], profile: Profile | None) -> Device:
        """The device of a message, from its topic's segments and its profile's defaults."""
        registered = self.registry.get(segments["device"])
        if registered is not None:  # its id was validated with the configuration
            return registered
        kind = segments.get("kind") or (profile.kind if profile else None)
        site = segments.get("site") or (profile.site if profile else None)
        area = segments.get("area") or (profile.area if profile else None) or DEFAULT_AREA
        key = (site, area, kind, segments["device"])
        device = self._discovered.get(key)
        if device is not None:  # validated when first seen
            return device
        device_id = _device_id(segments["device"])
        if kind is None or site is None:
            raise Reject("unknown_device", f"{device_id} is not registered")
        if kind not in KINDS:
            raise Reject("unknown_kind", f"kind {kind[:70]!r}")
        if len(self._discovered) >= self._max_discovered:
            raise Reject("unknown_device", "ingest.max_devices discovered devices reached")
        # Interned: thousands of devices share a handful of sites, areas and kinds.
        site, area = sys.intern(_name(site, "site")), sys.intern(_name(area, "area"))
        device = Device(device_id, sys.intern(kind), site, area)
        self._discovered[(site, area, device.kind, device_id)] = device
        return device


def _device_id(value: str) -> str:
    if not DEVICE_ID_RE.match(value):
        raise Reject("invalid_device_id", f"device id {value[:70]!r}")
    return value


def _name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise Reject("invalid_topic", f"{what} {value[:70]!r} is not a valid name")
    return value
