"""A device is its site and id (SPEC 2), outages are told however the site went (SPEC 5),
devices are forgotten only when a person says so, and a collector watches the devices its
subscriptions carry (SPEC 8): the monitor as a process, against a real mosquitto, InfluxDB
and webhook, as a second customs post and a hostile tester would try it (issue 19)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.alerting.store.sqlite import SCHEMA_VERSION
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import ROOT, MonitorProcess, Publisher, Webhook, rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT = 2.0  # no_data of the scanners here
TOKEN = "identity-test-token"


def config_file(
    path: Path,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    db: str,
    webhook: Webhook,
    devices: str,
    topics: list[str] | None = None,
    extra: str = "",
    match: str = "{severity: [critical]}",
) -> tuple[Path, int]:
    port = free_port()
    path.write_text(f"""
mqtt:
  port: {mosquitto.port}
  client_id: monitor-{path.stem}
  reconnect: {{initial: 100ms, max: 500ms}}
  {f"topics: {json.dumps(topics)}" if topics else ""}
influx: {{url: "{influxd.url}", database: {db}, retry: {{max: 1s}}}}
state_dir: {path.parent / f"state-{path.stem}"}
http: {{port: {port}}}
status_interval: 1s
alerts:
  kinds:
    xray_scanner: {{no_data_timeout: {TIMEOUT}s, fault_for: 1s, severity: critical}}
    gate_barrier: {{no_data_timeout: 60s, severity: critical}}
    weighbridge: {{no_data_timeout: 60s, severity: critical}}
notify:
  routes:
    - {{name: crew, match: {match}, channels: ["webhook:{webhook.url}"]}}
devices:
{devices}
{extra}
""")
    return path, port


def api(port: int, path: str, method: str = "GET", body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def listed(port: int) -> set[tuple[str, str]]:
    return {(d["site"], d["device"]) for d in api(port, "/api/devices")[1]["devices"]}


def told(webhook: Webhook) -> list[tuple[str, str, str, str]]:
    """(site, device, rule, event) of every notification, in order."""
    return [(p["site"], p["device"], p["rule"], e) for _, e, p in webhook.received]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "MONITOR_HTTP__TOKEN": TOKEN},
        cwd=ROOT,
        check=False,
        timeout=30,
    )


def telemetry(site: str, kind: str, device: str, area: str = "inspection-1") -> str:
    return f"customs/{site}/{area}/{kind}/{device}/telemetry"


async def every(period: float, publish: Callable[[], object]) -> None:
    while True:
        publish()
        await asyncio.sleep(period)


async def started(proc: MonitorProcess) -> MonitorProcess:
    await proc.wait_log("event=mqtt.connected")
    return proc


def process(tmp_path: Path, config: Path, name: str = "monitor") -> MonitorProcess:
    return MonitorProcess(
        tmp_path / f"{name}.log", config=config, env={"MONITOR_HTTP__TOKEN": TOKEN}
    )


async def test_the_same_id_at_two_posts_is_two_devices(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    """Issue 19.2: xs-09 at Aktau reports fault while xs-09 at Kuryk sends ready every
    0.5 s: Aktau's fault is alerted, each is listed with its site, Aktau's silence is
    alerted while Kuryk's talks; a weighbridge that says it is Aktau's gate barrier gb-01
    is refused, never written into the barrier's series."""
    config, port = config_file(
        tmp_path / "two.yaml",
        mosquitto,
        influxd,
        database,
        webhook,
        "  - {id: xs-09, kind: xray_scanner, site: aktau, area: inspection-1}\n"
        "  - {id: gb-01, kind: gate_barrier, site: aktau, area: gate-in}",
    )
    proc = await started(process(tmp_path, config))
    pub = Publisher(mosquitto.port)
    aktau = telemetry("aktau", "xray_scanner", "xs-09")
    kuryk = telemetry("kuryk", "xray_scanner", "xs-09")
    async with asyncio.TaskGroup() as tg:
        kuryk_talks = tg.create_task(every(0.5, lambda: pub.publish(kuryk, '{"state": "ready"}')))
        aktau_talks = tg.create_task(every(0.5, lambda: pub.publish(aktau, '{"state": "fault"}')))
        await wait_for(lambda: told(webhook), timeout=15)
        assert told(webhook) == [("aktau", "xs-09", "fault", "firing")]
        devices = api(port, "/api/devices")[1]["devices"]
        by_site = {d["site"]: d for d in devices if d["device"] == "xs-09"}
        assert (by_site["aktau"]["up"], by_site["aktau"]["state"]) == (False, "fault")
        assert (by_site["kuryk"]["up"], by_site["kuryk"]["state"]) == (True, "ready")
        status, body = api(port, "/api/devices/xs-09")
        assert status == 400 and "aktau, kuryk" in body["error"] and "?site=" in body["error"]
        status, body = api(port, "/api/devices/xs-09?site=kuryk")
        assert (status, body["site"], body["up"], body["open_alerts"]) == (200, "kuryk", True, [])
        # a window for xs-09 must say which post's; then it covers that one only
        window = {"scope": "device", "value": "xs-09", "duration": "1h"}
        status, body = api(port, "/api/maintenance", "POST", window)
        assert status == 400 and "aktau, kuryk" in body["error"]
        status, body = api(port, "/api/maintenance", "POST", {**window, "site": "kuryk"})
        assert (status, body["site"]) == (201, "kuryk")
        in_maintenance = {
            d["site"]: d["in_maintenance"]
            for d in api(port, "/api/devices")[1]["devices"]
            if d["device"] == "xs-09"
        }
        assert in_maintenance == {"aktau": False, "kuryk": True}

        aktau_talks.cancel()  # Aktau's scanner falls silent; Kuryk's talks on
        await wait_for(lambda: len(told(webhook)) >= 2, timeout=TIMEOUT + 10)
        assert told(webhook)[1] == ("aktau", "xs-09", "no_data", "firing")

        # a Kuryk weighbridge under its own site is a device of its own; one that says it
        # is Aktau's gb-01 contradicts the registry
        pub.publish(telemetry("kuryk", "weighbridge", "gb-01", "gate-in"), '{"weight_kg": 40000}')
        pub.publish(telemetry("aktau", "weighbridge", "gb-01", "gate-in"), '{"weight_kg": 666}')
        pub.publish(telemetry("aktau", "gate_barrier", "gb-01", "gate-in"), '{"position": "open"}')
        await wait_for(
            lambda: rows(influxd.url, database, "SELECT * FROM gate_barrier"), timeout=10
        )
        await asyncio.sleep(2 * TIMEOUT)
        kuryk_talks.cancel()
    pub.close()
    assert proc.terminate() == 0

    barrier = rows(influxd.url, database, "SELECT * FROM gate_barrier")
    assert [(r["site"], r["position"], r.get("weight_kg")) for r in barrier] == [
        ("aktau", "open", None)
    ]
    weighbridge = rows(influxd.url, database, "SELECT * FROM weighbridge")
    assert [(r["site"], r["weight_kg"]) for r in weighbridge] == [("kuryk", 40000.0)]
    series = rows(influxd.url, database, "SELECT count(state) FROM xray_scanner GROUP BY site")
    assert {r["site"] for r in series} == {"aktau", "kuryk"}
    quarantined = [
        json.loads(line)
        for line in (config.parent / "state-two" / "quarantine" / "quarantine.jsonl")
        .read_text()
        .splitlines()
    ]
    assert [(q["reason"], q["topic"]) for q in quarantined] == [
        ("device_mismatch", telemetry("aktau", "weighbridge", "gb-01", "gate-in"))
    ]
    assert all(site == "aktau" for site, *_ in told(webhook))


async def test_a_device_that_stops_after_its_site_went_silent_is_told(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    """Issue 19.1: five scanners, four stop: one site_silent. The fifth talks on, then
    stops: its own no_data is notified, not swallowed by the open site alert."""
    names = [f"xs-{i}" for i in range(1, 6)]
    config, _ = config_file(
        tmp_path / "site.yaml",
        mosquitto,
        influxd,
        database,
        webhook,
        "\n".join(
            f"  - {{id: {d}, kind: xray_scanner, site: aktau, area: inspection-1}}" for d in names
        ),
        # the scanner crew's route: the site alert reaches it (issue 22: its kind is site,
        # its area *, yet it speaks for the scanners' alerts it holds back)
        match="{kind: [xray_scanner], area: [inspection-1]}",
    )
    proc = await started(process(tmp_path, config))
    pub = Publisher(mosquitto.port)
    talking = set(names)

    def beat() -> None:
        for d in sorted(talking):
            pub.publish(telemetry("aktau", "xray_scanner", d), '{"state": "ready"}')

    async with asyncio.TaskGroup() as tg:
        beats = tg.create_task(every(0.25, beat))
        await asyncio.sleep(1.5)
        talking.difference_update(names[:4])
        await wait_for(lambda: told(webhook), timeout=TIMEOUT + 10)
        assert told(webhook) == [("aktau", "aktau", "site_silent", "firing")]
        await asyncio.sleep(3 * TIMEOUT)  # xs-5 talks on well past the site alert
        assert len(told(webhook)) == 1
        talking.clear()
        await wait_for(lambda: len(told(webhook)) >= 2, timeout=TIMEOUT + 10)
        beats.cancel()
    pub.close()
    assert told(webhook) == [
        ("aktau", "aktau", "site_silent", "firing"),
        ("aktau", "xs-5", "no_data", "firing"),
    ]
    assert proc.terminate() == 0


async def test_a_device_is_forgotten_only_when_a_person_says_so(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    """Issue 19.4: a one-off test publish is down until someone forgets it (CLI, as a
    process): its alert resolved (reason forgotten), gone from the API, and not back after
    a restart, until it publishes again. A registered device cannot be forgotten."""
    config, port = config_file(
        tmp_path / "forget.yaml",
        mosquitto,
        influxd,
        database,
        webhook,
        "  - {id: xs-r, kind: xray_scanner, site: aktau, area: inspection-1}",
    )
    proc = await started(process(tmp_path, config))
    pub = Publisher(mosquitto.port)
    registered = telemetry("aktau", "xray_scanner", "xs-r")
    once = telemetry("aktau", "xray_scanner", "xs-tmp")
    async with asyncio.TaskGroup() as tg:
        beats = tg.create_task(every(0.5, lambda: pub.publish(registered, "{}")))
        pub.publish(once, '{"state": "ready"}')
        await wait_for(lambda: told(webhook), timeout=TIMEOUT + 10)
        assert told(webhook) == [("aktau", "xs-tmp", "no_data", "firing")]

        refused = await asyncio.to_thread(cli, config, "devices", "forget", "xs-r")
        assert refused.returncode == 1 and "registered in the config" in refused.stderr
        gone = await asyncio.to_thread(
            cli, config, "devices", "forget", "xs-tmp", "--site", "aktau"
        )
        assert gone.returncode == 0, gone.stderr
        assert "aktau/xs-tmp" in gone.stdout
        await wait_for(lambda: len(told(webhook)) >= 2, timeout=10)
        assert told(webhook)[1] == ("aktau", "xs-tmp", "no_data", "resolved")
        assert webhook.received[1][2]["resolution"] == "forgotten"
        assert listed(port) == {("aktau", "xs-r")}
        assert api(port, "/api/devices/xs-tmp", "DELETE")[0] == 404

        assert proc.terminate() == 0  # a restart does not bring it back
        proc = await started(process(tmp_path, config, "again"))
        await asyncio.sleep(2 * TIMEOUT)
        assert listed(port) == {("aktau", "xs-r")}
        assert len(told(webhook)) == 2

        pub.publish(once, '{"state": "ready"}')  # it speaks again: it is back
        await wait_for(lambda: ("aktau", "xs-tmp") in listed(port), timeout=10)
        beats.cancel()
    pub.close()
    assert proc.terminate() == 0


async def test_a_collector_restores_only_the_devices_it_still_owns(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    """Issue 19.4: Kuryk handed to another collector (dropped from mqtt.topics): after the
    restart its devices are neither listed nor alerted here, and the alert this collector
    had open for one of them is resolved (reason unowned) rather than left firing."""
    both = ["customs/aktau/#", "customs/kuryk/#"]
    path = tmp_path / "own.yaml"
    devices = "  - {id: xs-r, kind: xray_scanner, site: aktau, area: inspection-1}"
    config, port = config_file(path, mosquitto, influxd, database, webhook, devices, topics=both)
    proc = await started(process(tmp_path, config))
    pub = Publisher(mosquitto.port)
    registered = telemetry("aktau", "xray_scanner", "xs-r")
    async with asyncio.TaskGroup() as tg:
        beats = tg.create_task(every(0.5, lambda: pub.publish(registered, "{}")))
        pub.publish(telemetry("kuryk", "xray_scanner", "kxs-1"), "{}")
        await wait_for(lambda: told(webhook), timeout=TIMEOUT + 10)
        assert told(webhook) == [("kuryk", "kxs-1", "no_data", "firing")]
        assert proc.terminate() == 0

        _, port = config_file(path, mosquitto, influxd, database, webhook, devices, both[:1])
        proc = await started(process(tmp_path, config, "aktau-only"))
        await wait_for(lambda: len(told(webhook)) >= 2, timeout=10)
        assert told(webhook)[1] == ("kuryk", "kxs-1", "no_data", "resolved")
        assert webhook.received[1][2]["resolution"] == "unowned"
        await asyncio.sleep(2 * TIMEOUT)
        beats.cancel()
    pub.close()
    assert listed(port) == {("aktau", "xs-r")}
    assert len(told(webhook)) == 2
    assert proc.terminate() == 0


async def test_collectors_split_by_protocol_watch_what_their_subscriptions_carry(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    """Issue 19.11: one collector takes customs/aktau/#, another scanners/+/data; xs-01
    speaks the vendor format. The first never calls it silent (it never receives it);
    the second watches it and alerts when it stops."""
    profile = """
profiles:
  scanner_vendor_x:
    topic: scanners/{device}/data
    kind: xray_scanner
    state: {field: devStatus, map: {"2": ready, "9": fault}}
"""
    devices = "  - {id: xs-01, kind: xray_scanner, site: aktau, area: inspection-1}"
    canon, canon_port = config_file(
        tmp_path / "canon.yaml",
        mosquitto,
        influxd,
        database,
        webhook,
        devices,
        topics=["customs/aktau/#"],
        extra=profile,
    )
    vendor, vendor_port = config_file(
        tmp_path / "vendor.yaml",
        mosquitto,
        influxd,
        database,
        webhook,
        devices,
        topics=["scanners/+/data"],
        extra=profile,
    )
    procs = [
        await started(process(tmp_path, canon, "canon")),
        await started(process(tmp_path, vendor, "vendor")),
    ]
    pub = Publisher(mosquitto.port)
    async with asyncio.TaskGroup() as tg:
        talks = tg.create_task(
            every(0.5, lambda: pub.publish("scanners/xs-01/data", '{"devStatus": 2}'))
        )
        await wait_for(lambda: ("aktau", "xs-01") in listed(vendor_port), timeout=10)
        await asyncio.sleep(3 * TIMEOUT)
        assert told(webhook) == []
        assert listed(canon_port) == set()
        talks.cancel()
        await wait_for(lambda: told(webhook), timeout=TIMEOUT + 10)
    pub.close()
    await asyncio.sleep(1)
    assert told(webhook) == [("aktau", "xs-01", "no_data", "firing")]
    assert [p["alert_id"] for _, _, p in webhook.received] == [
        a["alert_id"] for a in api(vendor_port, "/api/alerts")[1]["alerts"]
    ]
    assert all(p.terminate() == 0 for p in procs)


def old_store(path: Path, last_seen: float) -> None:
    """state.db as monitors before schema versions left it: devices keyed by id alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript("""
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, open INTEGER NOT NULL, fired_at REAL NOT NULL, data TEXT NOT NULL);
CREATE TABLE maintenance (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE devices (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, alert_id TEXT NOT NULL,
    event TEXT NOT NULL, channel TEXT NOT NULL, ok INTEGER NOT NULL, error TEXT);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""")
    data = {
        "last_seen": last_seen,
        "state": "ready",
        "state_since": last_seen,
        "online": None,
        "offline_since": None,
        "code": None,
        "device": ["kxs-7", "xray_scanner", "kuryk", "hall"],
    }
    db.execute("INSERT INTO devices VALUES (?, ?)", ("kxs-7", json.dumps(data)))
    db.commit()
    db.close()


async def test_a_store_of_an_earlier_schema_is_migrated_a_newer_one_refused(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str, webhook: Webhook
) -> None:
    config, port = config_file(
        tmp_path / "mig.yaml", mosquitto, influxd, database, webhook, devices="  []"
    )
    state = tmp_path / "state-mig" / "state.db"
    old_store(state, time.time() - 30)
    proc = await started(process(tmp_path, config))
    assert listed(port) == {("kuryk", "kxs-7")}
    # restored, not heard since: silent past its timeout, it is alerted
    await wait_for(lambda: told(webhook), timeout=TIMEOUT + 10)
    assert told(webhook) == [("kuryk", "kxs-7", "no_data", "firing")]
    assert proc.terminate() == 0
    db = sqlite3.connect(state)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("SELECT site, id FROM devices").fetchall() == [("kuryk", "kxs-7")]
    db.execute("PRAGMA user_version = 99")  # a newer monitor's
    db.commit()
    db.close()
    newer = process(tmp_path, config, "newer")
    assert await asyncio.to_thread(newer.proc.wait, 30) == 2
    assert "written by a newer monitor" in newer.log()
    assert sqlite3.connect(state).execute("PRAGMA user_version").fetchone() == (99,)
