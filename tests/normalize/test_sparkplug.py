"""Sparkplug B decoding (SPEC 3.4): payloads built by tests/sparkplug_wire.py, by hand from
the wire format, through the normalizer."""

from __future__ import annotations

import struct
import time

import pytest

from monitor.config import Config
from monitor.model import Reading
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.reasons import Rejected
from tests.helpers import ManualClock
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
    key,
    length_delimited,
    payload,
    varint,
)

NOW = int(time.time() * 1000)
GROUP, NODE = "rail-gate-plc", "plc-01"


def normalizer(clock: ManualClock | None = None, **sparkplug: object) -> Normalizer:
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
    return Normalizer(config, clock) if clock is not None else Normalizer(config)


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


def cycles(n: Normalizer, seq: int, value: int) -> list[Reading]:
    body = payload([Metric(alias=3, value=value, datatype=UINT32)], seq=seq, timestamp=NOW)
    return readings(n, topic("DDATA", "gb-05"), body)


def test_a_swapped_pair_is_no_gap_and_a_real_gap_asks_once_its_window_ends() -> None:
    """Issue 20.6: clustered brokers reorder across topics; only a gap not filled within
    sparkplug.reorder_timeout is one (counted, a rebirth asked)."""
    clock = ManualClock()
    n = normalizer(clock=clock, reorder_timeout="2s")
    born(n)
    sp = n.sparkplug
    assert sp is not None
    cycles(n, 2, 5)
    [late] = cycles(n, 4, 7)  # 3 is late
    assert not late.historical
    clock.advance(1.0)
    [filled] = cycles(n, 3, 6)
    assert filled.historical and filled.fields == {"cycles_total": 6}  # written, no live state
    cycles(n, 5, 8)
    clock.advance(5.0)
    sp.expire(clock.monotonic())
    assert (sp.counts.seq_gaps, sp.counts.reordered, dict(sp.rebirth_wanted)) == (0, 1, {})
    cycles(n, 8, 9)  # 6 and 7 never come
    sp.expire(clock.monotonic())
    assert sp.counts.seq_gaps == 0 and not sp.rebirth_wanted  # within the window still
    clock.advance(2.0)
    sp.expire(clock.monotonic())
    assert sp.counts.seq_gaps == 1 and set(sp.rebirth_wanted) == {(GROUP, NODE)}
    # seq wraps at 255
    sp.rebirth_wanted.clear()
    sp.nodes[(GROUP, NODE)].seq = 255
    cycles(n, 0, 10)
    clock.advance(10.0)
    sp.expire(clock.monotonic())
    assert sp.counts.seq_gaps == 1 and not sp.rebirth_wanted


def test_an_unknown_alias_asks_for_a_rebirth() -> None:
    n = normalizer()
    born(n)
    sp = n.sparkplug
    assert sp is not None
    out = readings(
        n, topic("DDATA", "gb-05"), payload([Metric(alias=99, value=1, datatype=UINT32)], seq=2)
    )
    assert (
        out == [] and sp.counts.unknown_aliases == 1 and set(sp.rebirth_wanted) == {(GROUP, NODE)}
    )


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


def test_uint32_is_read_from_long_value_as_tahu_encodes_it() -> None:
    """Issue 20.1: Tahu's Java and JavaScript encoders put UInt8..UInt32 in long_value (and
    some encoders Int32 too); read from int_value only, a counter was 0."""
    n = normalizer()
    born(n)
    [r] = readings(
        n,
        topic("DDATA", "gb-05"),
        payload(
            [
                Metric(alias=3, value=4_000_000_000, datatype=UINT32, field="long"),
                Metric("u8 long", 200, UINT8, field="long"),
                Metric("u16 int", 60000, UINT16, field="int"),
                Metric("i32 long", -5 % (1 << 64), INT32, field="long"),
                Metric("u8 too big", 300, UINT8, field="long"),
                Metric("float without float", 7, FLOAT, field="int"),
            ],
            seq=2,
            timestamp=NOW,
        ),
    )
    assert r.fields == {
        "cycles_total": 4_000_000_000,
        "u8_long": 200.0,
        "u16_int": 60000.0,
        "i32_long": -5.0,
    }
    assert n.sparkplug is not None and n.sparkplug.counts.skipped_metrics == 2  # not a 0


def test_a_datatype_is_a_devices_metrics_not_a_name_across_the_node() -> None:
    """Issue 20.5: two devices of one node with a metric Temp of two types."""
    n = normalizer(groups={GROUP: {"site": "aktau", "area": "rail-gate", "kind": "xray_scanner"}})
    readings(n, topic("NBIRTH"), payload([bd_seq(0)], seq=0, timestamp=NOW))
    readings(n, topic("DBIRTH", "xs-a"), payload([Metric("Temp", 20.5, FLOAT)], seq=1))
    readings(n, topic("DBIRTH", "xs-b"), payload([Metric("Temp", 21, INT32)], seq=2))
    # data by name, as a node may send it, without the datatype (it is in the birth)
    a = readings(n, topic("DDATA", "xs-a"), payload([Metric("Temp", 30.5, FLOAT)], seq=3))
    b = readings(n, topic("DDATA", "xs-b"), payload([Metric("Temp", 31, INT32)], seq=4))
    body_a = payload([Metric("Temp", 30.5, FLOAT)], seq=5).replace(b"\x20\x09", b"")
    assert body_a  # (a datatype-less copy is below)
    a2 = readings(n, topic("DDATA", "xs-a"), payload([_untyped("Temp", 12.25, "float")], seq=5))
    b2 = readings(n, topic("DDATA", "xs-b"), payload([_untyped("Temp", 33, "int")], seq=6))
    assert [r.fields for r in (*a, *b, *a2, *b2)] == [
        {"Temp": 30.5},
        {"Temp": 31.0},
        {"Temp": 12.25},
        {"Temp": 33.0},
    ]


def _untyped(name: str, value: float, how: str) -> Metric:
    """A metric by name without its datatype: the value alone on the wire."""

    class Untyped(Metric):
        def encode(self) -> bytes:
            out = length_delimited(1, name.encode())
            if how == "float":
                return out + key(12, 5) + struct.pack("<f", value)
            return out + key(10, 0) + varint(int(value))

    return Untyped(name)


def test_a_name_that_is_not_utf8_and_a_state_that_is_none_are_skipped_not_the_message() -> None:
    """Issue 20.8: upb hands a non-UTF-8 name back as bytes; it raised and poisoned the
    alias; a state "Faulted" or 9 was stored as the state."""
    n = normalizer()
    readings(n, topic("NBIRTH"), payload([bd_seq(0)], seq=0, timestamp=NOW))
    out = readings(
        n,
        topic("DBIRTH", "gb-05"),
        payload(
            [
                Metric(raw_name=b"\xff\xfeBad", value=1, datatype=UINT32, alias=7),
                Metric("Cycles", 5, UINT32, alias=3),
                Metric("state", "Faulted", STRING, alias=8),
            ],
            seq=1,
            timestamp=NOW,
        ),
    )
    assert [(r.channel, r.fields, r.state) for r in out] == [
        ("status", {}, None),
        ("telemetry", {"cycles_total": 5}, None),
    ]
    sp = n.sparkplug
    assert sp is not None
    later = readings(
        n,
        topic("DDATA", "gb-05"),
        payload(
            [
                Metric(alias=7, value=2, datatype=UINT32),
                Metric(alias=3, value=6, datatype=UINT32),
                Metric(alias=8, value="9", datatype=STRING),
            ],
            seq=2,
            timestamp=NOW,
        ),
    )
    assert [(r.fields, r.state) for r in later] == [({"cycles_total": 6}, None)]
    mapped = readings(  # a mapped status code that maps to nothing: that metric alone
        n,
        topic("DDATA", "gb-05"),
        payload([Metric("Status", 5, UINT8), Metric("Cycles", 7, UINT32)], seq=3, timestamp=NOW),
    )
    assert [(r.fields, r.state) for r in mapped] == [({"cycles_total": 7}, None)]
    assert (sp.counts.invalid_names, sp.counts.invalid_states) == (1, 3)
    assert not sp.rebirth_wanted  # the bad name's alias is known: skipped, no rebirth


def test_deaths_take_effect_when_received_whatever_their_timestamp() -> None:
    """Issue 20.2: an NDEATH's timestamp is its Will's, made at connect; older than max_age
    it was dropped as too_old, and the devices never went offline."""
    n = normalizer()
    born(n, bd=1)
    week_ago = NOW - 8 * 86400 * 1000
    out = n.normalize(topic("NDEATH"), payload([bd_seq(1)], timestamp=week_ago), NOW)
    assert isinstance(out, list)
    assert sorted((r.device.id, r.online, r.ts_ms) for r in out) == [
        ("gb-05", False, None),
        ("plc-01", False, None),
    ]
    born(n, bd=2)
    [dead] = n.normalize(topic("DDEATH", "gb-05"), payload([], seq=2, timestamp=week_ago), NOW)  # type: ignore[misc]
    assert (dead.online, dead.ts_ms) == (False, None)


def test_historical_metrics_change_no_live_state_and_transient_ones_are_not_written() -> None:
    """Issue 20.4."""
    n = normalizer()
    born(n)
    out = readings(
        n,
        topic("DDATA", "gb-05"),
        payload(
            [
                Metric(alias=4, value=9, datatype=UINT8, timestamp=NOW - 60_000, historical=True),
                Metric(alias=3, value=1, datatype=UINT32, transient=True),
                Metric(alias=2, value=100.0, datatype=FLOAT),
            ],
            seq=2,
            timestamp=NOW,
        ),
    )
    assert [(r.ts_ms, r.historical, r.retained, r.fields, r.state) for r in out] == [
        (NOW - 60_000, True, True, {}, "fault"),
        (NOW, False, False, {"motor_current_a": 0.1}, None),
    ]
    assert n.sparkplug is not None and n.sparkplug.counts.transient == 1


def test_garbage_from_many_node_ids_keeps_no_state_and_its_wishes_are_bounded() -> None:
    """Issue 20.8: every topic made edge-node state; every name a target."""
    n = normalizer(max_nodes=50, max_metrics=300)
    sp = n.sparkplug
    assert sp is not None
    for i in range(2000):
        n.normalize(
            f"spBv1.0/{GROUP}/NDATA/node-{i}", payload([Metric("x", 1, UINT32)], seq=1), NOW
        )
    assert sp.nodes == {} and len(sp.rebirth_wanted) == 50 and sp.counts.rebirths_dropped == 1950
    born(n)
    for i in range(10):
        body = payload(
            [Metric(f"n{i}-{j}", j, UINT32) for j in range(100)], seq=2 + i, timestamp=NOW
        )
        readings(n, topic("DDATA", "gb-05"), body)
    node = sp.nodes[(GROUP, NODE)]
    assert len(node.metrics) == 300 and sp.counts.too_many_metrics == 1000 - 300 + 6
    for i in range(60):  # births of new nodes beyond max_nodes
        out = n.normalize(f"spBv1.0/{GROUP}/NBIRTH/gw-{i}", payload([bd_seq(0)], seq=0), NOW)
    assert isinstance(out, Rejected) and out.reason == "too_many_nodes"
    assert len(sp.nodes) == 50


def test_what_is_known_of_edge_nodes_survives_a_restart() -> None:
    """Issue 20.9: after a restart, an NDEATH of a node that has not spoken since is its
    current session's death, not a stale one."""
    n = normalizer()
    born(n, bd=6)
    sp = n.sparkplug
    assert sp is not None
    saved = [(g, node, data) for g, node, data in sp.snapshots() if data is not None]
    again = normalizer()
    assert again.sparkplug is not None
    again.sparkplug.restore(saved)
    out = readings(again, topic("NDEATH"), payload([bd_seq(6)], timestamp=NOW))
    assert sorted((r.device.id, r.online) for r in out) == [("gb-05", False), ("plc-01", False)]
    assert again.sparkplug.counts.stale_deaths == 0


def test_our_own_offline_state_is_noticed() -> None:
    n = normalizer(host_id="mon-1")
    sp = n.sparkplug
    assert sp is not None
    assert n.normalize("spBv1.0/STATE/other", b'{"online": false, "timestamp": 5}', NOW) == []
    assert sp.own_state_offline is None
    assert n.normalize("spBv1.0/STATE/mon-1", b'{"online": true, "timestamp": 5}', NOW) == []
    assert sp.own_state_offline is None
    assert n.normalize("spBv1.0/STATE/mon-1", b'{"online": false, "timestamp": 7}', NOW) == []
    assert sp.own_state_offline == 7
