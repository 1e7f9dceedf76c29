"""The simulator: reproducible, speaks every shipped format, and its failures show up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import yaml

from monitor.config import load_config
from monitor.model import Device
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.reasons import Rejected
from monitor.sim import equipment
from monitor.sim import simulate as sim
from monitor.sim.devservers import Mosquitto
from tests.helpers import SHIPPED_CONFIG, Webhook, running_monitor

REGISTRY = [Device(d.id, d.kind, d.site, d.area) for d in load_config(SHIPPED_CONFIG).devices]


def strip_time(messages: list[equipment.Message]) -> list[tuple[str, object]]:
    out = []
    for topic, payload, _ in messages:
        try:
            body = json.loads(payload)
        except ValueError:
            out.append((topic, payload))
            continue
        if isinstance(body, dict):
            body.pop("ts", None)
            body.pop("time", None)
        out.append((topic, body))
    return out


def run(seed: int, steps: int = 50) -> list[list[tuple[str, object]]]:
    return [
        strip_time(msgs)
        for s in equipment.build(REGISTRY, seed)
        for msgs in equipment.readings(s, steps, start_ms=1_790_000_000_000)
    ]


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_every_format_is_spoken_and_every_message_normalizes() -> None:
    norm = Normalizer(load_config(SHIPPED_CONFIG))
    formats = {s.fmt for s in equipment.build(REGISTRY, 1)}
    assert formats == {"canonical", "vendor_x", "plc"}
    kinds_seen: dict[str, set[str]] = {}
    for s in equipment.build(REGISTRY, 1):
        for messages in equipment.readings(s, 200, start_ms=1_790_000_000_000):
            for topic, payload, retain in messages:
                r = norm.normalize(topic, payload.encode(), 1_790_000_100_000, retain)
                assert not isinstance(r, Rejected), (topic, payload, r)
                assert r.device.id == s.device.id
                kinds_seen.setdefault(r.device.kind, set()).update(r.fields)
    # plausible, complete telemetry for every kind
    assert {"tube_voltage_kv", "detector_temp_c", "scans_total"} <= kinds_seen["xray_scanner"]
    assert {"gamma_cps", "neutron_cps", "occupied", "alarm"} <= kinds_seen["radiation_portal"]
    assert {"position", "motor_current_a", "cycles_total"} <= kinds_seen["gate_barrier"]
    assert {"reads_total", "read_confidence_pct"} <= kinds_seen["anpr_camera"]
    assert {"weight_kg", "zero_offset_kg"} <= kinds_seen["weighbridge"]


def test_scanners_cycle_and_portals_rise_with_occupancy() -> None:
    scanner = equipment.SimDevice.create(
        Device("xs-01", "xray_scanner", "aktau", "a"), "canonical", 3
    )
    states = [json.loads(m[-1][1])["state"] for m in equipment.readings(scanner, 300)]
    assert {"ready", "busy"} <= set(states)
    portal = equipment.SimDevice.create(
        Device("rpm-01", "radiation_portal", "aktau", "a"), "canonical", 3
    )
    occupied, empty = [], []
    for msgs in equipment.readings(portal, 500):
        body = json.loads(msgs[-1][1])
        (occupied if body["occupied"] else empty).append(body["gamma_cps"])
    assert sum(occupied) / len(occupied) > sum(empty) / len(empty) + 20


@pytest.mark.parametrize("text", ["xs-01=explode@3", "xs-01=silent", "=silent@3", "xs 01=fault@1"])
def test_bad_failure_specs(text: str) -> None:
    with pytest.raises(ValueError, match="DEVICE=MODE@SECONDS"):
        sim.Failure.parse(text)


@pytest.mark.integration
@pytest.mark.slow
async def test_each_failure_mode_is_observable_through_the_monitor(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
) -> None:
    ids = ["xs-a", "xs-b", "xs-c", "xs-d", "xs-e", "xs-f"]  # b, d, f speak scanner_vendor_x
    profiles = {"profiles": yaml.safe_load(SHIPPED_CONFIG.read_text())["profiles"]}
    config = load_config(
        alert_config(
            channels=[f"webhook:{webhook.url}"],
            devices=ids,
            extra=yaml.safe_dump(profiles),
        )
    )
    devices = [Device(i, "xray_scanner", "aktau", "inspection-1") for i in ids]
    simulation = sim.Simulation(
        equipment.build(devices, seed=5),
        port=mosquitto.port,
        rate=4.0,
        duration=14,
        failures=[
            sim.Failure("xs-a", "silent", 2),
            sim.Failure("xs-b", "offline", 2),
            sim.Failure("xs-c", "fault", 2),
            sim.Failure("xs-d", "flap", 2),
            sim.Failure("xs-e", "silent", 2),
            sim.Failure("xs-e", "recover", 8),
        ],
    )
    async with (
        running_monitor(config) as monitor,
        aiohttp.ClientSession(f"http://127.0.0.1:{monitor.api.port}") as http,
    ):
        running = asyncio.create_task(simulation.run())

        async def reasons() -> dict[str, str]:
            async with http.get("/api/devices") as r:
                return {d["device"]: d["reason"] for d in (await r.json())["devices"]}

        seen: dict[str, set[str]] = {i: set() for i in ids}
        while not running.done():
            for device, reason in (await reasons()).items():
                seen[device].add(reason)
            await asyncio.sleep(0.2)
        await running
        assert monitor.stats.messages_rejected == 0
    assert simulation.sent > 100
    assert seen["xs-a"] >= {"ok", "no_data"}
    assert seen["xs-b"] >= {"ok", "offline"}  # its Last Will, from a dropped connection
    assert seen["xs-c"] >= {"ok", "fault"}
    assert seen["xs-d"] >= {"ok", "offline"}  # flapping: down 3 s, up 5 s ...
    assert seen["xs-e"] >= {"ok", "no_data"}
    assert seen["xs-f"] - {None} == {"ok"}  # None: before its first report
    events = set(webhook.events())
    assert {
        ("xs-a", "no_data", "firing"),
        ("xs-b", "offline", "firing"),
        ("xs-c", "fault", "firing"),
        ("xs-e", "no_data", "firing"),
        ("xs-e", "no_data", "resolved"),
    } <= events
