"""Line protocol: exact escaping rules, and a property round trip through real InfluxDB."""

from __future__ import annotations

import itertools
import math
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import LineProtocolError
from monitor.model import INT64_MAX, INT64_MIN
from monitor.sim.devservers import InfluxDB
from monitor.sink import lineproto
from monitor.sink.lineproto import line
from tests.helpers import influx_query


def test_escapes_measurement_tags_fields_and_strings() -> None:
    assert line("x ray,1", {"a=b": "c d,e", "site": "aktau"}, {"f k": 'say "hi" \\ bye'}, 5) == (
        r'x\ ray\,1,a\=b=c\ d\,e,site=aktau f\ k="say \"hi\" \\ bye" 5'
    )


def test_value_types() -> None:
    assert line("m", {}, {"i": 3, "f": 3.0, "b": True, "s": ""}, 1) == 'm i=3i,f=3.0,b=true,s="" 1'
    assert line("m", {}, {"big": 1e300, "neg": -0.5}, 1) == "m big=1e+300,neg=-0.5 1"
    assert line("m", {}, {"max": INT64_MAX, "min": INT64_MIN}, 1).endswith(
        f"max={INT64_MAX}i,min={INT64_MIN}i 1"
    )


def test_field_keys_from_payloads_do_not_grow_memory_without_bound() -> None:
    """Escaped keys are cached for speed; keys chosen by publishers must not fill memory."""
    for i in range(lineproto._FIELD_KEYS_MAX + 5000):
        assert line("m", {}, {f"k{i} x": 1.0}, 0) == f"m k{i}\\ x=1.0 0"
    assert len(lineproto._field_keys) <= lineproto._FIELD_KEYS_MAX


def test_tags_are_sorted() -> None:
    assert line("m", {"site": "s", "area": "a", "device": "d"}, {"v": 1}, 0) == (
        "m,area=a,device=d,site=s v=1i 0"
    )


@pytest.mark.parametrize(
    ("tags", "fields"),
    [
        ({}, {}),  # a point needs a field
        ({}, {"v": math.nan}),
        ({}, {"v": math.inf}),
        ({}, {"v": INT64_MAX + 1}),
        ({}, {"time": 1}),  # InfluxDB refuses a field named time
        ({"time": "x"}, {"v": 1}),
        ({"dev": "ends-in\\"}, {"v": 1}),  # a trailing backslash cannot be parsed back
        ({"dev": "new\nline"}, {"v": 1}),  # a newline ends the line: injection
        ({"dev": ""}, {"v": 1}),
        ({}, {"bad\nkey": 1}),
        ({}, {"v": None}),
        ({}, {"v": "lone \ud800 surrogate"}),
        ({"dev": "x\udfff"}, {"v": 1}),
    ],
)
def test_refuses_what_influxdb_would_misread(tags: dict, fields: dict) -> None:
    with pytest.raises(LineProtocolError):
        line("m", tags, fields, 0)


# -- round trip through the real InfluxDB -------------------------------------------------

# Names and tag values: any text but backslashes and control characters (refused above).
names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"),
    min_size=1,
    max_size=30,
).filter(lambda s: s != "time")
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(INT64_MIN, INT64_MAX),
    st.booleans(),
    strings,
)
_seq = itertools.count()


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.integration
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    measurement=names,
    tag_values=st.lists(names, min_size=1, max_size=3),
    fields=st.dictionaries(names, values, min_size=1, max_size=4),
    ts=st.integers(0, 4_000_000_000_000),
)
def test_round_trip_through_influxdb(
    influxd: InfluxDB, measurement: str, tag_values: list[str], fields: dict, ts: int
) -> None:
    db = "roundtrip"
    influx_query(influxd.url, db, f"CREATE DATABASE {db}")
    # A fresh measurement per example: field types must not clash across examples.
    measurement = f"m{next(_seq)}_{measurement}"
    tags = {f"t{i}": v for i, v in enumerate(tag_values)}
    fields = {f"f_{k}": v for k, v in fields.items()}  # disjoint from the tag keys
    body = line(measurement, tags, fields, ts).encode()
    req = urllib.request.Request(f"{influxd.url}/write?db={db}&precision=ms", data=body)
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204

    series = influx_query(influxd.url, db, f"SELECT * FROM {_ident(measurement)}")
    assert len(series) == 1
    assert series[0]["name"] == measurement
    (row,) = [dict(zip(series[0]["columns"], v, strict=True)) for v in series[0]["values"]]
    assert row.pop("time") == ts
    for key, value in tags.items():
        assert row.pop(key) == value
    # InfluxDB's JSON writes a large float like 6.1e16 as an integer literal: compare floats
    # as floats (the stored value is exact, only its JSON spelling differs).
    got = {k: float(v) if isinstance(fields.get(k), float) else v for k, v in row.items()}
    assert got == fields
    assert all(type(got[k]) is type(v) for k, v in fields.items())
