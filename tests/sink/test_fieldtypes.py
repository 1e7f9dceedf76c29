"""The table of field types (SPEC 4: one type per measurement and field), the lines it
makes, InfluxDB's refusals read back, and a field taken out of a line."""

from __future__ import annotations

import logging

import pytest

from monitor.model import Device, Reading
from monitor.sink import lineproto, schema
from monitor.sink.fieldtypes import Conflict, FieldTypes, parse_conflict
from monitor.stats import Stats
from tests.helpers import ManualClock

XS = Device("xs-01", "xray_scanner", "aktau", "inspection-1")


def table(max_learned: int = 10_000) -> tuple[FieldTypes, Stats, ManualClock]:
    stats, clock = Stats(), ManualClock()
    return FieldTypes(schema.FIXED_TYPES, stats, clock, max_learned), stats, clock


def test_a_kinds_metrics_and_state_have_their_fixed_types() -> None:
    types, stats, _ = table()
    fields = {"tube_voltage_kv": 140.0, "scans_total": 12, "interlock_ok": True, "state": "busy"}
    assert types.field_set("xray_scanner", fields) == (
        'tube_voltage_kv=140.0,scans_total=12i,interlock_ok=true,state="busy"'
    )
    assert types.field_set("xray_scanner", {"scans_total": 12.0}) == ""  # not an int
    assert types.field_set("xray_scanner", {"state": 1.0, "detector_temp_c": 30.5}) == (
        "detector_temp_c=30.5"
    )
    assert stats.field_type_conflicts == 2
    assert types.learned == 0


def test_an_unknown_field_keeps_the_type_of_its_first_value() -> None:
    types, stats, _ = table()
    assert types.field_set("xray_scanner", {"fw": "1.2", "detector_temp_c": 30.0}) == (
        'fw="1.2",detector_temp_c=30.0'
    )
    assert types.known("xray_scanner", "fw") is str
    assert types.field_set("xray_scanner", {"fw": 2.0, "detector_temp_c": 31.0}) == (
        "detector_temp_c=31.0"
    )
    assert types.field_set("xray_scanner", {"fw": True}) == ""
    assert stats.field_type_conflicts == 2
    assert types.known("xray_scanner", "fw") is str  # the first type stays
    # per measurement: the same name elsewhere is another field
    assert types.field_set("gate_barrier", {"fw": 2.0}) == "fw=2.0"
    assert types.field_set("events", {"fw": False, "n": 1}) == "fw=false,n=1i"
    assert types.field_set("events", {"fw": "x", "n": 1}) == "n=1i"
    # bool and number are two types, as InfluxDB has them
    assert types.field_set("weighbridge", {"door": True}) == "door=true"
    assert types.field_set("weighbridge", {"door": 1.0}) == ""
    assert stats.field_type_conflicts == 4


def test_events_fixed_fields_hold_against_a_devices_payload() -> None:
    types, stats, _ = table()
    assert types.field_set("events", {"plate_hash": 5.0, "n": 1}) == "n=1i"
    assert types.field_set("events", {"plate_hash": "ab12", "n": 1}) == 'plate_hash="ab12",n=1i'
    assert stats.field_type_conflicts == 1


def test_the_table_is_bounded_and_beyond_it_fields_are_written_unchecked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    types, stats, _ = table(max_learned=3)
    for i in range(3):
        types.field_set("xray_scanner", {f"f{i}": 1.0})
    with caplog.at_level(logging.WARNING):
        assert types.field_set("xray_scanner", {"f3": 1.0, "f4": "x"}) == 'f3=1.0,f4="x"'
        assert types.field_set("xray_scanner", {"f3": "x"}) == 'f3="x"'
    assert types.learned == 3
    assert types.known("xray_scanner", "f3") is None
    assert [r.message for r in caplog.records] == ["field_types.full"]  # once
    # what it knows it still enforces
    assert types.field_set("xray_scanner", {"f0": "x"}) == ""
    assert stats.field_type_conflicts == 1


def test_show_field_keys_teaches_the_devices_measurements_only() -> None:
    types, _, _ = table()
    learned = types.load(
        [
            {
                "name": "xray_scanner",
                "columns": ["fieldKey", "fieldType"],
                "values": [
                    ["fw", "string"],
                    ["fw", "float"],  # shards of two types: the first listed
                    ["scans_total", "float"],  # fixed by the schema: stays an int
                    ["fan_rpm", "float"],
                    ["raw", "unsigned"],  # never written by the monitor: every value conflicts
                ],
            },
            {"name": "events", "values": [["door", "boolean"]]},
            {"name": "cpu", "values": [["usage", "integer"]]},  # another writer's
            {"name": "events", "values": None},
        ]
    )
    assert learned == 4
    assert types.known("xray_scanner", "fw") is str
    assert types.known("xray_scanner", "scans_total") is int
    assert types.known("xray_scanner", "fan_rpm") is float
    assert types.known("events", "door") is bool
    assert types.known("cpu", "usage") is None
    assert types.field_set("xray_scanner", {"fw": 1.0, "raw": 1.0, "fan_rpm": 2.0}) == (
        "fan_rpm=2.0"
    )


def test_a_refusal_teaches_influxdbs_type_except_for_fixed_fields() -> None:
    types, _, _ = table()
    types.field_set("xray_scanner", {"fw": 1.0})
    assert types.refused(Conflict("xray_scanner", "fw", "float", "string")) is str
    assert types.known("xray_scanner", "fw") is str  # InfluxDB's, from now on
    assert types.refused(Conflict("xray_scanner", "mode", "float", "boolean")) is bool
    assert types.known("xray_scanner", "mode") is bool
    assert types.refused(Conflict("xray_scanner", "scans_total", "integer", "float")) is float
    assert types.known("xray_scanner", "scans_total") is int  # the schema's stays
    assert types.field_set("xray_scanner", {"fw": "1.3", "mode": 1.0}) == 'fw="1.3"'


def test_conflicts_are_logged_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    types, stats, clock = table()
    types.field_set("xray_scanner", {"fw": "1.2"})
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            types.field_set("xray_scanner", {"fw": 1.0})
        clock.advance(61)
        types.field_set("xray_scanner", {"fw": 1.0})
    logged = [r for r in caplog.records if r.message == "field.type_conflict"]
    assert [r.__dict__["similar_since_last_log"] for r in logged] == [0, 4]
    assert (logged[0].__dict__["field"], logged[0].__dict__["known_type"]) == ("fw", "string")
    assert stats.field_type_conflicts == 6


def test_a_point_with_nothing_left_is_not_written() -> None:
    types, _, _ = table()
    types.field_set("xray_scanner", {"fw": "1.2"})
    assert schema.reading_line(Reading(XS, "telemetry", 1, {"fw": 2.0}), 1000, types) is None
    assert (
        schema.reading_line(Reading(XS, "telemetry", 1, {"fw": 2.0}, state="ready"), 1000, types)
        == 'xray_scanner,area=inspection-1,device=xs-01,site=aktau state="ready" 1000'
    )
    event = Reading(XS, "event", 1, {"fw": 2.0, "lane": 3.0}, event_type="scan_completed")
    assert schema.reading_line(event, 1000, types) == (
        "events,area=inspection-1,device=xs-01,kind=xray_scanner,site=aktau,type=scan_completed"
        " fw=2.0,lane=3.0,n=1i 1000"
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (  # InfluxDB 1.x, as the writer words it
            'HTTP 400: {"error":"partial write: field type conflict: input field \\"fw\\" on'
            ' measurement \\"xray_scanner\\" is type float, already exists as type string'
            ' dropped=2"}\n',
            Conflict("xray_scanner", "fw", "float", "string"),
        ),
        (  # 2.x
            'HTTP 422: {"code":"unprocessable entity","message":"failure writing points to'
            ' database: partial write: field type conflict: input field \\"n\\" on'
            ' measurement \\"events\\" is type integer, already exists as type float'
            ' dropped=1"}',
            Conflict("events", "n", "integer", "float"),
        ),
        (  # names with quotes and spaces; the body cut short (not JSON any more)
            'HTTP 400: {"error":"partial write: field type conflict: input field \\"a \\"b\\"'
            ' on measurement \\"x y\\" is type boolean, already exists as type integer drop',
            Conflict("x y", 'a "b', "boolean", "integer"),
        ),
        (
            'HTTP 400: {"error":"partial write: unable to parse \'x t=1 9\': time outside range"}',
            None,
        ),
        ("HTTP 400: not json at all", None),
    ],
)
def test_influxdbs_refusal_is_read(error: str, expected: Conflict | None) -> None:
    assert parse_conflict(error) == expected


@pytest.mark.parametrize(
    ("line", "measurement", "key", "keep", "expected"),
    [
        ("m,d=a fw=1.5,t=2.0 10", "m", "fw", str, ("m,d=a t=2.0 10", True)),
        ('m,d=a fw="x",t=2.0 10', "m", "fw", str, ('m,d=a fw="x",t=2.0 10', False)),
        ("m,d=a t=2.0,fw=true 10", "m", "fw", float, ("m,d=a t=2.0 10", True)),
        ("m,d=a t=2.0,fw=3i 10", "m", "fw", float, ("m,d=a t=2.0 10", True)),
        ("m,d=a fw=1.5 10", "m", "fw", str, (None, True)),
        ("m2,d=a fw=1.5 10", "m", "fw", str, ("m2,d=a fw=1.5 10", False)),
        ("m fw=1.5,x=1.0 10", "m", "fw", str, ("m x=1.0 10", True)),
        # strings holding what separates fields; escaped names
        (
            'm,d=a\\ b s="a, b=\\"c\\" \\\\",my\\ f\\,w\\=x=1.0,t=1.0 10',
            "m",
            "my f,w=x",
            str,
            ('m,d=a\\ b s="a, b=\\"c\\" \\\\",t=1.0 10', True),
        ),
        ('x\\ y,d=a fw="s",fw2=1.0 10', "x y", "fw", float, ("x\\ y,d=a fw2=1.0 10", True)),
    ],
)
def test_a_field_is_taken_out_of_a_line(
    line: str, measurement: str, key: str, keep: type, expected: tuple[str | None, bool]
) -> None:
    assert lineproto.drop_field(line, measurement, key, keep) == expected


def test_every_written_value_reads_back_as_its_type() -> None:
    for value, t in ((1.5, float), (-3, int), (True, bool), (False, bool), ('a "b" ,=\\', str)):
        text = lineproto.format_value(value)
        assert lineproto.value_type(text) is t, text
