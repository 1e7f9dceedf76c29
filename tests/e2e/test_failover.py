"""No single point of failure (SPEC 8.1), with real processes: two `monitor run` on one
PostgreSQL, mosquitto and InfluxDB. Each monitor has its own state_dir, HTTP port,
instance tag and webhook, so what each did is told apart; they share the client id.

- SIGKILL of the leader: the standby leads within failover + 10 s; every message the
  broker acknowledged is in InfluxDB; a firing alert is not notified again and stays
  acknowledged (the acknowledgement was asked of the standby, which forwarded it); a device
  that fell silent just before the kill is notified once, as soon as the new leader may
  judge it; a device that kept talking is not alerted.
- SIGSTOP of the leader past failover, then SIGCONT: the standby has taken over; the old
  leader, waking, sends nothing, writes nothing and steps down.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from aiohttp import web

from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import MonitorProcess, Publisher, Webhook, api_call, device_topic, rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "ha-token"
HEARTBEAT, FAILOVER = 1.0, 4.0
SETTLE = 3.0  # app.TAKEOVER_SETTLE_S


def call(port: int, path: str, body: object = None) -> tuple[int, Any]:
    return api_call(port, path, TOKEN, body)


def forwarded_again(port: int, path: str) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=b'{"by": "x"}',
        method="POST",
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "X-Monitor-Forwarded": "http://elsewhere:8080",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def role(port: int) -> str | None:
    body = call(port, "/health")[1]
    return None if body is None else body.get("role")


@dataclass
class Node:
    """One monitor of the pair."""

    name: str
    port: int
    webhook: Webhook
    proc: MonitorProcess | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def env(self, tmp_path: Path, store_url: str) -> dict[str, str]:
        route = {
            "name": "crew",
            "match": {"severity": ["critical"]},
            "channels": [f"webhook:{self.webhook.url}"],
            "repeat_interval": "1h",
        }
        return {
            "MONITOR_STORE__URL": store_url,
            "MONITOR_STATE_DIR": str(tmp_path / self.name),
            "MONITOR_HTTP__PORT": str(self.port),
            "MONITOR_HTTP__TOKEN": TOKEN,
            "MONITOR_INSTANCE": self.name,
            "MONITOR_NOTIFY__ROUTES": json.dumps([route]),
            **self.extra,
        }


@dataclass
class Talkers:
    """Scanners publishing numbered telemetry at QoS 1; what the broker acknowledged is
    kept, to be found in InfluxDB."""

    pub: Publisher
    talking: set[str]
    seq: int = 0
    sent: list[tuple[int, paho.MQTTMessageInfo]] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            for device in sorted(self.talking):
                self.seq += 1
                body = json.dumps({"state": "ready", "scans_total": 1, "seq": self.seq})
                self.sent.append((self.seq, self.pub.publish(device_topic(device), body)))
            await asyncio.sleep(0.2)

    def acknowledged(self) -> set[int]:
        return {n for n, info in self.sent if info.is_published()}


def seqs_written(influxd: InfluxDB, database: str) -> set[int]:
    return {int(r["seq"]) for r in rows(influxd.url, database, "SELECT seq FROM xray_scanner")}


def firings(hooks: list[Webhook], device: str) -> list[float]:
    return [
        at
        for h in hooks
        for at, event, p in h.received
        if p["device"] == device and p["rule"] == "no_data" and event == "firing"
    ]


async def start(node: Node, tmp_path: Path, path: Path, store_url: str) -> MonitorProcess:
    node.proc = MonitorProcess(
        tmp_path / f"{node.name}.log", config=path, env=node.env(tmp_path, store_url)
    )
    return node.proc


async def leader_and_standby(
    a: Node, b: Node, tmp_path: Path, path: Path, store_url: str
) -> tuple[MonitorProcess, MonitorProcess]:
    """``a`` started first, leading and connected; then ``b``, standing by."""
    first = await start(a, tmp_path, path, store_url)
    await first.wait_log("ha.leading")
    await first.wait_log("mqtt.connected")
    second = await start(b, tmp_path, path, store_url)
    await second.wait_log("monitor.standing_by")
    return first, second


@pytest.fixture
def pair(
    alert_config: Callable[..., Path],
) -> tuple[Path, Node, Node]:
    path = alert_config(
        channels=["webhook:http://127.0.0.1:1/unused"],
        devices=["xs-a", "xs-b", "xs-c"],
        extra=f"ha: {{heartbeat: {HEARTBEAT}s, failover: {FAILOVER}s}}\nstats_interval: 1s",
    )
    return path, Node("mon-a", free_port(), Webhook()), Node("mon-b", free_port(), Webhook())


async def test_a_killed_leader_is_replaced_and_nobody_notices(
    pair: tuple[Path, Node, Node],
    tmp_path: Path,
    postgres_url: str,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
) -> None:
    path, a, b = pair
    async with a.webhook.serving(), b.webhook.serving():
        first, second = await leader_and_standby(a, b, tmp_path, path, postgres_url)
        await wait_for(lambda: role(b.port) == "standby", timeout=10)
        assert call(b.port, "/health")[0] == 200

        talkers = Talkers(Publisher(mosquitto.port), {"xs-a", "xs-b", "xs-c"})
        async with asyncio.TaskGroup() as tg:
            talking = tg.create_task(talkers.run())
            await wait_for(lambda: len(seqs_written(influxd, database)) > 10, timeout=15)
            talkers.talking.discard("xs-a")
            await wait_for(lambda: firings([a.webhook], "xs-a"), timeout=20)
            [alert] = [x for x in call(a.port, "/api/alerts")[1]["alerts"] if x["device"] == "xs-a"]
            # asked of the standby's board: forwarded to the leader
            status, acked = call(b.port, f"/api/alerts/{alert['alert_id']}/ack", {"by": "Ержан"})
            assert status == 200 and acked["state"] == "acknowledged", acked
            looped = forwarded_again(b.port, f"/api/alerts/{alert['alert_id']}/ack")
            assert looped == 508  # never forwarded twice
            # the standby's board shows what the leader wrote: the alert, acknowledged
            await wait_for(
                lambda: (
                    [(x["device"], x["state"]) for x in call(b.port, "/api/alerts")[1]["alerts"]]
                    == [("xs-a", "acknowledged")]
                ),
                timeout=10,
            )
            devices = {d["device"] for d in call(b.port, "/api/devices")[1]["devices"]}
            assert {"xs-a", "xs-b", "xs-c"} <= devices

            talkers.talking.discard("xs-b")  # falls silent ...
            await asyncio.sleep(0.5)
            first.proc.send_signal(signal.SIGKILL)  # ... and the leader dies
            killed = time.monotonic()
            first.proc.wait()
            await wait_for(lambda: role(b.port) == "leader", timeout=FAILOVER + 10)
            leading = time.monotonic()
            assert leading - killed < FAILOVER + 10

            await wait_for(lambda: firings([a.webhook, b.webhook], "xs-b"), timeout=20)
            told = time.monotonic()
            await asyncio.sleep(3)
            assert firings([a.webhook, b.webhook], "xs-c") == []  # it kept talking
            talkers.talking.clear()
            await asyncio.sleep(1)
            talking.cancel()

        # xs-b: once, as soon as the new leader could judge it (its deadline passed in the
        # failover); xs-a: not again, still acknowledged; xs-c kept talking: no alert
        assert len(firings([a.webhook, b.webhook], "xs-b")) == 1
        assert told - leading < SETTLE + 5
        assert len(firings([a.webhook, b.webhook], "xs-a")) == 1
        _, again = call(b.port, f"/api/alerts/{alert['alert_id']}")
        assert again["state"] == "acknowledged" and again["acknowledged_by"] == "Ержан"
        # every message the broker acknowledged is in InfluxDB
        acked_seqs = talkers.acknowledged()
        await wait_for(lambda: acked_seqs <= seqs_written(influxd, database), timeout=20)
        assert second.terminate() == 0


async def test_a_frozen_leader_wakes_to_find_it_leads_no_more(
    pair: tuple[Path, Node, Node],
    tmp_path: Path,
    postgres_url: str,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
) -> None:
    path, a, b = pair
    async with a.webhook.serving(), b.webhook.serving():
        first, second = await leader_and_standby(a, b, tmp_path, path, postgres_url)
        talkers = Talkers(Publisher(mosquitto.port), {"xs-a", "xs-b", "xs-c"})
        async with asyncio.TaskGroup() as tg:
            talking = tg.create_task(talkers.run())
            await wait_for(lambda: len(seqs_written(influxd, database)) > 10, timeout=15)
            # frozen with work in hand: xs-a's deadline comes while it sleeps
            talkers.talking.discard("xs-a")
            first.proc.send_signal(signal.SIGSTOP)
            await wait_for(lambda: role(b.port) == "leader", timeout=FAILOVER + 10)
            await wait_for(lambda: firings([b.webhook], "xs-a"), timeout=20)
            await asyncio.sleep(1)
            woke = time.time()
            sent_before = len(a.webhook.received)
            first.proc.send_signal(signal.SIGCONT)
            await first.wait_log("monitor.stepping_down", timeout=10)
            await asyncio.sleep(3)  # what it would do, it would have done by now
            talking.cancel()

        assert firings([a.webhook], "xs-a") == []  # the old leader sent nothing
        assert len(a.webhook.received) == sent_before  # nothing at all
        late = rows(
            influxd.url,
            database,
            f"SELECT * FROM monitor WHERE instance = 'mon-a' AND time > {int(woke * 1e9)}",
        )
        assert late == []  # and wrote nothing
        assert await asyncio.to_thread(role, a.port) == "standby"  # it stands by now
        assert second.terminate() == 0
        assert first.terminate() == 0


class Beats:
    """A dead man's switch service: who called, when."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[tuple[float, str]] = []

    def url(self, who: str) -> str:
        return f"http://127.0.0.1:{self.port}/ping/{who}"

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((time.monotonic(), request.match_info["who"]))
        return web.Response(text="OK")

    def since(self, t: float, who: str) -> int:
        return sum(1 for at, w in self.calls if at >= t and w == who)


async def test_the_dead_mans_switch_is_called_by_a_healthy_leader_only(
    pair: tuple[Path, Node, Node],
    tmp_path: Path,
    postgres_url: str,
    mosquitto: Mosquitto,
) -> None:
    path, a, b = pair
    beats = Beats()
    wapp = web.Application()
    wapp.router.add_get("/ping/{who}", beats.handle)
    runner = web.AppRunner(wapp)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", beats.port).start()
    try:
        for node in (a, b):
            node.extra = {
                "MONITOR_HEARTBEAT__URL": beats.url(node.name),
                "MONITOR_HEARTBEAT__INTERVAL": "300ms",
            }
        first, second = await leader_and_standby(a, b, tmp_path, path, postgres_url)
        t = time.monotonic()
        await asyncio.sleep(2)
        assert beats.since(t, "mon-a") >= 4 and beats.since(t, "mon-b") == 0
        # the broker gone: the leader is not healthy, and says nothing
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.sleep(1)
        t = time.monotonic()
        await asyncio.sleep(2)
        assert beats.since(t, "mon-a") == 0
        await asyncio.to_thread(mosquitto.start)
        await wait_for(lambda: beats.since(time.monotonic() - 1, "mon-a") > 0, timeout=15)
        # the leader gone: its calls stop, the new leader's begin
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        killed = time.monotonic()
        await wait_for(lambda: role(b.port) == "leader", timeout=FAILOVER + 10)
        await wait_for(lambda: beats.since(killed, "mon-b") > 0, timeout=15)
        assert beats.since(killed + 0.5, "mon-a") == 0
        assert second.terminate() == 0
    finally:
        await runner.cleanup()


async def test_a_device_silent_across_the_failover_keeps_its_own_deadline(
    pair: tuple[Path, Node, Node],
    tmp_path: Path,
    postgres_url: str,
    mosquitto: Mosquitto,
) -> None:
    """Its grace counts from its last-seen time in the store (SPEC 8.1), not from the new
    leader's start: with a timeout longer than failover + settle, the alert comes at
    last seen + timeout, where a fresh grace would make it come a failover later."""
    path, a, b = pair
    timeout = 12.0
    cfg = yaml.safe_load(path.read_text())
    cfg["alerts"]["kinds"]["xray_scanner"]["no_data_timeout"] = f"{timeout}s"
    path.write_text(yaml.safe_dump(cfg))
    async with a.webhook.serving(), b.webhook.serving():
        first, second = await leader_and_standby(a, b, tmp_path, path, postgres_url)
        talkers = Talkers(Publisher(mosquitto.port), {"xs-a", "xs-b", "xs-c"})
        async with asyncio.TaskGroup() as tg:
            talking = tg.create_task(talkers.run())
            await asyncio.sleep(HEARTBEAT * 2)  # heard, and its last-seen time saved
            talkers.talking.discard("xs-b")
            silent = time.time()
            await asyncio.sleep(1)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait()
            await wait_for(lambda: role(b.port) == "leader", timeout=FAILOVER + 10)
            await wait_for(lambda: firings([b.webhook], "xs-b"), timeout=30)
            talking.cancel()
        [told] = firings([a.webhook, b.webhook], "xs-b")
        # last seen within 0.2 s before `silent`, saved at most a heartbeat before that
        assert timeout - HEARTBEAT - 1 <= told - silent <= timeout + 2, told - silent
        assert firings([b.webhook], "xs-a") == firings([b.webhook], "xs-c") == []
        assert second.terminate() == 0


async def test_a_standby_takes_a_reload_for_its_term(
    pair: tuple[Path, Node, Node],
    tmp_path: Path,
    postgres_url: str,
) -> None:
    """SIGHUP (`systemctl reload`) on a standby reads the file for when it leads; it
    neither dies of it nor starts leading."""
    path, a, b = pair
    first, second = await leader_and_standby(a, b, tmp_path, path, postgres_url)
    cfg = yaml.safe_load(path.read_text())
    cfg["devices"].append({"id": "xs-new", "kind": "xray_scanner", "site": "aktau", "area": "x"})
    path.write_text(yaml.safe_dump(cfg))
    second.proc.send_signal(signal.SIGHUP)
    await second.wait_log("config.reloaded")
    assert second.proc.poll() is None and role(b.port) == "standby"
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    await wait_for(lambda: role(b.port) == "leader", timeout=FAILOVER + 10)
    await wait_for(
        lambda: "xs-new" in {d["device"] for d in call(b.port, "/api/devices")[1]["devices"]},
        timeout=10,
    )  # the reloaded registry leads
    assert second.terminate() == 0
