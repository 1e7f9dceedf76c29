"""Normalization as a pure function of (topic, payload, receive time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.model import Device, Reading, key_text
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.reasons import REASONS, Rejected
from monitor.normalize.topics import receives
from tests.helpers import SHIPPED_CONFIG

NOW = 1_790_000_000_000  # ms
XS01 = "customs/aktau/inspection-1/xray_scanner/xs-01"


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer(load_config(SHIPPED_CONFIG))


def ok(result: Reading | Rejected) -> Reading:
    assert isinstance(result, Reading), result
    return result


def rejected(result: Reading | Rejected) -> str:
    assert isinstance(result, Rejected), result
    assert result.reason in REASONS
    return result.reason


def n(norm: Normalizer, topic: str, payload: object, received: int = NOW, retained: bool = False):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return norm.normalize(topic, data, received, retained)


def test_canonical_types_follow_the_kind_schema(norm: Normalizer) -> None:
    r = ok(
        n(
            norm,
            f"{XS01}/telemetry",
            {
                "ts": NOW - 10,
                "state": "ready",
                "tube_voltage_kv": 140,
                "scans_total": 12.0,
                "interlock_ok": 1,
                "extra_int": 7,
                "note": "x",
                "flag": False,
                "gone": None,
            },
        )
    )
    assert r.device == Device("xs-01", "xray_scanner", "aktau", "inspection-1")
    assert r.ts_ms == NOW - 10 and r.state == "ready" and r.channel == "telemetry"
    assert r.fields == {
        "tube_voltage_kv": 140.0,
        "scans_total": 12,
        "interlock_ok": True,
        "extra_int": 7.0,
        "note": "x",
        "flag": False,
    }
    assert type(r.fields["tube_voltage_kv"]) is float and type(r.fields["scans_total"]) is int
    assert type(r.fields["extra_int"]) is float  # unknown numbers never flip int/float


def test_without_ts_the_receive_time_is_used(norm: Normalizer) -> None:
    # no time of its own: the pipeline stamps it with the receive time (tests/e2e)
    assert ok(n(norm, f"{XS01}/telemetry", {"scans_total": 1})).ts_ms is None


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-09-21T14:13:20Z", 1_790_000_000_000),
        ("2026-09-21T19:13:20.250+05:00", 1_790_000_000_250),
        (1_790_000_000_000, 1_790_000_000_000),
        (1_789_999_999_999.6, 1_790_000_000_000),
    ],
)
def test_timestamps(norm: Normalizer, ts: object, expected: int) -> None:
    assert ok(n(norm, f"{XS01}/telemetry", {"ts": ts, "scans_total": 1})).ts_ms == expected


def test_future_clock_is_replaced_by_receive_time_not_rejected(norm: Normalizer) -> None:
    r = ok(n(norm, f"{XS01}/telemetry", {"ts": NOW + 301_000, "scans_total": 1}))
    assert (r.ts_ms, r.clock_skew) == (None, True)  # the receive time instead
    r = ok(n(norm, f"{XS01}/telemetry", {"ts": NOW + 299_000, "scans_total": 1}))
    assert (r.ts_ms, r.clock_skew) == (NOW + 299_000, False)


def test_max_age_edge(norm: Normalizer) -> None:
    week = 7 * 86_400_000
    assert ok(n(norm, f"{XS01}/telemetry", {"ts": NOW - week, "scans_total": 1}))
    assert (
        rejected(n(norm, f"{XS01}/telemetry", {"ts": NOW - week - 1, "scans_total": 1}))
        == "too_old"
    )


def test_discovered_device_takes_site_area_kind_from_topic(norm: Normalizer) -> None:
    r = ok(n(norm, "customs/kuryk/rail-gate/weighbridge/wb-77/telemetry", {"weight_kg": 40_000}))
    assert r.device == Device("wb-77", "weighbridge", "kuryk", "rail-gate")


def test_registry_wins_over_topic_for_registered_devices(norm: Normalizer) -> None:
    r = ok(n(norm, "customs/aktau/somewhere/xray_scanner/xs-01/telemetry", {"scans_total": 1}))
    assert r.device.area == "inspection-1"


@pytest.mark.parametrize(
    ("payload", "online", "state"),
    [
        (b"online", True, None),
        (b"offline", False, "offline"),
        (b'{"state": "fault", "code": "E42"}', True, "fault"),  # connected, but faulty
        (b'{"state": "ready"}', True, "ready"),
    ],
)
def test_status_payloads(norm: Normalizer, payload: bytes, online: bool, state: str | None) -> None:
    r = ok(n(norm, f"{XS01}/status", payload, retained=True))
    assert (r.channel, r.online, r.state, r.retained) == ("status", online, state, True)


def test_event(norm: Normalizer) -> None:
    r = ok(n(norm, f"{XS01}/event", {"type": "scan_completed", "lane": 3}))
    assert (r.channel, r.event_type, r.fields) == ("event", "scan_completed", {"lane": 3.0})


def test_scanner_vendor_x(norm: Normalizer) -> None:
    r = ok(
        n(
            norm,
            "scanners/xs-02/data",
            {
                "time": NOW - 5,
                "devStatus": 3,
                "hv": 150_000,
                "beamCurrent": 1.1,
                "detTempF": 212,
                "scanCount": 9,
                "fw": "2.1",
            },
        )
    )
    assert r.device == Device("xs-02", "xray_scanner", "aktau", "inspection-1")
    assert r.ts_ms == NOW - 5 and r.state == "busy"
    assert r.fields == pytest.approx(
        {
            "tube_voltage_kv": 150.0,
            "tube_current_ma": 1.1,
            "detector_temp_c": 100.0,
            "scans_total": 9,
            "fw": "2.1",
        }
    )
    assert type(r.fields["scans_total"]) is int


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (0, "offline"),
        (1, "standby"),
        (2, "ready"),
        (3, "busy"),
        (4, "warming_up"),
        (8, "maintenance"),
        (9, "fault"),
    ],
)
def test_scanner_vendor_x_status_codes(norm: Normalizer, code: int, state: str) -> None:
    assert ok(n(norm, "scanners/xs-02/data", {"devStatus": code})).state == state


@pytest.mark.parametrize(
    ("signal", "value", "fields", "state"),
    [
        ("barrier_up", b"1", {"position": "open"}, None),
        ("barrier_up", b"0\n", {"position": "closed"}, None),
        ("motor_amps", b"2.7", {"motor_current_a": 2.7}, None),
        ("cycles", b"1042", {"cycles_total": 1042}, None),
        ("fault", b"1", {}, "fault"),
        ("fault", b"0", {}, "ready"),
        ("oil_temp", b"61.5", {"oil_temp": 61.5}, None),  # unmapped signals are kept
    ],
)
def test_plc_gateway(
    norm: Normalizer, signal: str, value: bytes, fields: dict, state: str | None
) -> None:
    r = ok(norm.normalize(f"plc/aktau/gb-03/{signal}", value, NOW))
    assert r.device == Device("gb-03", "gate_barrier", "aktau", "gate-out")
    assert (r.fields, r.state, r.ts_ms) == (fields, state, None)


def test_plc_device_not_in_registry_is_discovered_from_topic_site(norm: Normalizer) -> None:
    r = ok(norm.normalize("plc/kuryk/gb-99/motor_amps", b"1.5", NOW))
    assert r.device == Device("gb-99", "gate_barrier", "kuryk", "unassigned")


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"{XS01}/telemetry", b'{"a": true, "a2": [1]}', "wrong_type"),
        (f"{XS01}/telemetry", b'{"tube_voltage_kv": true}', "wrong_type"),  # bool is not a number
        (f"{XS01}/telemetry", b'{"interlock_ok": 2}', "wrong_type"),
        (f"{XS01}/telemetry", b'{"scans_total": 9223372036854775808}', "invalid_value"),
        (f"{XS01}/telemetry", b'{"x": 1' + b"0" * 400 + b"}", "non_finite"),
        (f"{XS01}/telemetry", b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
        (f"{XS01}/telemetry", b'{"ts": true}', "bad_timestamp"),
        (f"{XS01}/telemetry", b'{"ts": "2026-09-21T14:13:20"}', "bad_timestamp"),  # no zone
        (f"{XS01}/telemetry", b'{"bad\\nname": 1}', "invalid_field_name"),
        (f"{XS01}/telemetry", b'{"back\\\\slash": 1}', "invalid_field_name"),
        (f"{XS01}/telemetry", b'{"note": "' + b"x" * 70_000 + b'"}', "invalid_value"),
        (f"{XS01}/status", b"maybe", "malformed_json"),
        (f"{XS01}/event", b'{"type": "has space"}', "invalid_event"),
        ("customs/aktau/a/xray_scanner/x\u00e9/telemetry", b"{}", "invalid_device_id"),
        ("customs/aktau/a/xray_scanner/" + "x" * 65 + "/telemetry", b"{}", "invalid_device_id"),
        ("customs/aktau/gate-in/xray_scanner/xs-01", b"{}", "unknown_topic"),
        ("other/topic", b"{}", "unknown_topic"),
        ("plc/aktau/gb-03/motor_amps", b"fast", "wrong_type"),
        ("plc/aktau/gb-03/motor_amps", b"\xff", "not_utf8"),
        ("plc/aktau/gb-03/motor_amps", b"  ", "empty_payload"),
        ("scanners/xs-02/data", b'{"hv": "lots"}', "wrong_type"),
    ],
)
def test_rejections(norm: Normalizer, topic: str, payload: bytes, reason: str) -> None:
    assert rejected(norm.normalize(topic, payload, NOW)) == reason


def test_subscriptions_cover_every_profile(norm: Normalizer) -> None:
    assert norm.subscriptions == ["customs/+/+/+/+/+", "scanners/+/data", "plc/+/+/+"]


@pytest.mark.parametrize(
    ("topic", "route"),
    [
        ("customs/aktau/gate-in/xray_scanner/xs-01/telemetry", "canonical"),
        ("scanners/xs-02/data", "scanner_vendor_x"),
        ("plc/aktau/gb-03/motor_amps", "plc_gateway"),
        ("plc/aktau/gb-03", None),
        ("other/topic", None),
    ],
)
def test_a_topic_names_its_route(norm: Normalizer, topic: str, route: str | None) -> None:
    assert norm.route_of(topic) == route


def _batch_decoder(segments: dict[str, str], payload: bytes, retained: bool) -> list[Reading]:
    """A format of several samples in one message: ``{"samples": [{"ts": ..., "w": ...}]}``."""
    device = Device(segments["device"], "weighbridge", "aktau", "gate-in")
    return [
        Reading(device, "telemetry", s["ts"], {"weight_kg": float(s["w"])}, retained=retained)
        for s in json.loads(payload)["samples"]
    ]


def test_any_decoder_may_return_several_readings() -> None:
    """The decoder contract (docs/architecture.md, "Where new things go"): a list from any
    route, not only Sparkplug's, each reading checked for its age like a single one."""
    norm = Normalizer(load_config(SHIPPED_CONFIG))
    norm.add_route("scales/{device}/batch", "scale_batch", _batch_decoder)
    assert norm.route_of("scales/wb-09/batch") == "scale_batch"
    assert "scales/+/batch" in norm.subscriptions
    samples = {"samples": [{"ts": NOW - 2000, "w": 100}, {"ts": NOW - 1000, "w": 120}]}
    result = n(norm, "scales/wb-09/batch", samples)
    assert isinstance(result, list)
    assert [(r.ts_ms, r.fields) for r in result] == [
        (NOW - 2000, {"weight_kg": 100.0}),
        (NOW - 1000, {"weight_kg": 120.0}),
    ]
    assert n(norm, "scales/wb-09/batch", {"samples": []}) == []  # nothing to write
    future = n(norm, "scales/wb-09/batch", {"samples": [{"ts": NOW + 3_600_000, "w": 1}]})
    assert isinstance(future, list) and future[0].ts_ms is None and future[0].clock_skew
    # one verdict per message: a sample older than max_age rejects (and quarantines) it
    old = {"samples": [{"ts": NOW - 8 * 86_400_000, "w": 1}, {"ts": NOW, "w": 2}]}
    assert rejected(n(norm, "scales/wb-09/batch", old)) == "too_old"


def test_unmapped_drop_and_dotted_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
profiles:
  portal_y:
    topic: rpm/{site}/{area}/{device}
    kind: radiation_portal
    unmapped: drop
    timestamp: {field: t, unit: s}
    fields:
      "det.gamma": {to: gamma_cps, convert: cpm->cps}
      "det.dose":  {to: dose_usv_h, convert: mR/h->uSv/h}
      occ: {to: occupied}
""")
    norm = Normalizer(load_config(cfg))
    r = ok(
        norm.normalize(
            "rpm/aktau/gate-in/rpm-09",
            json.dumps(
                {"t": 1_790_000_000, "det": {"gamma": 600, "dose": 0.002}, "occ": True, "junk": 1}
            ).encode(),
            NOW,
        )
    )
    assert r.device == Device("rpm-09", "radiation_portal", "aktau", "gate-in")
    assert r.ts_ms == 1_790_000_000_000
    assert r.fields == pytest.approx({"gamma_cps": 10.0, "dose_usv_h": 0.02, "occupied": True})


def test_discovery_is_bounded(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest: {max_devices: 3}\n")
    norm = Normalizer(load_config(cfg))
    topics = [f"customs/aktau/gate-in/anpr_camera/cam-{i}/telemetry" for i in range(5)]
    results = [norm.normalize(t, b'{"reads_total": 1}', NOW) for t in topics]
    assert [isinstance(r, Reading) for r in results] == [True, True, True, False, False]
    assert rejected(results[4]) == "unknown_device"
    assert ok(norm.normalize(topics[0], b'{"reads_total": 2}', NOW))  # known ones still flow


GB01 = ["customs", "aktau", "gate-in", "gate_barrier", "gb-01", "+"]  # any channel


@pytest.mark.parametrize(
    ("topic_filter", "template", "expected"),
    [
        ("customs/aktau/#", ["customs", "aktau", "gate-in", "gate_barrier", "gb-01", "+"], True),
        ("customs/khorgos/#", ["customs", "aktau", "gate-in", "gate_barrier", "gb-01", "+"], False),
        (
            "customs/+/gate-in/#",
            ["customs", "aktau", "gate-in", "gate_barrier", "gb-01", "+"],
            True,
        ),
        ("customs/+/+/+/+/status", ["customs", "aktau", "a", "k", "d", "+"], True),
        ("customs/#", ["customs"], True),  # "#" takes the parent level too
        ("customs/aktau", ["customs", "aktau", "a"], False),
        ("customs/aktau/a/+", ["customs", "aktau", "a"], False),
        ("scanners/+/data", ["scanners", "xs-01", "data"], True),
        ("scanners/xs-02/data", ["scanners", "xs-01", "data"], False),
    ],
)
def test_a_filter_receives_a_template(
    topic_filter: str, template: list[str], expected: bool
) -> None:
    assert receives(topic_filter, template) is expected


def owned(monkeypatch: pytest.MonkeyPatch, topics: list[str] | None) -> tuple[set[str], set[str]]:
    """The registered devices a collector with these ``mqtt.topics`` expects to hear, and
    those it watches once heard (site/id)."""
    if topics is None:
        monkeypatch.delenv("MONITOR_MQTT__TOPICS", raising=False)
    else:
        monkeypatch.setenv("MONITOR_MQTT__TOPICS", json.dumps(topics))
    n = Normalizer(load_config(SHIPPED_CONFIG))
    return {key_text(d.key) for d in n.expected}, {key_text(d.key) for d in n.heard_only}


def test_a_collector_owns_the_registered_devices_its_topics_receive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Collectors share the load by site (SPEC 8): the others' devices are not its to
    watch, or it would call them silent."""
    everything, none_heard_only = owned(monkeypatch, None)
    assert len(everything) == len(load_config(SHIPPED_CONFIG).devices) and not none_heard_only
    expected, heard_only = owned(monkeypatch, ["customs/aktau/gate-in/#"])
    # barriers speak plc/{site}/...: this collector does not receive that, another may
    assert expected == {"aktau/rpm-01", "aktau/rpm-02", "aktau/anpr-01", "aktau/anpr-02"} | {
        "aktau/wb-01"
    }
    assert heard_only == {"aktau/gb-01", "aktau/gb-02"}
    expected, _ = owned(monkeypatch, ["customs/aktau/#", "plc/aktau/#", "scanners/xs-02/data"])
    assert {"aktau/gb-01", "aktau/xs-02"} <= expected and "aktau/xs-01" not in expected
    assert owned(monkeypatch, ["customs/khorgos/#"]) == (set(), set())
    # whoever owns them, every registered device is found by the normalizer (SPEC 8: a
    # registered Sparkplug device on a Sparkplug-only collector is not "unknown")
    assert len(Normalizer(load_config(SHIPPED_CONFIG)).registry) == len(everything)


def test_collectors_split_by_protocol_own_a_device_by_the_profile_it_speaks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 19.11: one collector takes customs/aktau/#, another scanners/+/data. Without
    ``profile`` a scanner may speak either: neither expects it (neither may call it silent
    unheard), both watch it once they hear it. With ``profile`` the one that receives that
    profile owns it, and the other does not watch it at all."""
    config = tmp_path / "m.yaml"
    config.write_text(
        SHIPPED_CONFIG.read_text().replace(
            "{id: xs-01, kind: xray_scanner, site: aktau, area: inspection-1,",
            "{id: xs-01, kind: xray_scanner, site: aktau, area: inspection-1,"
            " profile: scanner_vendor_x,",
        )
    )

    def share(topics: list[str]) -> tuple[bool, bool, bool, bool]:
        monkeypatch.setenv("MONITOR_MQTT__TOPICS", json.dumps(topics))
        n = Normalizer(load_config(config))
        xs01, xs02 = (
            Device("xs-01", "xray_scanner", "aktau", "inspection-1"),
            Device("xs-02", "xray_scanner", "aktau", "inspection-1"),
        )
        return (xs01 in n.expected, n.owns(xs01), xs02 in n.expected, n.owns(xs02))

    assert share(["customs/aktau/#"]) == (False, False, False, True)
    assert share(["scanners/+/data"]) == (True, True, False, True)


def test_a_sparkplug_collector_finds_registered_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_MQTT__TOPICS", '["spBv1.0/#"]')
    monkeypatch.setenv("MONITOR_SPARKPLUG__ENABLED", "true")
    n = Normalizer(load_config(SHIPPED_CONFIG))
    gb05 = Device("gb-05", "gate_barrier", "aktau", "rail-gate")
    assert n.owns(gb05) and gb05 in n.heard_only


TWO_POSTS = """
profiles:
  scanner_vendor_x:
    topic: scanners/{device}/data
    kind: xray_scanner
    fields: {hv: {to: tube_voltage_kv, convert: V->kV}}
  plc_gateway:
    topic: plc/{site}/{device}/{signal}
    format: plain
    kind: gate_barrier
    fields: {motor_amps: {to: motor_current_a}}
devices:
  - {id: gb-01, kind: gate_barrier, site: aktau, area: gate-in}
  - {id: gb-01, kind: gate_barrier, site: kuryk, area: gate-out}
  - {id: xs-09, kind: xray_scanner, site: aktau, area: inspection-1, profile: scanner_vendor_x}
  - {id: xs-09, kind: xray_scanner, site: kuryk, area: inspection-1, profile: canonical}
"""


@pytest.fixture
def two_posts(tmp_path: Path) -> Normalizer:
    cfg = tmp_path / "two.yaml"
    cfg.write_text(TWO_POSTS)
    return Normalizer(load_config(cfg))


def test_the_same_id_at_two_sites_is_two_devices(two_posts: Normalizer) -> None:
    """SPEC 2: a device is its site and id; nothing of one is merged into the other."""
    aktau = ok(two_posts.normalize("plc/aktau/gb-01/motor_amps", b"2.5", NOW)).device
    kuryk = ok(two_posts.normalize("plc/kuryk/gb-01/motor_amps", b"2.5", NOW)).device
    assert (aktau.site, aktau.area) == ("aktau", "gate-in")
    assert (kuryk.site, kuryk.area) == ("kuryk", "gate-out")
    assert aktau.key != kuryk.key
    canonical = ok(
        two_posts.normalize("customs/kuryk/x/gate_barrier/gb-01/telemetry", b"{}", NOW)
    ).device
    assert canonical is kuryk  # the registry's, whichever topic
    # a topic without a site finds the one entry that speaks it
    xs09 = ok(two_posts.normalize("scanners/xs-09/data", b'{"hv": 150000}', NOW)).device
    assert xs09.site == "aktau"
    # an unregistered id at a third site is a device of its own
    atyrau = ok(
        two_posts.normalize("customs/atyrau/gate-in/gate_barrier/gb-01/telemetry", b"{}", NOW)
    ).device
    assert atyrau.key == ("atyrau", "gb-01") and atyrau not in (aktau, kuryk)


def test_a_kind_that_contradicts_the_registry_is_rejected(two_posts: Normalizer) -> None:
    """Issue 19.2: a Kuryk weighbridge gb-01 must not write weight_kg into Aktau's (or
    Kuryk's) gate_barrier series."""
    for site in ("aktau", "kuryk"):
        topic = f"customs/{site}/gate-in/weighbridge/gb-01/telemetry"
        assert rejected(two_posts.normalize(topic, b'{"weight_kg": 1}', NOW)) == "device_mismatch"
    assert "device_mismatch" in REASONS
    # a vendor profile's kind is the message's: gb-01 is no scanner
    assert rejected(two_posts.normalize("scanners/gb-01/data", b"{}", NOW)) == "device_mismatch"


def test_a_discovered_device_keeps_its_kind_and_follows_its_area(norm: Normalizer) -> None:
    first = ok(n(norm, "customs/kuryk/gate-in/weighbridge/wb-50/telemetry", {"weight_kg": 1}))
    assert first.device.kind == "weighbridge"
    other_kind = n(norm, "customs/kuryk/gate-in/gate_barrier/wb-50/telemetry", {})
    assert rejected(other_kind) == "device_mismatch"
    moved = ok(n(norm, "customs/kuryk/gate-out/weighbridge/wb-50/telemetry", {"weight_kg": 2}))
    assert moved.device.key == first.device.key and moved.device.area == "gate-out"


def test_a_siteless_id_registered_twice_is_refused_by_the_config(tmp_path: Path) -> None:
    """SPEC 2: a vendor topic without a site matches by id alone, which the registry must
    then hold once; check-config (and run) refuse the ambiguity, naming the entry."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        TWO_POSTS.replace(", profile: scanner_vendor_x", "").replace(", profile: canonical", "")
    )
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert e.value.problems == [
        "devices[3]: xs-09 is registered at aktau, kuryk, and scanner_vendor_x's topics name"
        " no site: say which one speaks scanner_vendor_x (profile: scanner_vendor_x on it,"
        " another profile on the others)"
    ]
    cfg.write_text(TWO_POSTS + "  - {id: gb-01, kind: gate_barrier, site: aktau, area: x}\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert e.value.problems == ["devices[4]: aktau/gb-01 is registered twice (devices[0] too)"]
