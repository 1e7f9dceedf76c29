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
from tests.helpers import rows, wait_for, write_lines

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
        batch = points(40, base)
        # a time beyond InfluxDB's range (2262): refused by InfluxDB with 400
        bad = line("xray_scanner", {"device": "xs-01"}, {"scans_total": 7}, 2**63 - 2)
        batch.insert(17, bad)
        await w.write(batch)
    assert [r[0] for r in refused] == [bad]
    assert "time outside range" in refused[0][1]
    got = rows(influxd.url, database, "SELECT count(scans_total) FROM xray_scanner")
    assert got[0]["count"] == 40
    assert stats.points_quarantined == 1


async def test_a_field_type_conflict_costs_that_field_alone(
    influxd: InfluxDB, database: str
) -> None:
    """Lines the monitor did not check (another writer got there first, or a new shard took
    another type): InfluxDB refuses them, and the writer writes them again without the
    values of the other type, learning InfluxDB's type."""
    refused: list[tuple[str, str]] = []
    stats = Stats()
    base = int(time.time() * 1000) - 10_000
    write_lines(
        influxd.url,
        database,
        [
            f'xray_scanner,device=xs-01 fw="1.2.0" {(base - 2) * 1000}',
            f"events,device=xs-01 note=1.5 {(base - 1) * 1000}",
        ],
    )
    cfg = Influx(url=influxd.url, database=database)
    async with InfluxWriter(
        cfg, stats, SystemClock(), lambda ln, err: refused.append((ln, err))
    ) as w:
        batch = [
            line(
                "xray_scanner",
                {"device": f"xs-{i % 3}"},
                # every third a number (a conflict), every fifth a bool (another)
                {
                    "fw": 2.0 if i % 3 == 0 else True if i % 5 == 0 else "2.0",
                    "detector_temp_c": i + 0.5,
                },
                (base + i) * 1000,
            )
            for i in range(30)
        ]
        batch.append(line("xray_scanner", {"device": "xs-9"}, {"fw": 3.0}, base * 1000 + 500))
        batch.append(line("events", {"device": "xs-01"}, {"note": "text", "n": 1}, base * 1000))
        await w.write(batch)
    assert refused == []
    assert stats.points_quarantined == 0
    conflicts = sum(1 for i in range(30) if i % 3 == 0 or i % 5 == 0) + 1 + 1
    assert stats.field_type_conflicts == conflicts
    assert (w.types.known("xray_scanner", "fw"), w.types.known("events", "note")) == (str, float)
    temps = rows(influxd.url, database, "SELECT detector_temp_c, fw FROM xray_scanner")
    assert sorted(r["detector_temp_c"] for r in temps if r["detector_temp_c"] is not None) == [
        i + 0.5 for i in range(30)
    ]
    fws = [r["fw"] for r in temps if r["fw"] is not None]
    assert set(fws) == {"1.2.0", "2.0"}
    assert len(fws) == 1 + sum(1 for i in range(30) if i % 3 and i % 5)
    # the point of xs-9 had nothing else: nothing is written of it
    assert not rows(influxd.url, database, "SELECT * FROM xray_scanner WHERE device = 'xs-9'")
    events = rows(influxd.url, database, "SELECT n, note FROM events")
    assert [(r["n"], r["note"]) for r in events] == [(None, 1.5), (1, None)]


async def test_the_field_types_influxdb_holds_are_read_at_start(
    influxd: InfluxDB, database: str
) -> None:
    write_lines(
        influxd.url,
        database,
        [
            f'xray_scanner,device=xs-01 fw="1.2.0",fan_rpm=1200 {int(time.time() * 1e6)}',
            # a field the schema fixes, of another type there: the schema's type stays
            f"xray_scanner,device=xs-02 scans_total=1.5 {int(time.time() * 1e6)}",
            f"cpu,host=a usage=1i {int(time.time() * 1e6)}",  # not the monitor's
        ],
    )
    cfg = Influx(url=influxd.url, database=database)
    async with InfluxWriter(cfg, Stats(), SystemClock(), lambda ln, err: None) as w:
        await asyncio.wait_for(w.types.settled(), 5)
        types = w.types
        assert types.known("xray_scanner", "fw") is str
        assert types.known("xray_scanner", "fan_rpm") is float
        assert types.known("xray_scanner", "scans_total") is int
        assert types.known("cpu", "usage") is None


class FaultProxy:
    """Answers the first requests with scripted failures, then forwards to InfluxDB."""

    def __init__(self, target: str, script: list[tuple[int, dict[str, str]]]) -> None:
        self.target = target
        self.script = list(script)
        self.seen: list[float] = []
        self.requests: list[str] = []
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/write"):
            self.seen.append(time.monotonic())
        self.requests.append(
            f"{request.method} {request.path}?{request.query_string}"
            f" auth={request.headers.get('Authorization')}"
            f" enc={request.headers.get('Content-Encoding')}"
        )
        if self.script and request.path.endswith("/write"):  # not the start's SHOW FIELD KEYS
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
        # the field types it holds, through the v1 compatibility API, with the same token
        "GET /query?db=aktau&q=SHOW FIELD KEYS auth=Token t0k3n enc=None",
        "POST /api/v2/write?org=customs-kz&bucket=aktau&precision=us auth=Token t0k3n enc=gzip",
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
