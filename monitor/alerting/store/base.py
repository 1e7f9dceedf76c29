"""What the two stores share: the protocol, the outbox item, how a device and a window are
saved, the limits of what is kept."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from monitor.alerting.engine import Alert, Window
from monitor.alerting.rules import DeviceState
from monitor.model import Device, DeviceKey, window_problem

RETRY_S = 5.0
# What is kept in memory while the database refuses: beyond this the oldest goes (logged).
MAX_PENDING = 10_000
# History kept (resolved alerts, deliveries); open alerts are always kept.
KEEP_S = 90 * 86400.0
KEEP_ROWS = 100_000
# Alerts a page of the API lists at most (``alerts``' default limit).
PAGE = 500


@dataclass(frozen=True)
class OutboxItem:
    id: int  # SQLite: negative while not written yet (the disk refused it)
    channel: str
    created: float
    attempts: int  # failed tries, whatever failed
    data: dict[str, Any]
    # Failed tries that count towards giving it up (refused for its content, or failed
    # for no reason that could be told): persisted, so a restart does not reset them.
    refused: int = 0


Delivery = tuple[float, str, str, str, bool, str | None]  # at, alert, event, channel, ok, error
DELIVERY_FIELDS = ("at", "event", "channel", "ok", "error")


class Store(Protocol):
    """What alerting, the notifier, the API and the wiring ask of the durable state."""

    problem: str | None  # why the database refuses, while it does

    @property
    def pending(self) -> int:
        """How many things wait in memory for the database."""
        ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def run(self) -> None:
        """What keeps the store going in the background (a task of the wiring's)."""
        ...

    def close(self) -> None: ...
    def flush(self, force: bool = False) -> bool: ...

    def save_alerts(self, alerts: Iterable[Alert]) -> None: ...
    def alerts(self, open_only: bool, limit: int | None = PAGE) -> list[Alert]: ...
    def alert(self, alert_id: str) -> Alert | None: ...

    def save_window(self, w: Window) -> None: ...
    def delete_window(self, window_id: str) -> None: ...
    def windows(self) -> list[Window]: ...

    def save_devices(self, states: Iterable[DeviceState]) -> None: ...
    def forget_device(self, key: DeviceKey) -> None: ...
    def devices(self) -> list[DeviceState]: ...

    def outbox_add(self, channel: str, created: float, data: dict[str, Any]) -> None: ...
    def outbox_next(self, channel: str, after: OutboxItem | None = None) -> OutboxItem | None: ...
    def outbox_channels(self) -> list[str]: ...
    def outbox_attempted(self, item: OutboxItem, refused: bool = False) -> None: ...
    def outbox_done(self, item: OutboxItem, at: float, ok: bool, error: str | None) -> None: ...
    def deliveries(self, alert_id: str) -> list[dict[str, Any]]: ...

    def save_sparkplug_nodes(self, nodes: Iterable[tuple[str, str, str | None]]) -> None: ...
    def sparkplug_nodes(self) -> list[tuple[str, str, str]]: ...

    def get(self, key: str) -> str | None: ...
    def put(self, key: str, value: str) -> None: ...

    def prune(self, now: float) -> None: ...


_DEVICE_FIELDS = ("last_seen", "state", "state_since", "online", "offline_since", "code")


def device_json(ds: DeviceState) -> str:
    """A device's saved state: what a restart (or the next leader) needs of it."""
    data: dict[str, Any] = {f: getattr(ds, f) for f in _DEVICE_FIELDS}
    d = ds.device
    data["device"] = [d.id, d.kind, d.site, d.area]
    return json.dumps(data)


def device_state(text: str) -> DeviceState:
    data = json.loads(text)
    ds = DeviceState(Device(*data.pop("device")))
    for f in _DEVICE_FIELDS:
        setattr(ds, f, data.get(f))
    return ds


def copy(a: Alert) -> Alert:
    """An alert the caller may change without changing what the store holds."""
    return Alert.from_dict(a.to_dict())


_WINDOW_TEXTS = ("id", "scope", "value", "reason", "created_by")


def stored_window(text: object) -> Window | None:
    """A saved window if it is one: JSON of its fields, of their types, within SPEC 6."""
    try:
        w = Window(**json.loads(text))  # type: ignore[arg-type]  # whatever the row holds
    except (ValueError, TypeError):
        return None
    times = (w.starts, w.ends)
    if not all(isinstance(getattr(w, f), str) for f in _WINDOW_TEXTS) or not all(
        isinstance(t, int | float) and not isinstance(t, bool) for t in times
    ):
        return None
    if w.site is not None and not isinstance(w.site, str):
        return None
    return None if window_problem(w.scope, w.value, w.starts, w.ends, w.site) else w
