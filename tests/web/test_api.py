"""The HTTP API of a running monitor: tokens, acknowledgements, maintenance windows,
health and metrics, bodies capped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from monitor.config import load_config
from monitor.sim.devservers import Mosquitto
from tests.helpers import Publisher, Talker, Webhook, running_monitor, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_api_token_ack_and_maintenance(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_HTTP__TOKEN", "s3cret-api-token")
    devices = ["xs-a", "xs-f", "xs-d"]
    config = load_config(
        alert_config(repeat="1s", channels=[f"webhook:{webhook.url}"], devices=devices)
    )
    pub = Publisher(mosquitto.port)
    talker = Talker(pub, devices)
    async with (
        running_monitor(config) as running,
        aiohttp.ClientSession(f"http://127.0.0.1:{running.api.port}") as http,
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
        # what people read, composed in ?lang= (English too); the contract's summary stays
        assert alerts["xs-a"]["summary_text"].endswith("no data for more than 2 seconds")
        async with http.get("/api/alerts?state=open&lang=ru") as r:
            ru = {a["device"]: a for a in (await r.json())["alerts"]}
        assert ru["xs-a"]["summary"] == alerts["xs-a"]["summary"]
        assert ru["xs-a"]["summary_text"].endswith("нет данных более 2 секунд")
        phrase = ru["xs-a"]["duration_phrase"]  # under 5 s: just now, never "уже 0 секунд"
        assert phrase.startswith("уже ") or phrase == "только что", phrase
        async with http.get("/api/devices?lang=kk") as r:
            kk = {d["device"]: d for d in (await r.json())["devices"]}
        phrase = kk["xs-a"]["for_phrase"]
        assert phrase.endswith(" бойы") or phrase == "жаңа ғана", phrase
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
        # a name nobody knows would silence nothing: refused (issue 22); a device only
        # heard (discovered on its topic) is known
        pub.publish("customs/kuryk/berth-2/xray_scanner/xs-z/telemetry", '{"scans_total": 1}')
        for _ in range(100):  # until it is heard
            async with http.get("/api/devices") as r:
                if "xs-z" in {d["device"] for d in (await r.json())["devices"]}:
                    break
            await asyncio.sleep(0.1)
        for scope, value, site, refusal in (
            ("area", "inspection-2", None, "unknown area 'inspection-2' (known: berth-2, insp"),
            ("area", "inspection-1", "kuryk", "area 'inspection-1' is not known at kuryk"),
            ("site", "aktua", None, "unknown site 'aktua' (known: aktau"),
            ("device", "xs-q", None, "no device 'xs-q' is known"),
            ("area", "berth-2", "kuryk", None),
        ):
            body = {"scope": scope, "value": value, "site": site, "duration": "1h"}
            async with http.post("/api/maintenance", headers=auth, json=body) as r:
                said = await r.json()
                if refusal is None:
                    assert r.status == 201, said
                    await http.delete(f"/api/maintenance/{said['id']}", headers=auth)
                else:
                    assert r.status == 400 and said["error"].startswith(refusal), said
        async with http.delete(f"/api/maintenance/{window['id']}", headers=auth) as r:
            assert r.status == 200
        # out of maintenance and still silent: now the crew is told
        await wait_for(lambda: ("xs-f", "no_data", "firing") in webhook.events(), timeout=5)
        talking.cancel()
    pub.close()


async def test_mutations_are_refused_without_a_configured_token(
    alert_config: Callable[..., Path],
) -> None:
    config = load_config(alert_config(channels=["json://127.0.0.1:9/x"], devices=["xs-a"]))
    async with (
        running_monitor(config) as running,
        aiohttp.ClientSession(f"http://127.0.0.1:{running.api.port}") as http,
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
