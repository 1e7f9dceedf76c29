"""Sparkplug B decoding (SPEC 3.4): payloads built by tests/sparkplug_wire.py, by hand from
the wire format, through the normalizer."""

from __future__ import annotations

import time

import pytest

from monitor.config import Config
from monitor.model import Reading
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.reasons import Rejected
from tests.sparkplug_wire import (
    BOOLEAN,
    BYTES,
    DATASET,
    DATETIME,
    DOUBLE,
    FLOAT,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    Metric,
    bd_seq,
    payload,
)

NOW = int(time.time() * 1000)
GROUP, NODE = "rail-gate-plc", "plc-01"


def normalizer(**sparkplug: object) -> Normalizer:
    config = Config(
        canonical=True,
        devices=[{"id": "gb-05", "kind": "gate_barrier", "site": "aktau", "area": "rail-gate"}],
        sparkplug={
            "enabled": True,
            "groups": {GROUP: {"site": "aktau", "area": "rail-gate", "kind": "gate_barrier"}},
            "fields": {
                "Barrier/Up": {"to": "position", "map": {"true": "open", "false": "closed"}},
                "Motor/Current mA": {"to": "motor_current_a", "convert": "mA->A"},
                "Cycles": {"to": "cycles_total"},
                "Status": {"to": "state", "map": {"0": "ready", "9": "fault"}},
            },
            **sparkplug,
        },
    )
    return Normalizer(config)


def topic(kind: str, device: str | None = None, node: str = NODE) -> str:
    return "/".join(["spBv1.0", GROUP, kind, node, *([device] if device else [])])


def readings(n: Normalizer, t: str, body: bytes) -> list[Reading]:
    out = n.normalize(t, body, NOW)
    assert isinstance(out, list), out
    return out


def born(n: Normalizer, bd: int = 0) -> None:
    """An edge node and its barrier device gb-05 born, with aliases 1-4."""
    readings(
        n,
        topic("NBIRTH"),
        payload([bd_seq(bd), Metric("Node Control/Rebirth", False, BOOLEAN)], seq=0, timestamp=NOW),
    )
    readings(
        n,
        topic("DBIRTH", "gb-05"),
        payload(
            [
                Metric("Barrier/Up", False, BOOLEAN, alias=1),
                Metric("Motor/Current mA", 150.0, FLOAT, alias=2),
                Metric("Cycles", 1000, UINT32, alias=3),
                Metric("Status", 0, UINT8, alias=4),
            ],
            seq=1,
            timestamp=NOW,
        ),
    )


def test_births_put_devices_online_and_data_by_alias_maps_onto_canonical_metrics() -> None:
    n = normalizer()
    born_readings = readings(
        n,
        topic("DBIRTH", "gb-05"),
        payload([Metric("Barrier/Up", False, BOOLEAN, alias=1)], seq=1),
    )
    assert born_readings == []  # before its node's birth: nothing, and a rebirth is asked
    assert n.sparkplug is not None and set(n.sparkplug.rebirth_wanted) == {(GROUP, NODE)}

    born(n)
    assert not n.sparkplug.rebirth_wanted  # the NBIRTH answered it
    data = readings(
        n,
        topic("DDATA", "gb-05"),
        payload(
            [
                Metric(alias=1, value=True, datatype=BOOLEAN, timestamp=NOW - 1000),
                Metric(alias=2, value=2700.0, datatype=FLOAT, timestamp=NOW - 1000),
                Metric(alias=3, value=1001, datatype=UINT32, timestamp=NOW - 1000),
                Metric(alias=4, value=9, datatype=UINT8, timestamp=NOW),
            ],
            seq=2,
        ),
    )
    mapped = {"position": "open", "motor_current_a": 2.7, "cycles_total": 1001}
    assert [(r.device.id, r.ts_ms, r.fields, r.state) for r in data] == [
        ("gb-05", NOW - 1000, mapped, None),
        ("gb-05", NOW, {}, "fault"),
    ]
    assert data[0].device.site == "aktau" and data[0].device.area == "rail-gate"


def test_a_birth_is_an_online_status_with_its_current_values() -> None:
    n = normalizer()
    readings(n, topic("NBIRTH"), payload([bd_seq(0)], seq=0))
    out = readings(
        n,
        topic("DBIRTH", "gb-05"),
        payload([Metric("Cycles", 7, UINT32, alias=3)], seq=1, timestamp=NOW),
    )
    assert [(r.channel, r.online, r.fields) for r in out] == [
        ("status", True, {}),
        ("telemetry", None, {"cycles_total": 7}),
    ]


def test_datatypes_nulls_and_unsupported_types() -> None:
    n = normalizer()
    born(n)
    out = readings(
        n,
        topic("DDATA", "gb-05"),
        payload(
            [
                Metric("i8", -1, INT8),
                Metric("i16", -300, INT16),
                Metric("i32", -70000, INT32),
                Metric("i64", -(2**40), INT64),
                Metric("u8", 255, UINT8),
                Metric("u16", 65535, UINT16),
                Metric("u32", 2**32 - 1, UINT32),
                Metric("u64", 2**63 - 1, UINT64),
                Metric("u64 too big", 2**63, UINT64),
                Metric("f", 21.3, FLOAT),
                Metric("d", 0.1, DOUBLE),
                Metric("b", True, BOOLEAN),
                Metric("s", "ok", STRING),
                Metric("when", NOW, DATETIME),
                Metric("nothing", datatype=DOUBLE, null=True),
                Metric("blob", b"\x00\x01", BYTES),
                Metric("table", None, DATASET),
            ],
            seq=2,
            timestamp=NOW,
        ),
    )
    [reading] = out
    # unmapped numbers are kept as floats (a field's type cannot flip between int and float)
    assert reading.fields == {
        "i8": -1.0,
        "i16": -300.0,
        "i32": -70000.0,
        "i64": float(-(2**40)),
        "u8": 255.0,
        "u16": 65535.0,
        "u32": float(2**32 - 1),
        "u64": float(2**63 - 1),
        "f": 21.3,
        "d": 0.1,
        "b": True,
        "s": "ok",
        "when": float(NOW),
    }
    assert n.sparkplug is not None and n.sparkplug.counts.skipped_metrics == 4


def test_a_seq_gap_and_an_unknown_alias_ask_for_a_rebirth() -> None:
    n = normalizer()
    born(n)
    sp = n.sparkplug
    assert sp is not None
    readings(
        n, topic("DDATA", "gb-05"), payload([Metric(alias=3, value=5, datatype=UINT32)], seq=2)
    )
    assert sp.counts.seq_gaps == 0 and not sp.rebirth_wanted
    readings(
        n, topic("DDATA", "gb-05"), payload([Metric(alias=3, value=6, datatype=UINT32)], seq=5)
    )
    assert sp.counts.seq_gaps == 1 and set(sp.rebirth_wanted) == {(GROUP, NODE)}
    sp.rebirth_wanted.clear()
    readings(
        n, topic("DDATA", "gb-05"), payload([Metric(alias=3, value=7, datatype=UINT32)], seq=6)
    )
    assert sp.counts.seq_gaps == 1 and not sp.rebirth_wanted  # in order again
    out = readings(
        n, topic("DDATA", "gb-05"), payload([Metric(alias=99, value=1, datatype=UINT32)], seq=7)
    )
    assert (
        out == [] and sp.counts.unknown_aliases == 1 and set(sp.rebirth_wanted) == {(GROUP, NODE)}
    )
    # seq wraps at 255
    sp.nodes[(GROUP, NODE)].seq = 255
    readings(
        n, topic("DDATA", "gb-05"), payload([Metric(alias=3, value=8, datatype=UINT32)], seq=0)
    )
    assert sp.counts.seq_gaps == 1


def test_deaths_put_devices_offline_and_a_stale_ndeath_is_ignored() -> None:
    n = normalizer()
    born(n, bd=4)
    [dead] = readings(n, topic("DDEATH", "gb-05"), payload([], seq=2))
    assert (dead.device.id, dead.channel, dead.online, dead.state) == (
        "gb-05",
        "status",
        False,
        "offline",
    )
    born(n, bd=5)  # the node reconnected: a new session, bdSeq 5
    assert readings(n, topic("NDEATH"), payload([bd_seq(4)])) == []  # the old session's Will
    assert n.sparkplug is not None and n.sparkplug.counts.stale_deaths == 1
    out = readings(n, topic("NDEATH"), payload([bd_seq(5)]))
    # the node itself is a gateway (the registry does not name plc-01, the group's kind
    # makes it a gate barrier here) and its device: both offline
    assert sorted((r.device.id, r.online) for r in out) == [("gb-05", False), ("plc-01", False)]
    assert readings(n, topic("DDATA", "gb-05"), payload([], seq=3)) == []  # dead: rebirth


def test_historical_metrics_are_points_but_no_sign_of_life() -> None:
    n = normalizer()
    born(n)
    out = readings(
        n,
        topic("DDATA", "gb-05"),
        payload(
            [Metric(alias=3, value=900, datatype=UINT32, timestamp=NOW - 60_000, historical=True)],
            seq=2,
        ),
    )
    [r] = out
    assert r.retained and r.ts_ms == NOW - 60_000 and r.fields == {"cycles_total": 900}


def test_bad_payloads_are_rejected_and_commands_and_state_are_nothing() -> None:
    n = normalizer()
    bad = n.normalize(topic("NBIRTH"), b"\xff\xff\xff", NOW)
    assert isinstance(bad, Rejected) and bad.reason == "malformed_sparkplug"
    no_bd = n.normalize(topic("NBIRTH"), payload([], seq=0), NOW)
    assert isinstance(no_bd, Rejected) and no_bd.reason == "malformed_sparkplug"
    odd = n.normalize("spBv1.0/g/DDATA/node", payload([]), NOW)  # DDATA without a device
    assert isinstance(odd, Rejected) and odd.reason == "unknown_topic"
    assert n.normalize("spBv1.0/STATE/scada-1", b'{"online": true}', NOW) == []
    assert n.normalize(topic("NCMD"), payload([]), NOW) == []


def test_a_device_nobody_names_is_rejected() -> None:
    n = normalizer(groups={"other": {}})
    readings(n, "spBv1.0/other/NBIRTH/gw", payload([bd_seq(0)], seq=0))  # a bare gateway: fine
    out = n.normalize("spBv1.0/other/DBIRTH/gw/mystery", payload([], seq=1), NOW)
    assert isinstance(out, Rejected) and out.reason == "unknown_device"


def test_subscriptions() -> None:
    assert "spBv1.0/rail-gate-plc/#" in normalizer().subscriptions
    assert "spBv1.0/#" in normalizer(groups={}).subscriptions
    assert not any("spBv1.0" in s for s in Normalizer(Config()).subscriptions)


@pytest.mark.parametrize("level", ["+", "#", "a/b", ""])
def test_group_ids_are_topic_levels(level: str) -> None:
    with pytest.raises(ValueError, match="Sparkplug group ids"):
        normalizer(groups={level: {}})
