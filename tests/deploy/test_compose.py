"""The docker compose stack and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

COMPOSE = shutil.which("docker-compose")
ENV = "GRAFANA_ADMIN_PASSWORD=g\nMONITOR_MQTT_PASSWORD=m\nMONITOR_HTTP_TOKEN=t\n"


def compose(tmp_path: Path, *args: str, env: str = ENV) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None, "Debian's docker-compose is installed by `make deps`"
    env_file = tmp_path / ".env"
    env_file.write_text(env)
    return subprocess.run(
        [COMPOSE, "--env-file", str(env_file), *args, "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def mounts(service: dict) -> dict[str, str]:
    """target -> source, from either volume syntax docker-compose may print."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v.get("source", ""), v["target"]
        out[target] = source
    return out


def test_compose_file_is_valid_and_wires_the_stack(tmp_path: Path) -> None:
    res = compose(tmp_path)
    assert res.returncode == 0, res.stderr
    stack = yaml.safe_load(res.stdout)["services"]
    assert set(stack) >= {"mosquitto", "influxdb", "grafana", "monitor"}
    assert stack.get("simulator", {"profiles": ["demo"]})["profiles"] == ["demo"]
    assert re.fullmatch(r"influxdb:1\.\d+", stack["influxdb"]["image"])  # pinned, v1 + InfluxQL
    assert re.fullmatch(r"grafana/grafana-oss:\d+\.\d+\.\d+", stack["grafana"]["image"])
    assert re.fullmatch(r"eclipse-mosquitto:\d+\.\d+\.\d+", stack["mosquitto"]["image"])
    mon = stack["monitor"]["environment"]
    assert mon["MONITOR_MQTT__HOST"] == "mosquitto"
    assert mon["MONITOR_INFLUX__URL"] == "http://influxdb:8086"
    assert mon["MONITOR_HTTP__TOKEN"] == "t"  # secrets come from .env, not the YAML
    graf = stack["grafana"]["environment"]
    assert graf["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert graf["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert graf["GF_SECURITY_ADMIN_PASSWORD"] == "g"
    grafana = mounts(stack["grafana"])
    assert Path(grafana["/etc/grafana/provisioning"]) == ROOT / "grafana" / "provisioning"
    assert Path(grafana["/var/lib/grafana/dashboards"]) == ROOT / "grafana" / "dashboards"
    broker = mounts(stack["mosquitto"])
    assert Path(broker["/mosquitto/config/mosquitto.conf"]) == (
        ROOT / "config" / "mosquitto" / "mosquitto.conf"
    )
    # the monitor's state survives container restarts: a named volume, not the image
    assert mounts(stack["monitor"])["/var/lib/monitor"] == "monitor-state"


def test_demo_profile_adds_the_simulator(tmp_path: Path) -> None:
    res = compose(tmp_path, "--profile", "demo")
    assert res.returncode == 0, res.stderr
    sim = yaml.safe_load(res.stdout)["services"]["simulator"]
    assert sim["command"][0] == "simulate"


def test_missing_secrets_are_refused(tmp_path: Path) -> None:
    res = compose(tmp_path, env="MONITOR_MQTT_PASSWORD=m\nMONITOR_HTTP_TOKEN=t\n")
    assert res.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in res.stderr


def test_dockerfile_runs_non_root_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/health" in text
    for src in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"COPY source {path} missing from the build context"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


@pytest.mark.slow
def test_the_wheel_the_image_installs_carries_the_status_board(tmp_path: Path) -> None:
    # Built from a copy of what the image's build stage copies: a build/ directory left in
    # the work tree by an earlier build would otherwise add files the image never gets.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "monitor", src / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for static in (
        "monitor/web/static/index.html",
        "monitor/web/static/board.js",
        "monitor/web/static/board.css",
    ):
        assert static in names
