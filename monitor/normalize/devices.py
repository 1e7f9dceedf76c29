"""Which device a message is from: the registry, or discovered from the topic.

A device is its site and id (SPEC 2). A topic that names its site is looked up by (site,
id); a vendor topic without a site (``scanners/{device}/data``) by its id alone, among the
registered devices that may speak that profile (the config refuses an id that would be
ambiguous there). A kind that contradicts the registered (or first discovered) kind of
the device is ``device_mismatch``: never written under the other kind.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from monitor.config import DeviceEntry
from monitor.model import DEVICE_ID_RE, KINDS, NAME_RE, Device, DeviceKey
from monitor.normalize.reasons import Reject

DEFAULT_AREA = "unassigned"


class Devices:
    """The registry from the config, and the devices discovered on topics that say their
    site and kind; discovery is bounded by ``max_discovered``."""

    def __init__(self, entries: Iterable[DeviceEntry], max_discovered: int) -> None:
        self.registry: dict[DeviceKey, Device] = {}
        self.declared: dict[DeviceKey, str | None] = {}  # the profile each entry speaks
        self._by_id: dict[str, list[Device]] = {}
        for e in entries:
            device = Device(e.id, e.kind, e.site, e.area)
            self.registry[device.key] = device
            self.declared[device.key] = e.profile
            self._by_id.setdefault(e.id, []).append(device)
        # route -> id -> the registered device a siteless topic of that route names
        self._siteless: dict[tuple[str, str | None], dict[str, Device]] = {}
        self._max_discovered = max_discovered
        self._discovered: dict[DeviceKey, Device] = {}

    def resolve(
        self,
        device_id: str,
        site: str | None,
        area: str | None,
        kind: str | None,
        route: str,
        default_kind: str | None = None,
    ) -> Device:
        """The device of a message: ``site`` and ``area`` as its topic (or its profile's
        defaults) say them, ``kind`` as the message says it (its topic or its profile),
        ``default_kind`` the kind of a device discovered without one (a Sparkplug group's
        default); ``route`` the profile it came by."""
        if site is not None:
            registered = self.registry.get((site, device_id))
        else:
            registered = self._by_id_alone(device_id, route, kind)
        if registered is not None:  # its id was validated with the configuration
            if kind is not None and kind != registered.kind:
                raise Reject(
                    "device_mismatch",
                    f"{registered.site}/{device_id} is registered as {registered.kind},"
                    f" the message says {kind[:40]}",
                )
            return registered
        if site is not None:
            known = self._discovered.get((site, device_id))
            if known is not None and known.kind == kind and known.area == (area or DEFAULT_AREA):
                return known  # validated when first seen: the hot path's way
        device_id = _device_id(device_id)
        kind = kind or default_kind
        if kind is None or site is None:
            raise Reject("unknown_device", f"{device_id} is not registered")
        if kind not in KINDS:
            raise Reject("unknown_kind", f"kind {kind[:70]!r}")
        site = sys.intern(_name(site, "site"))
        known = self._discovered.get((site, device_id))
        if known is not None and known.kind != kind:
            raise Reject(
                "device_mismatch",
                f"{site}/{device_id} was discovered as {known.kind}, the message says {kind}",
            )
        if known is None and len(self._discovered) >= self._max_discovered:
            raise Reject("unknown_device", "ingest.max_devices discovered devices reached")
        # A discovered device's area follows its topic (it was moved); its kind does not.
        # Interned: thousands of devices share a handful of sites, areas and kinds.
        area = sys.intern(_name(area or DEFAULT_AREA, "area"))
        device = Device(device_id, sys.intern(kind), site, area)
        self._discovered[device.key] = device
        return device

    def _by_id_alone(self, device_id: str, route: str, route_kind: str | None) -> Device | None:
        table = self._siteless.get((route, route_kind))
        if table is None:
            table = self._siteless[(route, route_kind)] = self._siteless_table(route, route_kind)
        found = table.get(device_id)
        if found is None and (same_id := self._by_id.get(device_id)):
            if all(route_kind is not None and d.kind != route_kind for d in same_id):
                raise Reject(
                    "device_mismatch",
                    f"{same_id[0].site}/{device_id} is registered as {same_id[0].kind},"
                    f" the message says {route_kind}",
                )
            sites = ", ".join(sorted(d.site for d in same_id))
            raise Reject(
                "unknown_device",
                f"{device_id} is registered at {sites}; its topic names no site and no"
                f" entry says it speaks {route}",
            )
        return found

    def _siteless_table(self, route: str, route_kind: str | None) -> dict[str, Device]:
        """Per id, the one registered device a topic without a site may be: the only one
        that may speak this route (its kind, and no other ``profile`` said;
        config.registry_problems refuses a registry where there would be two)."""
        table: dict[str, Device] = {}
        for device_id, devices in self._by_id.items():
            fitting = [
                d
                for d in devices
                if (route_kind is None or d.kind == route_kind)
                and self.declared[d.key] in (None, route)
            ]
            if len(fitting) == 1:  # one that says it speaks another is not this one
                table[device_id] = fitting[0]
        return table

    def remember(self, devices: Iterable[Device]) -> None:
        """Devices discovered before a restart: their kind stays theirs (a message that
        says another is ``device_mismatch``), and they count toward ``max_discovered``."""
        for d in devices:
            if d.key not in self.registry and len(self._discovered) < self._max_discovered:
                self._discovered[d.key] = d

    def forget(self, key: DeviceKey) -> None:
        """A discovered device a person said is gone: it is found anew if it speaks."""
        self._discovered.pop(key, None)

    @property
    def discovered(self) -> list[Device]:
        """The devices found on topics (not registered), for a reloaded registry."""
        return list(self._discovered.values())


def _device_id(value: str) -> str:
    if not DEVICE_ID_RE.match(value):
        raise Reject("invalid_device_id", f"device id {value[:70]!r}")
    return value


def _name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise Reject("invalid_topic", f"{what} {value[:70]!r} is not a valid name")
    return value
