"""`make mqtt-passwords` (the compose stack's broker accounts from .env): it installs and
starts nothing, adds or updates the accounts it knows (the PLC gateway's too, which the ACL
expects) and keeps every other (the devices'), and a real mosquitto takes them all."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor.sim.devservers import Mosquitto
from tests.helpers import ROOT

pytestmark = pytest.mark.integration

ENV = """GRAFANA_ADMIN_PASSWORD=g
MONITOR_MQTT__PASSWORD=monitor-secret
MONITOR_HTTP__TOKEN=t
PLC_GATEWAY_MQTT_PASSWORD=plc-secret   # a comment, as in .env.example
SIMULATOR_MQTT_PASSWORD=sim-secret
"""


def make(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def connects(port: int, user: str, password: str) -> bool:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=user)
    client.username_pw_set(user, password)
    try:
        return client.connect("127.0.0.1", port) == 0 and _accepted(client)
    finally:
        client.disconnect()


def _accepted(client: paho.Client) -> bool:
    for _ in range(50):
        client.loop(0.1)
        if client.is_connected():
            return True
    return False


def test_accounts_are_added_others_kept_and_the_broker_takes_them(tmp_path: Path) -> None:
    (tmp_path / "config" / "mosquitto").mkdir(parents=True)
    (tmp_path / ".env").write_text(ENV)
    passwords = tmp_path / "config" / "mosquitto" / "passwords"
    passwords.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "xs-01", "device-secret"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "monitor-aktau-1", "old"], check=True)

    planned = make(tmp_path, "-n", "mqtt-passwords")
    assert planned.returncode == 0, planned.stderr
    assert "apt-get" not in planned.stdout and "dpkg" not in planned.stdout  # no `deps`
    done = make(tmp_path, "mqtt-passwords")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kill -s HUP mosquitto" in done.stdout
    assert "secret" not in done.stdout + done.stderr  # names, never passwords
    users = [line.split(":")[0] for line in passwords.read_text().splitlines()]
    assert sorted(users) == ["monitor-aktau-1", "plc-gateway-aktau", "simulator", "xs-01"]

    broker = Mosquitto(
        tmp_path / "broker", extra_conf=f"allow_anonymous false\npassword_file {passwords}\n"
    )
    broker.start()
    try:
        assert connects(broker.port, "xs-01", "device-secret")  # the device's, kept
        assert connects(broker.port, "monitor-aktau-1", "monitor-secret")  # updated
        assert connects(broker.port, "plc-gateway-aktau", "plc-secret")
        assert connects(broker.port, "simulator", "sim-secret")
        assert not connects(broker.port, "monitor-aktau-1", "old")
    finally:
        broker.stop()
    assert shutil.which("mosquitto_passwd")
