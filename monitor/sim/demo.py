"""The one-command local demo (``make demo``): everything on this machine, nothing leaves it.

A private mosquitto and InfluxDB (data under ./var/demo, no system service touched), the
monitor with its status board, the simulated Aktau post from config/monitor.yaml, and a
scripted incident: a container scanner goes silent after ~30 s and recovers later.
Alerts go to the monitor's log and to a local webhook that prints them here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from aiohttp import web

from monitor.sim.devservers import InfluxDB, Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "monitor.yaml"
TOKEN = "demo-token"
INCIDENT_DEVICE = "xs-01"
BACKFILL = "24h"  # the simulator replays the past day first: reports and boards have a day
PAST_OUTAGE = (14, 10)
SPARKPLUG_NODE = "rail-gate-plc/plc-01=gb-05"  # gb-05 speaks Sparkplug B through plc-01
SPARKPLUG_FIELDS = {
    "Barrier/Position": {"to": "position"},
    "Barrier/Cycles": {"to": "cycles_total"},
    "Motor/Current": {"to": "motor_current_a"},
    "Barrier/Fault": {"to": "state", "map": {"true": "fault", "false": "ready"}},
}  # hours ago: the incident scanner was down yesterday, 4 h long

BOLD, RED, GREEN, YELLOW, RESET = "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[0m"
if not sys.stdout.isatty():
    BOLD = RED = GREEN = YELLOW = RESET = ""


def say(text: str) -> None:
    print(text, flush=True)


def port_or_free(preferred: int) -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


async def webhook_console(port: int) -> web.AppRunner:
    async def alert(request: web.Request) -> web.Response:
        p = await request.json()
        colour = (
            GREEN if p["state"] == "resolved" else YELLOW if p["state"] == "acknowledged" else RED
        )
        event = request.headers.get("X-Monitor-Event", p["state"])
        say(
            f"\n{colour}{BOLD}ALERT {event.upper()}{RESET} {p['summary']}"
            f"  [{p['rule']}, {p['severity']}, id {p['alert_id']}, {p['duration_s']:.0f} s]"
        )
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alerts", alert)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def start_monitor(base: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(base / "monitor.log", "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(CONFIG)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def start_simulator(
    env: dict[str, str], duration: float | None, silent_at: float, recover_at: float
) -> subprocess.Popen[bytes]:
    """The post with its trucks: yesterday first (with a scanner outage in it), then live."""
    sim_args = [
        sys.executable,
        "-m",
        "monitor",
        "simulate",
        "-c",
        str(CONFIG),
        "--seed",
        "7",
        "--backfill",
        BACKFILL,
        *("--sparkplug", SPARKPLUG_NODE),
        *("--fail", f"{INCIDENT_DEVICE}=fault@{-PAST_OUTAGE[0] * 3600:g}"),
        *("--fail", f"{INCIDENT_DEVICE}=recover@{-PAST_OUTAGE[1] * 3600:g}"),
        *("--fail", f"{INCIDENT_DEVICE}=silent@{silent_at:g}"),
        *("--fail", f"{INCIDENT_DEVICE}=recover@{recover_at:g}"),
    ]
    if duration is not None:
        sim_args += ["--duration", str(duration)]
    return subprocess.Popen(sim_args, env=env, cwd=ROOT)


def wait_subscribed(base: Path, monitor: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until the monitor is subscribed: what the simulator publishes from then on is kept
    for its session (the backfilled day, above all)."""
    deadline = time.monotonic() + timeout
    log = base / "monitor.log"
    while time.monotonic() < deadline and monitor.poll() is None:
        if "event=mqtt.connected" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)


async def watch(
    hook_port: int,
    monitor: subprocess.Popen[bytes],
    simulator: subprocess.Popen[bytes],
    duration: float | None,
) -> int:
    """Print alerts until Ctrl-C, the end of the run, or the monitor dying."""
    hook = await webhook_console(hook_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    try:
        while not stop.is_set():
            if monitor.poll() is not None:
                say(
                    f"{RED}the monitor exited ({monitor.returncode}): see var/demo/monitor.log"
                    f"{RESET}"
                )
                return 1
            if simulator.poll() is not None:
                return 0
            # the simulator ends itself; this is the bound if it cannot (its start-up and
            # the backfilled day come before its --duration)
            if duration is not None and time.monotonic() - started > duration + 60:
                return 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()
        return 0
    finally:
        await hook.cleanup()


def wait_listening(url: str, monitor: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until the monitor answers on its API (200 or 503: either way it is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and monitor.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)


def run(base: Path, duration: float | None, silent_at: float, recover_at: float) -> int:
    base.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(base / "mosquitto", port=port_or_free(1883))
    influx = InfluxDB(base / "influxdb", port=port_or_free(8086))
    http_port = port_or_free(8080)
    hook_port = free_port()
    board = f"http://127.0.0.1:{http_port}"
    say(f"{BOLD}Starting the demo{RESET} (data under {base})")
    broker.start()
    influx.start()
    say(f"  mosquitto  127.0.0.1:{broker.port}")
    say(f"  InfluxDB   {influx.url}  (database customs)")
    env = {
        **os.environ,
        "MONITOR_MQTT__PORT": str(broker.port),
        "MONITOR_MQTT__CLIENT_ID": "monitor-demo",
        "MONITOR_INFLUX__URL": influx.url,
        "MONITOR_STATE_DIR": str(base / "state"),
        "MONITOR_HTTP__PORT": str(http_port),
        "MONITOR_HTTP__TOKEN": TOKEN,
        # a shorter scanner timeout than the post's 60 s, so the incident shows up sooner
        "MONITOR_ALERTS__KINDS__XRAY_SCANNER__NO_DATA_TIMEOUT": "20s",
        # the rail gate's barrier behind a Sparkplug B PLC gateway (SPEC 3.4)
        "MONITOR_SPARKPLUG__ENABLED": "true",
        "MONITOR_SPARKPLUG__GROUPS": '{"rail-gate-plc": {}}',
        "MONITOR_SPARKPLUG__FIELDS": json.dumps(SPARKPLUG_FIELDS),
        # truck passages (SPEC 9): a demo's plate key; a real one is secret
        "MONITOR_PASSAGES__PLATE_KEY": "demo-plate-key-not-for-production",
        "MONITOR_PASSAGES__STAGES": '{"inspection": ["inspection-1"]}',
        "MONITOR_NOTIFY__ROUTES": (
            '[{"name": "demo-console", "channels": ["webhook:http://127.0.0.1:'
            f'{hook_port}/alerts"], "repeat_interval": "10m"}}]'
        ),
    }
    monitor = start_monitor(base, env)
    wait_subscribed(base, monitor)
    simulator = start_simulator(env, duration, silent_at, recover_at)
    wait_listening(board, monitor)
    say(f"""
{BOLD}Running.{RESET}
  Status board   {BOLD}{board}/{RESET}   (token for its Acknowledge button: {TOKEN})
  Alerts         printed here as they happen; also: .venv/bin/monitor alerts --url {board}
  Devices        .venv/bin/monitor devices --url {board}
  Health         curl {board}/health
  Data           influx -port {influx.port} -database customs -execute 'SHOW MEASUREMENTS'
  Monitor log    {base / "monitor.log"}

{BOLD}The incident:{RESET} {INCIDENT_DEVICE} (container scanner, inspection-1) goes silent at
{silent_at:g} s, is alerted 20 s later (its no_data timeout), and recovers at {recover_at:g} s.
{BOLD}Trucks:{RESET} the past {BACKFILL} are replayed first, with {INCIDENT_DEVICE} down from
{PAST_OUTAGE[0]} to {PAST_OUTAGE[1]} h ago (inspected trucks waited); release time per site
(from the demo's InfluxDB, not the config's):
  MONITOR_INFLUX__URL={influx.url} .venv/bin/monitor report release-time --since 24h
Press Ctrl-C to stop everything.
""")
    try:
        return asyncio.run(watch(hook_port, monitor, simulator, duration))
    finally:
        say(f"\n{BOLD}Stopping{RESET} ...")
        for proc in (simulator, monitor):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (simulator, monitor):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        influx.stop()
        broker.stop()
        say(f"stopped; data kept under {base} (delete it to start afresh)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    ap.add_argument("--silent-at", type=float, default=30)
    ap.add_argument("--recover-at", type=float, default=120)
    ap.add_argument("--dir", type=Path, default=ROOT / "var" / "demo", help="where data goes")
    args = ap.parse_args()
    sys.exit(run(args.dir.resolve(), args.duration, args.silent_at, args.recover_at))


if __name__ == "__main__":
    main()
