"""The simulator's Sparkplug B edge node against the monitor, on a real broker: its device
arrives as canonical telemetry, and dropping the node's connection sends its death."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from monitor.config import Config
from monitor.model import Device
from monitor.sim import equipment
from monitor.sim import simulate as sim
from monitor.sim.devservers import InfluxDB, Mosquitto
from monitor.sim.sparkplug_node import parse
from tests.helpers import rows, running_monitor, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIELDS = {
    "Barrier/Position": {"to": "position"},
    "Barrier/Cycles": {"to": "cycles_total"},
    "Motor/Current": {"to": "motor_current_a"},
    "Barrier/Fault": {"to": "state", "map": {"true": "fault", "false": "ready"}},
}


async def test_a_simulated_plc_gateway_is_a_device_and_its_death_is_offline(
    configure: Callable[..., Config], mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> None:
    config = configure(
        MONITOR_SPARKPLUG__ENABLED="true",
        MONITOR_SPARKPLUG__GROUPS='{"rail-gate-plc": {}}',
        MONITOR_SPARKPLUG__FIELDS=json.dumps(FIELDS),
    )
    devices = [Device(d.id, d.kind, d.site, d.area) for d in config.devices if d.id == "gb-05"]
    simulation = sim.Simulation(
        equipment.build(devices, seed=2),
        port=mosquitto.port,
        rate=4,
        duration=12,
        failures=[sim.Failure("gb-05", "offline", 6)],
        sparkplug=[parse("rail-gate-plc/plc-01=gb-05")],
    )
    async with running_monitor(config) as monitor:
        running = asyncio.create_task(simulation.run())
        q = "SELECT position, cycles_total, motor_current_a, state FROM gate_barrier"
        await wait_for(lambda: len(rows(influxd.url, database, q)) >= 5, timeout=10)
        point = rows(influxd.url, database, q)[-1]
        assert point["position"] in ("open", "closed", "moving")
        assert isinstance(point["cycles_total"], int) and point["state"] == "ready"
        state = monitor.api._service.liveness.devices[("aktau", "gb-05")]
        assert state.online is True
        await wait_for(lambda: state.online is False, timeout=10)  # the NDEATH Will
        assert state.state == "offline"
        await running
