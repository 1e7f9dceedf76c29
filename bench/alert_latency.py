"""Alert latency: a device goes silent -> its webhook arrives, minus its no_data timeout.

    python -m bench.alert_latency [--trials 20] [--devices 25] [--timeout 2]

Private mosquitto + influxd, the monitor in-process, a webhook receiver on loopback. All
devices publish, from their own process, every 200 ms; each trial silences one (one of
many, so it is not a site outage), measures from its last message to the webhook, then
lets it speak again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor import app
from monitor.config import load_config
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from monitor.stats import Stats
from tests.helpers import Publisher


def talk(port: int, ids: list[str], interval: float, commands: Connection) -> None:
    """The devices, in their own process: every one reports each interval, but those
    silenced. "silence" answers with the device's last publish time."""
    pub = Publisher(port, "bench-devices")
    talking, last = set(ids), {}
    while True:
        started = time.monotonic()
        for d in ids:
            if d in talking:
                pub.publish(f"customs/aktau/a/xray_scanner/{d}/telemetry", '{"scans_total": 1}')
                last[d] = time.time()
        while (left := interval - (time.monotonic() - started)) > 0:
            if not commands.poll(left):
                continue
            cmd, device = commands.recv()
            if cmd == "stop":
                pub.close()
                return
            if cmd == "silence":
                talking.discard(device)
            else:
                talking.add(device)
            commands.send(last.get(device))


async def main(trials: int, devices: int, timeout_s: float, interval: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    broker, influx = Mosquitto(tmp / "mosquitto"), InfluxDB(tmp / "influxd")
    broker.start()
    influx.start()
    got: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await got.put((time.time(), await request.json()))
        return web.Response(status=204)

    wapp = web.Application()
    wapp.router.add_post("/", hook)
    runner = web.AppRunner(wapp)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ids = [f"xs-{i:03d}" for i in range(devices)]
    cfg = tmp / "monitor.yaml"
    cfg.write_text(
        f"""
mqtt: {{port: {broker.port}, client_id: bench-alerts}}
influx: {{url: "{influx.url}", database: bench}}
state_dir: {tmp / "state"}
http: {{port: {free_port()}}}
alerts: {{kinds: {{xray_scanner: {{no_data_timeout: {timeout_s}s}}}}}}
notify: {{routes: [{{name: bench, channels: ["webhook:http://127.0.0.1:{port}/"]}}]}}
devices:
"""
        + "".join(f"  - {{id: {d}, kind: xray_scanner, site: aktau, area: a}}\n" for d in ids)
    )
    stop = asyncio.Event()
    stats = Stats()
    monitor = asyncio.create_task(app.run(load_config(cfg), stop, stats=stats))
    commands, child = multiprocessing.Pipe()
    talker = multiprocessing.Process(target=talk, args=(broker.port, ids, interval, child))
    talker.start()

    async def command(cmd: str, device: str) -> float | None:
        commands.send((cmd, device))
        return await asyncio.to_thread(commands.recv)

    await asyncio.sleep(timeout_s + 1)
    latencies = []
    for i in range(trials):
        device = ids[i % devices]
        last = await command("silence", device)
        assert last is not None
        while True:
            at, payload = await asyncio.wait_for(got.get(), timeout_s + 30)
            if payload["device"] == device and payload["state"] == "firing":
                break
        latencies.append(at - last - timeout_s)
        await command("talk", device)
        while True:  # its resolution
            _, payload = await asyncio.wait_for(got.get(), 30)
            if payload["device"] == device and payload["state"] == "resolved":
                break
    commands.send(("stop", ""))
    talker.join(30)
    stop.set()
    await monitor
    await runner.cleanup()
    influx.stop()
    broker.stop()
    latencies.sort()
    print(
        json.dumps(
            {
                "trials": trials,
                "devices": devices,
                "no_data_timeout_s": timeout_s,
                "latency_beyond_timeout_s": {
                    "median": round(statistics.median(latencies), 3),
                    "worst": round(latencies[-1], 3),
                    "best": round(latencies[0], 3),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--devices", type=int, default=25)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--interval", type=float, default=0.2, help="each device reports this often")
    a = ap.parse_args()
    asyncio.run(main(a.trials, a.devices, a.timeout, a.interval))
