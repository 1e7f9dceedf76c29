"""A realistic customs post on MQTT, for the demo, tests and benchmarks.

Each device is a small model of its kind (scanners cycling ready/busy with scans, portals
whose counts rise with occupancy, barriers cycling with trucks, ...) that speaks one of
the shipped formats: the canonical topics, ``scanner_vendor_x`` (every second X-ray
scanner) or ``plc_gateway`` (gate barriers). Every device has its own MQTT connection with
its Last Will on its canonical status topic, so ``offline`` is a real dropped connection.

Reproducible: a device's values come from its own RNG seeded with (seed, device id), so the
same seed gives the same sequence of readings whatever the timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from monitor.model import Device
from monitor.sim.trucks import Post

if TYPE_CHECKING:
    from monitor.sim.sparkplug_node import SparkplugNode

Format = Literal["canonical", "vendor_x", "plc"]
Mode = Literal["normal", "silent", "offline", "fault", "flap"]
MODES = ("silent", "offline", "fault", "flap", "recover")
VENDOR_X_CODES = {
    "offline": 0,
    "standby": 1,
    "ready": 2,
    "busy": 3,
    "warming_up": 4,
    "maintenance": 8,
    "fault": 9,
}
FLAP_DOWN_S, FLAP_UP_S = 3.0, 5.0  # a flapping connection: shorter than offline_for

Message = tuple[str, str, bool]  # topic, payload, retain


@dataclass(frozen=True)
class Failure:
    device: str
    mode: str
    at: float

    @classmethod
    def parse(cls, text: str) -> Failure:
        """``DEVICE=MODE@SECONDS``, e.g. ``xs-01=silent@30``; negative seconds are in the
        past that ``--backfill`` replays (``xs-01=fault@-36000``: ten hours ago)."""
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,63})=([a-z]+)@(-?\d+(?:\.\d+)?)", text)
        if m is None or m.group(2) not in MODES:
            raise ValueError(
                f"{text!r}: expected DEVICE=MODE@SECONDS with MODE one of {', '.join(MODES)}"
            )
        return cls(m.group(1), m.group(2), float(m.group(3)))


def format_for(device: Device, index_of_kind: int) -> Format:
    if device.kind == "gate_barrier":
        return "plc"
    if device.kind == "xray_scanner" and index_of_kind % 2 == 1:
        return "vendor_x"
    return "canonical"


def canonical_topic(d: Device, channel: str) -> str:
    return f"customs/{d.site}/{d.area}/{d.kind}/{d.id}/{channel}"


@dataclass
class SimDevice:
    """One device's behaviour; ``tick`` returns the messages of one reporting interval."""

    device: Device
    fmt: Format
    rng: random.Random
    mode: Mode = "normal"
    busy_left: int = 0
    scans: int = 0
    cycles: int = 0
    reads: int = 0
    temp: float = 30.0
    zero: float = 0.0
    open_: bool = False
    occupied_left: int = 0
    # Driven by the truck model (``trucks.Post``) instead of chance: busy (a scanner) or
    # occupied (a portal) or loaded (a weighbridge) until these times.
    driven: bool = False
    busy_until_ms: int = 0
    load_until_ms: int = 0
    load_kg: float = 0.0

    @classmethod
    def create(cls, device: Device, fmt: Format, seed: int) -> SimDevice:
        rng = random.Random(f"{seed}:{device.id}")
        return cls(
            device,
            fmt,
            rng,
            scans=rng.randrange(1000, 5000),
            cycles=rng.randrange(10_000, 90_000),
            reads=rng.randrange(1000, 9000),
            temp=rng.uniform(27, 33),
            zero=rng.uniform(-15, 15),
        )

    @property
    def state(self) -> str:
        if self.mode == "fault":
            return "fault"
        return "busy" if self.busy_left > 0 else "ready"

    def tick(self, now_ms: int) -> list[Message]:
        handler = getattr(self, f"_{self.device.kind}")
        out: list[Message] = handler(now_ms)
        return out

    def status_online(self) -> Message:
        return canonical_topic(self.device, "status"), "online", True

    # -- kinds --

    def _telemetry(self, now_ms: int, metrics: dict[str, object]) -> Message:
        body = {"ts": now_ms, "state": self.state, **metrics}
        return canonical_topic(self.device, "telemetry"), json.dumps(body), False

    def _event(self, now_ms: int, type_: str, **fields: object) -> Message:
        body = {"ts": now_ms, "type": type_, **fields}
        return canonical_topic(self.device, "event"), json.dumps(body), False

    def _xray_scanner(self, now_ms: int) -> list[Message]:
        r = self.rng
        out: list[Message] = []
        if self.driven:
            self.busy_left = 1 if now_ms < self.busy_until_ms else 0
        elif self.busy_left > 0:
            self.busy_left -= 1
            if self.busy_left == 0:
                self.scans += 1
                if self.fmt == "canonical":
                    out.append(
                        self._event(
                            now_ms, "scan_completed", duration_s=round(r.uniform(25, 45), 1)
                        )
                    )
        elif self.mode != "fault" and r.random() < 0.08:  # a truck drives in
            self.busy_left = r.randrange(3, 8)
        busy = self.busy_left > 0
        self.temp += r.uniform(-0.3, 0.35 if busy else 0.25) - (self.temp - 31) * 0.05
        kv = r.uniform(140, 160) if busy else 0.0
        ma = r.uniform(0.8, 1.4) if busy else 0.0
        if self.fmt == "vendor_x":
            payload = {
                "time": now_ms,
                "devStatus": VENDOR_X_CODES[self.state],
                "hv": round(kv * 1000),
                "beamCurrent": round(ma, 3),
                "detTempF": round(self.temp * 9 / 5 + 32, 2),
                "scanCount": self.scans,
            }
            out.append((f"scanners/{self.device.id}/data", json.dumps(payload), False))
        else:
            out.append(
                self._telemetry(
                    now_ms,
                    {
                        "tube_voltage_kv": round(kv, 2),
                        "tube_current_ma": round(ma, 3),
                        "detector_temp_c": round(self.temp, 2),
                        "scans_total": self.scans,
                        "scan_duration_s": round(r.uniform(25, 45), 1) if busy else 0.0,
                        "interlock_ok": self.mode != "fault",
                    },
                )
            )
        return out

    def _radiation_portal(self, now_ms: int) -> list[Message]:
        r = self.rng
        if self.driven:
            self.occupied_left = 1 if now_ms < self.busy_until_ms else 0
        elif self.occupied_left > 0:
            self.occupied_left -= 1
        elif r.random() < 0.1:
            self.occupied_left = r.randrange(2, 6)
        occupied = self.occupied_left > 0
        gamma = r.gauss(180, 12) + (r.uniform(25, 70) if occupied else 0)
        alarm = "none"
        out: list[Message] = []
        if occupied and r.random() < 0.01:  # a rare real alarm: NORM cargo, say
            alarm, gamma = "gamma", gamma + r.uniform(300, 900)
            out.append(self._event(now_ms, "radiation_alarm", gamma_cps=round(gamma, 1)))
        out.append(
            self._telemetry(
                now_ms,
                {
                    "gamma_cps": round(max(gamma, 0), 1),
                    "neutron_cps": round(abs(r.gauss(1.5, 0.8)), 2),
                    "occupied": occupied,
                    "alarm": alarm,
                },
            )
        )
        return out

    def _gate_barrier(self, now_ms: int) -> list[Message]:
        r = self.rng
        moving = False
        if r.random() < 0.15:  # a truck passes: the barrier opens (or closes)
            self.open_ = not self.open_
            self.cycles += int(self.open_)
            moving = True
        amps = r.uniform(2.2, 3.1) if moving else r.uniform(0.05, 0.2)
        if self.fmt == "plc":
            base = f"plc/{self.device.site}/{self.device.id}"
            return [
                (f"{base}/barrier_up", "1" if self.open_ else "0", False),
                (f"{base}/motor_amps", f"{amps:.2f}", False),
                (f"{base}/cycles", str(self.cycles), False),
                (f"{base}/fault", "1" if self.mode == "fault" else "0", False),
            ]
        position = "moving" if moving else "open" if self.open_ else "closed"
        return [
            self._telemetry(
                now_ms,
                {
                    "position": position,
                    "cycles_total": self.cycles,
                    "motor_current_a": round(amps, 2),
                },
            )
        ]

    def _anpr_camera(self, now_ms: int) -> list[Message]:
        r = self.rng
        self.reads += r.choice((0, 0, 1, 1, 2))
        self.temp += r.uniform(-0.2, 0.2) - (self.temp - 38) * 0.05
        return [
            self._telemetry(
                now_ms,
                {
                    "reads_total": self.reads,
                    "read_confidence_pct": round(r.uniform(86, 99.5), 1),
                    "temp_c": round(self.temp, 1),
                },
            )
        ]

    def _weighbridge(self, now_ms: int) -> list[Message]:
        r = self.rng
        self.zero += r.uniform(-0.2, 0.2)
        if self.driven:
            loaded = now_ms < self.load_until_ms
            weight = self.load_kg + r.uniform(-20, 20) if loaded else self.zero
        else:
            loaded = r.random() < 0.3
            weight = r.uniform(14_000, 44_000) if loaded else self.zero
        return [
            self._telemetry(
                now_ms, {"weight_kg": round(weight, 1), "zero_offset_kg": round(self.zero, 2)}
            )
        ]


def generated_devices(n: int, site: str = "aktau") -> list[Device]:
    """n devices spread over the kinds and four areas, for load and scale runs."""
    kinds = ("xray_scanner", "radiation_portal", "gate_barrier", "anpr_camera", "weighbridge")
    prefixes = {
        "xray_scanner": "xs",
        "radiation_portal": "rpm",
        "gate_barrier": "gb",
        "anpr_camera": "anpr",
        "weighbridge": "wb",
    }
    areas = ("gate-in", "gate-out", "inspection-1", "rail-gate")
    return [
        Device(f"{prefixes[kinds[i % 5]]}-g{i:05d}", kinds[i % 5], site, areas[i % 4])
        for i in range(n)
    ]


def build(devices: list[Device], seed: int) -> list[SimDevice]:
    count: dict[str, int] = {}
    sims = []
    for d in devices:
        i = count.get(d.kind, 0)
        count[d.kind] = i + 1
        sims.append(SimDevice.create(d, format_for(d, i), seed))
    return sims


def readings(sim: SimDevice, steps: int, start_ms: int = 0) -> Iterator[list[Message]]:
    for i in range(steps):
        yield sim.tick(start_ms + i * 1000)


# -- on the wire ------------------------------------------------------------------------


@dataclass
class Connection:
    """One device's own MQTT connection, Last Will on its canonical status topic."""

    sim: SimDevice
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    client: paho.Client | None = None

    def open(self) -> None:
        d = self.sim.device
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"sim-{d.id}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        client.will_set(canonical_topic(d, "status"), "offline", qos=1, retain=True)
        if self.username:
            client.username_pw_set(self.username, self.password)
        client.max_inflight_messages_set(100)
        client.connect(self.host, self.port, keepalive=10)
        client.loop_start()
        client.publish(*self.sim.status_online()[:2], qos=1, retain=True)
        self.client = client

    def drop(self) -> asyncio.Future[None] | None:
        """Vanish without a DISCONNECT: the broker publishes our Last Will.

        The device is silent at once; paho's thread is torn down in the background (it
        can take a second), and the caller awaits the returned future eventually."""
        if self.client is None:
            return None
        client, self.client = self.client, None
        sock = cast(socket.socket | None, client.socket())
        if sock is not None:
            # shutdown, not close: the broker sees the connection end without DISCONNECT
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        def stop_thread() -> None:
            client.loop_stop()

        return asyncio.get_running_loop().run_in_executor(None, stop_thread)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

    def publish(self, messages: list[Message]) -> int:
        if self.client is None:
            return 0
        for topic, payload, retain in messages:
            self.client.publish(topic, payload, qos=1, retain=retain)
        return len(messages)


@dataclass
class Simulation:
    sims: list[SimDevice]
    host: str = "127.0.0.1"
    port: int = 1883
    rate: float = 1.0  # reports per second per device
    duration: float | None = None
    failures: list[Failure] = field(default_factory=list)
    progress: Callable[[str], None] | None = None
    username: str | None = None
    password: str | None = None
    trucks_per_hour: float = 0.0  # 0: no trucks (devices behave by chance alone)
    inspect_share: float = 0.25
    backfill: float = 0.0  # seconds of the past replayed first, as fast as the broker takes
    seed: int = 1
    # (group, node id, device ids): devices published by a Sparkplug B edge node
    sparkplug: list[tuple[str, str, list[str]]] = field(default_factory=list)
    sent: int = 0
    _teardowns: list[asyncio.Future[None]] = field(default_factory=list)
    _posts: list[Post] = field(default_factory=list)

    def _drive_trucks(self, start_ms: int) -> None:
        """One truck model per site with ANPR cameras; its equipment follows the trucks."""
        devices = [sim.device for sim in self.sims]
        by_id = {sim.device.id: sim for sim in self.sims}
        sites = sorted({d.site for d in devices if d.kind == "anpr_camera"})
        for site in sites:
            rng = random.Random(f"{self.seed}:trucks:{site}")
            post = Post(
                site, devices, rng, self.trucks_per_hour, self.inspect_share, now_ms=start_ms
            )
            for device_id in (
                *(sc.id for sc in post.scanners),
                *post.portals.values(),
                *post.weighbridges.values(),
            ):
                by_id[device_id].driven = True
            self._posts.append(post)

    def _trucks(self, now_ms: int, conns: dict[str, Connection]) -> None:
        """The trucks up to ``now_ms``: plate reads and scans published, devices told."""
        sims = {c.sim.device.id: c.sim for c in conns.values()}

        def down(scanner: str) -> bool:
            return sims[scanner].mode in ("fault", "offline", "silent")

        for post in self._posts:
            for what, device_id, t, data in post.advance(now_ms, down):
                sim = sims[device_id]
                if what == "read":
                    message = sim._event(t, "plate_read", **data)
                elif what == "scan":
                    message = sim._event(t, "scan_completed", **data)
                else:
                    until = data["until"]
                    assert isinstance(until, int)
                    if what == "weigh":
                        sim.load_until_ms, sim.load_kg = until, float(data["kg"])  # type: ignore[arg-type]
                    else:
                        sim.busy_until_ms = until
                    continue
                if sim.mode not in ("silent", "offline"):
                    self.sent += conns[device_id].publish([message])

    async def _backfill(self, conns: dict[str, Connection], start_ms: int) -> None:
        """The past ``backfill`` seconds with their own timestamps: a report a minute apart
        per device, the trucks as they went, and the failures whose time is negative."""
        step_ms = 60_000
        past = sorted((f for f in self.failures if f.at < 0), key=lambda f: f.at)
        t = start_ms - int(self.backfill * 1000)
        while t < start_ms:
            while past and start_ms + past[0].at * 1000 <= t:
                f = past.pop(0)
                conns[f.device].sim.mode = "normal" if f.mode == "recover" else f.mode  # type: ignore[assignment]
            for sim in self.sims:
                if sim.mode not in ("silent", "offline"):
                    self.sent += conns[sim.device.id].publish(sim.tick(t))
            self._trucks(t, conns)
            t += step_ms
            await asyncio.sleep(0)

    async def run(self, stop: asyncio.Event | None = None) -> int:
        stop = stop or asyncio.Event()
        conns: dict[str, Connection] = {
            s.device.id: Connection(s, self.host, self.port, self.username, self.password)
            for s in self.sims
        }
        nodes = self._sparkplug_nodes(conns)
        unknown = {f.device for f in self.failures} - set(conns)
        if unknown:
            raise ValueError(f"--fail names unknown devices: {', '.join(sorted(unknown))}")
        for conn in conns.values():
            await asyncio.to_thread(conn.open)
        start_ms = int(time.time() * 1000)
        if self.trucks_per_hour > 0:
            self._drive_trucks(start_ms - int(self.backfill * 1000))
        if self.backfill > 0:
            await self._backfill(conns, start_ms)
        pending = sorted((f for f in self.failures if f.at >= 0), key=lambda f: f.at)
        started = time.monotonic()
        interval = 1.0 / self.rate
        next_tick = started
        flap_since: dict[str, float] = {}
        last_progress = 0.0
        try:
            while not stop.is_set():
                elapsed = time.monotonic() - started
                if self.duration is not None and elapsed >= self.duration:
                    break
                while pending and pending[0].at <= elapsed:
                    await self._apply(pending.pop(0), conns, flap_since, elapsed)
                await self._flap(conns, flap_since, elapsed)
                now_ms = int(time.time() * 1000)
                for sim in self.sims:
                    if sim.mode not in ("silent", "offline") and sim.device.id not in nodes:
                        self.sent += conns[sim.device.id].publish(sim.tick(now_ms))
                for node in {id(n): n for n in nodes.values()}.values():
                    self.sent += node.publish(now_ms)
                self._trucks(now_ms, conns)
                if self.progress is not None and elapsed - last_progress >= 1.0:
                    last_progress = elapsed
                    failed = [f"{s.device.id} {s.mode}" for s in self.sims if s.mode != "normal"]
                    self.progress(
                        f"t={elapsed:6.0f}s  sent {self.sent:8d}  rate"
                        f" {self.sent / max(elapsed, 1e-9):8.1f} msg/s  devices {len(self.sims)}"
                        f"  failed: {', '.join(failed) or 'none'}"
                    )
                next_tick += interval
                delay = next_tick - time.monotonic()
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):
                            await stop.wait()
                    except TimeoutError:
                        pass
                else:
                    next_tick = time.monotonic()  # fell behind: don't burst to catch up
        finally:
            for conn in conns.values():
                await asyncio.to_thread(conn.close)
            await asyncio.gather(*self._teardowns)
        return self.sent

    def _sparkplug_nodes(self, conns: dict[str, Connection]) -> dict[str, SparkplugNode]:
        """The devices that an edge node publishes (``sparkplug``), by device id; each gets
        a ``Member`` in place of its own connection."""
        from monitor.sim.sparkplug_node import Member, SparkplugNode

        by_device: dict[str, SparkplugNode] = {}
        for group, node_id, device_ids in self.sparkplug:
            if unknown := set(device_ids) - set(conns):
                raise ValueError(f"--sparkplug names unknown devices: {', '.join(sorted(unknown))}")
            sims = [conns[d].sim for d in device_ids]
            for s in sims:
                s.fmt = "canonical"  # the node turns canonical telemetry into its tags
            node = SparkplugNode(
                group, node_id, sims, self.host, self.port, self.username, self.password
            )
            for sim in sims:
                by_device[sim.device.id] = node
                conns[sim.device.id] = Member(sim, node)  # type: ignore[assignment]
        return by_device

    def _teardown(self, conn: Connection) -> None:
        future = conn.drop()
        if future is not None:
            self._teardowns.append(future)

    async def _apply(
        self, f: Failure, conns: dict[str, Connection], flap_since: dict[str, float], elapsed: float
    ) -> None:
        conn = conns[f.device]
        sim = conn.sim
        if f.mode == "recover":
            if conn.client is None:
                await asyncio.to_thread(conn.open)
            flap_since.pop(f.device, None)
            sim.mode = "normal"
        elif f.mode == "offline":
            sim.mode = "offline"
            self._teardown(conn)
        elif f.mode == "flap":
            sim.mode = "flap"
            flap_since[f.device] = elapsed
        else:
            sim.mode = f.mode  # type: ignore[assignment]

    async def _flap(
        self, conns: dict[str, Connection], flap_since: dict[str, float], elapsed: float
    ) -> None:
        for device_id, since in flap_since.items():
            conn = conns[device_id]
            phase = (elapsed - since) % (FLAP_DOWN_S + FLAP_UP_S)
            down = phase < FLAP_DOWN_S
            if down and conn.client is not None:
                self._teardown(conn)
            elif not down and conn.client is None:
                await asyncio.to_thread(conn.open)


class ProgressLine:
    """One line rewritten in place on a terminal; a line every 10 s in a log."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, line: str) -> None:
        if self._tty:
            sys.stderr.write("\r" + line[:200] + "\x1b[K")
        elif time.monotonic() - self._last >= 10:
            self._last = time.monotonic()
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
