"""The InfluxDB writer against real servers: refused points, retries, the v2 API."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.clock import SystemClock
from monitor.config import Influx
from monitor.sim.devservers import InfluxDB, VictoriaMetrics, free_port
from monitor.sink.influx import InfluxWriter
from monitor.sink.lineproto import line
from monitor.stats import Stats
from tests.helpers import rows, wait_for

pytestmark = pytest.mark.integration


def points(n: int, base: int, **extra: object) -> list[str]:
    return [
        line("xray_scanner", {"device": "xs-01"}, {"scans_total": i, **extra}, base + i)
        for i in range(n)
    ]


async def test_a_refused_point_is_isolated_and_its_neighbours_stored(
    influxd: InfluxDB, database: str
) -> None:
    refused: list[tuple[str, str]] = []
    stats = Stats()
    cfg = Influx(url=influxd.url, database=database)
    base = int(time.time() * 1000) - 10_000
    async with InfluxWriter(
        cfg, stats, SystemClock(), lambda ln, err: refused.append((ln, err))
    ) as w:
        await w.write([line("xray_scanner", {"device": "xs-01"}, {"note": "a string"}, base - 1)])
        batch = points(40, base)
        # the same field as an integer: a field type conflict, refused by InfluxDB with 400
        bad = line("xray_scanner", {"device": "xs-01"}, {"note": 7}, base + 1000)
        batch.insert(17, bad)
        await w.write(batch)
    assert [r[0] for r in refused] == [bad]
    assert "field type conflict" in refused[0][1]
    got = rows(influxd.url, database, "SELECT count(scans_total) FROM xray_scanner")
    assert got[0]["count"] == 40
    assert stats.points_quarantined == 1


class FaultProxy:
    """Answers the first requests with scripted failures, then forwards to InfluxDB."""

    def __init__(self, target: str, script: list[tuple[int, dict[str, str]]]) -> None:
        self.target = target
        self.script = list(script)
        self.seen: list[float] = []
        self.requests: list[str] = []
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(time.monotonic())
        self.requests.append(
            f"{request.method} {request.path}?{request.query_string}"
            f" auth={request.headers.get('Authorization')}"
            f" enc={request.headers.get('Content-Encoding')}"
        )
        if self.script:
            status, headers = self.script.pop(0)
            if status == 0:  # a hang: the client's timeout has to fire
                await asyncio.sleep(3600)
            return web.Response(status=status, headers=headers, text='{"error":"injected"}')
        body = await request.read()  # aiohttp has already gunzipped it
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{self.target}{request.path}",
                params=request.query,
                data=body,
                headers={k: v for k, v in request.headers.items() if k.lower() == "authorization"},
            ) as resp,
        ):
            return web.Response(status=resp.status, body=await resp.read())


@pytest.fixture
async def proxy_factory() -> AsyncIterator:
    runners: list[web.AppRunner] = []

    async def start(target: str, script: list[tuple[int, dict[str, str]]]) -> FaultProxy:
        proxy = FaultProxy(target, script)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", proxy.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", proxy.port).start()
        runners.append(runner)
        return proxy

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_retries_5xx_429_and_timeouts_honouring_retry_after(
    influxd: InfluxDB, database: str, proxy_factory
) -> None:
    proxy = await proxy_factory(
        influxd.url,
        [
            (503, {}),
            (500, {}),
            (429, {"Retry-After": "1"}),
            (0, {}),
        ],
    )
    stats = Stats()
    urllib.request.urlopen(
        f"{influxd.url}/query?" + urllib.parse.urlencode({"q": f'CREATE DATABASE "{database}"'}),
        data=b"",
    )
    cfg = Influx(
        url=f"http://127.0.0.1:{proxy.port}",
        database=database,
        timeout=0.5,
        create_database=False,
        retry={"initial": 0.05, "max": 0.2},
    )
    async with InfluxWriter(cfg, stats, SystemClock(), lambda _, err: pytest.fail(err)) as w:
        await w.write(points(10, int(time.time() * 1000) - 5000))
    assert (
        rows(influxd.url, database, "SELECT count(scans_total) FROM xray_scanner")[0]["count"] == 10
    )
    assert stats.write_errors == 4
    after_429 = proxy.seen[3] - proxy.seen[2]
    assert after_429 >= 1.0  # Retry-After: 1 was honoured although our backoff is 0.2 s max


async def test_writes_to_a_local_influxdb_are_not_compressed_by_default(
    influxd: InfluxDB, database: str, proxy_factory
) -> None:
    proxy = await proxy_factory(influxd.url, [])
    urllib.request.urlopen(
        f"{influxd.url}/query?" + urllib.parse.urlencode({"q": f'CREATE DATABASE "{database}"'}),
        data=b"",
    )
    cfg = Influx(url=f"http://127.0.0.1:{proxy.port}", database=database, create_database=False)
    async with InfluxWriter(cfg, Stats(), SystemClock(), lambda _, err: pytest.fail(err)) as w:
        await w.write(points(10, int(time.time() * 1000) - 5000))
    assert proxy.requests[-1].endswith(" enc=None")  # gzip: auto, and InfluxDB is on loopback
    assert (
        rows(influxd.url, database, "SELECT count(scans_total) FROM xray_scanner")[0]["count"] == 10
    )


@pytest.fixture
def victoria(tmp_path: Path):
    server = VictoriaMetrics(tmp_path / "vm")
    server.start()
    yield server
    server.stop()


async def test_v2_api_writes_to_a_real_api_v2_peer(
    victoria: VictoriaMetrics, proxy_factory
) -> None:
    # Through a pass-through proxy, to see exactly what was sent.
    proxy = await proxy_factory(victoria.url, [])
    cfg = Influx(
        url=f"http://127.0.0.1:{proxy.port}",
        api="v2",
        org="customs-kz",
        bucket="aktau",
        token="t0k3n",
        gzip=True,  # "auto" would not compress for a peer on loopback
    )
    ts = int(time.time() * 1000) - 1000
    async with InfluxWriter(cfg, Stats(), SystemClock(), lambda _, err: pytest.fail(err)) as w:
        await w.write(
            [
                line(
                    "xray_scanner",
                    {"site": "aktau", "device": "xs-01"},
                    {"tube_voltage_kv": 140.5, "scans_total": 12},
                    ts * 1000,  # microseconds, as the monitor writes them
                )
            ]
        )
    assert proxy.requests == [
        "POST /api/v2/write?org=customs-kz&bucket=aktau&precision=us auth=Token t0k3n enc=gzip"
    ]

    def exported() -> list[dict]:
        q = urllib.parse.urlencode({"match[]": '{__name__=~"xray_scanner_.*"}'})
        with urllib.request.urlopen(f"{victoria.url}/api/v1/export?{q}") as r:
            return [json.loads(x) for x in r.read().splitlines()]

    series = await wait_for(lambda: len(e := exported()) == 2 and e)
    got = {
        s["metric"]["__name__"]: (s["values"], s["timestamps"], s["metric"]["device"])
        for s in series
    }
    assert got == {
        "xray_scanner_tube_voltage_kv": ([140.5], [ts], "xs-01"),
        "xray_scanner_scans_total": ([12], [ts], "xs-01"),
    }
