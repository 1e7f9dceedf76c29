"""The state in PostgreSQL (``store.url``, SPEC 8.1), with real processes: a monitor on
one state_dir fires and notifies an alert that a person acknowledges; a monitor on another
state_dir (another host) started on the same database finds it open and acknowledged and
does not notify it again. The URL's secret never reaches the log. A database that is down
at the start is waited for; one that goes down under a running monitor costs nothing of
the ingest, is said on /health, and gets everything once it is back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.sim.devservers import InfluxDB, Postgres
from tests.helpers import (
    MonitorProcess,
    Publisher,
    Talker,
    Webhook,
    api_call,
    device_topic,
    rows,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "store-token"


def call(port: int, path: str, body: object = None) -> tuple[int, Any]:
    return api_call(port, path, TOKEN, body)


def with_password(server: Postgres, url: str, password: str) -> str:
    """The test database as a role with a password: what a post's URL looks like."""
    server.psql(f"CREATE ROLE monitor LOGIN PASSWORD '{password}' SUPERUSER")
    return url.replace("postgresql://postgres@", f"postgresql://monitor:{password}@")


def telemetry_points(influxd: InfluxDB, database: str) -> int:
    got = rows(influxd.url, database, "SELECT count(scans_total) AS n FROM xray_scanner")
    return int(got[0]["n"]) if got else 0


async def test_a_second_monitor_on_the_same_database_carries_the_state_on(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    webhook: Webhook,
    postgres_server: Postgres,
    postgres_url: str,
    mosquitto: Any,
) -> None:
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=["xs-a", "xs-b"])
    port = yaml.safe_load(path.read_text())["http"]["port"]
    url = with_password(postgres_server, postgres_url, "s3cret-Aktau")
    env = {"MONITOR_STORE__URL": url, "MONITOR_HTTP__TOKEN": TOKEN}
    first = MonitorProcess(
        tmp_path / "first.log", config=path, env={**env, "MONITOR_STATE_DIR": str(tmp_path / "a")}
    )
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-a", "xs-b"])
    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await first.wait_log("mqtt.connected")
        await asyncio.sleep(1)
        talker.talking.discard("xs-a")  # falls silent: no_data, notified once
        await wait_for(lambda: ("xs-a", "no_data", "firing") in webhook.events(), timeout=20)
        alerts = call(port, "/api/alerts?state=open")[1]["alerts"]
        [alert] = [a for a in alerts if a["device"] == "xs-a"]
        assert call(port, f"/api/alerts/{alert['alert_id']}/ack", {"by": "Айгерим"})[0] == 200
        assert first.terminate() == 0
        assert "s3cret-Aktau" not in first.log()

        # another host: its own (empty) state_dir, the same database
        second = MonitorProcess(
            tmp_path / "second.log",
            config=path,
            env={**env, "MONITOR_STATE_DIR": str(tmp_path / "b")},
        )
        await second.wait_log("mqtt.connected")
        await wait_for(lambda: call(port, "/api/alerts?state=open")[0] == 200, timeout=10)
        _, again = call(port, f"/api/alerts/{alert['alert_id']}")
        assert again["state"] == "acknowledged" and again["acknowledged_by"] == "Айгерим"
        await asyncio.sleep(2 * 2.0 + 1)  # past xs-a's timeout, twice
        assert webhook.events().count(("xs-a", "no_data", "firing")) == 1
        talker.talking.add("xs-a")  # back: resolved, by the second monitor
        await wait_for(lambda: ("xs-a", "no_data", "resolved") in webhook.events(), timeout=20)
        assert second.terminate() == 0
        talking.cancel()
    db = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.psql("SELECT count(*) FROM alerts WHERE open", db).strip() == "0"


async def test_the_database_is_waited_for_and_its_outage_costs_no_data(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    webhook: Webhook,
    postgres_server: Postgres,
    postgres_url: str,
    mosquitto: Any,
    influxd: InfluxDB,
    database: str,
) -> None:
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=["xs-a", "xs-b"])
    port = yaml.safe_load(path.read_text())["http"]["port"]
    env = {"MONITOR_STORE__URL": postgres_url, "MONITOR_HTTP__TOKEN": TOKEN}
    postgres_server.stop()
    try:
        monitor = MonitorProcess(tmp_path / "m.log", config=path, env=env)
        await monitor.wait_log("store.waiting")
        await asyncio.sleep(1)
        assert "mqtt.connected" not in monitor.log()  # it does not lead from nothing
        status, health = call(port, "/health")  # it stands by, and says why
        assert status == 503 and health["role"] == "standby", health
        assert any("cannot reach the store" in r for r in health["reasons"]), health
    finally:
        postgres_server.start()
    await monitor.wait_log("mqtt.connected", timeout=40)
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-a", "xs-b"])
    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await wait_for(lambda: telemetry_points(influxd, database) > 0, timeout=15)
        postgres_server.stop()
        try:
            talker.talking.discard("xs-a")
            before = await asyncio.to_thread(telemetry_points, influxd, database)
            await wait_for(lambda: telemetry_points(influxd, database) >= before + 10, timeout=20)
            # /health says what waits; the alert waits too (a group sends only what the
            # database holds: the next leader must know it was sent)
            await wait_for(
                lambda: any("postgresql" in r for r in call(port, "/health")[1]["reasons"]),
                timeout=20,
            )
            await asyncio.sleep(2 * 2.0)  # past xs-a's timeout
            assert ("xs-a", "no_data", "firing") not in webhook.events()
        finally:
            postgres_server.start()
        await wait_for(lambda: ("xs-a", "no_data", "firing") in webhook.events(), timeout=20)
        await wait_for(lambda: call(port, "/health")[0] == 200, timeout=30)
        talking.cancel()
    assert monitor.terminate() == 0
    assert webhook.events().count(("xs-a", "no_data", "firing")) == 1
    assert "ha.cut_off" not in monitor.log()  # short: it led on within its lease
    db = postgres_url.rsplit("/", 1)[1]
    assert '"xs-a"' in postgres_server.psql("SELECT data FROM alerts WHERE open", db)


def publish(pub: Publisher, n: int, device: str = "xs-a") -> Any:
    return pub.publish(device_topic(device), json.dumps({"scans_total": 1, "seq": n}))


async def test_a_leader_cut_off_from_the_database_ingests_on_and_its_alerts_wait(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    webhook: Webhook,
    postgres_server: Postgres,
    postgres_url: str,
    mosquitto: Any,
    influxd: InfluxDB,
    database: str,
) -> None:
    """The database down past failover - heartbeat: no other monitor can take over
    without it, so the leader ingests on; it sends nothing and /health says why; once the
    database answers, the lease is still its own and what waited goes out, once."""
    path = alert_config(
        channels=[f"webhook:{webhook.url}"],
        devices=["xs-a", "xs-b"],
        extra="ha: {heartbeat: 500ms, failover: 2s}",
    )
    port = yaml.safe_load(path.read_text())["http"]["port"]
    monitor = MonitorProcess(
        tmp_path / "m.log", config=path, env={"MONITOR_STORE__URL": postgres_url}
    )
    await monitor.wait_log("mqtt.connected")
    pub = Publisher(mosquitto.port)
    sent: list[Any] = []

    async def talk() -> None:
        n = 0
        while True:
            sent.append(publish(pub, n, "xs-b"))
            n += 1
            await asyncio.sleep(0.02)  # 50 messages/s: mosquitto keeps 1000 at the most

    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(talk())
        await wait_for(lambda: telemetry_points(influxd, database) >= 20, timeout=15)
        postgres_server.stop()
        try:
            await monitor.wait_log("ha.cut_off", timeout=10)
            before = await asyncio.to_thread(telemetry_points, influxd, database)
            await asyncio.sleep(2 * 2.0)  # xs-a, silent from the start, is past its timeout
            # ingest went on: 50 messages/s for 4 s
            assert telemetry_points(influxd, database) >= before + 100
            assert call(port, "/health")[0] == 503
            assert webhook.events() == []  # alerts wait for the database
        finally:
            postgres_server.start()
        await monitor.wait_log("ha.reconnected", timeout=15)
        await wait_for(lambda: ("xs-a", "no_data", "firing") in webhook.events(), timeout=20)
        talking.cancel()
    acked = {i for i, info in enumerate(sent) if info.is_published()}
    await wait_for(lambda: telemetry_points(influxd, database) >= len(acked), timeout=20)
    assert "epoch=2" not in monitor.log()  # the same leader, the same epoch
    assert webhook.events().count(("xs-a", "no_data", "firing")) == 1
    assert monitor.terminate() == 0
