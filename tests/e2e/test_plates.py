"""No clear licence plate anywhere, whichever way it comes (SPEC 9), across the real
boundaries: plates published to mosquitto on canonical telemetry, events of other kinds,
a misspelled channel, a vendor profile, a plain PLC topic, Sparkplug B (by name and by
alias), nested and malformed payloads; the monitor as its own process; then InfluxDB, the
quarantine, every file under state_dir, the API and the log searched for them. And a
``plate_hash`` that gate barriers send makes no passage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import MonitorProcess, Publisher, rows, running_monitor, wait_for
from tests.sparkplug_wire import DOUBLE, STRING, Metric, bd_seq, payload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "a-test-plate-key-of-some-length"
MIN = 60_000
CAM_IN = "customs/aktau/gate-in/anpr_camera/anpr-01"
CAM_OUT = "customs/aktau/gate-out/anpr_camera/anpr-03"
GB_IN = "customs/aktau/gate-in/gate_barrier/gb-01"
GB_OUT = "customs/aktau/gate-out/gate_barrier/gb-03"
GROUP, BARE = "gate-plc", "bare-plc"  # Sparkplug groups: with defaults, and without
# One plate per way in, so a leak says which way it took.
PLATES = {
    "telemetry": "101TEL01",
    "misspelled channel": "202MIS02",
    "gate barrier event": "303GBE03",
    "registry mismatch": "404MIS04",
    "vendor profile": "505VEN05",
    "plain topic": "606PLN06",
    "nested, rejected": "707NST07",
    "malformed, rejected": "808MAL08",
    "status": "909STA09",
    "sparkplug by name": "111SPN11",
    "sparkplug by alias": "222SPA22",
    "sparkplug, rejected": "333SPR33",
}


def plate_hash(plate: str) -> str:
    return hmac.new(KEY.encode(), plate.encode(), hashlib.sha256).hexdigest()[:16]


def canonical(t0: int) -> list[tuple[str, str | bytes]]:
    p = PLATES
    return [
        (f"{CAM_IN}/telemetry", json.dumps({"temp_c": 30.5, "plate": p["telemetry"]})),
        (
            f"{CAM_IN}/events",
            json.dumps({"type": "plate_read", "plate": p["misspelled channel"], "lane": 1}),
        ),
        (
            f"{GB_IN}/event",
            json.dumps({"ts": t0, "type": "plate_read", "plate": p["gate barrier event"]}),
        ),
        (  # anpr-01 is a registered camera; this topic says it is a gate barrier
            "customs/aktau/gate-in/gate_barrier/anpr-01/event",
            json.dumps({"type": "plate_read", "plate": p["registry mismatch"]}),
        ),
        (
            "scanners/xs-01/data",
            json.dumps({"devStatus": 2, "hv": 150_000, "licensePlate": p["vendor profile"]}),
        ),
        ("plc/aktau/gb-03/plate", p["plain topic"]),
        (
            "customs/aktau/inspection-1/xray_scanner/xs-02/telemetry",
            json.dumps({"scans_total": 1, "anpr": {"results": [{"plate": p["nested, rejected"]}]}}),
        ),
        (
            "customs/aktau/gate-out/anpr_camera/anpr-04/event",
            json.dumps({"type": "plate_read", "plate": p["malformed, rejected"]})[:-1] + ",",
        ),
        (f"{GB_OUT}/status", json.dumps({"state": "ready", "plate": p["status"]})),
        # last: once it is stored, so is everything before it
        ("customs/aktau/inspection-2/xray_scanner/xs-04/telemetry", '{"scans_total": 7}'),
    ]


def sparkplug(now: int) -> list[tuple[str, str | bytes]]:
    def topic(group: str, kind: str, device: str | None = None) -> str:
        return "/".join(["spBv1.0", group, kind, "edge-1", *([device] if device else [])])

    plate = STRING
    return [
        (topic(GROUP, "NBIRTH"), payload([bd_seq(0)], seq=0, timestamp=now)),
        (
            topic(GROUP, "DBIRTH", "sp-cam"),
            payload(
                [
                    Metric("Temp", 30.0, DOUBLE, alias=1),
                    Metric("Plate", PLATES["sparkplug by name"], plate, alias=2),
                ],
                seq=1,
                timestamp=now,
            ),
        ),
        (
            topic(GROUP, "DDATA", "sp-cam"),
            payload(
                [Metric(alias=2, value=PLATES["sparkplug by alias"], datatype=plate)],
                seq=2,
                timestamp=now + 1,
            ),
        ),
        # a group without defaults: its unregistered device is quarantined, by alias too
        (topic(BARE, "NBIRTH"), payload([bd_seq(0)], seq=0, timestamp=now)),
        (
            topic(BARE, "DBIRTH", "cam-x"),
            payload([Metric("Reading", "n/a", plate, alias=5)], seq=1, timestamp=now),
        ),
        (
            topic(BARE, "DDATA", "cam-x"),
            payload(
                [Metric(alias=5, value=PLATES["sparkplug, rejected"], datatype=plate)],
                seq=2,
                timestamp=now,
            ),
        ),
        (  # last
            topic(GROUP, "DDATA", "sp-cam"),
            payload([Metric(alias=1, value=31.0, datatype=DOUBLE)], seq=3, timestamp=now + 2),
        ),
    ]


def get(config: Config, path: str) -> str:
    url = f"http://127.0.0.1:{config.http.port}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200, path
        return response.read().decode()


def everything_in_influx(influxd: InfluxDB, database: str) -> list[dict[str, Any]]:
    names = [r["name"] for r in rows(influxd.url, database, "SHOW MEASUREMENTS")]
    return [row for m in names for row in rows(influxd.url, database, f'SELECT * FROM "{m}"')]


def quarantined(config: Config) -> list[dict[str, Any]]:
    files = sorted((config.state_dir / "quarantine").glob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


@pytest.mark.parametrize("with_key", [True, False], ids=["with a plate key", "without"])
async def test_no_clear_plate_anywhere_whichever_way_it_comes(
    configure: Callable[..., Config],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
    with_key: bool,
) -> None:
    env = {
        "MONITOR_SPARKPLUG__ENABLED": "true",
        "MONITOR_SPARKPLUG__GROUPS": json.dumps(
            {GROUP: {"site": "aktau", "area": "gate-in", "kind": "anpr_camera"}, BARE: {}}
        ),
    }
    if with_key:
        env["MONITOR_PASSAGES__PLATE_KEY"] = KEY
    config = configure(client_id="monitor-plates", **env)
    log = tmp_path / "monitor.log"
    monitor = MonitorProcess(log)
    await monitor.wait_log("event=mqtt.connected")
    await wait_for(lambda: f"spBv1.0/{BARE}/#" in log.read_text(), timeout=15)
    now = int(time.time() * 1000)
    pub = Publisher(mosquitto.port)
    pub.publish_all(canonical(now - 3 * 3_600_000))
    pub.publish_all(sparkplug(now))

    def stored(q: str) -> list[dict[str, Any]]:
        return rows(influxd.url, database, q)

    await wait_for(lambda: stored("SELECT * FROM xray_scanner WHERE device = 'xs-04'"), 30)
    await wait_for(lambda: stored('SELECT * FROM anpr_camera WHERE "Temp" = 31.0'), 30)
    # the API while it runs: the device list and each device the plates came from
    api = get(config, "/api/devices") + "".join(
        get(config, f"/api/devices/{d}")
        for d in ("anpr-01", "anpr-03", "gb-01", "gb-03", "xs-01", "xs-02", "sp-cam")
    )
    api += get(config, "/api/passages") + get(config, "/metrics")
    assert monitor.terminate() == 0
    pub.close()

    influx = everything_in_influx(influxd, database)
    records = quarantined(config)
    state = b"".join(p.read_bytes() for p in config.state_dir.rglob("*") if p.is_file())
    # payloads kept as base64 (Sparkplug's protobuf) are searched decoded
    state += b"".join(base64.b64decode(r["payload_b64"]) for r in records if "payload_b64" in r)
    places = {
        "InfluxDB": json.dumps(influx),
        "the quarantine": json.dumps(records),
        "state_dir": state.decode(errors="replace"),
        "the API": api,
        "the log": log.read_text(),
    }
    leaks = [
        f"{way} ({plate}) in {where}"
        for way, plate in PLATES.items()
        for where, text in places.items()
        if plate in text
    ]
    assert not leaks, "\n".join(leaks)

    # The test looks where the plates would be: the quarantine has each rejected one ...
    by_topic = {r["topic"]: r for r in records}
    for topic in (
        f"{CAM_IN}/events",
        "customs/aktau/inspection-1/xray_scanner/xs-02/telemetry",
        "customs/aktau/gate-out/anpr_camera/anpr-04/event",
        f"spBv1.0/{BARE}/DDATA/edge-1/cam-x",
    ):
        assert by_topic[topic]["payload_redacted"] is True, by_topic[topic]
    assert json.loads(by_topic[f"{CAM_IN}/events"]["payload"]) == {
        "type": "plate_read",
        "plate": "***",
        "lane": 1,
    }
    # ... and InfluxDB the hashes of the stored ones, or no plate at all without a key
    hashes = {(r["_measurement"], r.get("device"), r.get("plate_hash")) for r in influx}
    for measurement, device, way in (
        ("anpr_camera", "anpr-01", "telemetry"),
        ("events", "gb-01", "gate barrier event"),
        ("xray_scanner", "xs-01", "vendor profile"),
        ("gate_barrier", "gb-03", "plain topic"),
        ("anpr_camera", "sp-cam", "sparkplug by name"),
        ("anpr_camera", "sp-cam", "sparkplug by alias"),
    ):
        found = (measurement, device, plate_hash(PLATES[way])) in hashes
        assert found is with_key, (measurement, device, way)
    assert not [r for r in influx if r["_measurement"] == "passages"]  # no camera pair


async def test_a_plate_hash_gate_barriers_send_makes_no_passage(
    configure: Callable[..., Config], mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    """Gate barriers at gate-in and gate-out send plate reads, with a plate_hash of their
    own and with a plate: no passage. The cameras' reads of another truck: its passage."""
    config = configure(client_id="monitor-forged", MONITOR_PASSAGES__PLATE_KEY=KEY)
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    forged, truck, other = "feedfacefeedface", "123ABC02", "777KZA15"

    def read(topic: str, ts_ms: int, **plate: str) -> tuple[str, str | bytes]:
        return f"{topic}/event", json.dumps({"ts": ts_ms, "type": "plate_read", **plate})

    async with running_monitor(config) as monitor:
        pub = Publisher(mosquitto.port)
        pub.publish_all(
            [
                read(GB_IN, t0, plate_hash=forged),
                read(GB_OUT, t0 + 30 * MIN, plate_hash=forged),
                read(GB_IN, t0 + MIN, plate=other),
                read(GB_OUT, t0 + 31 * MIN, plate=other),
                read(CAM_IN, t0 + 2 * MIN, plate=truck),
                read(CAM_OUT, t0 + 42 * MIN, plate=truck),
            ]
        )
        pub.close()
        await wait_for(lambda: monitor.stats.messages_received == 6, 15)
        await wait_for(lambda: rows(influxd.url, database, "SELECT * FROM passages"), 15)
    passages = rows(influxd.url, database, "SELECT * FROM passages")
    assert [(p["plate_hash"], p["dwell_s"]) for p in passages] == [(plate_hash(truck), 2400.0)]
    events = rows(influxd.url, database, "SELECT * FROM events WHERE kind = 'gate_barrier'")
    assert sorted(str(e.get("plate_hash")) for e in events) == sorted(
        ["None", "None", plate_hash(other), plate_hash(other)]
    )  # their own events: a plate hashed by us, theirs dropped
    assert (monitor.stats.passages_closed, monitor.stats.plate_reads_not_camera) == (1, 4)
