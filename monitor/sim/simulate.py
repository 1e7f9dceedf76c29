"""A realistic customs post on MQTT, for the demo, tests and benchmarks.

The devices are the models of ``equipment.py``; here they go on the wire. Every device has
its own MQTT connection with its Last Will on its canonical status topic, so ``offline`` is
a real dropped connection; devices behind a Sparkplug B edge node are published by the
node (``sparkplug_node.py``) instead. Failures are injected at given times, and trucks
(``trucks.py``) drive the scanners, portals and weighbridges of each site with cameras.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from monitor.sim.equipment import Message, SimDevice, canonical_topic
from monitor.sim.trucks import Post

if TYPE_CHECKING:
    from monitor.sim.sparkplug_node import SparkplugNode

MODES = ("silent", "offline", "fault", "flap", "recover")
FLAP_DOWN_S, FLAP_UP_S = 3.0, 5.0  # a flapping connection: shorter than offline_for


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
        # imported here: the protobuf classes only for a simulation that has edge nodes
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
