"""Issue 19, item 3, end to end: the monitor with a real broker, InfluxDB and a webhook
that refuses one alert's body (400) and takes the others. The refused one is tried three
times and given up (logged once, counted in /metrics and the `monitor` measurement, a
/health warning); a second device's outage is notified within seconds, not after it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.config import load_config
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import (
    ALERT_TIMEOUT,
    Publisher,
    Talker,
    device_topic,
    rows,
    running_monitor,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class PickyWebhook:
    """A receiver that refuses markup in a summary (as a WAF in front of it would): 400."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[float, str, str, int]] = []  # time, device, event, status

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts?token=s3cret"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        status = 400 if "<" in body["summary"] else 204
        self.requests.append((time.monotonic(), body["device"], body["state"], status))
        if status == 400:
            return web.json_response({"error": "summary: markup is not allowed"}, status=400)
        return web.Response(status=204)

    def tried(self, device: str) -> int:
        return sum(1 for _, d, _, _ in self.requests if d == device)

    def delivered(self) -> list[tuple[str, str]]:
        return [(d, e) for _, d, e, s in self.requests if s == 204]


async def get(port: int, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return await (resp.json() if path == "/health" else resp.text())


async def test_a_refused_alert_is_given_up_and_the_next_outage_is_notified_at_once(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = PickyWebhook()
    app = web.Application()
    app.router.add_post("/alerts", hook.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook.port).start()
    config = load_config(
        alert_config(
            channels=[f"webhook:{hook.url}"], devices=["xs-a", "xs-b"], extra="stats_interval: 1s"
        )
    )
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-a", "xs-b"])
    caplog.set_level(logging.INFO, logger="monitor.alerting.notify")
    try:
        async with running_monitor(config), asyncio.TaskGroup() as tg:
            talking = tg.create_task(talker.run())
            await asyncio.sleep(1.0)
            # xs-a reports a fault whose code the webhook will not take
            talker.state["xs-a"] = "fault"
            pub.publish(
                device_topic("xs-a", "status"), json.dumps({"state": "fault", "code": "<E1>"})
            )
            await wait_for(lambda: hook.tried("xs-a") >= 1, timeout=15)
            # a second device's outage just after: notified within seconds of its timeout
            talker.talking.discard("xs-b")
            silent = time.monotonic()
            await wait_for(lambda: ("xs-b", "firing") in hook.delivered(), timeout=30)
            waited = max(t for t, d, _, s in hook.requests if d == "xs-b") - silent
            # and xs-b's recovery follows it, in order
            talker.talking.add("xs-b")
            await wait_for(lambda: ("xs-b", "resolved") in hook.delivered(), timeout=15)
            await asyncio.sleep(3.0)  # no fourth try of xs-a's comes later
            health = await get(config.http.port, "/health")
            metrics = await get(config.http.port, "/metrics")
            await wait_for(lambda: given_up_in_influx(influxd, database) == 1, timeout=10)
            talking.cancel()
    finally:
        pub.close()
        await runner.cleanup()

    assert hook.tried("xs-a") == 3, hook.requests
    assert hook.delivered() == [("xs-b", "firing"), ("xs-b", "resolved")]
    assert waited < ALERT_TIMEOUT + 8, waited  # the issue saw more than a minute
    [warning] = [w for w in health["warnings"] if "given up" in w]
    assert health["status"] == "ok"  # a warning, not a reason to be unhealthy
    assert "1 notification given up on webhook:http://127.0.0.1:" in warning, warning
    assert "HTTP 400" in warning and "s3cret" not in warning
    assert "monitor_notifications_given_up_total 1.0" in metrics
    assert 'monitor_notifications_total{channel_type="webhook",outcome="given_up"} 1.0' in metrics
    given_up = [r for r in caplog.records if r.getMessage() == "notify.given_up"]
    assert len(given_up) == 1  # logged once
    assert "s3cret" not in str(given_up[0].__dict__)
    assert given_up[0].__dict__["error"] == "HTTP 400"


def given_up_in_influx(influxd: InfluxDB, database: str) -> int | None:
    got = rows(influxd.url, database, 'SELECT last("notifications_given_up") AS n FROM monitor')
    return int(got[0]["n"]) if got else None
