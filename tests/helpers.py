"""Test helpers: a real MQTT publisher, InfluxDB queries, the monitor in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import paho.mqtt.client as paho
import pytest
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from monitor import app
from monitor.config import Config, load_config
from monitor.sim.devservers import free_port
from monitor.stats import Stats
from monitor.web.api import Api

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "config" / "monitor.yaml"


class ManualClock:
    """A Clock that moves only when told: ``advance`` moves both clocks, ``step`` only the
    wall clock (as NTP does)."""

    def __init__(self, t: float = 1_790_000_000.0) -> None:
        self.wall, self.mono = t, t

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.wall += seconds


def influx_query(url: str, db: str, q: str) -> list[dict[str, Any]]:
    """Series of an InfluxQL query (epoch ms timestamps)."""
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as r:
        body = json.load(r)
    result = body["results"][0]
    if "error" in result:
        raise AssertionError(f"query failed: {result['error']} ({q})")
    return list(result.get("series", []))


def write_lines(url: str, db: str, lines: list[str], precision: str = "u") -> None:
    """Line protocol straight into a (new) database: a scripted history."""
    q = urllib.parse.urlencode({"q": f"CREATE DATABASE {db}"})
    urllib.request.urlopen(f"{url}/query?{q}", data=b"")
    req = urllib.request.Request(
        f"{url}/write?db={db}&precision={precision}", data="\n".join(lines).encode()
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 204


def rows(url: str, db: str, q: str) -> list[dict[str, Any]]:
    """Rows as dicts (plus the series' tags, if it was grouped)."""
    out = []
    for series in influx_query(url, db, q):
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            row.update(series.get("tags", {}))
            row["_measurement"] = series["name"]
            out.append(row)
    return out


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1
) -> Any:
    """Poll predicate (run in a thread: it may do blocking I/O) until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)


class Publisher:
    """A real QoS 1 publisher (paho, own network thread) that survives broker restarts."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=False,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # floats work
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise TimeoutError("publisher could not connect")
            time.sleep(0.01)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def publish_all(self, messages: list[tuple[str, bytes | str]], timeout: float = 30) -> None:
        infos = [self.publish(t, p) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def monitor_config(
    monkeypatch: Any,
    *,
    mqtt_port: int,
    influx_url: str,
    database: str,
    state_dir: Path,
    client_id: str = "monitor-test",
    path: Path = SHIPPED_CONFIG,
    **env: str,
) -> Config:
    """The shipped Aktau config, pointed at the test servers through MONITOR_* variables."""
    settings = {
        "MONITOR_MQTT__PORT": str(mqtt_port),
        "MONITOR_MQTT__CLIENT_ID": client_id,
        "MONITOR_MQTT__RECONNECT__INITIAL": "0.1s",
        "MONITOR_MQTT__RECONNECT__MAX": "1s",
        "MONITOR_INFLUX__URL": influx_url,
        "MONITOR_INFLUX__DATABASE": database,
        "MONITOR_INFLUX__RETRY__MAX": "1s",
        "MONITOR_STATE_DIR": str(state_dir),
        "MONITOR_HTTP__PORT": str(free_port()),
        # no notification route by default: the shipped one points at a webhook on :9000
        "MONITOR_NOTIFY__ROUTES": "[]",
        **env,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return load_config(path)


@dataclass
class RunningMonitor:
    stats: Stats
    stop: asyncio.Event
    task: asyncio.Task[Stats]
    api: Api


@contextlib.asynccontextmanager
async def running_monitor(
    config: Config, connect_timeout: float = 15
) -> AsyncIterator[RunningMonitor]:
    """The monitor in this event loop, connected and subscribed; stopped cleanly after."""
    stop = asyncio.Event()
    stats = Stats()
    apis: list[Api] = []
    task = asyncio.create_task(
        app.run(config, stop, stats=stats, on_api=apis.append), name="monitor-under-test"
    )
    deadline = time.monotonic() + connect_timeout
    while not stats.broker_connected:
        if task.done():
            task.result()  # raises what killed it
        if time.monotonic() > deadline:
            stop.set()
            raise AssertionError("monitor did not connect")
        await asyncio.sleep(0.02)
    monitor = RunningMonitor(stats, stop, task, apis[0])
    try:
        yield monitor
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class MonitorProcess:
    """``python -m monitor run`` as a real process (for SIGKILL and exit-code tests).

    Configure it through MONITOR_* variables (monitor_config sets them in os.environ).
    Every instance is tracked, so a failing test cannot leave one running (conftest)."""

    alive: ClassVar[list[MonitorProcess]] = []

    def __init__(
        self,
        log_path: Path,
        *args: str,
        config: Path = SHIPPED_CONFIG,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(config), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        MonitorProcess.alive.append(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_log(self, needle: str, timeout: float = 15) -> None:
        await wait_for(lambda: needle in self.log() or self.proc.poll() is not None, timeout)
        if needle not in self.log():
            raise AssertionError(f"monitor exited ({self.proc.returncode}):\n{self.log()}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code


# -- alerting end to end: devices that talk, a config with short timeouts, a webhook ------

ALERT_TIMEOUT = 2.0  # no_data timeout of the devices in alerting_config


def device_topic(device: str, channel: str = "telemetry") -> str:
    return f"customs/aktau/inspection-1/xray_scanner/{device}/{channel}"


def alerting_config(
    path: Path,
    *,
    mqtt_port: int,
    influx_url: str,
    database: str,
    channels: list[str],
    devices: list[str],
    repeat: str = "1h",
    severity: tuple[str, ...] = ("critical",),
    escalate_after: str | None = None,
    extra: str = "",
    match: dict[str, list[str]] | None = None,
) -> Path:
    """A config file of X-ray scanners in aktau/inspection-1 with ALERT_TIMEOUT, one route
    for alerts of ``severity`` (or as ``match`` says) to ``channels`` (escalated to them
    too after ``escalate_after``, if given), and the monitor's outage alert after 3 s."""
    devs = "\n".join(
        f"  - {{id: {d}, kind: xray_scanner, site: aktau, area: inspection-1}}" for d in devices
    )
    escalation = (
        ""
        if escalate_after is None
        else f"      escalate_to: {json.dumps(channels)}\n      escalate_after: {escalate_after}\n"
    )
    path.write_text(f"""
mqtt:
  port: {mqtt_port}
  client_id: monitor-{path.stem}
  reconnect: {{initial: 100ms, max: 500ms}}
influx: {{url: "{influx_url}", database: {database}, retry: {{max: 1s}}}}
state_dir: {path.parent / "state"}
http: {{port: {free_port()}}}
status_interval: 1s
alerts:
  broker_down_after: 3s
  kinds:
    xray_scanner:
      {{no_data_timeout: {ALERT_TIMEOUT}s, fault_for: 1s, offline_for: 1s, severity: critical}}
notify:
  routes:
    - name: crew
      match: {json.dumps(match or {"severity": list(severity)})}
      channels: {json.dumps(channels)}
      repeat_interval: {repeat}
{escalation}devices:
{devs}
{extra}
""")
    return path


class Webhook:
    """A webhook receiver: what the monitor posted, when, with which X-Monitor-Event."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[float, str, dict[str, Any]]] = []
        # a receiver that refuses some bodies (400), as a chat API refuses a message
        self.refuse: Callable[[dict[str, Any]], bool] = lambda payload: False
        self.refused: list[tuple[float, str, dict[str, Any]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    async def handle(self, request: web.Request) -> web.Response:
        got = (time.time(), request.headers.get("X-Monitor-Event", ""), await request.json())
        if self.refuse(got[2]):
            self.refused.append(got)
            return web.Response(status=400, text="Bad Request: can't parse entities")
        self.received.append(got)
        return web.Response(status=204)

    def events(self) -> list[tuple[str, str, str]]:
        return [(p["device"], p["rule"], event) for _, event, p in self.received]

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Webhook]:
        wapp = web.Application()
        wapp.router.add_post("/alerts", self.handle)
        runner = web.AppRunner(wapp, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield self
        finally:
            await runner.cleanup()


class Talker:
    """Devices publishing telemetry every ``period`` s, each with a state, until told to stop."""

    def __init__(self, pub: Publisher, devices: list[str], period: float = 0.25) -> None:
        self.pub = pub
        self.state = dict.fromkeys(devices, "ready")
        self.talking = set(devices)
        self.period = period

    async def run(self) -> None:
        while True:
            for device in sorted(self.talking):
                # paho queues QoS 1 messages while the broker is away: no error to handle
                self.pub.publish(
                    device_topic(device),
                    json.dumps({"state": self.state.get(device, "ready"), "scans_total": 1}),
                )
            await asyncio.sleep(self.period)


# -- a wall clock that the test steps: libfaketime in the monitor's process only ----------

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


class SteppedClock:
    """The environment that puts a process under libfaketime, and ``step`` to move its wall
    clock (its monotonic clock stays real, as under an NTP step)."""

    def __init__(self, directory: Path) -> None:
        if not FAKETIME_LIB.exists():
            pytest.fail("libfaketime is missing: Debian's faketime package (make deps)")
        self.file = directory / "faketime"
        self.step(0)

    def step(self, seconds: int) -> None:
        """The wall clock from now on: real time plus ``seconds``."""
        self.file.write_text(f"{seconds:+d}\n")

    @property
    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(FAKETIME_LIB),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


# -- a real full filesystem ---------------------------------------------------------------


class SmallDisk:
    """A tmpfs mounted at ``path``; ``fill`` takes every free byte, ``free`` gives it back."""

    def __init__(self, path: Path, size: str = "4m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        res = subprocess.run(
            [*sudo, "mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            pytest.fail(f"mounting a tmpfs needs root or sudo: {res.stderr.strip()}")
        self._sudo = sudo
        self.filler = path / "filler"

    @contextlib.contextmanager
    def full(self) -> Iterator[None]:
        """Full while inside, space given back after."""
        self.fill()
        try:
            yield
        finally:
            self.free()

    def fill(self) -> None:
        with open(self.filler, "ab") as f:
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            with contextlib.suppress(OSError):
                while True:  # the last partial block
                    f.write(b"\0" * 512)
                    f.flush()
            with contextlib.suppress(OSError):
                f.close()

    def free(self) -> None:
        self.filler.unlink()

    def unmount(self) -> None:
        subprocess.run([*self._sudo, "umount", "-l", str(self.path)], check=False)


# -- a real peer that is slow to answer ---------------------------------------------------


class HeldProxy:
    """A TCP proxy to ``upstream_port`` whose requests can be held: while ``hold()`` is on,
    what clients send waits in the proxy (an InfluxDB that has not answered yet)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def __aenter__(self) -> HeldProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", free_port())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for client in self._clients:
            client.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, gated: bool) -> None:
            while data := await src.read(65536):
                if gated:
                    await self._open.wait()
                dst.write(data)
                await dst.drain()
            dst.close()

        with contextlib.suppress(OSError):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(pump(reader, up_writer, gated=True))
                tg.create_task(pump(up_reader, writer, gated=False))


@contextlib.contextmanager
def down(server: Any) -> Iterator[None]:
    """A server of ours (``monitor.sim.devservers``) stopped while inside, started after."""
    server.stop()
    try:
        yield
    finally:
        server.start()


def api_call(port: int, path: str, token: str, body: object = None) -> tuple[int, Any]:
    """The monitor's API: (status, JSON body); POST with a body; (0, None) while it is
    not there."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
    except (OSError, ValueError):
        return 0, None
