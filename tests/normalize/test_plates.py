"""Licence plates (SPEC 9): hashed or dropped on every decoder's path, whatever the topic,
channel or kind; never trusted as a device's own ``plate_hash``; and never kept clear by
the quarantine, whatever the rejected message looks like."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config
from monitor.model import Reading
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.plates import KeyKind, key_kind, redact
from monitor.normalize.quarantine import Quarantine
from monitor.normalize.reasons import Rejected
from monitor.stats import Stats
from tests.helpers import ManualClock
from tests.sparkplug_wire import BOOLEAN, DOUBLE, STRING, Metric, bd_seq, payload

KEY = "a-test-plate-key-of-some-length"
PLATE = "123ABC02"
NOW = int(time.time() * 1000)
CAMERA = "customs/aktau/gate-in/anpr_camera/anpr-01"
BARRIER = "customs/aktau/gate-in/gate_barrier/gb-01"
SCANNER = "customs/aktau/inspection-1/xray_scanner/xs-01"
GROUP = "gate-plc"


def plate_hash(plate: str) -> str:
    """SPEC 9's hash, computed here independently of the monitor."""
    return hmac.new(KEY.encode(), plate.encode(), hashlib.sha256).hexdigest()[:16]


def normalizer(key: str | None) -> Normalizer:
    return Normalizer(
        Config(
            canonical=True,
            passages={"plate_key": key} if key else None,
            devices=[
                {"id": "anpr-01", "kind": "anpr_camera", "site": "aktau", "area": "gate-in"},
                {"id": "gb-01", "kind": "gate_barrier", "site": "aktau", "area": "gate-in"},
                {"id": "xs-01", "kind": "xray_scanner", "site": "aktau", "area": "inspection-1"},
            ],
            profiles={
                "lpr_json": {  # a camera's own JSON; its plate mapped, or kept unmapped
                    "topic": "lpr/{device}/data",
                    "kind": "anpr_camera",
                    "site": "aktau",
                    "fields": {
                        "ANPR.licensePlate": {"to": "plate"},
                        "ANPR.plateColor": {"to": "colour"},
                        "temp": {"to": "temp_c"},
                    },
                },
                "plc": {
                    "topic": "plc/{site}/{device}/{signal}",
                    "format": "plain",
                    "kind": "gate_barrier",
                },
            },
            sparkplug={
                "enabled": True,
                "groups": {GROUP: {"site": "aktau", "area": "gate-in", "kind": "anpr_camera"}},
                "fields": {"Vision/Reading": {"to": "plate"}},
            },
        )
    )


def ok(result: Reading | list[Reading] | Rejected) -> Reading:
    assert isinstance(result, Reading), result
    return result


def n(norm: Normalizer, topic: str, body: dict[str, Any] | bytes) -> Reading | Rejected:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    result = norm.normalize(topic, data, NOW)
    assert not isinstance(result, list)
    return result


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("plate", KeyKind.PLATE),
        ("Plate", KeyKind.PLATE),
        ("licensePlate", KeyKind.PLATE),  # Hikvision
        ("license_plate", KeyKind.PLATE),
        ("LICENCE-PLATE", KeyKind.PLATE),
        ("PlateNumber", KeyKind.PLATE),  # Dahua
        ("plateNumber", KeyKind.PLATE),
        ("plate_text", KeyKind.PLATE),
        ("best_plate_number", KeyKind.PLATE),  # OpenALPR
        ("recognized_license_plate", KeyKind.PLATE),  # Frigate
        ("LPR", KeyKind.PLATE),  # LILIN
        ("lp", KeyKind.PLATE),
        ("VRM", KeyKind.PLATE),
        ("registration_number", KeyKind.PLATE),
        ("ANPR/Plate", KeyKind.PLATE),  # a Sparkplug folder
        ("plate_hash", KeyKind.ABOUT),  # a device's: never trusted
        ("plateColor", KeyKind.ABOUT),
        ("originalLicensePlate", KeyKind.ABOUT),
        ("plates", KeyKind.ABOUT),
        ("LPR_COUNT", KeyKind.ABOUT),
        ("template", KeyKind.NONE),
        ("nameplate_kw", KeyKind.NONE),
        ("Nameplate/Rated Power", KeyKind.NONE),
        ("platen_temp", KeyKind.NONE),
        ("lp_bar", KeyKind.NONE),  # a low pressure, as often as not
        ("temp_c", KeyKind.NONE),
    ],
)
def test_what_names_a_plate(key: str, kind: KeyKind) -> None:
    assert key_kind(key) is kind


# Every path a plate can take into a stored reading: (topic, payload, expected fields)
# with a plate key; without one the same fields less plate_hash.
PATHS: list[tuple[str, dict[str, Any] | bytes, dict[str, object]]] = [
    # an ANPR camera's telemetry
    (f"{CAMERA}/telemetry", {"temp_c": 30.5, "plate": PLATE}, {"temp_c": 30.5}),
    # another kind's telemetry, as a vendor might name it
    (f"{SCANNER}/telemetry", {"scans_total": 3, "licensePlate": "123 abc-02"}, {"scans_total": 3}),
    # a gate barrier's plate read: its event, hashed, and its forged plate_hash gone
    (
        f"{BARRIER}/event",
        {"type": "plate_read", "plate": PLATE, "plate_hash": "f" * 16, "confidence": 99},
        {"confidence": 99.0},
    ),
    # a camera's event that is no plate read
    (f"{CAMERA}/event", {"type": "lane_blocked", "PlateNumber": PLATE}, {}),
    # a vendor profile: mapped from a nested path, the rest of the plate's object dropped
    (
        "lpr/anpr-01/data",
        {"temp": 31.0, "ANPR": {"licensePlate": PLATE, "plateColor": "white"}},
        {"temp_c": 31.0},
    ),
    # ... and kept unmapped (the profile keeps unmapped keys)
    ("lpr/anpr-01/data", {"temp": 31.0, "best_plate_number": PLATE}, {"temp_c": 31.0}),
    # a plain value whose topic names it
    ("plc/aktau/gb-01/plate", PLATE.encode(), {}),
]


@pytest.mark.parametrize("key", [KEY, None], ids=["with a plate key", "without"])
@pytest.mark.parametrize(
    ("topic", "body", "fields"), PATHS, ids=[f"{p[0]} {i}" for i, p in enumerate(PATHS)]
)
def test_a_plate_is_hashed_or_dropped_on_every_path(
    key: str | None, topic: str, body: dict[str, Any] | bytes, fields: dict[str, object]
) -> None:
    reading = ok(n(normalizer(key), topic, body))
    expected = {**fields, "plate_hash": plate_hash(PLATE)} if key else fields
    assert reading.fields == expected
    assert PLATE not in repr(reading) and "abc" not in repr(reading)


def test_a_number_about_a_plate_is_no_plate_and_is_kept(tmp_path: Path) -> None:
    norm = normalizer(KEY)
    body = {"weight_kg": 1.0, "plate_temp_c": 31.5, "plate_color": "white", "LPR_COUNT": 3}
    reading = ok(n(norm, "customs/aktau/gate-in/weighbridge/wb-01/telemetry", body))
    assert reading.fields == {"weight_kg": 1.0, "plate_temp_c": 31.5, "LPR_COUNT": 3.0}
    vendor = ok(n(norm, "lpr/anpr-01/data", {"ANPR": {"plateColor": 2}, "plateColour": "red"}))
    assert vendor.fields == {"colour": 2.0}
    assert ok(n(norm, "plc/aktau/gb-01/plate_temp", b"31.5")).fields == {"plate_temp": 31.5}
    assert ok(n(norm, "plc/aktau/gb-01/plate_colour", b"white")).fields == {}
    q = Quarantine(tmp_path, max_bytes=1_000_000, clock=ManualClock(), stats=Stats())
    q.reject(f"{SCANNER}/telemetry", json.dumps(body).encode(), "wrong_type", "d", NOW)
    q.close()
    (record,) = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert json.loads(record["payload"]) == {**body, "plate_color": "***"}


def test_a_device_plate_hash_is_dropped_and_only_a_camera_read_needs_a_plate() -> None:
    norm = normalizer(KEY)
    forged = {"type": "plate_read", "plate_hash": plate_hash(PLATE)}
    assert ok(n(norm, f"{BARRIER}/event", forged)).fields == {}
    assert ok(n(norm, f"{BARRIER}/telemetry", {"plate_hash": "x", "cycles_total": 1})).fields == {
        "cycles_total": 1
    }
    no_plate = n(norm, f"{CAMERA}/event", forged)
    assert no_plate == Rejected("invalid_event", "plate_read without a plate")
    bad = n(norm, f"{CAMERA}/event", {"type": "plate_read", "plate": "12 3/ABC!"})
    assert isinstance(bad, Rejected) and "12 3" not in bad.detail
    read = ok(n(norm, f"{CAMERA}/event", {"type": "plate_read", "licensePlate": PLATE}))
    assert read.fields == {"plate_hash": plate_hash(PLATE)}


@pytest.mark.parametrize("key", [KEY, None], ids=["with a plate key", "without"])
def test_sparkplug_plate_metrics_by_name_and_by_alias(key: str | None) -> None:
    norm = normalizer(key)
    node = f"spBv1.0/{GROUP}/%s/edge-1"
    norm.normalize(node % "NBIRTH", payload([bd_seq(0)], seq=0, timestamp=NOW), NOW)
    birth = payload(
        [
            Metric("Temp", 30.0, DOUBLE, alias=1),
            Metric("Plate", PLATE, STRING, alias=2),  # unmapped, kept: hashed
            Metric("Vision/Reading", PLATE, STRING, alias=3),  # mapped to plate
            Metric("plate_hash", "f" * 16, STRING, alias=4),  # forged
            Metric("Plate Colour", "white", STRING, alias=5),
            Metric("Plate Temp", 31.5, DOUBLE, alias=6),  # about a plate, no text: kept
        ],
        seq=1,
        timestamp=NOW,
    )
    data = payload([Metric(alias=2, value="777KZA15", datatype=STRING)], seq=2, timestamp=NOW)
    out = [
        *norm.normalize(f"{node % 'DBIRTH'}/anpr-01", birth, NOW),  # type: ignore[misc]
        *norm.normalize(f"{node % 'DDATA'}/anpr-01", data, NOW),  # type: ignore[misc]
    ]
    fields = [r.fields for r in out if r.channel == "telemetry"]
    if key:
        assert fields == [
            {"Temp": 30.0, "plate_hash": plate_hash(PLATE), "Plate_Temp": 31.5},
            {"plate_hash": plate_hash("777KZA15")},
        ]
    else:
        assert fields == [{"Temp": 30.0, "Plate_Temp": 31.5}]
    assert PLATE not in repr(out) and "777KZA15" not in repr(out) and "white" not in repr(out)


# -- the quarantine -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "body", "kept"),
    [
        # a misspelled channel, a kind the registry contradicts: by content, not by topic
        (
            f"{CAMERA}/events",
            b'{"type": "plate_read", "plate": "123ABC02", "confidence": 97.5, "lane": "2"}',
            {"type": "plate_read", "plate": "***", "confidence": 97.5, "lane": "2"},
        ),
        (
            "customs/aktau/gate-in/gate_barrier/anpr-01/event",
            b'{"type": "plate_read", "note": "123ABC02", "confidence": 97.5}',
            {"type": "plate_read", "note": "***", "confidence": 97.5},  # a read: texts too
        ),
        (
            f"{SCANNER}/telemetry",
            b'{"scans_total": "x", "results": [{"candidates": [{"PLATE": "123ABC02"}]}]}',
            {"scans_total": "x", "results": [{"candidates": [{"PLATE": "***"}]}]},
        ),
        (f"{SCANNER}/telemetry", b'{"plate": "123ABC02", "t": 1,}', None),  # not JSON
        (f"{SCANNER}/telemetry", b'{"plate": "123ABC02", "t": NaN}', None),
        (f"{CAMERA}/telemetry", b"123ABC02", None),  # an ANPR camera's, not JSON
        (f"{SCANNER}/telemetry", b"<vehiclePlate>123ABC02</vehiclePlate>", None),
        ("lpr/cam-9/plate", b'{"value": "123ABC02"}', None),  # the topic names a plate
    ],
    ids=[
        "misspelled channel",
        "kind contradicts the registry",
        "nested",
        "not JSON",
        "NaN",
        "a camera's, not JSON",
        "XML",
        "the topic names a plate",
    ],
)
def test_the_quarantine_keeps_no_clear_plate(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    body: bytes,
    kept: dict[str, object] | None,
) -> None:
    caplog.set_level(logging.WARNING)
    q = Quarantine(tmp_path, max_bytes=1_000_000, clock=ManualClock(), stats=Stats())
    # the detail quotes the plate, as a value check might: it is not kept either
    q.reject(topic, body, "wrong_type", f"value {PLATE!r} is wrong", NOW)
    q.close()
    text = (tmp_path / "quarantine.jsonl").read_text()
    (record,) = [json.loads(line) for line in text.splitlines()]
    assert PLATE not in text and PLATE not in caplog.text
    assert record["payload_redacted"] is True
    if kept is None:
        assert record["payload"] == "(not kept: it may carry a licence plate)"
    else:
        assert json.loads(record["payload"]) == kept
        assert record["detail"] == "value '***' is wrong"


def test_the_quarantine_keeps_what_carries_no_plate_as_it_came(tmp_path: Path) -> None:
    q = Quarantine(tmp_path, max_bytes=1_000_000, clock=ManualClock(), stats=Stats())
    bodies = [b'{"template": "x", "nameplate_kw": 5, "t": 1,}', b'{"scans_total": "x"}', b"\xff"]
    for body in bodies:
        q.reject(f"{SCANNER}/telemetry", body, "wrong_type", "d", NOW)
    q.close()
    records = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert [r.get("payload") or b64(r) for r in records] == [
        bodies[0].decode(),
        bodies[1].decode(),
        bodies[2],
    ]
    assert not any("payload_redacted" in r for r in records)


def test_the_quarantine_keeps_a_sparkplug_payload_without_its_texts(tmp_path: Path) -> None:
    """A plate may come by alias, under no name to tell it by: every text goes."""
    q = Quarantine(tmp_path, max_bytes=1_000_000, clock=ManualClock(), stats=Stats())
    body = payload(
        [Metric(alias=7, value=PLATE, datatype=STRING), Metric("Ok", True, BOOLEAN)], seq=3
    )
    q.reject(f"spBv1.0/{GROUP}/DDATA/edge-1/cam-x", body, "unknown_device", "cam-x", NOW)
    q.close()
    (record,) = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    stored = record["payload"].encode() if "payload" in record else b64(record)
    assert PLATE.encode() not in stored and b"***" in stored and b"Ok" in stored
    assert record["payload_redacted"] is True


def b64(record: dict[str, Any]) -> bytes:
    return base64.b64decode(record["payload_b64"])


def test_redact_survives_what_python_cannot_recurse_into() -> None:
    deep = b"[" * 1000 + b'{"plate": "123ABC02"}' + b"]" * 1000
    assert redact(f"{SCANNER}/telemetry", deep) == (None, [])


def test_a_sparkplug_payload_keeps_no_field_the_schema_does_not_name(tmp_path: Path) -> None:
    q = Quarantine(tmp_path, max_bytes=1_000_000, clock=ManualClock(), stats=Stats())
    unknown = bytes([0x3A, len(PLATE)]) + PLATE.encode()  # field 7, length-delimited
    body = payload([Metric("Ok", True, BOOLEAN)], seq=3) + unknown
    q.reject(f"spBv1.0/{GROUP}/DDATA/edge-1/cam-x", body, "unknown_device", "cam-x", NOW)
    q.close()
    (record,) = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    stored = record["payload"].encode() if "payload" in record else b64(record)
    assert PLATE.encode() not in stored and b"Ok" in stored
