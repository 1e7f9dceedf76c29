"""The simulated equipment: one small model per device kind, and the messages it publishes.

Each device is a model of its kind (scanners cycling ready/busy with scans, portals whose
counts rise with occupancy, barriers cycling with trucks, ...) that speaks one of the
shipped formats: the canonical topics, ``scanner_vendor_x`` (every second X-ray scanner) or
``plc_gateway`` (gate barriers). What carries the messages (a device's own MQTT
connection, ``simulate.Connection``; a Sparkplug edge node, ``sparkplug_node``) is not
here: both of those import this, and it imports neither.

Reproducible: a device's values come from its own RNG seeded with (seed, device id), so the
same seed gives the same sequence of readings whatever the timing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from monitor.model import Device

Format = Literal["canonical", "vendor_x", "plc"]
Mode = Literal["normal", "silent", "offline", "fault", "flap"]
VENDOR_X_CODES = {
    "offline": 0,
    "standby": 1,
    "ready": 2,
    "busy": 3,
    "warming_up": 4,
    "maintenance": 8,
    "fault": 9,
}
Message = tuple[str, str, bool]  # topic, payload, retain


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
