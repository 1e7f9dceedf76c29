"""`monitor decode`: a dry run of the normalizer on sample messages, as a process, on the
shipped config's profiles (SPEC 3.2) and on Sparkplug B payloads from files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, SHIPPED_CONFIG
from tests.sparkplug_wire import BOOLEAN, FLOAT, STRING, Metric, bd_seq, payload


def monitor(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        input=stdin,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


def decode_json(*args: str, stdin: bytes | None = None) -> tuple[int, list[dict[str, object]]]:
    res = monitor("decode", "-c", str(SHIPPED_CONFIG), "--json", *args, stdin=stdin)
    assert not res.stderr, res.stderr.decode()
    return res.returncode, [json.loads(line) for line in res.stdout.decode().splitlines()]


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_vendor_x_payload_from_a_file(tmp_path: Path) -> None:
    sample = tmp_path / "xs.json"
    ts = now_ms() - 5000
    body = {"time": ts, "devStatus": 3, "hv": 150000, "beamCurrent": 1.2, "detTempF": 95.0}
    sample.write_text(json.dumps({**body, "scanCount": 7, "fw": "2.1"}))
    args = ("--topic", "scanners/xs-02/data", "--payload", f"@{sample}")
    res = monitor("decode", "-c", str(SHIPPED_CONFIG), *args)
    out = res.stdout.decode()
    assert res.returncode == 0, out + res.stderr.decode()
    assert "scanner_vendor_x (profile: scanners/{device}/data)" in out
    assert "aktau/xs-02: xray_scanner in inspection-1 (registered)" in out
    assert f"({ts} ms)" in out
    for name, value in [
        ("state", '"busy"'),
        ("tube_voltage_kv", "150.0"),  # V -> kV
        ("detector_temp_c", "35.0"),  # degF -> degC
        ("scans_total", "7"),
        ("fw", '"2.1"'),  # unmapped: kept under its own name
    ]:
        assert f"    {name:<22}{value}\n" in out, out
    code, (result,) = decode_json(*args)
    assert code == 0 and result["route"] == "scanner_vendor_x"
    (reading,) = result["readings"]  # type: ignore[misc]
    assert reading["device"] == {
        "site": "aktau",
        "id": "xs-02",
        "kind": "xray_scanner",
        "area": "inspection-1",
        "registered": True,
    }
    assert reading["channel"] == "telemetry" and reading["ts_ms"] == ts
    assert reading["state"] == "busy"
    assert reading["fields"] == {
        "tube_voltage_kv": 150.0,
        "tube_current_ma": 1.2,
        "detector_temp_c": 35.0,
        "scans_total": 7,
        "fw": "2.1",
    }


def test_plain_plc_values_and_a_discovered_device() -> None:
    code, results = decode_json(
        "--topic", "plc/aktau/gb-03/barrier_up", "--payload", "1",
        "--topic", "plc/kuryk/gb-77/motor_amps", "--payload", "2.7",
        "--topic", "customs/aktau/gate-in/weighbridge/wb-01/status", "--payload", "offline",
    )  # fmt: skip
    assert code == 0
    barrier, discovered, status = results
    assert barrier["route"] == discovered["route"] == "plc_gateway"
    (r,) = barrier["readings"]  # type: ignore[misc]
    assert r["fields"] == {"position": "open"} and r["ts_ms"] is None
    assert r["device"]["registered"] is True
    (r,) = discovered["readings"]  # type: ignore[misc]
    assert r["device"] == {
        "site": "kuryk",
        "id": "gb-77",
        "kind": "gate_barrier",
        "area": "unassigned",
        "registered": False,
    }
    assert r["fields"] == {"motor_current_a": 2.7}
    assert status["route"] == "canonical"
    (r,) = status["readings"]  # type: ignore[misc]
    assert (r["channel"], r["state"], r["online"]) == ("status", "offline", False)


@pytest.mark.parametrize(
    ("topic", "body", "route", "reason"),
    [
        ("scanners/xs-02/data", '{"devStatus": 7}', "scanner_vendor_x", "invalid_state"),
        ("scanners/xs-02/data", "{not json", "scanner_vendor_x", "malformed_json"),
        ("plc/aktau/gb-03/motor_amps", "fast", "plc_gateway", "wrong_type"),
        ("customs/aktau/gate-in/xray_scanner/gb-01/telemetry", "{}", "canonical",
         "device_mismatch"),
        ("scales/wb-01/weight", "100", None, "unknown_topic"),
    ],
)  # fmt: skip
def test_a_rejection_says_why_and_exits_1(
    topic: str, body: str, route: str | None, reason: str
) -> None:
    code, (result,) = decode_json("--topic", topic, "--payload", body)
    assert code == 1
    assert result["route"] == route
    assert result["rejected"]["reason"] == reason  # type: ignore[index]
    res = monitor("decode", "-c", str(SHIPPED_CONFIG), "--topic", topic, "--payload", body)
    assert res.returncode == 1
    assert f"rejected  {reason}: " in res.stdout.decode()


def test_an_old_timestamp_is_rejected_as_the_collector_would() -> None:
    old = now_ms() - 8 * 86_400_000
    code, (result,) = decode_json(
        "--topic", "scanners/xs-02/data", "--payload", json.dumps({"time": old})
    )
    assert code == 1 and result["rejected"]["reason"] == "too_old"  # type: ignore[index]


def test_the_payload_from_standard_input() -> None:
    code, (result,) = decode_json(
        "--topic", "customs/aktau/gate-in/weighbridge/wb-01/telemetry", "--payload", "-",
        stdin=b'{"weight_kg": 18250.5, "state": "busy"}',
    )  # fmt: skip
    assert code == 0
    (r,) = result["readings"]  # type: ignore[misc]
    assert r["fields"] == {"weight_kg": 18250.5} and r["state"] == "busy"


def test_a_bad_config_or_argument_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt: {port: 99999}\n")
    res = monitor("decode", "-c", str(bad), "--topic", "a/b", "--payload", "x")
    assert res.returncode == 2 and b"mqtt.port" in res.stderr
    res = monitor("decode", "-c", str(SHIPPED_CONFIG), "--topic", "a/b", "--payload", "@nope")
    assert res.returncode == 2 and b"cannot read the payload" in res.stderr
    res = monitor("decode", "-c", str(SHIPPED_CONFIG), "--topic", "a", "--topic", "b",
                  "--payload", "x")  # fmt: skip
    assert res.returncode == 2 and b"one --payload per --topic" in res.stderr


SPARKPLUG_CONFIG = f"""
{SHIPPED_CONFIG.read_text()}
sparkplug:
  enabled: true
  groups:
    rail-gate-plc: {{site: aktau, area: rail-gate, kind: gate_barrier}}
  fields:
    "Barrier/Position": {{to: position}}
    "Motor/Current":    {{to: motor_current_a}}
    "Barrier/Fault":    {{to: state, map: {{"true": fault, "false": ready}}}}
"""


def test_sparkplug_births_then_data_by_alias(tmp_path: Path) -> None:
    """Binary payloads from files, in order through one normalizer: the births define the
    aliases the data uses."""
    cfg = tmp_path / "sp.yaml"
    cfg.write_text(SPARKPLUG_CONFIG)
    ts = now_ms() - 1000
    files = {
        "nbirth": payload([bd_seq(0)], seq=0, timestamp=ts),
        "dbirth": payload(
            [
                Metric("Barrier/Position", "closed", STRING, alias=1),
                Metric("Motor/Current", 0.1, FLOAT, alias=2),
                Metric("Barrier/Fault", False, BOOLEAN, alias=3),
            ],
            seq=1,
            timestamp=ts,
        ),
        "ddata": payload(
            [Metric(None, "open", STRING, alias=1), Metric(None, 2.5, FLOAT, alias=2)],
            seq=2,
            timestamp=ts + 500,
        ),
    }
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    base = "spBv1.0/rail-gate-plc"
    data = ("--topic", f"{base}/DDATA/plc-01/gb-05", "--payload", f"@{tmp_path / 'ddata'}")
    res = monitor("decode", "-c", str(cfg), "--json", *data)
    (alone,) = [json.loads(line) for line in res.stdout.decode().splitlines()]
    assert res.returncode == 0 and alone["readings"] == []
    assert "NBIRTH" in alone["note"]  # without its births, data by alias cannot be read
    res = monitor(
        "decode", "-c", str(cfg), "--json",
        "--topic", f"{base}/NBIRTH/plc-01", "--payload", f"@{tmp_path / 'nbirth'}",
        "--topic", f"{base}/DBIRTH/plc-01/gb-05", "--payload", f"@{tmp_path / 'dbirth'}",
        *data,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr.decode()
    nbirth, dbirth, ddata = [json.loads(line) for line in res.stdout.decode().splitlines()]
    assert nbirth["route"] == dbirth["route"] == ddata["route"] == "sparkplug"
    # the group's defaults make the node a device too (discovered, not registered)
    (node,) = nbirth["readings"]
    assert node["device"]["id"] == "plc-01" and node["device"]["registered"] is False
    assert node["online"] is True
    online, values = dbirth["readings"]
    assert online["channel"] == "status" and online["online"] is True
    assert online["device"]["id"] == "gb-05" and online["device"]["registered"] is True
    assert values["fields"] == {"position": "closed", "motor_current_a": 0.1}
    assert values["state"] == "ready"
    (r,) = ddata["readings"]
    assert r["ts_ms"] == ts + 500 and r["fields"] == {"position": "open", "motor_current_a": 2.5}
    human = monitor("decode", "-c", str(cfg), *data)
    assert b"sparkplug (Sparkplug B host application)" in human.stdout
    assert b"NBIRTH" in human.stdout


NO_SOCKETS = """
import runpy, sys

def refuse(event, args):
    if event in ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo"):
        raise RuntimeError(f"monitor decode opened a socket: {event} {args}")

sys.addaudithook(refuse)
sys.argv = ["monitor", *sys.argv[1:]]
runpy.run_module("monitor", run_name="__main__")
"""


def test_it_connects_to_nothing() -> None:
    """A dry run needs no broker, InfluxDB or state: no socket is even made."""
    res = subprocess.run(
        [sys.executable, "-c", NO_SOCKETS, "decode", "-c", str(SHIPPED_CONFIG),
         "--topic", "plc/aktau/gb-03/motor_amps", "--payload", "2.7"],
        capture_output=True, cwd=ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr.decode()
    assert b"motor_current_a" in res.stdout
