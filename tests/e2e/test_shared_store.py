"""The state in PostgreSQL (``store.url``, SPEC 8.1), with real processes: a monitor on
one state_dir fires and notifies an alert that a person acknowledges; a monitor on another
state_dir (another host) started on the same database finds it open and acknowledged and
does not notify it again. The URL's secret never reaches the log. A database that is down
at the start is waited for; one that goes down under a running monitor costs nothing of
the ingest, is said on /health, and gets everything once it is back."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
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
    device_topic,
    rows,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "store-token"


def call(port: int, path: str, body: object = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
    except OSError:
        return 0, None


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
            # the alert goes out meanwhile, from memory; /health says what waits
            await wait_for(lambda: ("xs-a", "no_data", "firing") in webhook.events(), timeout=20)
            await wait_for(
                lambda: any("postgresql" in r for r in call(port, "/health")[1]["reasons"]),
                timeout=20,
            )
        finally:
            postgres_server.start()
        await wait_for(lambda: call(port, "/health")[0] == 200, timeout=30)
        talking.cancel()
    assert monitor.terminate() == 0
    db = postgres_url.rsplit("/", 1)[1]
    assert '"xs-a"' in postgres_server.psql("SELECT data FROM alerts WHERE open", db)


def publish(pub: Publisher, n: int) -> Any:
    return pub.publish(device_topic("xs-a"), json.dumps({"scans_total": 1, "seq": n}))


async def test_a_database_down_past_failover_pauses_the_group_and_loses_nothing(
    alert_config: Callable[..., Path],
    tmp_path: Path,
    postgres_server: Postgres,
    postgres_url: str,
    mosquitto: Any,
    influxd: InfluxDB,
    database: str,
) -> None:
    """Without the database nothing fences a second leader: the leader steps down after
    failover - heartbeat, the broker keeps the messages, and once the database answers a
    leader writes them all."""
    path = alert_config(
        channels=["webhook:http://127.0.0.1:1/unused"],
        devices=["xs-a"],
        extra="ha: {heartbeat: 500ms, failover: 2s}",
    )
    port = yaml.safe_load(path.read_text())["http"]["port"]
    monitor = MonitorProcess(
        tmp_path / "m.log", config=path, env={"MONITOR_STORE__URL": postgres_url}
    )
    await monitor.wait_log("mqtt.connected")
    pub = Publisher(mosquitto.port)
    sent = [
        pub.publish(
            "customs/aktau/inspection-1/xray_scanner/xs-a/telemetry",
            json.dumps({"scans_total": 1, "seq": n}),
        )
        for n in range(20)
    ]
    await wait_for(lambda: telemetry_points(influxd, database) >= 20, timeout=15)
    postgres_server.stop()
    try:
        await monitor.wait_log("monitor.stepping_down", timeout=10)
        await wait_for(lambda: call(port, "/health")[0] == 503, timeout=10)
        for n in range(20, 40):
            sent.append(
                pub.publish(
                    "customs/aktau/inspection-1/xray_scanner/xs-a/telemetry",
                    json.dumps({"scans_total": 1, "seq": n}),
                )
            )
        await asyncio.sleep(2)
        assert telemetry_points(influxd, database) == 20  # nobody leads: nothing written
    finally:
        postgres_server.start()
    await wait_for(lambda: telemetry_points(influxd, database) >= 40, timeout=30)
    assert all(info.is_published() for info in sent)
    assert "epoch=2" in monitor.log()  # it leads again, with a new epoch
    assert monitor.terminate() == 0
