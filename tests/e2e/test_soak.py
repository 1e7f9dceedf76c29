"""A randomized fault soak: devices publishing in every shipped format, a seeded schedule of
faults, and at the end what must hold whatever happened:

- every message the broker acknowledged to its publisher is in InfluxDB: once per message
  where the message has a time of its own, at least once where it has not (a message
  redelivered after a SIGKILL gets a new receive time);
- no device alert for a device that never stopped publishing;
- no outage hidden: every device that stopped while the others talked was notified (a
  second site reuses the first's device ids; each is its own device);
- no notification held behind a refused one: the webhook refuses every message about one
  device, and the next outage is still told within its timeout and a few seconds; a
  refused message is tried at most 3 times;
- a device forgotten (DELETE /api/devices) is gone until it publishes again;
- bad maintenance windows are refused (4xx) and change nothing;
- the monitor always comes back, and exits 0 on SIGTERM within its bound;
- its memory stays bounded.

``make test`` runs one short seed; ``make soak`` runs ten minutes for each of three seeds
(``SOAK_SECONDS``, ``SOAK_SEEDS``). A failure names its seed: ``SOAK_SEEDS=<seed> make soak``
replays it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import (
    SHIPPED_CONFIG,
    MonitorProcess,
    Publisher,
    SmallDisk,
    SteppedClock,
    Webhook,
    rows,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.soak]

SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))
SEEDS = [int(s) for s in os.environ.get("SOAK_SEEDS", "20261126").split(",")]
TIMEOUT_S = 6  # the devices' no_data timeout
PERIOD_S = 0.1  # each device publishes this often
MAX_RSS_MIB = 150
DEVICE_RULES = ("no_data", "offline", "fault", "site_silent")
FAULTS = (
    *("broker", "influx", "sigstop", "sigkill", "sigterm", "disk", "clock", "calm"),
    *("outage", "refused", "forget", "windows"),  # what people and devices do meanwhile
)
TOKEN = "soak-token"
REFUSED = "bad-01"  # the webhook refuses every message about it (400)
FLEETING = "tmp-01"  # a one-off publish, forgotten, published again
TOLD_WITHIN_S = TIMEOUT_S + 12  # an outage is told this soon, refused messages or not


def soak_config(path: Path, broker: Mosquitto, influx: InfluxDB, db: str, hook: Webhook) -> Path:
    shipped = yaml.safe_load(SHIPPED_CONFIG.read_text())
    path.write_text(
        yaml.safe_dump(
            {
                "mqtt": {
                    "port": broker.port,
                    "client_id": "monitor-soak",
                    "reconnect": {"initial": "100ms", "max": "1s"},
                },
                "influx": {"url": influx.url, "database": db, "retry": {"max": "1s"}},
                "state_dir": str(path.parent / "state"),
                "http": {"port": free_port()},
                "status_interval": "1s",
                "stats_interval": "2s",
                "stop_timeout": "10s",
                "spool_max_bytes": "4MiB",
                "alerts": {
                    "broker_down_after": "5s",
                    "kinds": {
                        kind: {"no_data_timeout": f"{TIMEOUT_S}s"}
                        for kind in ("xray_scanner", "gate_barrier")
                    },
                },
                "notify": {"routes": [{"name": "all", "channels": [f"webhook:{hook.url}"]}]},
                "profiles": shipped["profiles"],
                # Kuryk's xs-01 is another device than Aktau's (SPEC 2); the entries say
                # they speak canonical, so the vendor profile's siteless topic is Aktau's
                # xs-03 alone
                "devices": [
                    {"id": d, "kind": k, "site": site, "area": a, **extra}
                    for site, d, k, a, extra in (
                        (
                            "aktau",
                            "xs-01",
                            "xray_scanner",
                            "inspection-1",
                            {"profile": "canonical"},
                        ),
                        ("aktau", "xs-02", "xray_scanner", "inspection-1", {}),
                        ("aktau", "xs-03", "xray_scanner", "inspection-2", {}),
                        ("aktau", "gb-03", "gate_barrier", "gate-out", {}),
                        (
                            "kuryk",
                            "xs-01",
                            "xray_scanner",
                            "inspection-1",
                            {"profile": "canonical"},
                        ),
                    )
                ],
            }
        )
    )
    return path


class Device:
    """One device publishing message ``seq`` after ``seq``, QoS 1, from its own thread;
    ``acked`` holds the seqs the broker acknowledged."""

    def __init__(self, port: int, name: str, message: Callable[[int], tuple[str, str]]) -> None:
        self.name, self.message = name, message  # name: site/id
        self.pub = Publisher(port, f"soak-{name.replace('/', '-')}")
        self.paused = threading.Event()  # a planned outage: it says nothing meanwhile
        self.pub.client.on_publish = self._puback
        self.seq_of: dict[int, int] = {}  # packet id -> seq (fewer than 65535 per run)
        self.acked_mids: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _puback(self, client: Any, userdata: Any, mid: int, *args: Any) -> None:
        self.acked_mids.add(mid)

    def _run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(PERIOD_S)
                continue
            topic, payload = self.message(seq)
            # published while the broker is away, paho keeps it and sends it on reconnect
            self.seq_of[self.pub.publish(topic, payload).mid] = seq
            seq += 1
            time.sleep(PERIOD_S)

    def acked(self) -> set[int]:
        """The seqs the broker acknowledged (after the publishers are given time to finish)."""
        return {self.seq_of[mid] for mid in self.acked_mids if mid in self.seq_of}


def devices(port: int) -> list[Device]:
    return [
        Device(
            port,
            "aktau/xs-01",  # canonical, its own time
            lambda i: (
                "customs/aktau/inspection-1/xray_scanner/xs-01/telemetry",
                json.dumps({"ts": int(time.time() * 1000), "scans_total": i, "state": "ready"}),
            ),
        ),
        Device(
            port,
            "aktau/xs-02",  # canonical, no time: stamped when received
            lambda i: (
                "customs/aktau/inspection-1/xray_scanner/xs-02/telemetry",
                json.dumps({"scans_total": i}),
            ),
        ),
        Device(
            port,
            "aktau/xs-03",  # vendor X: its own time, volts, °F, a status code
            lambda i: (
                "scanners/xs-03/data",
                json.dumps(
                    {"time": int(time.time() * 1000), "devStatus": 2, "hv": 140000, "scanCount": i}
                ),
            ),
        ),
        Device(
            port,
            "aktau/gb-03",  # the PLC gateway's plain values: never a time
            lambda i: ("plc/aktau/gb-03/cycles", str(i)),
        ),
        Device(
            port,
            "kuryk/xs-01",  # the second post's xs-01: the same id, another device
            lambda i: (
                "customs/kuryk/inspection-1/xray_scanner/xs-01/telemetry",
                json.dumps({"ts": int(time.time() * 1000), "scans_total": i, "state": "ready"}),
            ),
        ),
    ]


def stored(influx: InfluxDB, db: str) -> dict[str, Counter[int]]:
    """site/device -> how many points each seq has (scans_total or cycles_total)."""
    out: dict[str, Counter[int]] = {}
    for measurement, field in (("xray_scanner", "scans_total"), ("gate_barrier", "cycles_total")):
        q = f"SELECT {field} FROM {measurement} GROUP BY site, device"
        for r in rows(influx.url, db, q):
            if r[field] is not None:
                out.setdefault(f"{r['site']}/{r['device']}", Counter())[int(r[field])] += 1
    return out


async def told_after(d: Device, webhook: Webhook, within: float) -> float | None:
    """A planned outage: ``d`` says nothing until its no_data is notified; the seconds
    until the first notification since it stopped, or None if not within ``within``."""
    site, device = d.name.split("/")
    d.paused.set()
    stopped = time.time()

    def told() -> bool:
        return any(
            t >= stopped
            and (p["site"], p["device"], p["rule"], e) == (site, device, "no_data", "firing")
            for t, e, p in webhook.received
        )

    try:
        await wait_for(told, timeout=within, interval=0.2)
    except AssertionError:
        return None
    finally:
        d.paused.clear()
    return min(t for t, e, p in webhook.received if t >= stopped) - stopped


def call(port: int, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """The monitor's API; (status, JSON body); (0, None) while it is not there."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
    except OSError:
        return 0, None


BAD_WINDOWS: list[object] = [
    {"scope": "device", "value": "xs-01", "duration": "3000000d"},
    {"scope": "device", "value": "xs-01", "starts": "9999-12-31T00:00:00Z", "duration": "2d"},
    {"scope": "device", "value": "xs-01", "duration": "367d"},
    {"scope": "site", "value": "aktau", "starts": "1969-12-31T00:00:00Z", "duration": "1h"},
    {"scope": "area", "value": "../gate-in", "duration": "1h"},
    {"scope": "kind", "value": "toaster", "duration": "1h"},
    ["not", "an", "object"],
]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.parametrize("seed", SEEDS)
async def test_soak(
    seed: int,
    tmp_path: Path,
    small_disk: SmallDisk,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    webhook: Webhook,
) -> None:
    rng = random.Random(seed)
    config = soak_config(tmp_path / "soak.yaml", mosquitto, influxd, database, webhook)
    port = int(yaml.safe_load(config.read_text())["http"]["port"])
    clock = SteppedClock(tmp_path)
    runs = 0
    journal: list[str] = []
    rss: list[float] = []
    failures: list[str] = []
    outages: Counter[str] = Counter()  # site/id -> planned outages
    webhook.refuse = lambda payload: payload["device"] == REFUSED
    pub = Publisher(mosquitto.port, "soak-others")

    async def start() -> MonitorProcess:
        nonlocal runs
        runs += 1
        env = {**clock.env, "MONITOR_HTTP__TOKEN": TOKEN}
        mon = MonitorProcess(tmp_path / f"monitor-{runs}.log", config=config, env=env)
        await mon.wait_log("event=mqtt.connected", timeout=30)  # it always comes back
        return mon

    def note(what: str) -> None:
        journal.append(f"{time.monotonic() - began:6.1f}s {what}")

    async def outage(d: Device) -> None:
        """No outage hidden, none held behind a refused message: told in time."""
        outages[d.name] += 1
        at = time.time() - began_wall
        delay = await told_after(d, webhook, within=60)
        if delay is None:
            failures.append(f"outage of {d.name} at {at:.1f}s never told")
        else:
            note(f"  {d.name} told after {delay:.1f}s")

    def announce(device: str) -> None:  # one message of a device that is not one of ours
        pub.publish(f"customs/aktau/gate-out/xray_scanner/{device}/telemetry", "{}")

    async def step(mon: MonitorProcess) -> MonitorProcess:
        fault = rng.choice(FAULTS)
        hold = rng.uniform(1, 8)
        note(f"{fault} for {hold:.1f}s")
        if fault == "broker":
            await asyncio.to_thread(mosquitto.restart)
        elif fault == "influx":
            await asyncio.to_thread(influxd.stop)
            await asyncio.sleep(hold)
            await asyncio.to_thread(influxd.start)
        elif fault == "sigstop":
            mon.proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(hold)
            mon.proc.send_signal(signal.SIGCONT)
        elif fault in ("sigkill", "sigterm"):
            rss.append(peak_rss_mib(mon.proc.pid))
            if fault == "sigkill":
                mon.kill()
            else:
                started = time.monotonic()
                assert await asyncio.to_thread(mon.terminate, 30) == 0
                assert time.monotonic() - started < 10 + 5  # stop_timeout, and some
            await asyncio.sleep(rng.uniform(0.2, 2))
            mon = await start()
        elif fault == "disk":
            await asyncio.to_thread(small_disk.fill)
            await asyncio.sleep(hold)
            small_disk.free()
        elif fault == "clock":
            clock.step(rng.choice([-240, -120, 0, 120, 240]))  # within max_clock_skew
        elif fault == "outage":
            await outage(rng.choice(publishing[:2] + publishing[-1:]))  # xs-01 both sites
        elif fault == "refused":
            # its no_data is refused (400) and tried while the next outage is due
            announce(REFUSED)
            await asyncio.sleep(TIMEOUT_S - 1)
            await outage(rng.choice(publishing[:2] + publishing[-1:]))
        elif fault == "forget":
            announce(FLEETING)
            await wait_for(lambda: call(port, "GET", f"/api/devices/{FLEETING}")[0] == 200)
            status, _ = call(port, "DELETE", f"/api/devices/{FLEETING}")
            if status != 200 or call(port, "GET", f"/api/devices/{FLEETING}")[0] != 404:
                failures.append(f"forgetting {FLEETING}: HTTP {status}, still listed")
            announce(FLEETING)  # it speaks again: it is back
            await wait_for(lambda: call(port, "GET", f"/api/devices/{FLEETING}")[0] == 200)
        elif fault == "windows":
            before = call(port, "GET", "/api/maintenance")
            for body in BAD_WINDOWS:
                status, answer = call(port, "POST", "/api/maintenance", body)
                if not 400 <= status < 500 or not answer or not answer.get("error"):
                    failures.append(f"window {body}: HTTP {status} {answer}")
            if call(port, "GET", "/api/maintenance") != before:
                failures.append("a refused window changed the windows")
        else:
            await asyncio.sleep(hold)
        return mon

    began, began_wall = time.monotonic(), time.time()
    mon = await start()
    publishing = devices(mosquitto.port)
    for d in publishing:
        d.thread.start()
    try:
        while time.monotonic() - began < SECONDS:
            await asyncio.sleep(rng.uniform(1, 4))
            mon = await step(mon)
        note("faults over")
        for d in publishing:
            d.stop.set()
            await asyncio.to_thread(d.thread.join)
        acked = {d.name: d.acked() for d in publishing}
        # wait for everything acknowledged to be stored
        await wait_for(
            lambda: all(
                acked[name] <= set(stored(influxd, database).get(name, ())) for name in acked
            ),
            timeout=120,
        )
        rss.append(peak_rss_mib(mon.proc.pid))
        assert await asyncio.to_thread(mon.terminate, 30) == 0
        got = stored(influxd, database)
        for name, seqs in acked.items():
            missing = sorted(seqs - set(got.get(name, ())))
            if missing:
                failures.append(
                    f"{name}: {len(missing)} acknowledged messages missing {missing[:5]}"
                )
        for name in ("aktau/xs-01", "aktau/xs-03", "kuryk/xs-01"):  # own times: exactly once
            twice = sorted(s for s, n in got.get(name, Counter()).items() if n > 1)
            if twice:
                failures.append(f"{name}: stored more than once: {twice[:5]}")
        # alerts only for the devices that stopped, and one per outage
        ours = {REFUSED, FLEETING}
        q = "SELECT state FROM alerts WHERE state = 'firing' GROUP BY site, device, rule"
        alerts = Counter(
            f"{r['site']}/{r['device']}"
            for r in rows(influxd.url, database, q)
            if r["rule"] in DEVICE_RULES and r["device"] not in ours
        )
        notified = Counter(
            f"{p['site']}/{p['device']}"
            for _, e, p in webhook.received
            if e == "firing" and p["rule"] in DEVICE_RULES and p["device"] not in ours
        )
        for told_of in (alerts, notified):
            if spurious := {d: n for d, n in told_of.items() if n > outages[d]}:
                failures.append(f"device alerts beyond the outages {dict(outages)}: {spurious}")
        tries = Counter((p["alert_id"], e) for _, e, p in webhook.refused)
        if too_many := {k: n for k, n in tries.items() if n > 3}:
            failures.append(f"a refused message tried more than 3 times: {too_many}")
        if max(rss) > MAX_RSS_MIB:
            failures.append(f"peak RSS {max(rss):.0f} MiB")
        duplicates = {n: sum(c - 1 for c in got.get(n, Counter()).values()) for n in acked}
        summary: dict[str, Any] = {
            "seed": seed,
            "seconds": SECONDS,
            "runs": runs,
            "acked": {n: len(s) for n, s in acked.items()},
            "duplicates": duplicates,
            "peak_rss_mib": round(max(rss), 1),
            "outages": dict(outages),
            "refused_tries": len(webhook.refused),
        }
        print("\nSOAK", json.dumps(summary))
        assert not failures, f"soak seed {seed}: " + "; ".join(failures) + "\n" + "\n".join(journal)
    except BaseException:
        print(f"\nSOAK FAILED: seed {seed} (replay: SOAK_SEEDS={seed} make soak)")
        print("\n".join(journal))
        raise
    finally:
        pub.close()
        for d in publishing:
            d.stop.set()
            d.pub.close()
        if mon.proc.poll() is None:
            mon.proc.send_signal(signal.SIGCONT)
