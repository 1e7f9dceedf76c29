"""One type per measurement and field (SPEC 4), across a real mosquitto and InfluxDB: a
field of another type than InfluxDB holds costs that field alone, not the point."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import Publisher, device_topic, rows, running_monitor, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def config(configure: Callable[..., Config]) -> Config:
    return configure(MONITOR_STATS_INTERVAL="1s")


def now_ms() -> int:
    return int(time.time() * 1000)


def metric(config: Config, name: str) -> float | None:
    """A counter of the running monitor, from its /metrics."""
    url = f"http://127.0.0.1:{config.http.port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith((f"monitor_{name}_total ", f"monitor_{name} ")):
            return float(line.split()[-1])
    return None


def quarantined(config: Config) -> list[dict[str, object]]:
    path = config.state_dir / "quarantine" / "quarantine.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def temps(influxd: InfluxDB, database: str, device: str) -> list[float]:
    return [
        r["detector_temp_c"]
        for r in rows(
            influxd.url,
            database,
            f"SELECT detector_temp_c FROM xray_scanner WHERE device = '{device}'",
        )
    ]


async def test_a_number_where_another_device_sent_text_costs_that_field_alone(
    config: Config, mosquitto: Mosquitto, influxd: InfluxDB, database: str, tmp_path: Path
) -> None:
    ts = now_ms() - 10_000
    pub = Publisher(mosquitto.port)
    async with running_monitor(config) as mon:
        # device A: its firmware version as text (the first type of `fw`)
        pub.publish_all([(device_topic("xs-01"), json.dumps({"ts": ts, "fw": "1.2.0"}))])
        await wait_for(lambda: rows(influxd.url, database, "SELECT fw FROM xray_scanner"))
        # device B, same kind: as a number, with a temperature; then a number alone
        pub.publish_all(
            [
                (
                    device_topic("xs-02"),
                    json.dumps({"ts": ts + 1, "fw": 1.3, "detector_temp_c": 31.5}),
                ),
                (device_topic("xs-02"), json.dumps({"ts": ts + 2, "fw": 1.4})),
                (device_topic("xs-02"), json.dumps({"ts": ts + 3, "detector_temp_c": 32.0})),
            ]
        )
        await wait_for(lambda: len(temps(influxd, database, "xs-02")) == 2)
        await wait_for(lambda: metric(config, "field_type_conflicts") == 2)
        await wait_for(
            lambda: rows(
                influxd.url,
                database,
                "SELECT last(field_type_conflicts) FROM monitor WHERE field_type_conflicts = 2",
            )
        )
        stats = mon.stats
    pub.close()

    assert temps(influxd, database, "xs-02") == [31.5, 32.0]
    # B's fw dropped; its point with nothing else is not written at all
    b = rows(influxd.url, database, "SELECT * FROM xray_scanner WHERE device = 'xs-02'")
    assert [(r["time"], r["fw"]) for r in b] == [(ts + 1, None), (ts + 3, None)]
    a = rows(influxd.url, database, "SELECT fw FROM xray_scanner WHERE device = 'xs-01'")
    assert [r["fw"] for r in a] == ["1.2.0"]
    assert stats.field_type_conflicts == 2
    assert stats.rejected_by_reason["influx_rejected"] == 0
    assert stats.points_quarantined == 0 and stats.write_errors == 0
    assert quarantined(config) == []


async def test_a_restarted_monitor_knows_the_types_influxdb_holds(
    config: Config, mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    ts = now_ms() - 10_000
    pub = Publisher(mosquitto.port)
    async with running_monitor(config):
        pub.publish_all([(device_topic("xs-01"), json.dumps({"ts": ts, "fw": "1.2.0"}))])
        await wait_for(lambda: rows(influxd.url, database, "SELECT fw FROM xray_scanner"))

    # A fresh monitor: it learns `fw` is text from InfluxDB (SHOW FIELD KEYS) before its
    # first point, so B's number is dropped before the write, not refused by InfluxDB.
    async with running_monitor(config) as mon:
        pub.publish_all(
            [
                (
                    device_topic("xs-02"),
                    json.dumps({"ts": ts + 1, "fw": 1.3, "detector_temp_c": 31.5}),
                ),
            ]
        )
        await wait_for(lambda: temps(influxd, database, "xs-02"))
        await wait_for(lambda: mon.stats.field_type_conflicts == 1)
        stats = mon.stats
    pub.close()

    assert temps(influxd, database, "xs-02") == [31.5]
    assert stats.write_errors == 0  # no write was refused
    assert stats.rejected_by_reason["influx_rejected"] == 0
    assert quarantined(config) == []
