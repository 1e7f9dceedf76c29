"""Notifications: one worker per channel, fed from a durable outbox.

A notification is written to the SQLite outbox before anything is sent, so a restart
neither loses nor repeats one; each channel has its own task that sends in order and
retries with jittered backoff, so a dead channel never delays ingestion, the rule engine
or the other channels. Channels are Apprise URLs or ``webhook:<url>`` (SPEC 5's JSON).

A notification the channel refuses for its content (HTTP 4xx but 408/429; for Apprise,
an error that repeats for it while the channel delivers the next) is tried MAX_REFUSED
times, counted in the outbox across restarts, then given up: it never holds back the
channel's later notifications (issue 19).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from monitor import durations, logs
from monitor.alerting.engine import Notification, rfc3339
from monitor.alerting.store import OutboxItem, Store
from monitor.alerting.texts import render
from monitor.backoff import backoff_delay
from monitor.clock import Clock
from monitor.config import expand_channel, mask_url
from monitor.lifecycle import Resource, always, leading
from monitor.stats import Stats

log = logs.get(__name__)

GIVE_UP_AFTER_S = 24 * 3600.0  # an alert a day old is no longer news: record the failure
MAX_REFUSED = 3  # SPEC 5: tries of a notification refused for its content, then given up
# A give-up stays a /health warning this long after the channel's last one: the next
# notification gets through seconds later, so "until a delivery succeeds" would hide it.
GIVEN_UP_WARNING_S = 24 * 3600.0
WEBHOOK_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 30.0  # a test message's try on one channel (an SMTP server may be slow)
TEST_EVENT = "test"  # X-Monitor-Event and ``state`` of a test message

# Whose fault a failed try was: "content" (the channel refused this message: HTTP 4xx but
# 408/429), "channel" (down, slow, overloaded: 5xx, 408, 429, no connection) or "unclear".
Blame = Literal["content", "channel", "unclear"]


@dataclass(frozen=True)
class Failure:
    error: str  # what went wrong, without secrets or message text
    blame: Blame


@dataclass(frozen=True)
class Tried:
    """A test message through one channel: delivered (``error`` None) or why not."""

    channel: str  # as configured: its secrets' places, never the secrets
    escalation: bool  # one of the route's escalate_to channels
    error: str | None


def trial_message(
    route: str, language: str | None, instance: str, by: str, at: float, board: str | None
) -> dict[str, Any]:
    """What ``Notifier.test`` sends (SPEC 10): for a webhook, SPEC 5's JSON with every key
    (a receiver that reads them does not choke), ``state`` and the header ``test``, and
    ``test: true``; for a chat, a title and body that say it is no alert."""
    payload = {
        "alert_id": f"test-{uuid.uuid4().hex[:8]}",
        "state": TEST_EVENT,
        "rule": "notify_test",
        "severity": "info",
        "site": "*",
        "area": "*",
        "kind": "monitor",
        "device": instance,
        "started_at": rfc3339(at),
        "resolved_at": None,
        "duration_s": 0.0,
        "summary": f"test message through route {route}, asked by {by}: not an alert",
        "test": True,
        "route": route,
        **({"url": board} if board is not None else {}),
    }
    return {
        "alert_id": payload["alert_id"],
        "event": TEST_EVENT,
        "route": route,
        "payload": payload,
        "language": language,
        "facts": {},
        "by": by,
        "instance": instance,
    }


@dataclass
class _GivenUp:
    count: int
    last: float  # monotonic
    error: str


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
        # Whether this monitor may send (SPEC 8.1: the leader, while its lease holds),
        # asked right before every delivery; the wiring sets it.
        self.may_send: Callable[[], bool] = always
        try:
            self._zone: tzinfo = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self._zone = UTC
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (channel type, outcome)
        self.failing: set[str] = set()
        self._given_up: dict[str, _GivenUp] = {}  # by channel, while it is a warning
        self._workers: asyncio.TaskGroup | None = None  # while running

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

    def wake(self) -> None:
        """Every channel looks at its queue again (the store committed notifications)."""
        for event in self._wake.values():
            event.set()

    def warnings(self) -> list[str]:
        """For /health: the channels that gave notifications up lately."""
        now = self._clock.monotonic()
        for channel, g in list(self._given_up.items()):
            if now - g.last > GIVEN_UP_WARNING_S:
                del self._given_up[channel]
        return [
            f"{g.count} notification{'s' if g.count != 1 else ''} given up on"
            f" {mask_url(channel)} ({g.error}), the last {durations.human(now - g.last)} ago:"
            " not delivered (the log's notify.given_up lines say which alerts)"
            for channel, g in self._given_up.items()
        ]

    async def run(self) -> None:
        """One worker per channel, until cancelled; ``add_channels`` adds more."""
        async with asyncio.TaskGroup() as tg:
            self._workers = tg
            try:
                for channel in self._channels:
                    self._start(channel)
                await asyncio.Event().wait()  # the workers run until cancelled
            finally:
                self._workers = None

    def add_channels(self, channels: Iterable[str]) -> list[str]:
        """Channels of a reloaded config (SPEC 10): a worker each from now on. A channel no
        route names any more keeps its worker: what waits for it in the outbox is sent."""
        new = [c for c in dict.fromkeys(channels) if c not in self._wake]
        for channel in new:
            self._channels.append(channel)
            self._wake[channel] = asyncio.Event()
            if self._workers is not None:
                self._start(channel)
        return new

    def _start(self, channel: str) -> None:
        assert self._workers is not None
        self._workers.create_task(self._worker(channel), name=f"notify:{mask_url(channel)}")

    async def _worker(self, channel: str) -> None:
        """Sends the channel's notifications in order. A channel failure is retried with
        backoff, the notification kept at the head (a day at most); one refused for its
        content is tried MAX_REFUSED times and given up, so it holds back nothing."""
        wake = self._wake[channel]
        down = 0  # channel failures in a row: the backoff's step
        while True:
            wake.clear()  # from here on, a new notification makes a waiting worker look
            item = self._store.outbox_next(channel)
            if item is None:
                await wake.wait()
                continue
            failure = await self._try(channel, item)
            if failure is None:
                down = 0
                continue
            tries = item.refused + (failure.blame != "channel")
            if failure.blame == "content" and tries >= MAX_REFUSED:
                self._give_up(channel, item, failure, f"refused {tries} times")
                continue
            # Apprise says little: an error that repeats for this notification while the
            # channel delivers the next one is this notification's own (SPEC 5).
            suspect = failure.blame == "unclear" and tries >= MAX_REFUSED
            if suspect and await self._delivers_others(channel, item):
                self._give_up(
                    channel, item, failure, f"failed {tries} times; the channel delivers others"
                )
                down = 0
                continue
            if self._clock.monotonic() - item.created > GIVE_UP_AFTER_S:
                self._give_up(channel, item, failure, "undelivered for a day")
                continue
            if failure.blame == "content":  # tried again soon: all tries within seconds
                delay = backoff_delay(tries - 1, *self._retry, self._rng)
            else:
                delay = backoff_delay(down, *self._retry, self._rng)
                down += 1
            if suspect:  # the next notification to arrive tells whether the channel works
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
            else:
                await asyncio.sleep(delay)

    async def _try(self, channel: str, item: OutboxItem) -> Failure | None:
        """One delivery, its outcome counted and recorded; None when delivered."""
        await leading(self.may_send)
        failure = await self._deliver(channel, item.data)
        kind = _channel_type(channel)
        if failure is None:
            self._store.outbox_done(item, self._clock.monotonic(), True, None)
            self.outcomes[(kind, "sent")] += 1
            self._stats.notifications_sent += 1
            if channel in self.failing:
                self.failing.discard(channel)
                log.info("notify.channel_recovered", channel=mask_url(channel))
            return None
        self.outcomes[(kind, "failed_attempt")] += 1
        self._stats.notifications_failed += 1
        self._store.outbox_attempted(item, refused=failure.blame != "channel")
        if failure.blame != "content" and channel not in self.failing:  # a refusal is no outage
            self.failing.add(channel)
            log.error(
                "notify.channel_failing",
                channel=mask_url(channel),
                error=failure.error,
                blame=failure.blame,
            )
        return failure

    async def _delivers_others(self, channel: str, item: OutboxItem) -> bool:
        """Whether the notification queued after ``item`` is delivered (sent now)."""
        later = self._store.outbox_next(channel, after=item)
        return later is not None and await self._try(channel, later) is None

    def _give_up(self, channel: str, item: OutboxItem, failure: Failure, why: str) -> None:
        now = self._clock.monotonic()
        error = f"{failure.error}: given up, {why}"
        self._store.outbox_done(item, now, False, error)
        self.outcomes[(_channel_type(channel), "given_up")] += 1
        self._stats.notifications_given_up += 1
        g = self._given_up.get(channel)
        if g is None or now - g.last > GIVEN_UP_WARNING_S:
            g = self._given_up[channel] = _GivenUp(0, now, failure.error)
        g.count, g.last, g.error = g.count + 1, now, failure.error
        log.error(
            "notify.given_up",
            channel=mask_url(channel),
            alert_id=item.data.get("alert_id"),
            notification=item.data.get("event"),
            error=failure.error,
            blame=failure.blame,
            why=why,
        )

    async def test(self, channels: Iterable[tuple[str, bool]], data: dict[str, Any]) -> list[Tried]:
        """A test message (``trial_message``) through each channel at once, tried once, not
        queued: whether each delivered it, or why not (SPEC 10, ``monitor notify-test``).
        ``channels``: (channel, whether it is an escalation channel)."""

        async def one(channel: str, escalation: bool) -> Tried:
            try:
                async with asyncio.timeout(TEST_TIMEOUT_S):
                    failure = await self._deliver(channel, data)
            except TimeoutError:
                failure = Failure(f"no answer within {TEST_TIMEOUT_S:g} s", "channel")
            error = None if failure is None else failure.error
            log.info(
                "notify.test",
                route=data["route"],
                channel=mask_url(channel),
                delivered=error is None,
                error=error,
                by=data.get("by"),
            )
            return Tried(channel, escalation, error)

        return list(await asyncio.gather(*(one(c, e) for c, e in channels)))

    async def _deliver(self, channel: str, data: dict[str, Any]) -> Failure | None:
        """None when delivered, else what went wrong and whose fault it seems."""
        try:
            url = expand_channel(channel)  # its secrets, from the environment or files
        except ValueError as e:  # says which variable or file, never a secret
            return Failure(str(e), "channel")
        try:
            if url.startswith("webhook:"):
                return await self._webhook(url[len("webhook:") :], data)
            return await self._apprise(url, data)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug or a message our own code cannot render
            return Failure(type(e).__name__, "unclear")

    async def _webhook(self, url: str, data: dict[str, Any]) -> Failure | None:
        assert self._session is not None
        try:
            async with self._session.post(
                url, json=data["payload"], headers={"X-Monitor-Event": data["event"]}
            ) as resp:
                if resp.status < 300:
                    return None
                return Failure(f"HTTP {resp.status}", _blame(resp.status))
        except (aiohttp.ClientError, TimeoutError) as e:
            return Failure(type(e).__name__, "channel")

    async def _apprise(self, url: str, data: dict[str, Any]) -> Failure | None:
        import apprise  # here, not at start-up: only routes with Apprise URLs need it

        ap = apprise.Apprise()
        if not ap.add(url):
            return Failure("not a valid Apprise URL", "channel")
        title, body = render(data, self._zone)  # in the route's language
        # Device text is text: Apprise escapes it for targets that render markup (Telegram
        # defaults to HTML, where a fault code "<E1>" is refused and "<a href>" a link).
        result = await ap.async_notify(
            body=body, title=title, body_format=apprise.NotifyFormat.TEXT
        )
        try:
            return None if result else _apprise_failure(result)
        finally:
            if close := getattr(result, "close", None):  # its captured logs may be on disk
                close()


def _blame(status: int) -> Blame:
    """SPEC 5: a 4xx refuses the content, except 408 (timeout) and 429 (too many)."""
    return "content" if 400 <= status < 500 and status not in (408, 429) else "channel"


# Apprise's HTTP plugins log a refused request with ``error=<status>`` and a lost one with
# "A connection error occurred ..."; only those facts are taken from their words (which may
# name a target). Its e-mail plugin says "Connection error" for a dead server and for a
# refused message alike (unclear), and an Apprise before 2.x returns a bare bool.
_STATUS = re.compile(r"\berror=(\d{3})\b")
_CONNECTION = re.compile(r"\bA connection error occurred\b", re.IGNORECASE)


def _apprise_failure(result: Any) -> Failure:
    if getattr(getattr(result, "status", None), "name", "") == "TIMEOUT":
        return Failure("timeout", "channel")
    statuses: set[int] = set()
    connection = False
    logs = getattr(result, "logs", None)
    for entry in logs() if callable(logs) else ():
        message = str(getattr(entry, "message", ""))
        if m := _STATUS.search(message):
            statuses.add(int(m.group(1)))
        elif _CONNECTION.search(message):
            connection = True
    if connection:
        return Failure("connection error", "channel")
    if not statuses:
        return Failure("Apprise could not deliver", "unclear")
    error = "HTTP " + ", ".join(str(s) for s in sorted(statuses))
    if all(_blame(s) == "content" for s in statuses):
        return Failure(error, "content")
    return Failure(error, "channel")


def _channel_type(channel: str) -> str:
    return "webhook" if channel.startswith("webhook:") else channel.split("://", 1)[0]
