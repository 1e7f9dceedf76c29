"""Draining a backlog, start-up included: what the monitor costs after an outage.

    python -m bench.drain [--messages 100000] [--runs 3] [--receive-maximum N]
                          [--windows] [--collectors]

For each run: N QoS 1 messages of canonical scanner telemetry are queued in the broker for
a persistent session while its subscriber is away, then the subscriber is started and
timed until it has them all. The subscriber is ``mosquitto_sub`` (the ceiling) and the
monitor as its own process, from ``Popen`` to the last point queryable in InfluxDB; for
the monitor also: when its first point was queryable, its peak RSS and its CPU seconds per
100k messages (start-up included). Prints one line per run and the medians.

``--windows``: a backlog through a small in-flight window (the monitor's receive_maximum
1 on mosquitto; a broker capping it at 1 and at 32, ``bench.windowed``), the monitor
already connected. ``--collectors``: 1, 2 and 4 collectors owning 4 sites between them
(``mqtt.topics``), draining one backlog together, start-up included; CPU for them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import load
from bench.e2e_rate import payloads, proc_cpu_s
from bench.windowed import WindowedBroker
from monitor.sim.devservers import InfluxDB, Mosquitto, Postgres, free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "monitor.yaml"
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


class Monitors:
    """Monitor processes against the bench's servers: started together, timed together."""

    def __init__(self, tmp: Path, broker_port: int, influx: InfluxDB, db: str) -> None:
        self.tmp, self.broker_port, self.influx, self.db = tmp, broker_port, influx, db
        self.procs: list[subprocess.Popen[bytes]] = []
        self.clients: list[str] = []
        self.started = 0.0

    def start(self, client: str, **env: str) -> None:
        if not self.procs:
            self.started = time.perf_counter()
        self.clients.append(client)
        with open(self.tmp / f"{client}.log", "wb") as log:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "monitor", "run", "-c", str(CONFIG)],
                    env={
                        **os.environ,
                        "MONITOR_MQTT__PORT": str(self.broker_port),
                        "MONITOR_MQTT__CLIENT_ID": client,
                        "MONITOR_INFLUX__URL": self.influx.url,
                        "MONITOR_INFLUX__DATABASE": self.db,
                        "MONITOR_STATE_DIR": str(self.tmp / f"state-{client}"),
                        "MONITOR_HTTP__PORT": str(free_port()),
                        "MONITOR_NOTIFY__ROUTES": "[]",
                        **env,
                    },
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            )

    def wait_log(self, needle: str, timeout: float = 30) -> None:
        """Until every monitor's log has ``needle`` (e.g. ``event=mqtt.connected``)."""
        deadline = time.monotonic() + timeout
        for client in self.clients:
            path = self.tmp / f"{client}.log"
            while needle not in path.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{client}: no {needle!r} in {path}")
                time.sleep(0.02)

    def wait_stored(self, n: int, since: float | None = None) -> dict[str, float]:
        """Until n points are queryable: the seconds since ``since`` (default: the first
        start) to the first and to the last, the largest peak RSS, CPU per 100k (all)."""
        since = self.started if since is None else since
        url, first = self.influx.url, None
        while (got := written(url, self.db)) < n:
            if first is None and got:
                first = time.perf_counter() - since
            if time.perf_counter() - since > 600 or any(p.poll() is not None for p in self.procs):
                raise SystemExit(f"only {got} of {n} stored (logs in {self.tmp})")
            time.sleep(0.01)
        # influxd's counter includes the monitors' own points: the count says when it is all
        while (stored := count(url, self.db)) < n and time.perf_counter() - since < 600:
            time.sleep(0.01)
        elapsed = time.perf_counter() - since
        if stored != n:
            raise SystemExit(f"{stored} points stored for {n} messages (logs in {self.tmp})")
        rss = max(peak_rss_mib(p.pid) for p in self.procs)
        cpu = sum(proc_cpu_s(p.pid) for p in self.procs)
        return {
            "msg_s": n / elapsed,
            "first_point_s": first if first is not None else elapsed,
            "peak_rss_mib": rss,
            "cpu_s_per_100k": cpu / n * 100_000,
        }

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(60)


def monitor(
    tmp: Path,
    broker: Mosquitto,
    influx: InfluxDB,
    messages: list[tuple[str, bytes]],
    run: int,
    receive_maximum: int,
    store_url: str | None = None,
) -> dict[str, float]:
    """The monitor draining the backlog, from process start to the last point queryable;
    with ``store_url``, its state in that PostgreSQL (as the leader of a group)."""
    client = f"bench-drain-monitor-{run}{'-pg' if store_url else ''}"
    load.prime_session(broker.port, client, SUBSCRIPTIONS)
    queue(broker.port, messages)
    monitors = Monitors(tmp, broker.port, influx, f"drain{run}{'pg' if store_url else ''}")
    env = {"MONITOR_MQTT__RECEIVE_MAXIMUM": str(receive_maximum)}
    if store_url is not None:
        env["MONITOR_STORE__URL"] = store_url
    monitors.start(client, **env)
    try:
        return monitors.wait_stored(len(messages))
    finally:
        monitors.stop()
        load.forget_session(broker.port, client)


# (who caps the window, its size, backlog): the targets are >= 150 and >= 3,000 msg/s
WINDOWS = [("monitor", 1, 300), ("broker", 1, 300), ("broker", 32, 6000)]


@contextlib.contextmanager
def windowed_broker(upstream_port: int, window: int) -> Iterator[WindowedBroker]:
    """A WindowedBroker served from a thread of its own, for the blocking bench code."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with WindowedBroker(upstream_port, window) as proxy:
            box.update(proxy=proxy, loop=asyncio.get_running_loop(), stop=asyncio.Event())
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise SystemExit("the windowed broker did not start")
    try:
        yield box["proxy"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


def small_windows(tmp: Path, broker: Mosquitto, influx: InfluxDB) -> list[dict[str, Any]]:
    """A backlog through a small window, the monitor connected: published at once by a
    fast publisher, timed from the first publish to the last point queryable."""
    out = []
    for k, (capped_by, window, n) in enumerate(WINDOWS):
        messages = backlog(n)
        with contextlib.ExitStack() as stack:
            port, env = broker.port, {"MONITOR_MQTT__RECEIVE_MAXIMUM": str(window)}
            if capped_by == "broker":
                port, env = stack.enter_context(windowed_broker(broker.port, window)).port, {}
            monitors = Monitors(tmp, port, influx, f"window{k}")
            monitors.start(f"bench-window-{k}", **env)
            stack.callback(monitors.stop)
            monitors.wait_log("event=mqtt.connected")
            started = time.perf_counter()
            queue(broker.port, messages)
            result = monitors.wait_stored(n, since=started)
        out.append({"capped_by": capped_by, "window": window, "messages": n, **result})
    return out


SITES = ["aktau", "kuryk", "atyrau", "beineu"]
SITE_TOPIC = "customs/{site}/inspection-1/xray_scanner/{device}/telemetry"


def collectors(tmp: Path, broker: Mosquitto, influx: InfluxDB, n: int, k: int) -> dict[str, Any]:
    """k collectors sharing 4 sites (``mqtt.topics``), draining one backlog of n messages
    from their persistent sessions, start-up included."""
    per_site = n // len(SITES)
    messages = []
    for site in SITES:
        for topic, payload in backlog(per_site):
            device = f"{site}-{topic.split('/')[4]}"
            messages.append((SITE_TOPIC.format(site=site, device=device), payload))
    owned = [SITES[i::k] for i in range(k)]
    clients = [f"bench-collector-{k}-{i}" for i in range(k)]
    for client, sites in zip(clients, owned, strict=True):
        load.prime_session(broker.port, client, [f"customs/{s}/#" for s in sites])
    queue(broker.port, messages)
    monitors = Monitors(tmp, broker.port, influx, f"collectors{k}")
    try:
        for client, sites in zip(clients, owned, strict=True):
            monitors.start(
                client, MONITOR_MQTT__TOPICS=json.dumps([f"customs/{s}/#" for s in sites])
            )
        result = monitors.wait_stored(len(messages))
    finally:
        monitors.stop()
        for client in clients:
            load.forget_session(broker.port, client)
    return {"collectors": k, "messages": len(messages), **result}


@contextlib.contextmanager
def servers() -> Iterator[tuple[Path, Mosquitto, InfluxDB]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    broker, influx = Mosquitto(tmp / "mosquitto"), InfluxDB(tmp / "influxd")
    broker.start()
    influx.start()
    try:
        yield tmp, broker, influx
    finally:
        influx.stop()
        broker.stop()


def drain(
    tmp: Path,
    broker: Mosquitto,
    influx: InfluxDB,
    n: int,
    runs: int,
    receive_maximum: int = 20_000,
    quiet: bool = False,
    postgres: Postgres | None = None,
) -> dict[str, Any]:
    """``runs`` alternating runs of mosquitto_sub and the monitor on the same backlog;
    with ``postgres``, also the monitor with its state there (``pg_*`` figures)."""
    messages = backlog(n)
    rows = []
    for run in range(runs):
        ceil = ceiling(broker, messages, run)
        mon = monitor(tmp, broker, influx, messages, run, receive_maximum)
        row = {"ceiling_msg_s": ceil, **mon, "ratio": mon["msg_s"] / ceil}
        if postgres is not None:
            url = postgres.create_database(f"drain{run}")
            pg = monitor(tmp, broker, influx, messages, run, receive_maximum, url)
            row |= {f"pg_{k}": v for k, v in pg.items()} | {"pg_ratio": pg["msg_s"] / ceil}
        rows.append(row)
        if not quiet:
            print(
                f"run {run + 1}: mosquitto_sub {ceil:8,.0f} msg/s   monitor"
                f" {mon['msg_s']:8,.0f} msg/s = {row['ratio']:.2f}   first point"
                f" {mon['first_point_s']:.2f} s   peak RSS {mon['peak_rss_mib']:.0f} MiB"
                f"   CPU {mon['cpu_s_per_100k']:.2f} s/100k",
                flush=True,
            )
            if postgres is not None:
                print(
                    f"       on PostgreSQL: monitor {row['pg_msg_s']:8,.0f} msg/s ="
                    f" {row['pg_ratio']:.2f}   first point {row['pg_first_point_s']:.2f} s"
                    f"   CPU {row['pg_cpu_s_per_100k']:.2f} s/100k",
                    flush=True,
                )
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
    ap.add_argument("--windows", action="store_true", help="also the small in-flight windows")
    ap.add_argument("--collectors", action="store_true", help="also 1, 2 and 4 collectors")
    ap.add_argument("--postgres", action="store_true", help="also with store.url (SPEC 8.1)")
    args = ap.parse_args()
    with servers() as (tmp, broker, influx), contextlib.ExitStack() as stack:
        pg = None
        if args.postgres:
            pg = Postgres(tmp / "postgres")
            pg.start()
            stack.callback(pg.stop)
        result = drain(
            tmp, broker, influx, args.messages, args.runs, args.receive_maximum, postgres=pg
        )
        m = result["median"]
        if pg is not None:
            print(
                f"median on PostgreSQL: monitor {m['pg_msg_s']:,.0f} msg/s ="
                f" {m['pg_ratio']:.2f} of mosquitto_sub (SQLite {m['ratio']:.2f}), first point"
                f" {m['pg_first_point_s']:.2f} s (SQLite {m['first_point_s']:.2f} s)"
            )
        print(
            f"median: mosquitto_sub {m['ceiling_msg_s']:,.0f} msg/s, monitor {m['msg_s']:,.0f}"
            f" msg/s = {m['ratio']:.2f}, first point {m['first_point_s']:.2f} s, peak RSS"
            f" {m['peak_rss_mib']:.0f} MiB (max {result['max_peak_rss_mib']:.0f}), CPU"
            f" {m['cpu_s_per_100k']:.2f} s/100k"
        )
        if args.windows:
            for w in small_windows(tmp, broker, influx):
                print(
                    f"window {w['window']} (capped by the {w['capped_by']}):"
                    f" {w['msg_s']:,.0f} msg/s over {w['messages']:,} messages"
                )
        if args.collectors:
            for k in (1, 2, 4):
                c = collectors(tmp, broker, influx, args.messages, k)
                print(
                    f"{k} collector(s): {c['msg_s']:,.0f} msg/s, start-up included; CPU"
                    f" {c['cpu_s_per_100k']:.2f} s/100k (all), peak RSS"
                    f" {c['peak_rss_mib']:.0f} MiB (largest)"
                )


if __name__ == "__main__":
    main()
