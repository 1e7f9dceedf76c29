"""The channel worker against real receivers (SPEC 5, issue 19): a notification refused for
its content is tried three times and given up, and never holds back the channel; a channel
that is down keeps its order and gives nothing up early; device text reaches a chat that
renders HTML as text. The receivers are real HTTP / SMTP servers on loopback: an aiohttp
webhook, a fake Telegram Bot API behind Apprise's own Telegram plugin, aiosmtpd."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from monitor.alerting.engine import Notification
from monitor.alerting.notify import (
    GIVE_UP_AFTER_S,
    GIVEN_UP_WARNING_S,
    MAX_REFUSED,
    Notifier,
    _apprise_failure,
)
from monitor.alerting.store import SqliteStore
from monitor.sim.devservers import free_port
from monitor.stats import Stats
from tests.helpers import ManualClock, wait_for

T0 = 1_790_000_000.0


def note(
    alert_id: str,
    channel: str,
    device: str = "xs-01",
    summary: str = "",
    facts: dict[str, Any] | None = None,
) -> Notification:
    payload = {
        "alert_id": alert_id,
        "state": "firing",
        "rule": "fault",
        "severity": "critical",
        "site": "aktau",
        "area": "inspection-1",
        "kind": "xray_scanner",
        "device": device,
        "started_at": "2026-11-21T09:03:10+00:00",
        "resolved_at": None,
        "duration_s": 31.0,
        "summary": summary or f"{device} (xray_scanner, inspection-1) reports a fault",
    }
    return Notification(alert_id, "firing", "crew", (channel,), payload, facts=facts or {})


class Receiver:
    """An HTTP server that answers each request with ``answer(path, body)`` and records
    (monotonic time, alert id or text, status) of every request."""

    def __init__(self, answer: Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]):
        self.port = free_port()
        self.answer = answer
        self.requests: list[tuple[float, str, int]] = []
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.paths.append(request.path)
        status, reply = self.answer(request.path, body)
        self.bodies.append(body)
        key = body.get("alert_id") or body.get("text", "")
        self.requests.append((time.monotonic(), key, status))
        if status == 204:
            return web.Response(status=204)
        return web.json_response(reply, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def tries(self, key: str) -> int:
        return sum(1 for _, k, _ in self.requests if key in k)

    def delivered(self) -> list[str]:
        return [k for _, k, s in self.requests if s < 300]


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@contextlib.asynccontextmanager
async def notifying(notifier: Notifier) -> AsyncIterator[Notifier]:
    async with notifier:
        task = asyncio.create_task(notifier.run())
        try:
            yield notifier
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def refusing(bad: str, status: int = 400) -> Callable[[str, dict[str, Any]], tuple[int, Any]]:
    """A webhook that refuses the alert ``bad`` with ``status`` and takes the others."""

    def answer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body["alert_id"] == bad:
            return status, {"error": "summary: markup is not allowed"}
        return 204, {}

    return answer


# -- the webhook --------------------------------------------------------------------------


async def test_a_refused_notification_is_tried_three_times_and_the_next_flows_at_once(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    stats = Stats()
    store = SqliteStore(tmp_path / "state.db", clock)
    async with receiving(Receiver(refusing("bad"))) as hook:
        channel = f"webhook:http://127.0.0.1:{hook.port}/alerts?token=s3cret"
        notifier = Notifier(store, stats, clock, [channel])  # the real backoff: 1 s, 2 s
        async with notifying(notifier):
            began = time.monotonic()
            notifier.submit([note("bad", channel), note("next-1", channel)])
            await wait_for(lambda: hook.delivered() == ["next-1"], timeout=15)
            waited = time.monotonic() - began
            notifier.submit([note("next-2", channel)])
            await wait_for(lambda: hook.delivered() == ["next-1", "next-2"], timeout=5)
            await asyncio.sleep(2.5)  # and no fourth try comes later
    # three tries, about 1 s and 2 s apart, then the next one: seconds, not minutes
    assert hook.tries("bad") == MAX_REFUSED, hook.requests
    assert waited < 6, waited
    assert [k for _, k, _ in hook.requests] == ["bad", "bad", "bad", "next-1", "next-2"]
    assert stats.notifications_given_up == 1 and stats.notifications_sent == 2
    assert notifier.outcomes[("webhook", "given_up")] == 1
    assert not notifier.failing  # the channel works: a refusal is no outage
    delivery = store.deliveries("bad")
    assert [(d["ok"], d["error"]) for d in delivery] == [(0, "HTTP 400: given up, refused 3 times")]
    assert store.outbox_next(channel) is None
    [warning] = notifier.warnings()
    assert "1 notification given up on webhook:http://127.0.0.1:" in warning
    assert "HTTP 400" in warning and "s3cret" not in warning and "/alerts" not in warning
    clock.advance(GIVEN_UP_WARNING_S - 60)
    assert notifier.warnings()  # it stays a day, however many get through meanwhile
    clock.advance(120)
    assert notifier.warnings() == []
    store.close()


@pytest.mark.parametrize("status", [503, 500, 429, 408])
async def test_a_channel_that_is_down_keeps_its_order_and_gives_nothing_up(
    tmp_path: Path, status: int
) -> None:
    failures = 6  # more than MAX_REFUSED: these do not count towards giving up

    def answer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return (status, {}) if len(hook.requests) < failures else (204, {})

    clock = ManualClock(T0)
    stats = Stats()
    store = SqliteStore(tmp_path / "state.db", clock)
    async with receiving(Receiver(answer)) as hook:
        channel = f"webhook:http://127.0.0.1:{hook.port}/alerts"
        notifier = Notifier(store, stats, clock, [channel], retry_initial=0.02, retry_max=0.05)
        async with notifying(notifier):
            notifier.submit([note("first", channel), note("second", channel)])
            await wait_for(lambda: len(hook.delivered()) == 2, timeout=10)
    assert [k for _, k, _ in hook.requests] == ["first"] * (failures + 1) + ["second"]
    assert stats.notifications_given_up == 0 and notifier.warnings() == []
    assert [d["ok"] for d in store.deliveries("first")] == [1]
    store.close()


async def test_a_channel_down_for_a_day_gives_its_oldest_notification_up(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    stats = Stats()
    store = SqliteStore(tmp_path / "state.db", clock)
    async with receiving(Receiver(lambda path, body: (502, {}))) as hook:
        channel = f"webhook:http://127.0.0.1:{hook.port}/alerts"
        notifier = Notifier(store, stats, clock, [channel], retry_initial=0.02, retry_max=0.05)
        async with notifying(notifier):
            notifier.submit([note("old", channel)])
            await wait_for(lambda: hook.tries("old") >= 5, timeout=10)
            assert stats.notifications_given_up == 0  # failing for a while is not a day
            clock.advance(GIVE_UP_AFTER_S + 1)
            await wait_for(lambda: stats.notifications_given_up == 1, timeout=10)
    assert store.deliveries("old")[0]["error"] == "HTTP 502: given up, undelivered for a day"
    assert "502" in notifier.warnings()[0]
    store.close()


async def test_the_count_of_refusals_survives_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    async with receiving(Receiver(refusing("bad"))) as hook:
        channel = f"webhook:http://127.0.0.1:{hook.port}/alerts"
        store = SqliteStore(tmp_path / "state.db", clock)
        async with notifying(Notifier(store, Stats(), clock, [channel])) as notifier:
            notifier.submit([note("bad", channel), note("next", channel)])
            await wait_for(lambda: hook.tries("bad") == 2, timeout=10)
        store.close()  # stopped during the backoff after the second refusal

        store = SqliteStore(tmp_path / "state.db", clock)
        stats = Stats()
        async with notifying(Notifier(store, stats, clock, [])):  # the outbox names it
            await wait_for(lambda: hook.delivered() == ["next"], timeout=10)
        store.close()
    assert hook.tries("bad") == MAX_REFUSED
    assert stats.notifications_given_up == 1


# -- Telegram, through Apprise's own plugin -----------------------------------------------

TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}
TAG = re.compile(r"<\s*/?\s*([a-zA-Z0-9-]+)")


def telegram(refuse: str | None = None) -> Callable[[str, dict[str, Any]], tuple[int, Any]]:
    """The Bot API's sendMessage as Telegram answers it: parse_mode HTML with a tag it does
    not know is a 400 "can't parse entities"; ``refuse``: a text it refuses besides."""

    def answer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not path.endswith("/sendMessage"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        text = body.get("text", "")
        bad_tag = next((t for t in TAG.findall(text) if t.lower() not in TELEGRAM_TAGS), None)
        if body.get("parse_mode") == "HTML" and bad_tag:
            return 400, {
                "ok": False,
                "error_code": 400,
                "description": f"Bad Request: can't parse entities: Unsupported start tag"
                f' "{bad_tag.lower()}" at byte offset 12',
            }
        if refuse is not None and refuse in text:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: no"}
        return 200, {"ok": True, "result": {"message_id": 1, "chat": {"id": -100123}}}

    return answer


TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def bot_api(monkeypatch: pytest.MonkeyPatch) -> Callable[[Receiver], str]:
    """Points Apprise's Telegram plugin at a local Bot API; gives the channel URL."""
    from apprise.plugins.telegram import NotifyTelegram

    def point(receiver: Receiver) -> str:
        monkeypatch.setattr(NotifyTelegram, "notify_url", f"http://127.0.0.1:{receiver.port}/bot")
        return f"tgram://{TOKEN}/-100123/"

    return point


async def test_device_text_reaches_telegram_as_text_not_html(
    tmp_path: Path, bot_api: Callable[[Receiver], str]
) -> None:
    clock = ManualClock(T0)
    stats = Stats()
    store = SqliteStore(tmp_path / "state.db", clock)
    code = '<E1>) see <a href="http://evil.example">here</a>'  # the device's fault code
    summary = f"xs-01 reports a fault (code {code})"
    async with receiving(Receiver(telegram())) as api:
        channel = bot_api(api)
        notifier = Notifier(store, stats, clock, [channel])
        async with notifying(notifier):
            notifier.submit([note("a1", channel, summary=summary, facts={"code": code})])
            await wait_for(lambda: api.requests, timeout=10)
            await asyncio.sleep(0.2)
    [(_, text, status)] = api.requests  # delivered at the first try
    [body] = api.bodies
    assert status == 200 and stats.notifications_sent == 1
    assert body["parse_mode"] == "HTML"  # Apprise's Telegram default: so the text is escaped
    assert "code &lt;E1&gt;" in text
    assert '&lt;a href="http://evil.example"&gt;here&lt;/a&gt;' in text
    assert "<E1>" not in text and "<a " not in text


async def test_a_bot_token_from_the_environment_is_put_in_only_to_send(
    tmp_path: Path, bot_api: Callable[[Receiver], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: ``tgram://{env:NAME}/chat``: the token reaches the Bot API, and neither
    the outbox nor the worker's name holds it; a variable gone by the time of sending is
    a failing channel, named, not a crash."""
    clock = ManualClock(T0)
    stats = Stats()
    store = SqliteStore(tmp_path / "state.db", clock)
    monkeypatch.setenv("CREW_TG_TOKEN", TOKEN)
    async with receiving(Receiver(telegram())) as api:
        bot_api(api)
        channel = "tgram://{env:CREW_TG_TOKEN}/-100123/"
        notifier = Notifier(store, stats, clock, [channel])
        async with notifying(notifier):
            notifier.submit([note("a1", channel)])
            await wait_for(lambda: api.requests, timeout=10)
            assert api.paths == [f"/bot{TOKEN}/sendMessage"]
            monkeypatch.delenv("CREW_TG_TOKEN")
            notifier.submit([note("a2", channel)])
            await wait_for(lambda: notifier.failing, timeout=10)
    assert stats.notifications_sent == 1 and len(api.requests) == 1
    store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        rows = [*db.execute("SELECT * FROM outbox"), *db.execute("SELECT * FROM deliveries")]
    kept = " ".join(str(v) for row in rows for v in row)
    assert kept.count("{env:CREW_TG_TOKEN}") == 2  # the sent one, the one still waiting
    assert TOKEN not in kept and "AAHdq" not in kept


async def test_a_message_telegram_refuses_is_given_up_and_the_next_one_sent(
    tmp_path: Path, bot_api: Callable[[Receiver], str]
) -> None:
    clock = ManualClock(T0)
    stats = Stats()
    store = SqliteStore(tmp_path / "state.db", clock)
    async with receiving(Receiver(telegram(refuse="xs-bad"))) as api:
        channel = bot_api(api)
        notifier = Notifier(store, stats, clock, [channel], retry_initial=0.1)
        async with notifying(notifier):
            notifier.submit([note("a1", channel, "xs-bad"), note("a2", channel, "xs-ok")])
            await wait_for(lambda: stats.notifications_sent == 1, timeout=10)
            await asyncio.sleep(0.5)
    assert [(k.split()[2], s) for _, k, s in api.requests] == [
        *[("xs-bad", 400)] * MAX_REFUSED,
        ("xs-ok", 200),
    ]
    assert stats.notifications_given_up == 1
    assert store.deliveries("a1")[0]["error"] == "HTTP 400: given up, refused 3 times"
    [warning] = notifier.warnings()
    assert "tgram://***" in warning and TOKEN.split(":")[1] not in warning


# -- e-mail: Apprise cannot tell a refused message from a dead server -----------------------


class Smtp:
    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.tried: list[str] = []
        self.port = free_port()
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Records the device of each message (its subject's); refuses ``refuse``'s."""
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        device = str(msg["Subject"]).split(": ", 1)[1].split()[0]
        self.tried.append(device)
        return "554 5.7.1 message content rejected" if device == self.refuse else "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}?from=monitor@aktau.customs.kz"
            "&to=crew@aktau.customs.kz&mode=insecure"
        )


async def test_an_email_that_fails_alone_while_others_go_is_given_up(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    stats = Stats()
    store = SqliteStore(tmp_path / "state.db", clock)
    smtp = Smtp(refuse="xs-bad")
    smtp.start()
    try:
        channel = smtp.url()
        notifier = Notifier(store, stats, clock, [channel], retry_initial=0.1)
        async with notifying(notifier):
            notifier.submit([note("a1", channel, "xs-bad"), note("a2", channel, "xs-ok")])
            await wait_for(lambda: stats.notifications_sent == 1, timeout=15)
            notifier.submit([note("a3", channel, "xs-later")])
            await wait_for(lambda: stats.notifications_sent == 2, timeout=10)
    finally:
        smtp.stop()
    assert smtp.tried == [*["xs-bad"] * MAX_REFUSED, "xs-ok", "xs-later"]
    assert stats.notifications_given_up == 1
    assert "the channel delivers others" in store.deliveries("a1")[0]["error"]


async def test_an_email_server_that_is_down_keeps_the_order_and_gives_nothing_up(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    stats = Stats()
    store = SqliteStore(tmp_path / "state.db", clock)
    smtp = Smtp(refuse="nothing is refused")
    channel = smtp.url()  # not started yet: connections refused
    notifier = Notifier(store, stats, clock, [channel], retry_initial=0.05, retry_max=0.2)
    try:
        async with notifying(notifier):
            notifier.submit([note("a1", channel, "xs-first"), note("a2", channel, "xs-second")])
            await wait_for(lambda: stats.notifications_failed >= 2 * MAX_REFUSED, timeout=15)
            smtp.start()
            await wait_for(lambda: stats.notifications_sent == 2, timeout=15)
    finally:
        smtp.stop()
    assert smtp.tried == ["xs-first", "xs-second"]
    assert stats.notifications_given_up == 0


# -- what Apprise's result says, and the outbox ---------------------------------------------


class _Entry:
    def __init__(self, message: str) -> None:
        self.message = message


class _Result:
    def __init__(self, *messages: str, status: str = "FAILURE") -> None:
        self._messages = messages
        self.status = type("S", (), {"name": status})()

    def logs(self) -> list[_Entry]:
        return [_Entry(m) for m in self._messages]


@pytest.mark.parametrize(
    ("messages", "status", "error", "blame"),
    [
        (["Failed to send Slack notification: Bad Request, error=400."], "FAILURE", "HTTP 400",
         "content"),
        (["Failed to send ...: Forbidden, error=403."], "FAILURE", "HTTP 403", "content"),
        (["Failed to send ...: Too Many Requests, error=429."], "FAILURE", "HTTP 429", "channel"),
        (["Failed to send ...: error=502."], "FAILURE", "HTTP 502", "channel"),
        (["... error=400.", "... error=503."], "FAILURE", "HTTP 400, 503", "channel"),
        (["A connection error occurred sending Telegram:-100 notification."], "FAILURE",
         "connection error", "channel"),
        (['Connection error while submitting email to "smtp"'], "FAILURE",
         "Apprise could not deliver", "unclear"),
        ([], "TIMEOUT", "timeout", "channel"),
        ([], "FAILURE", "Apprise could not deliver", "unclear"),
    ],
)  # fmt: skip
def test_what_an_apprise_failure_is_taken_for(
    messages: list[str], status: str, error: str, blame: str
) -> None:
    failure = _apprise_failure(_Result(*messages, status=status))
    assert (failure.error, failure.blame) == (error, blame)
    assert _apprise_failure(False).blame == "unclear"  # Apprise 1.x: a bare bool


def test_an_outbox_of_an_earlier_version_gains_its_refusal_count(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,"
        " created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO outbox (channel, created, attempts, data) VALUES (?, ?, ?, ?)",
        ("webhook:http://h/x", T0, 7, json.dumps({"alert_id": "a0"})),
    )
    db.commit()
    db.close()
    store = SqliteStore(path, ManualClock(T0))
    item = store.outbox_next("webhook:http://h/x")
    assert item is not None and (item.attempts, item.refused) == (7, 0)
    store.outbox_attempted(item, refused=True)
    store.outbox_add("webhook:http://h/x", T0, {"alert_id": "a1"})
    again = store.outbox_next("webhook:http://h/x")
    assert again is not None and (again.attempts, again.refused) == (8, 1)
    later = store.outbox_next("webhook:http://h/x", after=again)
    assert later is not None and later.data["alert_id"] == "a1"
    assert store.outbox_next("webhook:http://h/x", after=later) is None
    store.close()
