"""End-to-end ingest rate: QoS 1 publish -> monitor (ack after write) -> queryable in InfluxDB.

    python -m bench.e2e_rate [--messages 200000] [--publishers 4]

Starts a private mosquitto and influxd, the monitor as its own process, and several
`bench.load` QoS 1 publisher processes (one per device topic, realistic scanner JSON). Prints
messages/s from the first publish to the last point being queryable, next to what
`mosquitto_sub` alone receives of the same stream on the same broker.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from monitor.sim.devservers import InfluxDB, Mosquitto


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


ROOT = Path(__file__).resolve().parent.parent


def payloads(device: int, n: int, base_ms: int) -> bytes:
    rng = random.Random(device)
    lines = []
    for i in range(n):
        lines.append(
            json.dumps(
                {
                    "ts": base_ms + i,
                    "state": "busy" if i % 3 else "ready",
                    "tube_voltage_kv": round(rng.uniform(120, 160), 2),
                    "tube_current_ma": round(rng.uniform(0.5, 1.5), 3),
                    "detector_temp_c": round(rng.uniform(25, 40), 2),
                    "scans_total": i,
                    "scan_duration_s": round(rng.uniform(20, 60), 1),
                    "interlock_ok": True,
                },
                separators=(",", ":"),
            )
        )
    return ("\n".join(lines) + "\n").encode()


def publish(port: int, streams: list[tuple[str, bytes]]) -> float:
    """Publish each stream from its own `bench.load` process, all at once; return when
    every message is acknowledged by the broker, with the moment publishing started."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.load",
                "--port",
                str(port),
                "--topic",
                topic,
                "--client-id",
                f"bench-load-{i}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for i, (topic, _) in enumerate(streams)
    ]
    for proc, (_, data) in zip(procs, streams, strict=True):
        assert proc.stdin is not None
        proc.stdin.write(data + b"\n")
        proc.stdin.flush()
    for proc in procs:  # every payload encoded, every publisher connected
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise SystemExit("a load generator failed to start")
    started = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    for proc in procs:
        assert proc.stdout is not None
        if not proc.stdout.readline().startswith(b"done"):
            raise SystemExit("a load generator failed")
        proc.wait()
    return started


def ceiling_rate(port: int, streams: list[tuple[str, bytes]], total: int) -> float:
    """msg/s that ``mosquitto_sub`` alone receives of these QoS 1 streams on this broker."""
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-q", "1", "-t", "customs/#", "-C", str(total)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # subscribed
    t0 = publish(port, streams)
    sub.wait()
    return total / (time.perf_counter() - t0)


def count(url: str, db: str) -> int:
    q = urllib.parse.urlencode({"db": db, "q": "SELECT count(scans_total) FROM xray_scanner"})
    with urllib.request.urlopen(f"{url}/query?{q}") as r:
        series = json.load(r)["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--publishers", type=int, default=4)
    args = ap.parse_args()
    per = args.messages // args.publishers
    total = per * args.publishers
    base = int(time.time() * 1000) - 3_600_000
    streams = [
        (f"customs/aktau/inspection-1/xray_scanner/bench-{d:02d}/telemetry", payloads(d, per, base))
        for d in range(args.publishers)
    ]

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    broker, influx = Mosquitto(tmp / "mosquitto"), InfluxDB(tmp / "influxd")
    broker.start()
    influx.start()
    try:
        # 1. the ceiling: mosquitto_sub receiving the same stream
        sub_rate = ceiling_rate(broker.port, streams, total)

        # 2. the monitor end to end
        env = dict(
            os.environ,
            MONITOR_MQTT__PORT=str(broker.port),
            MONITOR_INFLUX__URL=influx.url,
            MONITOR_INFLUX__DATABASE="bench",
            MONITOR_STATE_DIR=str(tmp / "state"),
            MONITOR_MQTT__CLIENT_ID="bench-monitor",
        )
        log = open(tmp / "monitor.log", "wb")  # noqa: SIM115
        mon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "run",
                "-c",
                str(ROOT / "config/monitor.yaml"),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        time.sleep(2)
        spy = None
        if os.environ.get("BENCH_PYSPY"):
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(mon.pid),
                    "-o",
                    os.environ["BENCH_PYSPY"],
                    "-f",
                    "raw",
                    "-t",
                    "-r",
                    "200",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        cpu0 = os.times()
        assert broker.proc is not None
        assert influx.proc is not None
        procs = {"monitor": mon.pid, "mosquitto": broker.proc.pid, "influxd": influx.proc.pid}
        busy0 = {name: proc_cpu_s(pid) for name, pid in procs.items()}
        t0 = publish(broker.port, streams)
        published_at = time.perf_counter() - t0
        loaders = os.times()  # the load generators are the only children reaped meanwhile
        loaders_cpu = loaders.children_user + loaders.children_system
        loaders_cpu -= cpu0.children_user + cpu0.children_system
        while (n := count(influx.url, "bench")) < total:
            if time.perf_counter() - t0 > 600:
                raise SystemExit(f"only {n} of {total} stored after 600 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        busy = {name: proc_cpu_s(pid) - busy0[name] for name, pid in procs.items()}
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait()
        mon.terminate()
        mon.wait(30)
        rate = total / elapsed
        print(f"messages            {total}  ({args.publishers} QoS 1 publishers)")
        print(f"mosquitto_sub       {sub_rate:10.0f} msg/s")
        print(
            f"monitor end-to-end  {rate:10.0f} msg/s  (publish done after {published_at:.1f} s,"
            f" all queryable after {elapsed:.1f} s)  = {rate / sub_rate:.2f} of mosquitto_sub"
        )
        print(
            "CPU seconds         "
            + ", ".join(f"{name} {v:.1f}" for name, v in busy.items())
            + f", load generators {loaders_cpu:.1f}"
            + f"  (wall {elapsed:.1f} s, 2 cores)"
        )
    finally:
        influx.stop()
        broker.stop()


if __name__ == "__main__":
    main()
