"""Draining a backlog, start-up included: what the monitor costs after an outage.

    python -m bench.drain [--messages 100000] [--runs 3] [--receive-maximum N]

For each run: N QoS 1 messages of canonical scanner telemetry are queued in the broker for
a persistent session while its subscriber is away, then the subscriber is started and
timed until it has them all. The subscriber is ``mosquitto_sub`` (the ceiling) and the
monitor as its own process, from ``Popen`` to the last point queryable in InfluxDB; for
the monitor also: when its first point was queryable, its peak RSS and its CPU seconds per
100k messages (start-up included). Prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench import load
from bench.e2e_rate import payloads, proc_cpu_s
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "customs/aktau/inspection-1/xray_scanner/{device}/telemetry"
SUBSCRIPTIONS = ["customs/+/+/+/+/+", "scanners/+/data", "plc/+/+/+"]  # the shipped config's
DEVICES = 4


def backlog(n: int) -> list[tuple[str, bytes]]:
    per = n // DEVICES
    base = int(time.time() * 1000) - 3_600_000
    out: list[tuple[str, bytes]] = []
    for d in range(DEVICES):
        topic = TOPIC.format(device=f"bench-{d:02d}")
        out.extend((topic, line) for line in payloads(d, per, base).splitlines())
    return out


def queue(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish them while nobody listens: the broker keeps them for the sessions."""
    load.publish_all(port, messages, "bench-drain-publisher")


def count(url: str, db: str) -> int:
    q = urllib.parse.urlencode({"db": db, "q": "SELECT count(scans_total) FROM xray_scanner"})
    try:
        with urllib.request.urlopen(f"{url}/query?{q}", timeout=5) as r:
            series = json.load(r)["results"][0].get("series")
    except OSError:
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def written(url: str, db: str) -> int:
    """Points influxd has acknowledged for ``db`` (its own counters, from /debug/vars):
    a millisecond to read, where a count() over the backlog costs influxd ~10 ms of CPU,
    every poll, on the machine being measured."""
    try:
        with urllib.request.urlopen(f"{url}/debug/vars", timeout=5) as r:
            stats = json.load(r)
    except OSError:
        return 0
    marker = f"/{db}/"
    return sum(
        int(v["values"].get("writePointsOk", 0))
        for k, v in stats.items()
        if k.startswith("shard:") and marker in k
    )


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ceiling(broker: Mosquitto, messages: list[tuple[str, bytes]], run: int) -> float:
    """mosquitto_sub draining the backlog from its persistent session: msg/s."""
    client = f"bench-drain-sub-{run}"
    sub = ["mosquitto_sub", "-p", str(broker.port), "-c", "-i", client, "-q", "1"]
    sub += [x for t in SUBSCRIPTIONS for x in ("-t", t)]
    subprocess.run([*sub, "-E"], check=True)  # the session, subscribed, then away
    queue(broker.port, messages)
    started = time.perf_counter()
    subprocess.run([*sub, "-C", str(len(messages))], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    load.forget_session(broker.port, client)
    return len(messages) / elapsed


def monitor(
    tmp: Path,
    broker: Mosquitto,
    influx: InfluxDB,
    messages: list[tuple[str, bytes]],
    run: int,
    receive_maximum: int,
) -> dict[str, float]:
    """The monitor draining the backlog, from process start to the last point queryable."""
    client, db = f"bench-drain-monitor-{run}", f"drain{run}"
    load.prime_session(broker.port, client, SUBSCRIPTIONS)
    queue(broker.port, messages)
    env = dict(
        os.environ,
        MONITOR_MQTT__PORT=str(broker.port),
        MONITOR_MQTT__CLIENT_ID=client,
        MONITOR_MQTT__RECEIVE_MAXIMUM=str(receive_maximum),
        MONITOR_INFLUX__URL=influx.url,
        MONITOR_INFLUX__DATABASE=db,
        MONITOR_STATE_DIR=str(tmp / f"state-{run}"),
        MONITOR_HTTP__PORT=str(free_port()),
        MONITOR_NOTIFY__ROUTES="[]",
    )
    n = len(messages)
    with open(tmp / f"monitor-{run}.log", "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(ROOT / "config/monitor.yaml")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        first = None
        while (got := written(influx.url, db)) < n:
            if first is None and got:
                first = time.perf_counter() - started
            if time.perf_counter() - started > 600 or proc.poll() is not None:
                raise SystemExit(f"only {got} of {n} stored (see {tmp}/monitor-{run}.log)")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        # influxd counted n points written; every one of them is there, once
        while (stored := count(influx.url, db)) < n and time.perf_counter() - started < 600:
            time.sleep(0.05)
        if stored != n:
            raise SystemExit(f"{stored} points stored for {n} messages ({tmp}/monitor-{run}.log)")
        rss, cpu = peak_rss_mib(proc.pid), proc_cpu_s(proc.pid)
        proc.terminate()
        proc.wait(60)
    load.forget_session(broker.port, client)
    return {
        "msg_s": n / elapsed,
        "first_point_s": first if first is not None else elapsed,
        "peak_rss_mib": rss,
        "cpu_s_per_100k": cpu / n * 100_000,
    }


def drain(n: int, runs: int, receive_maximum: int, quiet: bool = False) -> dict[str, Any]:
    messages = backlog(n)
    tmp = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    broker, influx = Mosquitto(tmp / "mosquitto"), InfluxDB(tmp / "influxd")
    broker.start()
    influx.start()
    rows = []
    try:
        for run in range(runs):
            ceil = ceiling(broker, messages, run)
            mon = monitor(tmp, broker, influx, messages, run, receive_maximum)
            row = {"ceiling_msg_s": ceil, **mon, "ratio": mon["msg_s"] / ceil}
            rows.append(row)
            if not quiet:
                print(
                    f"run {run + 1}: mosquitto_sub {ceil:8,.0f} msg/s   monitor"
                    f" {mon['msg_s']:8,.0f} msg/s = {row['ratio']:.2f}   first point"
                    f" {mon['first_point_s']:.2f} s   peak RSS {mon['peak_rss_mib']:.0f} MiB"
                    f"   CPU {mon['cpu_s_per_100k']:.2f} s/100k",
                    flush=True,
                )
    finally:
        influx.stop()
        broker.stop()
    keys = rows[0].keys()
    return {
        "messages": len(messages),
        "receive_maximum": receive_maximum,
        "runs": rows,
        "median": {k: statistics.median(r[k] for r in rows) for k in keys},
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--receive-maximum", type=int, default=20_000)
    args = ap.parse_args()
    result = drain(args.messages, args.runs, args.receive_maximum)
    m = result["median"]
    print(
        f"median: mosquitto_sub {m['ceiling_msg_s']:,.0f} msg/s, monitor {m['msg_s']:,.0f}"
        f" msg/s = {m['ratio']:.2f}, first point {m['first_point_s']:.2f} s, peak RSS"
        f" {m['peak_rss_mib']:.0f} MiB (max {result['max_peak_rss_mib']:.0f}), CPU"
        f" {m['cpu_s_per_100k']:.2f} s/100k"
    )


if __name__ == "__main__":
    main()
