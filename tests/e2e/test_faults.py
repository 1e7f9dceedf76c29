"""Delivery under faults (SPEC 7): every published message ends up in InfluxDB.

Each scenario streams QoS 1 telemetry (each message its own point) into the monitor running
as its own process, injects a fault, and compares published with stored exactly.
Duplicates (redeliveries) are allowed, losses are not. Every scenario adds a row to
test-artifacts/faults.json: published, stored, lost, duplicates, peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import ROOT, MonitorProcess, Publisher, influx_query, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPIC = "customs/aktau/inspection-1/xray_scanner/xs-01/telemetry"
RESULTS: list[dict[str, Any]] = []
ARTIFACTS = ROOT / "test-artifacts"


class Stream:
    """Publishes n messages at `rate`/s from its own thread, each with a distinct timestamp."""

    def __init__(self, port: int, n: int, rate: float = 1000, client_id: str = "fault-pub") -> None:
        self.n, self.rate = n, rate
        self.base = int(time.time() * 1000) - 3_600_000
        self.pub = Publisher(port, client_id)
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        for i in range(self.n):
            payload = json.dumps(
                {"ts": self.base + i, "scans_total": i, "tube_voltage_kv": 140.0 + i % 20}
            )
            self.pub.publish(TOPIC, payload)
            self.sent = i + 1
            ahead = (i + 1) / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def start(self) -> Stream:
        self._thread.start()
        return self

    async def done(self) -> None:
        await asyncio.to_thread(self._thread.join)

    def close(self) -> None:
        self.pub.close()


def stored(influxd: InfluxDB, db: str) -> int:
    try:
        r = influx_query(influxd.url, db, "SELECT count(scans_total) FROM xray_scanner")
    except AssertionError:  # database not created yet
        return 0
    return int(r[0]["values"][0][1]) if r else 0


def received_total(influxd: InfluxDB, db: str) -> int:
    """Messages received over all runs: the counter restarts with each process."""
    series = influx_query(influxd.url, db, "SELECT messages_received FROM monitor")
    values = [v[1] for s in series for v in s["values"] if v[1] is not None]
    total = 0
    for prev, cur in zip(values, [*values[1:], None], strict=True):
        if cur is None or cur < prev:
            total += prev
    return total


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def record(name: str, published: int, influxd: InfluxDB, db: str, rss_kib: int) -> None:
    got = stored(influxd, db)
    dup = max(0, received_total(influxd, db) - published)
    row = {
        "scenario": name,
        "published": published,
        "stored": got,
        "lost": published - got,
        "duplicates": dup,
        "peak_rss_mib": round(rss_kib / 1024, 1),
    }
    RESULTS.append(row)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults.json").write_text(json.dumps(RESULTS, indent=2))
    print("\nFAULTS", json.dumps(row))


@pytest.fixture
def env(configure: Callable[..., Config]) -> dict[str, str]:
    settings = {
        "MONITOR_STATS_INTERVAL": "1s",
        "MONITOR_INFLUX__RETRY__MAX": "2s",
        "MONITOR_INFLUX__TIMEOUT": "3s",
        "MONITOR_MQTT__CLIENT_ID": "monitor-faults",
    }
    configure(**settings)
    return settings


async def test_influxdb_stopped_for_30s_during_a_1000_msg_s_stream(
    env: dict[str, str], mosquitto: Mosquitto, influxd: InfluxDB, database: str, tmp_path: Path
) -> None:
    mon = MonitorProcess(tmp_path / "monitor.log")
    await mon.wait_log("event=mqtt.connected")
    stream = Stream(mosquitto.port, 40_000).start()
    await asyncio.sleep(3)
    influxd.stop()
    await asyncio.sleep(30)
    influxd.start()
    await stream.done()
    await wait_for(lambda: stored(influxd, database) >= stream.n, timeout=90)
    rss = peak_rss_kib(mon.proc.pid)
    assert await asyncio.to_thread(mon.terminate) == 0
    stream.close()
    assert "event=spool.spooling" in mon.log() and "event=spool.drained" in mon.log()
    record("InfluxDB stopped 30 s", stream.n, influxd, database, rss)
    assert stored(influxd, database) == stream.n


class FlakyProxy:
    """In front of the real InfluxDB: a share of requests get 500, 429 or no answer."""

    def __init__(self, target: str, share: float, seed: int = 1) -> None:
        self.target, self.share = target, share
        self.rng = random.Random(seed)
        self.port = free_port()
        self.faults: dict[str, int] = {"500": 0, "429": 0, "timeout": 0, "ok": 0}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import aiohttp

        body = await request.read()
        if request.path == "/write" and self.rng.random() < self.share:
            fault = self.rng.choice(["500", "429", "timeout"])
            self.faults[fault] += 1
            if fault == "timeout":
                await asyncio.sleep(10)  # beyond the monitor's 3 s timeout
            return web.Response(
                status=int(fault) if fault != "timeout" else 504,
                headers={"Retry-After": "1"} if fault == "429" else {},
            )
        self.faults["ok"] += 1
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method,
                f"{self.target}{request.path}",
                params=request.query,
                data=body,
                # aiohttp has already gunzipped the body: pass its type, not its encoding
                headers={k: v for k, v in request.headers.items() if k.lower() == "content-type"},
            ) as resp,
        ):
            return web.Response(status=resp.status, body=await resp.read())


@pytest.fixture
async def flaky(influxd: InfluxDB) -> AsyncIterator[FlakyProxy]:
    proxy = FlakyProxy(influxd.url, share=0.3)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", proxy.port).start()
    yield proxy
    await runner.cleanup()


async def test_influxdb_answering_500_429_and_timeouts_intermittently(
    env: dict[str, str],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
    flaky: FlakyProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_INFLUX__URL", f"http://127.0.0.1:{flaky.port}")
    mon = MonitorProcess(tmp_path / "monitor.log")
    await mon.wait_log("event=mqtt.connected")
    stream = Stream(mosquitto.port, 15_000).start()
    await stream.done()
    # what went to the spool is replayed a batch at a time through the same faults: on a
    # busy machine more of the stream is spooled, in small batches (seen: 180 of 5 points)
    await wait_for(lambda: stored(influxd, database) >= stream.n, timeout=300)
    rss = peak_rss_kib(mon.proc.pid)
    assert await asyncio.to_thread(mon.terminate) == 0
    stream.close()
    assert flaky.faults["500"] and flaky.faults["429"] and flaky.faults["timeout"]
    record(
        f"InfluxDB flaky (30% of writes: {flaky.faults['500']}x500,"
        f" {flaky.faults['429']}x429, {flaky.faults['timeout']}x timeout)",
        stream.n,
        influxd,
        database,
        rss,
    )
    assert stored(influxd, database) == stream.n


async def test_broker_restarted_twice_during_the_stream(
    env: dict[str, str], mosquitto: Mosquitto, influxd: InfluxDB, database: str, tmp_path: Path
) -> None:
    mon = MonitorProcess(tmp_path / "monitor.log")
    await mon.wait_log("event=mqtt.connected")
    stream = Stream(mosquitto.port, 15_000).start()
    for _ in range(2):
        await asyncio.sleep(4)
        await asyncio.to_thread(mosquitto.restart)
    await stream.done()
    await wait_for(lambda: stored(influxd, database) >= stream.n, timeout=90)
    rss = peak_rss_kib(mon.proc.pid)
    assert await asyncio.to_thread(mon.terminate) == 0
    stream.close()
    assert mon.log().count("event=mqtt.connected") >= 3
    record("broker restarted twice", stream.n, influxd, database, rss)
    assert stored(influxd, database) == stream.n


async def test_monitor_sigkilled_three_times_and_restarted(
    env: dict[str, str], mosquitto: Mosquitto, influxd: InfluxDB, database: str, tmp_path: Path
) -> None:
    rng = random.Random(7)
    stream = Stream(mosquitto.port, 20_000)
    mon = MonitorProcess(tmp_path / "monitor-0.log")
    await mon.wait_log("event=mqtt.connected")
    stream.start()
    rss = 0
    for i in range(3):
        await asyncio.sleep(rng.uniform(2, 5))
        rss = max(rss, peak_rss_kib(mon.proc.pid))
        mon.kill()  # SIGKILL: no flush, no ack, no goodbye
        await asyncio.sleep(rng.uniform(0.2, 2))
        mon = MonitorProcess(tmp_path / f"monitor-{i + 1}.log")
        await mon.wait_log("event=mqtt.connected")
    await stream.done()
    await wait_for(lambda: stored(influxd, database) >= stream.n, timeout=90)
    rss = max(rss, peak_rss_kib(mon.proc.pid))
    assert await asyncio.to_thread(mon.terminate) == 0
    stream.close()
    record("monitor SIGKILLed 3x and restarted", stream.n, influxd, database, rss)
    assert stored(influxd, database) == stream.n


async def test_spool_full_holds_acks_and_the_broker_keeps_the_rest(
    env: dict[str, str],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_SPOOL_MAX_BYTES", "64KiB")
    mon = MonitorProcess(tmp_path / "monitor.log")
    await mon.wait_log("event=mqtt.connected")
    await wait_for(lambda: stored(influxd, database) == 0 and "event=spool." not in mon.log())
    influxd.stop()
    stream = Stream(mosquitto.port, 20_000, rate=2000).start()
    await stream.done()
    await mon.wait_log("event=spool.full", timeout=30)
    # what the spool could not take is neither acked nor lost: the broker holds it
    await asyncio.sleep(2)
    influxd.start()
    await wait_for(lambda: stored(influxd, database) >= stream.n, timeout=120)

    def spool_alert() -> list[str]:
        series = influx_query(
            influxd.url, database, "SELECT state FROM alerts WHERE rule = 'monitor_spool_high'"
        )
        return [v[1] for s in series for v in s["values"]]

    # the 80 % alert fired while the spool filled, and resolves once it has drained
    await wait_for(lambda: spool_alert() == ["firing", "resolved"], timeout=20)
    rss = peak_rss_kib(mon.proc.pid)
    assert await asyncio.to_thread(mon.terminate) == 0
    stream.close()
    assert "event=spool.drained" in mon.log()
    # the 80 % alert fired while it filled, and resolved once it drained
    spool_alerts = influx_query(
        influxd.url, database, "SELECT state FROM alerts WHERE rule = 'monitor_spool_high'"
    )
    assert [v[1] for v in spool_alerts[0]["values"]] == ["firing", "resolved"]
    record("disk spool full (64 KiB) while InfluxDB is down", stream.n, influxd, database, rss)
    assert stored(influxd, database) == stream.n


async def test_sigterm_with_influxdb_down_and_the_spool_full_ends_within_the_bound(
    env: dict[str, str],
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing can be written: the stop still ends within stop_timeout, exit 0, and what
    it could not write was not acknowledged, so the next run gets it (SPEC 7)."""
    monkeypatch.setenv("MONITOR_SPOOL_MAX_BYTES", "16KiB")
    monkeypatch.setenv("MONITOR_INFLUX__BATCH_SIZE", "50")
    monkeypatch.setenv("MONITOR_STOP_TIMEOUT", "5s")
    mon = MonitorProcess(tmp_path / "monitor-0.log")
    await mon.wait_log("event=mqtt.connected")
    influxd.stop()
    stream = Stream(mosquitto.port, 5_000, rate=2000).start()
    await stream.done()
    await mon.wait_log("event=spool.full", timeout=30)
    await asyncio.sleep(1)  # the ingest task now waits for room in a full batcher
    started = time.monotonic()
    code = await asyncio.to_thread(mon.terminate, 60)
    took = time.monotonic() - started
    assert (code, took < 5 + 2) == (0, True), f"exit {code} after {took:.1f} s"
    assert "event=monitor.stop_timeout" in mon.log()
    influxd.start()
    mon = MonitorProcess(tmp_path / "monitor-1.log")
    await wait_for(lambda: stored(influxd, database) >= stream.n, timeout=120)
    rss = peak_rss_kib(mon.proc.pid)
    assert await asyncio.to_thread(mon.terminate) == 0
    stream.close()
    record("SIGTERM with InfluxDB down, spool full", stream.n, influxd, database, rss)
    assert stored(influxd, database) == stream.n


def test_print_fault_table() -> None:
    """Runs last in this module: the table for the issue note."""
    if not RESULTS:
        pytest.skip("no fault scenario ran")
    print("\n| scenario | published | stored | lost | duplicates | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in RESULTS:
        print(
            f"| {r['scenario']} | {r['published']} | {r['stored']} | {r['lost']} |"
            f" {r['duplicates']} | {r['peak_rss_mib']} MiB |"
        )
