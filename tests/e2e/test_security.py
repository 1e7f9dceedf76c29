"""Transport security and secrets: TLS with CA verification, client certificates,
username/password, per-device ACLs, and secrets that never show up anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from monitor.config import Config, load_config
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from tests.helpers import (
    ROOT,
    SHIPPED_CONFIG,
    MonitorProcess,
    monitor_config,
    rows,
    running_monitor,
    wait_for,
)

pytestmark = pytest.mark.integration


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1, a client certificate, and a foreign CA."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl(
            "req",
            "-x509",
            *ec,
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
            "-days",
            "2",
            "-subj",
            f"/CN=test {ca}",
            cwd=d,
        )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "monitor-aktau-1")):
        openssl(
            "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            cwd=d,
        )
    return d


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_broker(tmp_path: Path, pki: Path, extra: str = "") -> Mosquitto:
    broker = Mosquitto(
        tmp_path / "mosquitto",
        extra_conf=(
            f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\n"
            f"keyfile {pki / 'server.key'}\n" + extra
        ),
    )
    broker.start()
    return broker


def tls_publisher(port: int, pki: Path) -> paho.Client:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="tls-dev",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    client.tls_set(
        ca_certs=str(pki / "ca.crt"),
        certfile=str(pki / "client.crt"),
        keyfile=str(pki / "client.key"),
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def connect_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "mqtt.connect_failed"]


async def test_tls_with_ca_verification_and_client_certificate(
    monkeypatch: pytest.MonkeyPatch, influxd: InfluxDB, database: str, tmp_path: Path, pki: Path
) -> None:
    broker = tls_broker(tmp_path, pki, "require_certificate true\n")
    try:
        config = monitor_config(
            monkeypatch,
            mqtt_port=broker.port,
            influx_url=influxd.url,
            database=database,
            state_dir=tmp_path / "state",
            MONITOR_MQTT__TLS__ENABLED="true",
            MONITOR_MQTT__TLS__CA_FILE=str(pki / "ca.crt"),
            MONITOR_MQTT__TLS__CERT_FILE=str(pki / "client.crt"),
            MONITOR_MQTT__TLS__KEY_FILE=str(pki / "client.key"),
        )
        async with running_monitor(config):
            dev = tls_publisher(broker.port, pki)
            dev.publish(
                "customs/aktau/inspection-1/xray_scanner/xs-01/telemetry",
                '{"scans_total": 5}',
                qos=1,
            ).wait_for_publish(5)
            await wait_for(lambda: rows(influxd.url, database, "SELECT * FROM xray_scanner"))
            dev.disconnect()
            dev.loop_stop()
    finally:
        broker.stop()


def https_rows(influx: InfluxDB, pki: Path, database: str, q: str) -> list[object]:
    params = urllib.parse.urlencode({"db": database, "q": q})
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    try:
        with urllib.request.urlopen(f"{influx.url}/query?{params}", context=ctx) as r:
            series = json.load(r)["results"][0].get("series", [])
    except urllib.error.HTTPError:
        return []
    return [v for s in series for v in s["values"]]


async def test_influxdb_over_https_verified_by_its_ca(
    monkeypatch: pytest.MonkeyPatch, mosquitto: Mosquitto, database: str, tmp_path: Path, pki: Path
) -> None:
    """influx.ca_file: the monitor and its reports trust the CA that signed InfluxDB's
    certificate; without it (the system's CAs) the writes fail, and /health says so."""
    influx = InfluxDB(tmp_path / "influxd", tls=(pki / "server.crt", pki / "server.key"))
    influx.start()
    try:
        common = dict(
            mqtt_port=mosquitto.port,
            influx_url=influx.url,
            database=database,
            state_dir=tmp_path / "state",
        )
        untrusted = monitor_config(monkeypatch, **common)
        async with running_monitor(untrusted) as mon:
            await wait_for(lambda: mon.stats.write_errors > 0, timeout=15)
            assert "InfluxDB writes failing" in mon.api._health().reasons
        config = monitor_config(monkeypatch, MONITOR_INFLUX__CA_FILE=str(pki / "ca.crt"), **common)
        assert config.influx.url.startswith("https://")
        async with running_monitor(config):
            pub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
            pub.connect("127.0.0.1", mosquitto.port)
            pub.loop_start()
            pub.publish(
                "customs/aktau/inspection-1/xray_scanner/xs-01/telemetry",
                '{"scans_total": 5}',
                qos=1,
            ).wait_for_publish(5)
            q = "SELECT scans_total FROM xray_scanner"
            await wait_for(lambda: https_rows(influx, pki, database, q), timeout=20)
            pub.loop_stop()
            pub.disconnect()
        report = subprocess.run(
            [sys.executable, "-m", "monitor", "report", "availability", "--since", "1h"],
            capture_output=True,
            text=True,
            env={**os.environ},  # monitor_config's MONITOR_* with the CA
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert report.returncode == 0, report.stderr
        assert "xs-01" in report.stdout
    finally:
        influx.stop()


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("wrong_ca", "certificate was not accepted"),
        ("no_client_cert", "client certificate"),
    ],
)
async def test_tls_misconfiguration_is_one_clear_line_and_retries_with_backoff(
    monkeypatch: pytest.MonkeyPatch,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
    pki: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
    expect: str,
) -> None:
    broker = tls_broker(tmp_path, pki, "require_certificate true\n")
    ca = pki / ("other-ca.crt" if case == "wrong_ca" else "ca.crt")
    try:
        config = monitor_config(
            monkeypatch,
            mqtt_port=broker.port,
            influx_url=influxd.url,
            database=database,
            state_dir=tmp_path / "state",
            MONITOR_MQTT__TLS__ENABLED="true",
            MONITOR_MQTT__TLS__CA_FILE=str(ca),
            MONITOR_MQTT__RECONNECT__INITIAL="50ms",
            MONITOR_MQTT__RECONNECT__MAX="300ms",
        )
        caplog.set_level(logging.ERROR, logger="monitor.mqtt")
        from monitor import app
        from monitor.stats import Stats

        stats, stop = Stats(), asyncio.Event()
        task = asyncio.create_task(app.run(config, stop, stats=stats))
        await wait_for(lambda: stats.broker_connect_failures >= 4, timeout=15)
        assert not task.done()  # no crash, no crash loop: it keeps trying, quietly
        assert not stats.broker_connected
        errors = connect_errors(caplog)
        assert len(errors) == 1, [e.__dict__.get("error") for e in errors]
        assert expect in errors[0].error  # type: ignore[attr-defined]
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        broker.stop()


async def test_username_password(
    monkeypatch: pytest.MonkeyPatch,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pw = tmp_path / "passwords"
    pw.touch()
    subprocess.run(
        ["mosquitto_passwd", "-b", str(pw), "monitor-aktau-1", "right-horse-battery"],
        check=True,
        capture_output=True,
    )
    broker = Mosquitto(
        tmp_path / "mosquitto", extra_conf=f"allow_anonymous false\npassword_file {pw}\n"
    )
    broker.start()
    try:
        common = dict(
            mqtt_port=broker.port,
            influx_url=influxd.url,
            database=database,
            state_dir=tmp_path / "state",
            MONITOR_MQTT__USERNAME="monitor-aktau-1",
            MONITOR_MQTT__RECONNECT__INITIAL="50ms",
            MONITOR_MQTT__RECONNECT__MAX="300ms",
        )
        good = monitor_config(monkeypatch, MONITOR_MQTT__PASSWORD="right-horse-battery", **common)
        async with running_monitor(good) as mon:
            assert mon.stats.broker_connected

        bad = monitor_config(monkeypatch, MONITOR_MQTT__PASSWORD="wrong-horse", **common)
        caplog.set_level(logging.ERROR, logger="monitor.mqtt")
        from monitor import app
        from monitor.stats import Stats

        stats, stop = Stats(), asyncio.Event()
        task = asyncio.create_task(app.run(bad, stop, stats=stats))
        await wait_for(lambda: stats.broker_connect_failures >= 3, timeout=15)
        errors = connect_errors(caplog)
        assert len(errors) == 1
        assert "refused" in errors[0].error  # type: ignore[attr-defined]
        assert "wrong-horse" not in caplog.text
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        broker.stop()


async def test_shipped_acl_lets_a_device_publish_only_under_its_own_topics(
    monkeypatch: pytest.MonkeyPatch, influxd: InfluxDB, database: str, tmp_path: Path
) -> None:
    pw = tmp_path / "passwords"
    pw.touch()
    for user in ("monitor-aktau-1", "xs-01", "xs-02"):
        subprocess.run(
            ["mosquitto_passwd", "-b", str(pw), user, f"pw-{user}"], check=True, capture_output=True
        )
    acl = ROOT / "config" / "mosquitto" / "acl"
    broker = Mosquitto(
        tmp_path / "mosquitto",
        extra_conf=f"allow_anonymous false\npassword_file {pw}\nacl_file {acl}\n",
    )
    broker.start()
    try:
        config = monitor_config(
            monkeypatch,
            mqtt_port=broker.port,
            influx_url=influxd.url,
            database=database,
            state_dir=tmp_path / "state",
            client_id="monitor-aktau-1",
            MONITOR_MQTT__USERNAME="monitor-aktau-1",
            MONITOR_MQTT__PASSWORD="pw-monitor-aktau-1",
        )
        async with running_monitor(config) as mon:
            dev = paho.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id="xs-01",
                protocol=MQTTProtocolVersion.MQTTv311,
            )
            dev.username_pw_set("xs-01", "pw-xs-01")
            dev.connect("127.0.0.1", broker.port)
            dev.loop_start()
            own = "customs/aktau/inspection-1/xray_scanner/xs-01/telemetry"
            other = "customs/aktau/inspection-1/xray_scanner/xs-02/telemetry"
            dev.publish(other, '{"scans_total": 666}', qos=1).wait_for_publish(5)
            dev.publish(own, '{"scans_total": 1}', qos=1).wait_for_publish(5)
            await wait_for(lambda: mon.stats.messages_received >= 1)
            await asyncio.sleep(0.5)
            dev.disconnect()
            dev.loop_stop()
            assert mon.stats.messages_received == 1  # the spoofed one never reached us
            # the monitor's canary goes out and comes back under the shipped ACL
            url = f"http://127.0.0.1:{mon.api.port}/health"
            health = await asyncio.to_thread(lambda: json.load(urllib.request.urlopen(url)))
            assert (health["status"], health["warnings"]) == ("ok", [])
        got = rows(influxd.url, database, "SELECT scans_total FROM xray_scanner GROUP BY device")
        assert [(r["device"], r["scans_total"]) for r in got] == [("xs-01", 1)]
    finally:
        broker.stop()


@pytest.mark.slow
async def test_secrets_never_appear_in_logs_output_or_api(
    configure: Callable[..., Config],
    tmp_path: Path,
) -> None:
    secrets = {
        "MONITOR_MQTT__PASSWORD": "S3cret-mqtt-pw",
        "MONITOR_INFLUX__TOKEN": "S3cret-influx-token",
        "MONITOR_HTTP__TOKEN": "S3cret-api-token",
    }
    http_port = free_port()
    configure(
        MONITOR_MQTT__USERNAME="monitor",
        MONITOR_HTTP__PORT=str(http_port),
        MONITOR_NOTIFY__ROUTES=json.dumps(
            [{"name": "crew", "channels": ["tgram://123456:BOT-TOKEN-XYZ/987"]}]
        ),
        **secrets,
    )
    proc = MonitorProcess(tmp_path / "monitor.log", "--log-level", "debug")
    try:
        await proc.wait_log("event=http.listening")
        await asyncio.sleep(1)
        bodies = []
        for path in (
            "/health",
            "/metrics",
            "/api/devices",
            "/api/alerts?state=all",
            "/api/maintenance",
            "/api/devices/xs-01",
        ):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}") as r:
                    bodies.append(r.read().decode())
            except urllib.error.HTTPError as e:  # /health is 503 here: that is fine
                bodies.append(e.read().decode())
        # malformed requests carrying the API token: the server's error log must not echo it
        token = secrets["MONITOR_HTTP__TOKEN"].encode()
        for bad in (
            b"Authorization: Bearer " + token + b"\x01\r\n",
            b"Authorization : Bearer " + token + b"\r\n",
            b"Authorization: Bearer " + token + b"\r\nContent-Length: abc\r\n",
        ):
            with socket.create_connection(("127.0.0.1", http_port)) as s:
                s.sendall(b"POST /api/maintenance HTTP/1.1\r\nHost: x\r\n" + bad + b"\r\n")
                assert s.recv(100).startswith(b"HTTP/1.0 400")
        await proc.wait_log("event=http.bad_request")
        check = subprocess.run(
            [sys.executable, "-m", "monitor", "check-config", "-c", str(SHIPPED_CONFIG)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        assert check.returncode == 0, check.stderr
    finally:
        proc.terminate()
    everything = "\n".join(
        [proc.log(), check.stdout, check.stderr, *bodies, repr(load_config(SHIPPED_CONFIG))]
    )
    for secret in [*secrets.values(), "BOT-TOKEN-XYZ"]:
        assert secret not in everything
    assert "set (hidden)" in check.stdout


def test_debian_tools_are_here() -> None:
    assert shutil.which("mosquitto_passwd")
    assert shutil.which("openssl")
