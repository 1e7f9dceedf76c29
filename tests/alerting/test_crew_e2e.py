"""The crew's day (issue 22), across real boundaries: ``monitor notify-test`` as a process
tries a route's channels (a webhook, Apprise's json://, one that is down) through a running
monitor and says per channel delivered or why not; with ``http.public_url`` an alert's
notifications carry its link on the status board."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.config import load_config
from monitor.sim.devservers import Mosquitto, free_port
from tests.helpers import ROOT, Publisher, Talker, Webhook, running_monitor, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOARD = "https://monitor.aktau.example.kz/ops"  # behind the post's TLS proxy
TOKEN = "crew-test-token"


class Chat:
    """Where Apprise's json:// posts: {"title", "message", "type", ...}."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(status=200)


@pytest.fixture
async def chat() -> AsyncIterator[Chat]:
    c = Chat()
    app = web.Application()
    app.router.add_post("/notify", c.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", c.port).start()
    yield c
    await runner.cleanup()


def notify_test(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "notify-test",
            "--url",
            f"http://127.0.0.1:{port}",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "MONITOR_HTTP__TOKEN": TOKEN},
        cwd=ROOT,
        check=False,
        timeout=120,
    )


async def test_notify_test_says_per_channel_and_alerts_link_to_the_board(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    chat: Chat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_HTTP__TOKEN", TOKEN)
    monkeypatch.setenv("MONITOR_HTTP__PUBLIC_URL", BOARD + "/")
    dead = free_port()
    down = f"webhook:http://127.0.0.1:{dead}/alerts"  # nothing listens there
    channels = [f"webhook:{webhook.url}", f"json://127.0.0.1:{chat.port}/notify", down]
    config = load_config(alert_config(channels=channels, devices=["xs-a"]))
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-a"])
    async with running_monitor(config) as monitor, asyncio.TaskGroup() as tg:
        port = monitor.api.port
        assert port is not None
        talking = tg.create_task(talker.run())
        tried = await asyncio.to_thread(notify_test, port, "--route", "crew", "--by", "Aigerim")
        unknown = await asyncio.to_thread(notify_test, port, "--route", "krew")

        talker.talking.clear()  # xs-a falls silent: a real alert, with its link
        await wait_for(lambda: len(chat.received) >= 2 and len(webhook.received) >= 2, 15)
        talking.cancel()
    pub.close()

    # per channel, in the route's order: delivered, or why not; exit 1 as one was not
    assert tried.returncode == 1, tried.stdout + tried.stderr
    lines = [" ".join(line.split()) for line in tried.stdout.splitlines()]
    assert lines[0] == "Test message through route crew:"
    assert lines[1:] == [
        f"delivered webhook:http://127.0.0.1:{webhook.port}/***",
        f"delivered json://127.0.0.1:{chat.port}/***",
        f"not delivered: ClientConnectorError webhook:http://127.0.0.1:{dead}/***",
    ]
    assert unknown.returncode == 1
    assert "the running monitor has no route krew" in unknown.stderr
    # the test as each channel got it: no alert, and said so
    _, event, test = webhook.received[0]
    assert (event, test["state"], test["test"], test["route"]) == ("test", "test", True, "crew")
    assert test["url"] == BOARD + "/"
    said = chat.received[0]
    assert said["title"] == "🧪 TEST: route crew"
    assert said["message"].splitlines() == [
        "This is a test message, not an alert: it says nothing about the equipment.",
        f"Monitor {config.instance_name}, route crew, asked by Aigerim.",
        f"The status board: {BOARD}/",
    ]

    # a real alert: the chat's message and the webhook's JSON link to it on the board
    _, event, fired = webhook.received[1]
    link = f"{BOARD}/#alert={fired['alert_id']}"
    assert (event, fired["device"], fired["url"]) == ("firing", "xs-a", link)
    message = chat.received[1]["message"].splitlines()
    assert message[-1] == f"Acknowledge on the status board: {link}"
    assert not any("monitor ack" in line for line in message)
