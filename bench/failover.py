"""Failover of two monitors on one PostgreSQL (SPEC 8.1), measured: the leader is killed
(SIGKILL) again and again, the other takes over, the killed one is started again as the
standby.

    python -m bench.failover [--kills 5] [--heartbeat 5s] [--failover 20s]

Per kill, from the SIGKILL: when the standby leads (its /health says so, polled every
20 ms), when the first point published after the kill is queryable in InfluxDB, and when
the first notification is delivered: a webhook that refused the old leader's notification
(a device fell silent before the kill) accepts from the kill on, so what the outbox held
goes out from the new leader. Devices publish 10 messages/s each meanwhile. Prints one
line per kill and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion

from bench.drain import count
from monitor.sim.devservers import InfluxDB, Mosquitto, Postgres, free_port

ROOT = Path(__file__).resolve().parent.parent
TALKERS = ["xs-a", "xs-b", "xs-c"]


def device_topic(device: str) -> str:
    return f"customs/aktau/inspection-1/xray_scanner/{device}/telemetry"


def publisher(port: int) -> paho.Client:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-failover-pub"
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def config(path: Path, broker: int, influx: str, hook: str, ha: tuple[str, str]) -> Path:
    devices = "\n".join(
        f"  - {{id: {d}, kind: xray_scanner, site: aktau, area: inspection-1}}"
        for d in [*TALKERS, "xs-silent"]
    )
    path.write_text(f"""
mqtt: {{port: {broker}, client_id: bench-failover, reconnect: {{initial: 100ms, max: 500ms}}}}
influx: {{url: "{influx}", database: failover, retry: {{max: 1s}}}}
status_interval: 1s
ha: {{heartbeat: {ha[0]}, failover: {ha[1]}}}
alerts:
  kinds:
    xray_scanner: {{no_data_timeout: 2s, severity: critical}}
notify:
  routes:
    - {{name: crew, match: {{severity: [critical]}}, channels: ["webhook:{hook}"]}}
devices:
{devices}
""")
    return path


def role(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return str(json.load(r).get("role"))
    except Exception:
        return None


class Hook:
    """Refuses every notification until ``accept_from``; then the first accepted is timed."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accept_from = float("inf")
        self.accepted: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()
        if now < self.accept_from:
            return web.Response(status=503)
        self.accepted.append(now)
        return web.Response(status=204)


async def measure(kills: int, ha: tuple[str, str]) -> list[dict[str, float]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    broker, influx, pg = Mosquitto(tmp / "mqtt"), InfluxDB(tmp / "influxd"), Postgres(tmp / "pg")
    for server in (broker, influx, pg):
        server.start()
    hook = Hook()
    wapp = web.Application()
    wapp.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(wapp)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook.port).start()
    path = config(tmp / "m.yaml", broker.port, influx.url, f"http://127.0.0.1:{hook.port}/hook", ha)
    store = pg.create_database("failover")
    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen[bytes] | None] = [None, None]

    def start(i: int) -> None:
        procs[i] = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(path)],
            env={
                **os.environ,
                "MONITOR_STORE__URL": store,
                "MONITOR_STATE_DIR": str(tmp / f"state{i}"),
                "MONITOR_HTTP__PORT": str(ports[i]),
            },
            stdout=open(tmp / f"m{i}.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    async def until(cond: Any, limit: float = 120) -> float:
        deadline = time.monotonic() + limit
        while not await asyncio.to_thread(cond):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out (logs in {tmp})")
            await asyncio.sleep(0.02)
        return time.monotonic()

    pub = publisher(broker.port)
    stop = asyncio.Event()

    async def talk() -> None:
        n = 0
        while not stop.is_set():
            for d in TALKERS:
                n += 1
                pub.publish(device_topic(d), json.dumps({"scans_total": 1, "seq": n}), qos=1)
            await asyncio.sleep(0.1)

    results = []
    talking = asyncio.create_task(talk())
    try:
        start(0)
        await until(lambda: role(ports[0]) == "leader")
        start(1)
        await until(lambda: role(ports[1]) == "standby")
        leader = 0
        for k in range(kills):
            hook.accept_from = float("inf")
            # a notification the old leader could not deliver: in the outbox at the kill
            pub.publish(device_topic("xs-silent"), json.dumps({"scans_total": 1, "k": k}), qos=1)
            await asyncio.sleep(2.5 + 2)  # heard, then its no_data fired and was refused
            before = count(influx.url, "failover")
            proc = procs[leader]
            assert proc is not None
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            hook.accept_from = killed
            proc.wait()
            other = 1 - leader
            led = await until(lambda o=other: role(ports[o]) == "leader")
            point = await until(lambda b=before: count(influx.url, "failover") > b + 3)
            await until(lambda k=killed: any(t > k for t in hook.accepted))
            told = min(t for t in hook.accepted if t > killed)
            row = {"lead_s": led - killed, "point_s": point - killed, "notify_s": told - killed}
            results.append(row)
            print(
                f"kill {k + 1}: leads after {row['lead_s']:.2f} s, first point"
                f" {row['point_s']:.2f} s, first notification {row['notify_s']:.2f} s",
                flush=True,
            )
            start(leader)  # back, as the standby
            await until(lambda i=leader: role(ports[i]) == "standby")
            leader = other
    finally:
        stop.set()
        await talking
        for p in procs:
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(30)
        pub.disconnect()
        pub.loop_stop()
        await runner.cleanup()
        for server in (pg, influx, broker):
            server.stop()
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--heartbeat", default="5s")
    ap.add_argument("--failover", default="20s")
    args = ap.parse_args()
    rows = asyncio.run(measure(args.kills, (args.heartbeat, args.failover)))
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"median of {len(rows)} kills (ha.heartbeat {args.heartbeat}, ha.failover"
        f" {args.failover}): leads {med['lead_s']:.2f} s, first point {med['point_s']:.2f} s,"
        f" first notification {med['notify_s']:.2f} s after the SIGKILL"
    )


if __name__ == "__main__":
    main()
