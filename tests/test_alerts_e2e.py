"""Downtime alerts end to end: real broker, real InfluxDB, real webhook and SMTP receivers."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from monitor import app
from monitor.api import Api
from monitor.config import Config, load_config
from monitor.devservers import InfluxDB, Mosquitto, free_port
from monitor.stats import Stats
from tests.helpers import ROOT, Publisher, rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC_KEYS = {
    "alert_id",
    "state",
    "rule",
    "severity",
    "site",
    "area",
    "kind",
    "device",
    "started_at",
    "resolved_at",
    "duration_s",
    "summary",
}
TIMEOUT = 2.0  # no_data timeout of the test devices


def topic(device: str, channel: str = "telemetry") -> str:
    return f"customs/aktau/inspection-1/xray_scanner/{device}/{channel}"


class Webhook:
    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[float, str, dict[str, Any]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            (time.time(), request.headers.get("X-Monitor-Event", ""), await request.json())
        )
        return web.Response(status=204)

    def events(self) -> list[tuple[str, str, str]]:
        return [(p["device"], p["rule"], event) for _, event, p in self.received]


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    wapp = web.Application()
    wapp.router.add_post("/alerts", hook.handle)
    runner = web.AppRunner(wapp, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook.port).start()
    yield hook
    await runner.cleanup()


def write_config(
    path: Path,
    *,
    mqtt_port: int,
    influx: InfluxDB,
    database: str,
    channels: list[str],
    devices: list[str],
    repeat: str = "1h",
    extra: str = "",
) -> Path:
    devs = "\n".join(
        f"  - {{id: {d}, kind: xray_scanner, site: aktau, area: inspection-1}}" for d in devices
    )
    path.write_text(f"""
mqtt:
  port: {mqtt_port}
  client_id: monitor-{path.stem}
  reconnect: {{initial: 100ms, max: 500ms}}
influx: {{url: "{influx.url}", database: {database}, retry: {{max: 1s}}}}
state_dir: {path.parent / "state"}
http: {{port: {free_port()}}}
status_interval: 1s
alerts:
  broker_down_after: 3s
  kinds:
    xray_scanner:
      {{no_data_timeout: {TIMEOUT}s, fault_for: 1s, offline_for: 1s, severity: critical}}
notify:
  routes:
    - name: crew
      match: {{severity: [critical]}}
      channels: {json.dumps(channels)}
      repeat_interval: {repeat}
devices:
{devs}
{extra}
""")
    return path


@contextlib.asynccontextmanager
async def monitor(config: Config) -> AsyncIterator[tuple[Stats, Api]]:
    stop = asyncio.Event()
    stats = Stats()
    apis: list[Api] = []
    task = asyncio.create_task(app.run(config, stop, stats=stats, on_api=apis.append))
    try:
        await wait_for(lambda: stats.broker_connected or task.done(), timeout=15)
        if task.done():
            task.result()
        yield stats, apis[0]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class Talker:
    """Devices publishing telemetry every 0.25 s, each with a state, until told to stop."""

    def __init__(self, pub: Publisher, devices: list[str]) -> None:
        self.pub = pub
        self.state = dict.fromkeys(devices, "ready")
        self.talking = set(devices)

    async def run(self) -> None:
        while True:
            for device in sorted(self.talking):
                # paho queues QoS 1 messages while the broker is away: no error to handle
                self.pub.publish(
                    topic(device),
                    json.dumps({"state": self.state.get(device, "ready"), "scans_total": 1}),
                )
            await asyncio.sleep(0.25)


@contextlib.contextmanager
def lwt_device(port: int, device: str) -> Iterator[subprocess.Popen[bytes]]:
    """A device connection whose Last Will sets its status to offline."""
    proc = subprocess.Popen(
        [
            "mosquitto_sub",
            "-p",
            str(port),
            "-i",
            f"dev-{device}",
            "-t",
            f"cmd/{device}",
            "-k",
            "5",
            "--will-topic",
            topic(device, "status"),
            "--will-payload",
            "offline",
            "--will-retain",
            "--will-qos",
            "1",
        ]
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


async def test_silent_lastwill_and_fault_each_give_one_firing_and_one_resolved_webhook(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    devices = ["xs-a", "xs-b", "xs-c", "xs-d"]
    config = load_config(
        write_config(
            tmp_path / "m.yaml",
            mqtt_port=mosquitto.port,
            influx=influxd,
            database=database,
            channels=[f"webhook:{webhook.url}"],
            devices=devices,
        )
    )
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, devices)
    async with monitor(config), asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        with lwt_device(mosquitto.port, "xs-b") as xs_b:
            pub.publish(topic("xs-b", "status"), "online", retain=True)
            await asyncio.sleep(1.5)
            began = time.time()
            talker.talking -= {"xs-a", "xs-b"}  # xs-a goes silent
            xs_b.kill()  # xs-b's connection dies: its Last Will says offline
            talker.state["xs-c"] = "fault"  # xs-c reports a fault and keeps talking
            await wait_for(lambda: len(webhook.received) >= 3, timeout=TIMEOUT + 5)
            firing_latency = max(t for t, _, _ in webhook.received) - began
            assert sorted(webhook.events()) == [
                ("xs-a", "no_data", "firing"),
                ("xs-b", "offline", "firing"),
                ("xs-c", "fault", "firing"),
            ]
            await asyncio.sleep(1.0)  # nothing more while they stay down
            assert len(webhook.received) == 3

            talker.talking |= {"xs-a", "xs-b"}
            pub.publish(topic("xs-b", "status"), "online", retain=True)
            talker.state["xs-c"] = "ready"
            await wait_for(lambda: len(webhook.received) >= 6, timeout=5)
            await asyncio.sleep(1.0)
        talking.cancel()
    pub.close()

    assert firing_latency < TIMEOUT + 5
    assert sorted(webhook.events()) == sorted(
        [
            ("xs-a", "no_data", "firing"),
            ("xs-a", "no_data", "resolved"),
            ("xs-b", "offline", "firing"),
            ("xs-b", "offline", "resolved"),
            ("xs-c", "fault", "firing"),
            ("xs-c", "fault", "resolved"),
        ]
    )
    for _, event, payload in webhook.received:
        assert set(payload) == SPEC_KEYS
        assert payload["state"] == event
        assert (payload["site"], payload["area"], payload["kind"], payload["severity"]) == (
            "aktau",
            "inspection-1",
            "xray_scanner",
            "critical",
        )
        if event == "resolved":
            assert payload["resolved_at"] is not None
            assert payload["duration_s"] > 0
        else:
            assert payload["resolved_at"] is None
    by = {(p["device"], p["state"]): p for _, _, p in webhook.received}
    assert by[("xs-a", "firing")]["summary"] == (
        "xs-a (xray_scanner, inspection-1) sent no data for 2 s"
    )
    assert by[("xs-a", "firing")]["alert_id"] == by[("xs-a", "resolved")]["alert_id"]

    # deliveries are counted in the monitor measurement (the health dashboard plots them)
    sent = rows(influxd.url, database, 'SELECT last("notifications_sent") AS n FROM monitor')
    assert sent[0]["n"] == 6
    # the transitions are in InfluxDB too
    got = rows(
        influxd.url,
        database,
        "SELECT alert_id, state, duration_s FROM alerts GROUP BY device, rule",
    )
    assert sorted((r["device"], r["rule"], r["state"]) for r in got) == sorted(
        (d, rule, s) for d, rule, s in webhook.events()
    )


async def test_an_alert_reaches_a_real_smtp_server(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    mails: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append(envelope.content)
            return "250 OK"

    smtp = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        channel = (
            f"mailto://127.0.0.1:{smtp.port}?from=monitor@aktau.customs.kz"
            "&to=crew@aktau.customs.kz&mode=insecure"
        )
        config = load_config(
            write_config(
                tmp_path / "m.yaml",
                mqtt_port=mosquitto.port,
                influx=influxd,
                database=database,
                channels=[channel],
                devices=["xs-a"],
            )
        )
        async with monitor(config):
            await wait_for(lambda: mails, timeout=TIMEOUT + 10)
    finally:
        smtp.stop()
    msg = email.message_from_bytes(mails[0], policy=email.policy.default)
    assert msg["To"] == "crew@aktau.customs.kz"
    assert "DOWN: xs-a (X-ray scanner, aktau / inspection-1)" in msg["Subject"]
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "xs-a (xray_scanner, inspection-1) sent no data for 2 s" in text
    assert "monitor ack " in text


async def test_broker_outage_is_one_monitor_alert_not_device_alerts(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    devices = ["xs-a", "xs-b", "xs-c"]
    config = load_config(
        write_config(
            tmp_path / "m.yaml",
            mqtt_port=mosquitto.port,
            influx=influxd,
            database=database,
            channels=[f"webhook:{webhook.url}"],
            devices=devices,
        )
    )
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, devices)
    async with monitor(config), asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await asyncio.sleep(1.0)
        mosquitto.stop()
        await asyncio.sleep(3 * TIMEOUT + 1)  # three times the timeout, and then some
        assert webhook.events() == [("monitor-m", "monitor_broker_down", "firing")]
        mosquitto.start()
        await wait_for(lambda: len(webhook.received) >= 2, timeout=10)
        await asyncio.sleep(TIMEOUT + 1)  # the devices' fresh grace passes quietly
        talking.cancel()
    pub.close()
    assert webhook.events() == [
        ("monitor-m", "monitor_broker_down", "firing"),
        ("monitor-m", "monitor_broker_down", "resolved"),
    ]


async def test_restart_neither_repeats_nor_forgets(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    devices = ["xs-a", "xs-d", "xs-e"]
    path = write_config(
        tmp_path / "m.yaml",
        mqtt_port=mosquitto.port,
        influx=influxd,
        database=database,
        channels=[f"webhook:{webhook.url}"],
        devices=devices,
    )
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-d"])  # xs-a and xs-e are silent from the start
    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        async with monitor(load_config(path)):
            await wait_for(lambda: len(webhook.received) >= 2, timeout=TIMEOUT + 5)
            await asyncio.sleep(0.5)
        assert sorted(webhook.events()) == [
            ("xs-a", "no_data", "firing"),
            ("xs-e", "no_data", "firing"),
        ]
        # while the monitor is down, xs-a recovers (the broker keeps it for our session)
        pub.publish_all([(topic("xs-a"), json.dumps({"scans_total": 2}))])
        talker.talking.add("xs-a")
        async with monitor(load_config(path)):
            await wait_for(lambda: len(webhook.received) >= 3, timeout=10)
            await asyncio.sleep(TIMEOUT + 2)  # past xs-e's fresh grace: no second firing
        talking.cancel()
    pub.close()
    assert sorted(webhook.events()) == [
        ("xs-a", "no_data", "firing"),
        ("xs-a", "no_data", "resolved"),
        ("xs-e", "no_data", "firing"),
    ]


async def test_api_token_ack_and_maintenance(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_HTTP__TOKEN", "s3cret-api-token")
    devices = ["xs-a", "xs-f", "xs-d"]
    config = load_config(
        write_config(
            tmp_path / "m.yaml",
            mqtt_port=mosquitto.port,
            influx=influxd,
            database=database,
            repeat="1s",
            channels=[f"webhook:{webhook.url}"],
            devices=devices,
        )
    )
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, devices)
    async with (
        monitor(config) as (_, api),
        aiohttp.ClientSession(f"http://127.0.0.1:{api.port}") as http,
        asyncio.TaskGroup() as tg,
    ):
        talking = tg.create_task(talker.run())
        auth = {"Authorization": "Bearer s3cret-api-token"}
        # xs-f goes into maintenance, then silent: nobody is told
        async with http.post(
            "/api/maintenance",
            json={"scope": "device", "value": "xs-f", "duration": "1h", "reason": "tube"},
        ) as r:
            assert r.status == 401
        async with http.post(
            "/api/maintenance",
            headers=auth,
            json={"scope": "device", "value": "xs-f", "duration": "1h", "reason": "tube"},
        ) as r:
            assert r.status == 201
            window = await r.json()
        talker.talking -= {"xs-a", "xs-f"}
        await wait_for(lambda: ("xs-a", "no_data", "repeat") in webhook.events(), timeout=10)
        async with http.get("/api/alerts?state=open") as r:
            alerts = {a["device"]: a for a in (await r.json())["alerts"]}
        assert set(alerts) == {"xs-a", "xs-f"}  # recorded, but only xs-a was notified
        async with http.post(
            f"/api/alerts/{alerts['xs-a']['alert_id']}/ack",
            headers={"Authorization": "Bearer wrong"},
        ) as r:
            assert r.status == 401
        async with http.post(
            f"/api/alerts/{alerts['xs-a']['alert_id']}/ack", headers=auth, json={"by": "Aigerim"}
        ) as r:
            assert r.status == 200
            assert (await r.json())["state"] == "acknowledged"
        await asyncio.sleep(0.3)
        count = len(webhook.received)
        await asyncio.sleep(2.5)  # repeat_interval is 1 s: acknowledged stops the repeats
        assert len(webhook.received) == count
        assert webhook.events()[-1] == ("xs-a", "no_data", "acknowledged")
        assert all(p["device"] != "xs-f" for _, _, p in webhook.received)

        async with http.get("/api/devices") as r:
            devs = {d["device"]: d for d in (await r.json())["devices"]}
        assert devs["xs-f"]["in_maintenance"] is True
        assert (devs["xs-f"]["up"], devs["xs-f"]["reason"]) == (False, "maintenance")
        assert (devs["xs-d"]["up"], devs["xs-d"]["reason"]) == (True, "ok")
        async with http.get("/api/devices/xs-a") as r:
            assert (await r.json())["recent_alerts"][0]["acknowledged_by"] == "Aigerim"
        async with http.get("/health") as r:
            assert r.status == 200
        async with http.get("/metrics") as r:
            text = await r.text()
        assert "monitor_messages_received_total" in text
        assert 'monitor_notifications_total{channel_type="webhook",outcome="sent"}' in text
        async with http.post("/api/maintenance", headers=auth, data=b"x" * 100_000) as r:
            assert r.status == 413  # bodies are capped
        async with http.post("/api/maintenance", headers=auth, json={"scope": "planet"}) as r:
            assert r.status == 400
            assert any(p.startswith("scope:") for p in (await r.json())["problems"])
        async with http.delete(f"/api/maintenance/{window['id']}", headers=auth) as r:
            assert r.status == 200
        # out of maintenance and still silent: now the crew is told
        await wait_for(lambda: ("xs-f", "no_data", "firing") in webhook.events(), timeout=5)
        talking.cancel()
    pub.close()


async def test_mutations_are_refused_without_a_configured_token(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    config = load_config(
        write_config(
            tmp_path / "m.yaml",
            mqtt_port=mosquitto.port,
            influx=influxd,
            database=database,
            channels=["json://127.0.0.1:9/x"],
            devices=["xs-a"],
        )
    )
    async with (
        monitor(config) as (_, api),
        aiohttp.ClientSession(f"http://127.0.0.1:{api.port}") as http,
    ):
        for method, path in (
            ("POST", "/api/alerts/abc/ack"),
            ("POST", "/api/maintenance"),
            ("DELETE", "/api/maintenance/abc"),
        ):
            async with http.request(method, path, headers={"Authorization": "Bearer x"}) as r:
                assert r.status == 403
                assert "MONITOR_HTTP__TOKEN" in (await r.json())["error"]
        async with http.post("/api/maintenance", data=b"x" * 100_000) as r:
            assert r.status in (403, 413)
        async with http.get("/api/devices") as r:  # reading needs no token
            assert r.status == 200


async def test_cli_talks_to_a_running_instance(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_HTTP__TOKEN", "cli-token")
    path = write_config(
        tmp_path / "m.yaml",
        mqtt_port=mosquitto.port,
        influx=influxd,
        database=database,
        channels=[f"webhook:{webhook.url}"],
        devices=["xs-a", "xs-d"],
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args, "-c", str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
            timeout=30,
        )

    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-d"])
    async with monitor(load_config(path)), asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await wait_for(lambda: webhook.received, timeout=TIMEOUT + 5)  # xs-a: no_data
        devs = await asyncio.to_thread(cli, "devices", "--json")
        assert devs.returncode == 0, devs.stderr
        by = {d["device"]: d for d in json.loads(devs.stdout)["devices"]}
        assert (by["xs-a"]["up"], by["xs-a"]["reason"]) == (False, "no_data")
        assert (by["xs-d"]["up"], by["xs-d"]["reason"]) == (True, "ok")
        table = await asyncio.to_thread(cli, "alerts")
        assert "no_data" in table.stdout
        alert_id = webhook.received[0][2]["alert_id"]
        assert alert_id in table.stdout

        acked = await asyncio.to_thread(cli, "ack", alert_id, "--by", "Nurlan")
        assert acked.returncode == 0, acked.stderr
        assert f"acknowledged {alert_id}" in acked.stdout
        missing = await asyncio.to_thread(cli, "ack", "no-such-alert")
        assert missing.returncode == 1
        assert "HTTP 404" in missing.stderr

        added = await asyncio.to_thread(
            cli,
            "maintenance",
            "add",
            "area",
            "inspection-1",
            "--duration",
            "2h",
            "--reason",
            "calibration",
        )
        assert added.returncode == 0, added.stderr
        window_id = added.stdout.split()[1].rstrip(":")
        listed = await asyncio.to_thread(cli, "maintenance", "list", "--json")
        assert [w["id"] for w in json.loads(listed.stdout)["windows"]] == [window_id]
        removed = await asyncio.to_thread(cli, "maintenance", "remove", window_id)
        assert removed.returncode == 0, removed.stderr
        talking.cancel()
    pub.close()
    assert ("xs-a", "no_data", "acknowledged") in webhook.events()
