"""Ingest end-to-end: real mosquitto -> monitor -> real InfluxDB."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import Publisher, rows, running_monitor, wait_for

pytestmark = pytest.mark.integration

XS01 = "customs/aktau/inspection-1/xray_scanner/xs-01"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def config(configure: Callable[..., Config]) -> Config:
    return configure()


async def test_canonical_telemetry_arrives_with_exact_tags_types_and_values(
    config, mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    ts = now_ms() - 5000
    # the same instant written in RFC 3339 with a +05:00 offset (Aktau's zone)
    aktau = timezone(timedelta(hours=5))
    rfc3339 = datetime.fromtimestamp(ts / 1000, aktau).isoformat(timespec="milliseconds")
    assert rfc3339.endswith("+05:00")
    pub = Publisher(mosquitto.port)
    async with running_monitor(config):
        pub.publish_all(
            [
                (
                    f"{XS01}/telemetry",
                    json.dumps(
                        {
                            "ts": ts,
                            "state": "busy",
                            "tube_voltage_kv": 140,
                            "tube_current_ma": 1.25,
                            "detector_temp_c": 31.5,
                            "scans_total": 1234,
                            "scan_duration_s": 42.0,
                            "interlock_ok": True,
                            "vendor_note": "lane 3",
                            "fan_rpm": 1200,
                        }
                    ),
                ),
                # RFC 3339 timestamp, a discovered (unregistered) device on another site
                (
                    "customs/kuryk/gate-in/radiation_portal/krpm-09/telemetry",
                    json.dumps(
                        {
                            "ts": rfc3339,
                            "gamma_cps": 180.5,
                            "neutron_cps": 2,
                            "occupied": False,
                            "alarm": "none",
                        }
                    ),
                ),
                (
                    f"{XS01}/event",
                    json.dumps(
                        {
                            "ts": ts,
                            "type": "scan_completed",
                            "container": "MSKU1234567",
                            "duration_s": 38.5,
                        }
                    ),
                ),
            ]
        )
        got = await wait_for(
            lambda: (
                len(
                    r := rows(
                        influxd.url,
                        database,
                        'SELECT * FROM xray_scanner, radiation_portal, "events"',
                    )
                )
                == 3
                and r
            )
        )
    pub.close()
    by = {r["_measurement"]: {k: v for k, v in r.items() if v is not None} for r in got}
    assert by["xray_scanner"] == {
        "_measurement": "xray_scanner",
        "time": ts,
        "site": "aktau",
        "area": "inspection-1",
        "device": "xs-01",
        "state": "busy",
        "tube_voltage_kv": 140.0,
        "tube_current_ma": 1.25,
        "detector_temp_c": 31.5,
        "scans_total": 1234,
        "scan_duration_s": 42.0,
        "interlock_ok": True,
        "vendor_note": "lane 3",
        "fan_rpm": 1200.0,
    }
    rp = by["radiation_portal"]
    assert rp["time"] == ts
    assert (rp["site"], rp["area"], rp["device"]) == ("kuryk", "gate-in", "krpm-09")
    assert (rp["gamma_cps"], rp["neutron_cps"], rp["occupied"], rp["alarm"]) == (
        180.5,
        2.0,
        False,
        "none",
    )
    ev = by["events"]
    assert (ev["type"], ev["kind"], ev["device"], ev["container"], ev["duration_s"], ev["n"]) == (
        "scan_completed",
        "xray_scanner",
        "xs-01",
        "MSKU1234567",
        38.5,
        1,
    )

    # Field types as stored: ints stay ints, the unknown numeric metric is a float.
    types = {
        (r["fieldKey"], r["fieldType"])
        for r in rows(influxd.url, database, "SHOW FIELD KEYS FROM xray_scanner")
    }
    assert {
        ("scans_total", "integer"),
        ("tube_voltage_kv", "float"),
        ("interlock_ok", "boolean"),
        ("state", "string"),
        ("fan_rpm", "float"),
    } <= types


async def test_vendor_profiles_convert_units_and_map_states(
    config, mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    ts = now_ms() - 1000
    pub = Publisher(mosquitto.port)
    async with running_monitor(config):
        pub.publish_all(
            [
                (
                    "scanners/xs-02/data",
                    json.dumps(
                        {
                            "time": ts,
                            "devStatus": 4,
                            "hv": 160000,
                            "beamCurrent": 0.8,
                            "detTempF": 104.0,
                            "scanCount": 77,
                        }
                    ),
                ),
                (
                    "scanners/xs-03/data",
                    json.dumps(
                        {
                            "time": ts,
                            "devStatus": 9,
                            "hv": 0,
                            "beamCurrent": 0,
                            "detTempF": 32,
                            "scanCount": 5,
                        }
                    ),
                ),
                ("plc/aktau/gb-03/barrier_up", "1"),
                ("plc/aktau/gb-03/motor_amps", "2.7"),
                ("plc/aktau/gb-04/barrier_up", "0"),
                ("plc/aktau/gb-04/fault", "1"),
            ]
        )
        xs = await wait_for(
            lambda: len(r := rows(influxd.url, database, "SELECT * FROM xray_scanner")) == 2 and r
        )
        gb = await wait_for(
            lambda: (
                len(
                    r := rows(
                        influxd.url,
                        database,
                        "SELECT last(position) AS position, last(motor_current_a) AS"
                        " motor_current_a, last(state) AS state FROM gate_barrier"
                        " GROUP BY device, site, area",
                    )
                )
                == 2
                and r
            )
        )
    pub.close()
    xs02, xs03 = sorted(xs, key=lambda r: r["device"])
    assert xs02["time"] == ts
    assert (xs02["site"], xs02["area"]) == ("aktau", "inspection-1")  # from the registry
    assert xs02["state"] == "warming_up"
    assert xs02["tube_voltage_kv"] == pytest.approx(160.0)  # volts -> kV
    assert xs02["tube_current_ma"] == pytest.approx(0.8)
    assert xs02["detector_temp_c"] == pytest.approx(40.0)  # 104 F -> 40 C
    assert xs02["scans_total"] == 77
    assert (xs03["state"], xs03["detector_temp_c"], xs03["area"]) == ("fault", 0.0, "inspection-2")
    assert not any(k in xs02 and xs02[k] is not None for k in ("hv", "devStatus", "time_"))

    gb_by = {r["device"]: r for r in gb}
    assert (gb_by["gb-03"]["position"], gb_by["gb-03"]["motor_current_a"]) == ("open", 2.7)
    assert (gb_by["gb-04"]["position"], gb_by["gb-04"]["state"]) == ("closed", "fault")
    assert all((r["site"], r["area"]) == ("aktau", "gate-out") for r in gb)

    # Liveness follows the mapped state: device_status says gb-04 and xs-03 are down (fault).
    status = await wait_for(
        lambda: rows(
            influxd.url,
            database,
            "SELECT last(reason) AS reason, last(up) AS up FROM device_status GROUP BY device",
        )
    )
    by_device = {r["device"]: (r["up"], r["reason"]) for r in status}
    assert by_device["gb-04"] == (0, "fault")
    assert by_device["xs-03"] == (0, "fault")
    assert by_device["xs-02"] == (1, "ok")


# (topic, payload, expected rejection reason)
BAD = [
    (f"{XS01}/telemetry", b'{"tube_voltage_kv": 140', "malformed_json"),
    (f"{XS01}/telemetry", b"\xff\xfe\x00garbage", "not_utf8"),
    (f"{XS01}/telemetry", b"[1, 2, 3]", "not_object"),
    (f"{XS01}/telemetry", b'{"tube_voltage_kv": NaN}', "non_finite"),
    (f"{XS01}/telemetry", b'{"detector_temp_c": -Infinity}', "non_finite"),
    (f"{XS01}/telemetry", b'{"tube_voltage_kv": 1e999}', "non_finite"),
    (f"{XS01}/telemetry", b'{"tube_voltage_kv": "high"}', "wrong_type"),
    (f"{XS01}/telemetry", b'{"scans_total": 12.5}', "wrong_type"),
    (f"{XS01}/telemetry", b'{"diag": {"fan": 1}}', "wrong_type"),
    (f"{XS01}/telemetry", b'{"state": "exploded"}', "invalid_state"),
    (f"{XS01}/telemetry", b'{"ts": "yesterday", "tube_voltage_kv": 1}', "bad_timestamp"),
    (f"{XS01}/telemetry", b'{"ts": 1000, "tube_voltage_kv": 1}', "too_old"),
    (f"{XS01}/telemetry", b'{"time": 5}', "invalid_field_name"),
    (f"{XS01}/telemetry", b"", "empty_payload"),
    (f"{XS01}/telemetry", b'{"x": "' + b"a" * 300_000 + b'"}', "payload_too_large"),
    ("customs/aktau/gate-in/toaster/t-1/telemetry", b'{"temp_c": 200}', "unknown_kind"),
    (
        "customs/aktau/gate-in/xray_scanner/-xs,site=evil/telemetry",
        b'{"a": 1}',
        "invalid_device_id",
    ),
    ("customs/aktau/gate in/xray_scanner/xs-77/telemetry", b'{"a": 1}', "invalid_topic"),
    (
        "customs/aktau/gate-in/radiation_portal/rpm-01/telemetry",
        b'{"alarm": "purple"}',
        "invalid_value",
    ),
    (
        "customs/aktau/gate-in/radiation_portal/rpm-01/event",
        b'{"kind": "no type"}',
        "invalid_event",
    ),
    ("scanners/zz-99/data", b'{"devStatus": 2}', "unknown_device"),
    ("scanners/xs-02/data", b'{"devStatus": 7, "hv": 1}', "invalid_state"),
    ("plc/aktau/gb-01/barrier_up", b"2", "invalid_value"),
    ("plc/aktau/gb-01/motor_amps", b"nan", "non_finite"),
    ("customs/aktau/gate-in/xray_scanner/xs-01/diagnostics", b"{}", "unknown_topic"),
]


async def test_bad_input_is_rejected_counted_quarantined_and_never_stored(
    config, mosquitto: Mosquitto, influxd: InfluxDB, database: str, tmp_path: Path
) -> None:
    base = now_ms() - 60_000
    good = []
    messages: list[tuple[str, bytes | str]] = []
    for i, (topic, payload, _) in enumerate(BAD):
        # a good message before and after every bad one, same device
        for j in (2 * i, 2 * i + 1):
            good.append(base + j)
            messages.append((f"{XS01}/telemetry", json.dumps({"ts": base + j, "scans_total": j})))
            if j == 2 * i:
                messages.append((topic, payload))
    # A clock running an hour ahead: stored, at the receive time, and counted.
    messages.append(
        (f"{XS01}/telemetry", json.dumps({"ts": now_ms() + 3_600_000, "scan_duration_s": 1}))
    )

    pub = Publisher(mosquitto.port)
    async with running_monitor(config) as mon:
        pub.publish_all(messages)
        await wait_for(lambda: mon.stats.messages_received == len(messages))
        stored = await wait_for(
            lambda: (
                len(r := rows(influxd.url, database, "SELECT * FROM xray_scanner")) == len(good) + 1
                and r
            )
        )
        assert not mon.task.done()  # alive
        # still ingesting after all that
        pub.publish_all([(f"{XS01}/telemetry", json.dumps({"scans_total": 999_999}))])
        await wait_for(
            lambda: rows(
                influxd.url, database, "SELECT * FROM xray_scanner WHERE scans_total = 999999"
            )
        )
        stats = mon.stats
    pub.close()

    assert sorted(r["time"] for r in stored if r["scans_total"] is not None) == good
    skewed = [r for r in stored if r["scan_duration_s"] is not None]
    assert len(skewed) == 1 and abs(skewed[0]["time"] - now_ms()) < 60_000
    assert stats.clock_skew == 1

    expected: dict[str, int] = {}
    for *_, reason in BAD:
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(stats.rejected_by_reason) == expected
    assert stats.messages_rejected == len(BAD)

    # Nothing of the bad ones reached InfluxDB: only the expected measurements and tags.
    measurements = {r["name"] for r in rows(influxd.url, database, "SHOW MEASUREMENTS")}
    assert measurements == {"xray_scanner", "device_status", "monitor"}
    devices = {
        r["value"] for r in rows(influxd.url, database, 'SHOW TAG VALUES WITH KEY = "device"')
    }
    assert devices == {"xs-01"}
    fields = {
        r["fieldKey"] for r in rows(influxd.url, database, "SHOW FIELD KEYS FROM xray_scanner")
    }
    assert fields == {"scans_total", "scan_duration_s"}

    quarantined = [
        json.loads(line)
        for line in (tmp_path / "state" / "quarantine" / "quarantine.jsonl")
        .read_text()
        .splitlines()
    ]
    assert [q["reason"] for q in quarantined] == [reason for *_, reason in BAD]
    assert [q["topic"] for q in quarantined] == [topic for topic, *_ in BAD]
    by_reason = {q["reason"]: q for q in quarantined}
    assert by_reason["not_utf8"]["payload_b64"] == "//4AZ2FyYmFnZQ=="
    assert by_reason["payload_too_large"]["payload_truncated"] is True
    assert by_reason["malformed_json"]["payload"] == '{"tube_voltage_kv": 140'


async def test_device_status_and_monitor_measurements(
    configure: Callable[..., Config],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
) -> None:
    config = configure(
        MONITOR_STATUS_INTERVAL="300ms",
        MONITOR_STATS_INTERVAL="300ms",
        MONITOR_ALERTS__KINDS__WEIGHBRIDGE__NO_DATA_TIMEOUT="1s",
    )
    assert config.alerts.no_data_timeout("weighbridge") == 1.0  # env reaches into the dict
    pub = Publisher(mosquitto.port)
    async with running_monitor(config):
        pub.publish_all(
            [
                (
                    "customs/aktau/gate-in/weighbridge/wb-01/telemetry",
                    json.dumps({"weight_kg": 41_250.5}),
                )
            ]
        )
        query = (
            "SELECT last(up) AS up, last(reason) AS reason, last(state) AS state,"
            " last(last_seen_age_s) AS age FROM device_status GROUP BY device, kind, area"
        )

        def wb_states() -> dict[str, dict] | None:
            got = {r["device"]: r for r in rows(influxd.url, database, query)}
            # wb-01 spoke once and then went quiet; wb-02 never spoke. InfluxDB 1.x stores
            # each field as its own series, so a query racing a write may see one field of
            # the newest point before the other: wait for a consistent view.
            down = {d: r for d, r in got.items() if (r["reason"], r["up"]) == ("no_data", 0)}
            return got if {"wb-01", "wb-02"} <= set(down) else None

        got = await wait_for(wb_states, timeout=10)
        # registered devices of other kinds are still within their (longer) grace: not written
        assert "xs-01" not in got
    pub.close()
    assert (got["wb-02"]["up"], got["wb-02"]["reason"], got["wb-02"]["age"]) == (0, "no_data", None)
    assert (got["wb-01"]["up"], got["wb-01"]["kind"], got["wb-01"]["area"]) == (
        0,
        "weighbridge",
        "gate-in",
    )
    assert got["wb-01"]["age"] > 1.0
    transitions = rows(
        influxd.url, database, "SELECT up, reason FROM device_status WHERE device = 'wb-01'"
    )
    assert [r["reason"] for r in transitions][:1] == ["ok"]  # it was up while it spoke

    mon = rows(
        influxd.url,
        database,
        "SELECT last(messages_received) AS received, last(broker_connected) AS connected,"
        " last(points_written) AS written FROM monitor GROUP BY instance",
    )
    assert mon[0]["instance"] == "monitor-test"
    assert mon[0]["received"] == 1
    assert mon[0]["written"] >= 2


async def test_every_message_without_a_timestamp_is_its_own_point(
    config: Config, mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    """A burst without `ts` (thousands in one socket read) and a PLC gateway's plain values
    (which never carry a time): one point per message, none overwriting another (SPEC 4)."""
    pub = Publisher(mosquitto.port)
    burst = [(f"{XS01}/telemetry", json.dumps({"scans_total": i})) for i in range(2000)]
    plc = [
        (f"plc/aktau/gb-01/{signal}", value)
        for i in range(300)
        for signal, value in (("barrier_up", str(i % 2)), ("motor_amps", f"{2 + i / 1000:.3f}"))
    ]

    def counts() -> tuple[int, int, int]:
        q = (
            "SELECT count(scans_total) FROM xray_scanner;"
            " SELECT count(position), count(motor_current_a) FROM gate_barrier"
        )
        got = [r for q1 in q.split(";") for r in rows(influxd.url, database, q1)]
        xs = next((r["count"] for r in got if r["_measurement"] == "xray_scanner"), 0)
        gb = next((r for r in got if r["_measurement"] == "gate_barrier"), {})
        return xs, gb.get("count", 0), gb.get("count_1", 0)

    async with running_monitor(config):
        sent_from = now_ms()
        pub.publish_all(burst + plc)
        sent_until = now_ms()
        await wait_for(lambda: counts() == (2000, 300, 300), timeout=30)
    pub.close()
    scans = rows(influxd.url, database, "SELECT scans_total FROM xray_scanner")
    assert sorted(r["scans_total"] for r in scans) == list(range(2000))
    # stamped with when they were received, in arrival order
    assert all(sent_from <= r["time"] <= sent_until + 1000 for r in scans)
    assert [r["scans_total"] for r in sorted(scans, key=lambda r: r["time"])] == list(range(2000))


async def test_retained_telemetry_is_old_news_across_restarts(
    configure: Callable[..., Config], mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    """A retained message without `ts` comes again on every (re)subscribe: it is neither
    written again with a new time nor a sign of life (SPEC 4)."""
    config = configure(MONITOR_ALERTS__KINDS__XRAY_SCANNER__NO_DATA_TIMEOUT="2s")
    pub = Publisher(mosquitto.port)
    topic = f"{XS01}/telemetry"

    def points() -> int:
        got = rows(influxd.url, database, "SELECT count(scans_total) AS n FROM xray_scanner")
        return int(got[0]["n"]) if got else 0

    async with running_monitor(config):
        pub.publish(topic, json.dumps({"scans_total": 7}), retain=True).wait_for_publish(10)
        await wait_for(lambda: points() == 1)  # delivered live: a point of its own
    for _ in range(2):  # two restarts: the broker sends the retained message each time
        async with running_monitor(config) as running:
            await asyncio.sleep(3)  # past xs-01's 2 s grace
            url = f"http://127.0.0.1:{running.api.port}/api/devices/xs-01"
            device = await asyncio.to_thread(get_json, url)
        assert (device["up"], device["reason"]) == (False, "no_data")  # not a sign of life
    assert points() == 1
    pub.close()
