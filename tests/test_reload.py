"""A reload's swap, in process (SPEC 10; the SIGHUP itself: tests/e2e/test_reload.py): what
is known of every device stays, Sparkplug edge nodes and their births stay, a new
device has its own grace, what needs a restart keeps its running value, and topics the
running subscriptions do not carry give no expected device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.app import Parts, build
from monitor.config import Config
from monitor.model import Reading
from monitor.reload import Reloader
from monitor.stats import Stats
from tests.helpers import ManualClock
from tests.normalize.test_sparkplug import GROUP, NOW, born, topic
from tests.sparkplug_wire import BOOLEAN, Metric, payload

GB05 = {"id": "gb-05", "kind": "gate_barrier", "site": "aktau", "area": "rail-gate"}
XS01 = {"id": "xs-01", "kind": "xray_scanner", "site": "aktau", "area": "inspection-1"}
WB9 = {"id": "wb-9", "kind": "weighbridge", "site": "aktau", "area": "gate-in"}


def config(tmp_path: Path, devices: list[dict[str, Any]], **more: Any) -> Config:
    return Config(
        state_dir=tmp_path / "state",
        devices=devices,
        sparkplug={
            "enabled": True,
            "groups": {GROUP: {"site": "aktau", "area": "rail-gate", "kind": "gate_barrier"}},
            "fields": {
                "Barrier/Up": {"to": "position", "map": {"true": "open", "false": "closed"}}
            },
        },
        **more,
    )


def hear(parts: Parts, topic: str, body: bytes | str) -> list[Reading]:
    """A message as ingest takes it: normalized, and its devices seen."""
    out = parts.normalizer.normalize(topic, body.encode() if isinstance(body, str) else body, NOW)
    readings = out if isinstance(out, list) else [out]
    assert all(isinstance(r, Reading) for r in readings), out
    for r in readings:
        assert isinstance(r, Reading)
        parts.liveness.observe(r, parts.clock.monotonic())
    return [r for r in readings if isinstance(r, Reading)]


async def test_a_reload_keeps_devices_edge_nodes_and_births_and_gives_a_new_device_its_grace(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    parts = build(config(tmp_path, [GB05, XS01]), clock, Stats())
    try:
        parts.restore()
        grace = parts.liveness.grace_from
        hear(parts, "customs/kuryk/berth-2/weighbridge/tmp-01/telemetry", '{"weight_kg": 1}')
        hear(parts, "customs/aktau/inspection-1/xray_scanner/xs-01/telemetry", "{}")
        born(parts.normalizer)  # the edge node and gb-05, aliases from their births
        decoder = parts.normalizer.sparkplug
        assert decoder is not None and (GROUP, "plc-01") in decoder.nodes
        gb05 = parts.normalizer.registry[("aktau", "gb-05")]
        assert parts.engine.settings_of(gb05).no_data_timeout is None  # born: by exception
        heard_at = clock.monotonic()
        clock.advance(30)
        same = config(tmp_path, [GB05, XS01])  # the file unchanged: nothing to say or do
        again = Reloader(parts, lambda warnings: same).apply(same)
        assert again is not None and again.restart_needed == again.added == again.removed == []

        new = config(
            tmp_path,
            [GB05, {**XS01, "area": "inspection-2"}, {**XS01, "id": "xs-02"}, WB9],
            mqtt={"port": 1884},
            profiles={"scales": {"topic": "scales/{device}", "kind": "weighbridge"}},
            http={"public_url": "https://monitor.example.kz"},
            notify={"routes": [{"name": "night", "channels": ["json://127.0.0.1:9/x"]}]},
        )
        done = Reloader(parts, lambda warnings: new).apply(new)
        assert done is not None

        # known devices keep what is known of them, with their new entries; no fresh grace
        assert parts.liveness.grace_from == grace
        xs01 = parts.liveness.devices[("aktau", "xs-01")]
        assert (xs01.last_seen, xs01.device.area) == (heard_at, "inspection-2")
        assert parts.liveness.devices[("kuryk", "tmp-01")].last_seen == heard_at
        # (plc-01: the edge node, a device of its group's defaults)
        assert {d.id for d in parts.normalizer.discovered} == {"tmp-01", "plc-01"}
        # a new device: expected from the reload on, waiting for data meanwhile
        assert done.added == [("aktau", "xs-02")]
        xs02 = parts.liveness.devices[("aktau", "xs-02")]
        assert xs02.expected_from == clock.monotonic()
        assert parts.liveness.status(("aktau", "xs-02"), clock.monotonic() + 59) is None
        assert parts.liveness.status(("aktau", "xs-02"), clock.monotonic() + 60) is not None
        # the edge node stays, its births too: data by alias, no rebirth asked, and gb-05
        # still reports by exception
        assert parts.normalizer.sparkplug is decoder
        data = payload([Metric(alias=1, value=True, datatype=BOOLEAN)], seq=2)
        (reading,) = hear(parts, topic("DDATA", "gb-05"), data)
        assert (reading.device.id, reading.fields) == ("gb-05", {"position": "open"})
        assert not decoder.rebirth_wanted
        assert parts.engine.settings_of(gb05).no_data_timeout is None
        # what needs a restart keeps its running value; the profile's new topic is not
        # subscribed, so its device is nobody's here until then
        assert {"mqtt", "subscriptions"} <= set(done.restart_needed)
        assert parts.config.mqtt.port == 1883
        assert ("aktau", "wb-9") not in parts.liveness.devices
        # routes, the board's address
        assert [r.name for r in parts.engine.routes] == ["night"]
        assert parts.api.public_url == "https://monitor.example.kz"
        assert parts.engine.link("a1") == "https://monitor.example.kz/#alert=a1"
    finally:
        parts.store.close()


async def test_a_device_removed_from_the_config_while_the_monitor_was_down_is_forgotten(
    tmp_path: Path,
) -> None:
    """As a reload forgets it (its open alerts resolved as forgotten), not remembered as a
    discovered device that stays down until a person forgets it."""
    clock = ManualClock()
    first = build(config(tmp_path, [GB05, XS01]), clock, Stats())
    try:
        first.restore()
        hear(first, "customs/aktau/inspection-1/xray_scanner/xs-01/telemetry", "{}")
        clock.advance(61)
        live = first.liveness
        out = first.engine.evaluate(live.devices, clock.monotonic(), live.grace_from, None)
        first.store.save_alerts(out.changed.values())
        (alert,) = [a for a in first.engine.open.values() if a.device == "xs-01"]
        first.store.save_devices(first.liveness.devices.values())
    finally:
        first.store.close()
    again = build(config(tmp_path, [GB05]), clock, Stats())
    try:
        again.restore()
        assert ("aktau", "xs-01") not in again.liveness.devices
        assert not again.normalizer.discovered
        assert not [a for a in again.engine.open.values() if a.device == "xs-01"]
        closed = again.store.alert(alert.id)
        assert closed is not None and closed.facts["resolution"] == "forgotten"
    finally:
        again.store.close()
