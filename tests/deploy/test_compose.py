"""The docker compose stack and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

COMPOSE = shutil.which("docker-compose")
ENV = "GRAFANA_ADMIN_PASSWORD=g\nMONITOR_MQTT__PASSWORD=m\nMONITOR_HTTP__TOKEN=t\n"


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
    # grafana.db (users, boards staff made, preferences) is in Grafana's data path, which
    # the image sets to /var/lib/grafana: there the volume, or it goes with the container
    assert grafana["/var/lib/grafana"] == "grafana-data"
    broker = mounts(stack["mosquitto"])
    assert Path(broker["/mosquitto/config/mosquitto.conf"]) == (
        ROOT / "config" / "mosquitto" / "mosquitto.conf"
    )
    # the monitor's state survives container restarts: a named volume, not the image
    assert mounts(stack["monitor"])["/var/lib/monitor"] == "monitor-state"


def test_every_container_log_is_rotated(tmp_path: Path) -> None:
    res = compose(tmp_path, "--profile", "demo")
    assert res.returncode == 0, res.stderr
    for name, service in yaml.safe_load(res.stdout)["services"].items():
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert {"max-size", "max-file"} <= set(logging.get("options", {})), name


def test_env_example_names_what_the_monitor_and_its_cli_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """.env holds the monitor's settings under the names the monitor reads, so the CLI on
    the host (set -a; . ./.env) reads them too; the stack passes each on as it is."""
    from monitor.config import load_config

    example = (ROOT / ".env.example").read_text()
    res = compose(tmp_path, env=example)
    assert res.returncode == 0, res.stderr
    env = yaml.safe_load(res.stdout)["services"]["monitor"]["environment"]
    names = re.findall(r"^(MONITOR_\w+)=", example, re.M)
    assert {"MONITOR_MQTT__PASSWORD", "MONITOR_HTTP__TOKEN"} <= set(names)
    for name in names:
        assert env[name] == "change-me", name
    # the stack's routes come from .env; unset, none (the config's example webhook is on
    # 127.0.0.1, the container itself)
    assert env["MONITOR_NOTIFY__ROUTES"] == "[]"
    routes = '[{"name": "crew", "channels": ["tgram://bottoken/chatid"]}]'
    res = compose(tmp_path, env=f"{example}MONITOR_NOTIFY__ROUTES='{routes}'\n")
    env = yaml.safe_load(res.stdout)["services"]["monitor"]["environment"]
    assert env["MONITOR_NOTIFY__ROUTES"] == routes
    for key in ("MONITOR_NOTIFY__ROUTES", "MONITOR_HTTP__TOKEN", "MONITOR_MQTT__PASSWORD"):
        monkeypatch.setenv(key, str(env[key]))
    cfg = load_config(ROOT / "config" / "monitor.yaml")
    assert [(r.name, r.channels) for r in cfg.notify.routes] == [
        ("crew", ["tgram://bottoken/chatid"])
    ]
    assert cfg.http.token is not None and cfg.http.token.get_secret_value() == "change-me"


def test_demo_profile_adds_the_simulator(tmp_path: Path) -> None:
    res = compose(tmp_path, "--profile", "demo")
    assert res.returncode == 0, res.stderr
    sim = yaml.safe_load(res.stdout)["services"]["simulator"]
    assert sim["command"][0] == "simulate"


def test_missing_secrets_are_refused(tmp_path: Path) -> None:
    res = compose(tmp_path, env="MONITOR_MQTT__PASSWORD=m\nMONITOR_HTTP__TOKEN=t\n")
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
    # no config in the image (a channel's secret would ship with it), nor .env in the
    # build context: the compose stack mounts the config and passes the secrets
    assert not re.search(r"^COPY\s.*\bconfig/", text, re.M)
    assert ".env" in ignored and "config/" in ignored
