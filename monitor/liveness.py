"""Per-device liveness: last seen, last status, last state -> up/down with a reason.

This is the ingest issue's version: ``device_status`` from last-seen, status and state.
The alerting issue adds grace periods after broker outages and the rule engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from monitor import schema
from monitor.model import Device, Reading, State


@dataclass(slots=True)
class DeviceLiveness:
    device: Device
    last_seen_ms: int | None = None
    state: str | None = None  # the last canonical state the device reported
    online: bool | None = None  # from status messages (offline = its Last Will)
    written: tuple[bool, str, str] | None = None  # the last device_status written


def evaluate(
    dl: DeviceLiveness, now_ms: int, timeout_s: float, started_ms: int
) -> tuple[bool, str, str] | None:
    """(up, state, reason), or None while a never-seen device is still in its grace."""
    if dl.online is False or dl.state == State.OFFLINE:
        return False, State.OFFLINE.value, "offline"
    if dl.state == State.FAULT:
        return False, State.FAULT.value, "fault"
    if dl.state == State.MAINTENANCE:
        return False, State.MAINTENANCE.value, "maintenance"
    timeout_ms = timeout_s * 1000
    if dl.last_seen_ms is None:
        if now_ms - started_ms < timeout_ms:
            return None
        return False, State.OFFLINE.value, "no_data"
    if now_ms - dl.last_seen_ms > timeout_ms:
        return False, State.OFFLINE.value, "no_data"
    return True, dl.state or State.READY.value, "ok"


class Liveness:
    def __init__(
        self, registry: Iterable[Device], timeout_of: Callable[[Device], float], started_ms: int
    ) -> None:
        self._timeout_of = timeout_of
        self._started_ms = started_ms
        self.devices: dict[str, DeviceLiveness] = {d.id: DeviceLiveness(d) for d in registry}

    def observe(self, reading: Reading, received_ms: int) -> str | None:
        """Update from one message; a device_status line when the device's status changed."""
        device = reading.device
        dl = self.devices.get(device.id)
        if dl is None or dl.device != device:
            dl = self.devices[device.id] = DeviceLiveness(device)
        if not reading.retained:  # a retained message is old news, not a sign of life
            dl.last_seen_ms = received_ms
            if reading.channel != "status":
                dl.online = True
        if reading.online is not None:
            dl.online = reading.online
        if reading.state is not None:
            dl.state = reading.state
        elif reading.online:
            # "online" after a Last Will: the old offline state no longer holds
            dl.state = None if dl.state == State.OFFLINE else dl.state
        return self._line_if_changed(dl, received_ms)

    def _line_if_changed(self, dl: DeviceLiveness, now_ms: int) -> str | None:
        status = evaluate(dl, now_ms, self._timeout_of(dl.device), self._started_ms)
        if status is None or status == dl.written:
            return None
        return self._line(dl, status, now_ms)

    def _line(self, dl: DeviceLiveness, status: tuple[bool, str, str], now_ms: int) -> str:
        dl.written = status
        age = None if dl.last_seen_ms is None else max(0.0, (now_ms - dl.last_seen_ms) / 1000)
        up, state, reason = status
        return schema.device_status_line(dl.device, up, state, reason, age, now_ms)

    def tick(self, now_ms: int) -> list[str]:
        """device_status of every known device (the periodic status_interval write)."""
        lines = []
        for dl in self.devices.values():
            status = evaluate(dl, now_ms, self._timeout_of(dl.device), self._started_ms)
            if status is not None:
                lines.append(self._line(dl, status, now_ms))
        return lines
