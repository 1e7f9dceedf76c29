"""Alerts in the crews' languages, across real boundaries (issue 16): a route in Kazakh
(webhook: SPEC 5's JSON plus summary_localized), one in Russian through Apprise's json://
(a Telegram-shaped title and body), and one without a language (the JSON exactly as
before)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.config import load_config
from monitor.sim.devservers import Mosquitto, free_port
from tests.alerting.test_alerts_e2e import SPEC_KEYS
from tests.helpers import ALERT_TIMEOUT, Publisher, Talker, Webhook, running_monitor, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class JsonEndpoint:
    """Where Apprise's json:// posts: {"title", "message", "type", ...}."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []  # on /notify (Russian)
        self.kazakh: list[dict[str, Any]] = []  # on /kk

    async def handle(self, request: web.Request) -> web.Response:
        (self.kazakh if request.path == "/kk" else self.received).append(await request.json())
        return web.Response(status=200)


@pytest.fixture
async def endpoint() -> AsyncIterator[JsonEndpoint]:
    ep = JsonEndpoint()
    app = web.Application()
    app.router.add_post("/notify", ep.handle)
    app.router.add_post("/kk", ep.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", ep.port).start()
    yield ep
    await runner.cleanup()


async def test_a_kazakh_and_a_russian_crew_get_their_language(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    endpoint: JsonEndpoint,
    tmp_path: Path,
) -> None:
    english = Webhook()  # a second receiver on its own port: the route without a language
    app = web.Application()
    app.router.add_post("/alerts", english.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", english.port).start()
    routes = [
        {"name": "kk-crew", "channels": [f"webhook:{webhook.url}"], "language": "kk"},
        {
            "name": "ru-crew",
            "channels": [f"json://127.0.0.1:{endpoint.port}/notify"],
            "language": "ru",
        },
        {"name": "vendor", "channels": [f"webhook:{english.url}"]},
        {"name": "kk-chat", "channels": [f"json://127.0.0.1:{endpoint.port}/kk"], "language": "kk"},
    ]
    path = alert_config(channels=["webhook:http://127.0.0.1:9/unused"], devices=["xs-a"])
    text = path.read_text()
    start = text.index("notify:")
    end = text.index("devices:")
    path.write_text(text[:start] + "notify:\n  routes: " + json.dumps(routes) + "\n" + text[end:])
    config = load_config(path)
    assert [r.language for r in config.notify.routes] == ["kk", "ru", None, "kk"]

    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-a"])
    async with running_monitor(config):
        talking = asyncio.create_task(talker.run())
        await asyncio.sleep(1)
        talker.talking.discard("xs-a")  # silent: no_data after ALERT_TIMEOUT (2 s)
        await wait_for(lambda: webhook.received and endpoint.received, timeout=ALERT_TIMEOUT + 8)
        talker.talking.add("xs-a")
        await wait_for(lambda: len(webhook.received) >= 2 and len(endpoint.received) >= 2, 10)
        await wait_for(lambda: len(english.received) >= 2 and len(endpoint.kazakh) >= 2, 10)
        talking.cancel()
    await runner.cleanup()
    pub.close()

    # Kazakh webhook: SPEC 5's keys, the English summary as it was, and the Kazakh one
    _, event, fired = webhook.received[0]
    assert event == "firing"
    assert set(fired) == SPEC_KEYS | {"summary_localized"}
    assert fired["summary"] == "xs-a (xray_scanner, inspection-1) sent no data for 2 s"
    assert fired["summary_localized"] == (
        "xs-a (Рентгендік сканер, inspection-1): 2 секундтан астам уақыт бойы деректер жоқ"
    )
    assert webhook.received[1][1] == "resolved"

    # Russian, through Apprise: what a Telegram chat would show
    first, second = endpoint.received[:2]
    assert first["title"] == "🔴 НЕ РАБОТАЕТ: xs-a (Рентгеновский сканер, aktau / inspection-1)"
    assert first["message"].splitlines()[0] == (
        "xs-a (Рентгеновский сканер, inspection-1): нет данных более 2 секунд"
    )
    assert second["title"].startswith("✅ ВОССТАНОВЛЕНО: xs-a")
    assert "Простой:" in second["message"]

    # Kazakh, through Apprise
    kk_fired, kk_back = endpoint.kazakh[:2]
    assert kk_fired["title"] == "🔴 ЖҰМЫС ІСТЕМЕЙДІ: xs-a (Рентгендік сканер, aktau / inspection-1)"
    assert kk_back["title"].startswith("✅ ҚАЛПЫНА КЕЛДІ: xs-a")
    assert "Қалпына келді:" in kk_back["message"]

    # no language: the webhook JSON exactly as SPEC 5 has it
    assert set(english.received[0][2]) == SPEC_KEYS
