"""Notifications: one worker per channel, fed from a durable outbox.

A notification is written to the SQLite outbox before anything is sent, so a restart
neither loses nor repeats one; each channel has its own task that sends in order and
retries with jittered backoff, so a dead channel never delays ingestion, the rule engine
or the other channels. Channels are Apprise URLs or ``webhook:<url>`` (SPEC 5's JSON).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from monitor import logs
from monitor.alerting.engine import Notification
from monitor.alerting.store import OutboxItem, Store
from monitor.alerting.texts import render
from monitor.backoff import backoff_delay
from monitor.clock import Clock
from monitor.config import mask_url
from monitor.lifecycle import Resource
from monitor.stats import Stats

log = logs.get(__name__)

GIVE_UP_AFTER_S = 24 * 3600.0  # an alert a day old is no longer news: record the failure
WEBHOOK_TIMEOUT_S = 10.0


class Notifier(Resource):
    def __init__(
        self,
        store: Store,
        stats: Stats,
        clock: Clock,
        channels: Iterable[str],
        timezone: str = "Asia/Aqtau",
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._stats = stats
        self._clock = clock
        self._channels = list(dict.fromkeys([*channels, *store.outbox_channels()]))
        self._wake = {c: asyncio.Event() for c in self._channels}
        self._retry = (retry_initial, retry_max)
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        try:
            self._zone: tzinfo = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self._zone = UTC
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (channel type, outcome)
        self.failing: set[str] = set()

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def submit(
        self, notifications: Iterable[Notification], extra: dict[str, Any] | None = None
    ) -> None:
        """Queue durably; the channel workers send. Never blocks, never raises on I/O."""
        now = self._clock.monotonic()
        for n in notifications:
            for channel in n.channels:
                data = {
                    "alert_id": n.alert_id,
                    "event": n.event,
                    "route": n.route,
                    "payload": n.payload,
                    "language": n.language,
                    "facts": n.facts,
                    **(extra or {}),
                }
                self._store.outbox_add(channel, now, data)
                wake = self._wake.get(channel)
                if wake is None:  # a channel added at run time (not from the config)
                    continue
                wake.set()

    async def run(self) -> None:
        """One worker per channel, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for channel in self._channels:
                tg.create_task(self._worker(channel), name=f"notify:{mask_url(channel)}")

    async def _worker(self, channel: str) -> None:
        wake = self._wake[channel]
        attempt = 0
        while True:
            item = self._store.outbox_next(channel)
            if item is None:
                wake.clear()
                await wake.wait()
                continue
            error = await self._deliver(channel, item)
            now = self._clock.monotonic()
            kind = _channel_type(channel)
            if error is None:
                self._store.outbox_done(item, now, True, None)
                self.outcomes[(kind, "sent")] += 1
                self._stats.notifications_sent += 1
                if channel in self.failing:
                    self.failing.discard(channel)
                    log.info("notify.channel_recovered", channel=mask_url(channel))
                attempt = 0
                continue
            self.outcomes[(kind, "failed_attempt")] += 1
            self._stats.notifications_failed += 1
            self._store.outbox_attempted(item.id)
            if channel not in self.failing:
                self.failing.add(channel)
                log.error("notify.channel_failing", channel=mask_url(channel), error=error)
            if now - item.created > GIVE_UP_AFTER_S:
                self._store.outbox_done(item, now, False, error)
                self.outcomes[(kind, "dropped")] += 1
                log.error(
                    "notify.gave_up", channel=mask_url(channel), alert_id=item.data.get("alert_id")
                )
                continue
            await asyncio.sleep(backoff_delay(attempt, *self._retry, self._rng))
            attempt += 1

    async def _deliver(self, channel: str, item: OutboxItem) -> str | None:
        """None when delivered, else what went wrong (no secrets in it)."""
        try:
            if channel.startswith("webhook:"):
                return await self._webhook(channel[len("webhook:") :], item.data)
            return await self._apprise(channel, item.data)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return f"{type(e).__name__}"

    async def _webhook(self, url: str, data: dict[str, Any]) -> str | None:
        assert self._session is not None
        try:
            async with self._session.post(
                url, json=data["payload"], headers={"X-Monitor-Event": data["event"]}
            ) as resp:
                if resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as e:
            return type(e).__name__

    async def _apprise(self, url: str, data: dict[str, Any]) -> str | None:
        import apprise  # here, not at start-up: only routes with Apprise URLs need it

        ap = apprise.Apprise()
        if not ap.add(url):
            return "not a valid Apprise URL"
        title, body = render(data, self._zone)  # in the route's language
        ok = await ap.async_notify(body=body, title=title)
        return None if ok else "Apprise could not deliver"


def _channel_type(channel: str) -> str:
    return "webhook" if channel.startswith("webhook:") else channel.split("://", 1)[0]
