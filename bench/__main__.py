"""The benchmark harness: `make bench` (or `python -m bench [--quick]`).

Starts a private mosquitto and influxd, and measures in one run, side by side:
  ceiling      mosquitto_sub receiving the stream the monitor gets (msg/s)
  influx       InfluxDB's own ceiling: line protocol in 5000-point batches (points/s)
  e2e          the monitor end to end: QoS 1, acked after the write, first publish ->
               last point queryable (msg/s), and its CPU seconds per 100k messages
  latency      p50/p99 publish -> queryable at 1k and 10k msg/s offered
  alerts       device silent -> webhook, minus its timeout, at 2,000 devices
  memory       the monitor's RSS at 100, 2,000 and 20,000 devices (and per device)
  drain        a 100k backlog drained from the persistent session, start-up included:
               monitor vs mosquitto_sub, first point, peak RSS, CPU (bench.drain)
  windows      a backlog through an in-flight window of 1 and 32 (bench.drain)
  collectors   1, 2 and 4 collectors sharing 4 sites, draining one backlog together
Prints a table with each figure and its ratio to the ceiling, and writes bench/results.json.
Numbers are measured, never asserted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
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

from bench import drain, load
from bench.e2e_rate import ceiling_rate, count, payloads, proc_cpu_s, publish
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "customs/aktau/inspection-1/xray_scanner/{device}/telemetry"


def query(url: str, db: str, q: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=30) as r:
        return list(json.load(r)["results"][0].get("series", []))


def drop(influx: InfluxDB, db: str) -> None:
    """Drop a finished stage's data, so that compacting it does not slow the next stage."""
    q = urllib.parse.urlencode({"q": f'DROP DATABASE "{db}"'})
    urllib.request.urlopen(f"{influx.url}/query?{q}", data=b"", timeout=60).read()


def proc_rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Monitor:
    """The monitor as its own process against the bench's servers."""

    def __init__(
        self,
        tmp: Path,
        broker: Mosquitto,
        influx: InfluxDB,
        db: str,
        name: str,
        config: Path | None = None,
        **env: str,
    ) -> None:
        self.http_port = free_port()
        self.broker_port, self.client_id = broker.port, name
        self.log = tmp / f"{name}.log"
        e = {
            **os.environ,
            "MONITOR_MQTT__PORT": str(broker.port),
            "MONITOR_INFLUX__URL": influx.url,
            "MONITOR_INFLUX__DATABASE": db,
            "MONITOR_STATE_DIR": str(tmp / f"state-{name}"),
            "MONITOR_MQTT__CLIENT_ID": name,
            "MONITOR_HTTP__PORT": str(self.http_port),
            "MONITOR_NOTIFY__ROUTES": "[]",
            **env,
        }
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "monitor",
                    "run",
                    "-c",
                    str(config or ROOT / "config" / "monitor.yaml"),
                    "--log-level",
                    "warning",
                ],
                env=e,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=1):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1.0)  # subscribed

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        load.forget_session(self.broker_port, self.client_id)


# -- the measurements ---------------------------------------------------------------------


def ceiling_and_e2e(
    tmp: Path, broker: Mosquitto, influx: InfluxDB, n: int, pubs: int, rounds: int
) -> dict[str, Any]:
    """`rounds` alternating runs of the ceiling and the monitor on the same stream; the
    medians are reported (wall-clock rates on a shared 2-core machine vary by +-15 %)."""
    per = n // pubs
    total = per * pubs
    base = int(time.time() * 1000) - 3_600_000
    streams = [(TOPIC.format(device=f"bench-{d:02d}"), payloads(d, per, base)) for d in range(pubs)]
    ceilings, rates, cpus = [], [], []
    for r in range(rounds):
        ceilings.append(ceiling_rate(broker.port, streams, total))

        db = f"e2e{r}"
        mon = Monitor(tmp, broker, influx, db, f"bench-e2e-{r}")
        cpu0 = proc_cpu_s(mon.proc.pid)
        t0 = publish(broker.port, streams)
        while count(influx.url, db) < total:
            time.sleep(0.02)
        rates.append(total / (time.perf_counter() - t0))
        cpus.append((proc_cpu_s(mon.proc.pid) - cpu0) / total * 100_000)
        mon.stop()
        drop(influx, db)
    return {
        "messages": total,
        "rounds": rounds,
        "ceiling_msg_s": statistics.median(ceilings),
        "e2e_msg_s": statistics.median(rates),
        "cpu_s_per_100k": statistics.median(cpus),
        "ceiling_runs": ceilings,
        "e2e_runs": rates,
    }


def influx_ceiling(influx: InfluxDB, points: int = 200_000) -> float:
    urllib.request.urlopen(f"{influx.url}/query?q=CREATE+DATABASE+ceiling", data=b"")
    base = int(time.time() * 1000) - 3_600_000
    batches = []
    for b in range(points // 5000):
        lines = [
            f"xray_scanner,area=a,device=d{i % 50},site=s tube_voltage_kv={140 + i % 9}.5,"
            f'scans_total={i}i,state="busy" {base + b * 5000 + i}'
            for i in range(5000)
        ]
        batches.append(gzip.compress("\n".join(lines).encode(), 1))
    t0 = time.perf_counter()
    for body in batches:
        req = urllib.request.Request(
            f"{influx.url}/write?db=ceiling&precision=ms",
            data=body,
            headers={"Content-Encoding": "gzip"},
        )
        urllib.request.urlopen(req).read()
    rate = points / (time.perf_counter() - t0)
    drop(influx, "ceiling")
    return rate


def _load_publisher(port: int, rate: float, seconds: float, index: int) -> None:
    """A QoS 1 load generator process (one Python publisher tops out near 12k msg/s)."""
    sys.path.insert(0, str(ROOT))
    from tests.helpers import Publisher

    pub = Publisher(port, f"load-{index}-{os.getpid()}")
    base = int(time.time() * 1000)
    started = time.monotonic()
    n = int(rate * seconds)
    for i in range(n):
        pub.publish(
            TOPIC.format(device=f"load-{index:02d}"),
            json.dumps({"ts": base + i, "scans_total": i, "tube_voltage_kv": 150.5}),
        )
        ahead = (i + 1) / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    pub.close()


def latency(
    tmp: Path, broker: Mosquitto, influx: InfluxDB, offered: float, seconds: float = 12
) -> dict[str, float]:
    """Probes every 100 ms under `offered` msg/s of load; each probe's latency is the time
    from its publish to the moment a query first returns it."""
    db = f"lat{int(offered)}"
    mon = Monitor(tmp, broker, influx, db, f"bench-lat-{int(offered)}")
    procs = max(1, int(offered // 2500))
    loaders = [
        multiprocessing.Process(
            target=_load_publisher, args=(broker.port, offered / procs, seconds, i)
        )
        for i in range(procs)
    ]
    for p in loaders:
        p.start()
    sys.path.insert(0, str(ROOT))
    from tests.helpers import Publisher

    probe = Publisher(broker.port, "probe")
    lat: list[float] = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        sent = time.time()
        ts = int(sent * 1000) * 10 + i % 10  # unique per probe
        probe.publish(TOPIC.format(device="probe"), json.dumps({"ts": ts // 10, "scans_total": i}))
        while time.time() - sent < 5:
            got = query(
                influx.url,
                db,
                "SELECT scans_total FROM xray_scanner WHERE"
                f" device = 'probe' AND scans_total = {i}",
            )
            if got:
                lat.append(time.time() - sent)
                break
            time.sleep(0.01)
        i += 1
        time.sleep(0.1)
    for p in loaders:
        p.join()
    probe.close()
    mon.stop()
    drop(influx, db)
    lat.sort()
    return {
        "offered_msg_s": offered,
        "probes": len(lat),
        "p50_s": statistics.median(lat) if lat else float("nan"),
        "p99_s": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
    }


def memory(tmp: Path, broker: Mosquitto, influx: InfluxDB, devices: int) -> float:
    """The monitor's RSS once `devices` devices (discovered on canonical topics) reported
    twice (the second round finds every per-device structure already built). They report
    at 10k msg/s, as devices spread over their intervals do: a burst of 20,000 at once
    would measure the in-flight window (about 1 KiB per unacknowledged message), not the
    devices."""
    mon = Monitor(
        tmp,
        broker,
        influx,
        f"mem{devices}",
        f"bench-mem-{devices}",
    )
    base = int(time.time() * 1000)
    step = 1000
    for round_ in range(2):
        for first in range(0, devices, step):
            started = time.monotonic()
            load.publish_all(
                broker.port,
                [
                    (
                        TOPIC.format(device=f"m{d:05d}"),
                        json.dumps(
                            {"ts": base + round_, "scans_total": round_, "tube_voltage_kv": 150.5}
                        ).encode(),
                    )
                    for d in range(first, min(devices, first + step))
                ],
                f"bench-mem-load-{devices}",
            )
            time.sleep(max(0.0, step / 10_000 - (time.monotonic() - started)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # every device's second point stored
        got = query(influx.url, f"mem{devices}", "SELECT count(scans_total) FROM xray_scanner")
        if got and got[0]["values"][0][1] >= 2 * devices:
            break
        time.sleep(0.5)
    time.sleep(1)
    rss = proc_rss_mib(mon.proc.pid)
    mon.stop()
    drop(influx, f"mem{devices}")
    return rss


def alert_latency(devices: int, trials: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.alert_latency",
            "--devices",
            str(devices),
            "--trials",
            str(trials),
            "--timeout",
            "10",
            "--interval",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    data = json.loads(out.stdout[out.stdout.index("{") :])
    return dict(data["latency_beyond_timeout_s"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    args = ap.parse_args()
    n = 40_000 if args.quick else 200_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    broker, influx = Mosquitto(tmp / "mosquitto"), InfluxDB(tmp / "influxd")
    broker.start()
    influx.start()
    results: dict[str, Any] = {}
    try:
        # Latency first: InfluxDB compacting the throughput runs' data would slow it.
        print("measuring latency under load ...", flush=True)
        results["latency"] = [
            latency(tmp, broker, influx, r, 12 if args.quick else 30) for r in (1000, 10_000)
        ]
        print("measuring the ceilings and the monitor end to end ...", flush=True)
        results["influx_ceiling_points_s"] = influx_ceiling(influx)
        results["throughput"] = ceiling_and_e2e(tmp, broker, influx, n, 4, 1 if args.quick else 3)
        print("measuring memory per device ...", flush=True)
        sizes = (100, 2000) if args.quick else (100, 2000, 20_000)
        results["rss_mib"] = {str(d): memory(tmp, broker, influx, d) for d in sizes}
        print("measuring the drain of a backlog, start-up included ...", flush=True)
        backlog = 20_000 if args.quick else 100_000
        results["drain"] = drain.drain(tmp, broker, influx, backlog, 1 if args.quick else 3)
        print("measuring small in-flight windows ...", flush=True)
        results["windows"] = drain.small_windows(tmp, broker, influx)
        print("measuring collectors sharing the load ...", flush=True)
        results["collectors"] = [
            drain.collectors(tmp, broker, influx, backlog, k) for k in (1, 2, 4)
        ]
    finally:
        influx.stop()
        broker.stop()
    print("measuring alert latency ...", flush=True)
    results["alert_latency_2000_devices"] = alert_latency(
        200 if args.quick else 2000, 3 if args.quick else 10
    )
    report(results)
    path = ROOT / "bench" / "results.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


def report(r: dict[str, Any]) -> None:
    t = r["throughput"]
    rows = [
        ("mosquitto_sub (ceiling), QoS 1", f"{t['ceiling_msg_s']:,.0f} msg/s", "1.00"),
        ("InfluxDB, 5000-point batches", f"{r['influx_ceiling_points_s']:,.0f} points/s", "-"),
        (
            "monitor end to end, QoS 1, ack after write",
            f"{t['e2e_msg_s']:,.0f} msg/s",
            f"{t['e2e_msg_s'] / t['ceiling_msg_s']:.2f}",
        ),
        (
            f"  each of the {t['rounds']} runs (ceiling / monitor, k msg/s)",
            " ".join(
                f"{c / 1000:.0f}/{m / 1000:.0f}"
                for c, m in zip(t["ceiling_runs"], t["e2e_runs"], strict=True)
            ),
            "-",
        ),
        ("monitor CPU per 100k messages", f"{t['cpu_s_per_100k']:.2f} s", "-"),
    ]
    for lat in r["latency"]:
        rows.append(
            (
                f"latency at {lat['offered_msg_s']:,.0f} msg/s offered, {lat['probes']} probes"
                " (p50 / p99)",
                f"{lat['p50_s'] * 1000:.0f} ms / {lat['p99_s'] * 1000:.0f} ms",
                "-",
            )
        )
    a = r["alert_latency_2000_devices"]
    rows.append(
        (
            "alert latency beyond timeout (median / worst)",
            f"{a['median']:.3f} s / {a['worst']:.3f} s",
            "-",
        )
    )
    rss = r["rss_mib"]
    for d, v in rss.items():
        rows.append((f"RSS at {int(d):,} devices", f"{v:.1f} MiB", "-"))
    sizes = sorted(rss, key=int)
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        per = (rss[hi] - rss[lo]) * 1024 * 1024 / (int(hi) - int(lo))
        rows.append(("memory per device", f"{per / 1024:.2f} KiB", "-"))
    d = r["drain"]
    m = d["median"]
    rows += [
        (
            f"drain {d['messages'] // 1000}k backlog, start-up included (monitor)",
            f"{m['msg_s']:,.0f} msg/s",
            f"{m['ratio']:.2f}",
        ),
        (
            f"  each of the {len(d['runs'])} runs (mosquitto_sub / monitor, k msg/s)",
            " ".join(f"{x['ceiling_msg_s'] / 1000:.0f}/{x['msg_s'] / 1000:.0f}" for x in d["runs"]),
            "-",
        ),
        ("  first point after process start", f"{m['first_point_s']:.2f} s", "-"),
        ("  peak RSS (largest of the runs)", f"{d['max_peak_rss_mib']:.0f} MiB", "-"),
        ("  CPU per 100k messages, start-up included", f"{m['cpu_s_per_100k']:.2f} s", "-"),
    ]
    for w in r["windows"]:
        rows.append(
            (
                f"backlog through a window of {w['window']} (capped by the {w['capped_by']})",
                f"{w['msg_s']:,.0f} msg/s",
                "-",
            )
        )
    for c in r["collectors"]:
        rows.append(
            (
                f"{c['collectors']} collector(s) draining {c['messages'] // 1000}k, CPU/100k",
                f"{c['msg_s']:,.0f} msg/s, {c['cpu_s_per_100k']:.2f} s",
                "-",
            )
        )
    width = max(len(x[0]) for x in rows)
    print(f"\n{'measure':<{width}}  {'value':>24}  monitor/ceiling")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>24}  {ratio}")


if __name__ == "__main__":
    main()
