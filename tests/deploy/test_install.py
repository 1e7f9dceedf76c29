"""The production install (SPEC 10): the wheel with requirements.lock into a fresh venv by
the recipe `make install` and the Docker image share (deploy/install-venv.sh), laid out as
the shipped systemd unit expects it, which `systemd-analyze verify` then checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

UNIT = ROOT / "deploy" / "customs-monitor.service"
PREFIX = "/opt/customs-monitor"  # the unit's ExecStart, under a root of the test's own


def run(*argv: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, timeout=600, **kw
    )  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of what the image's build stage copies: a build/ directory left in
    the work tree by an earlier build would otherwise add files the image never gets."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "monitor", src / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "w", src)
    assert built.returncode == 0, built.stderr
    (found,) = (tmp / "w").glob("*.whl")
    return found


def test_the_wheel_carries_the_status_board_catalogs_and_schemas(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for packaged in (
        "monitor/web/static/index.html",
        "monitor/web/static/board.js",
        "monitor/web/static/board.css",
        "monitor/i18n/locale/kk/LC_MESSAGES/monitor.mo",
        "monitor/schemas/sparkplug_b.proto",
    ):
        assert packaged in names


def test_the_wheel_and_the_lock_install_into_a_fresh_venv_the_unit_runs(
    wheel: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    prefix = root / PREFIX.lstrip("/")
    # Debian's own interpreter where there is one, as on the server
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    made = run(
        ROOT / "deploy" / "install-venv.sh",
        prefix,
        wheel,
        ROOT / "requirements.lock",
        env={**env, "PYTHON": python},
    )
    assert made.returncode == 0, made.stdout + made.stderr
    monitor = prefix / "bin" / "monitor"
    version = run(monitor, "--version", env=env, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    expected = next(
        line.split('"')[1]
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    assert version.stdout == f"customs-telemetry-monitor {expected}\n"
    checked = run(monitor, "check-config", "-c", ROOT / "config" / "monitor.yaml", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "configuration is valid" in checked.stdout
    imported = run(
        prefix / "bin" / "python", "-c", "import monitor.app", env=env
    )  # all `run` needs
    assert imported.returncode == 0, imported.stderr
    # nothing of the tests came with it: the service's lock only
    listed = run(prefix / "bin" / "pip", "list", "--format=freeze", env=env).stdout.lower()
    for tool in ("pytest", "mypy", "playwright", "grpcio-tools", "ruff"):
        assert f"{tool}==" not in listed
    # the unit, checked against this layout (systemd's own units from this machine)
    units = root / "usr" / "lib" / "systemd" / "system"
    shutil.copytree("/usr/lib/systemd/system", units, symlinks=True)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc" / "systemd" / "system" / UNIT.name)
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy("/usr/bin/kill", root / "usr" / "bin" / "kill")  # its ExecReload='s
    verified = run("systemd-analyze", "verify", f"--root={root}", UNIT.name)
    # verify says a mistyped setting is "ignoring" and still exits 0: nothing may be said
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")


def test_the_unit_keeps_its_promises() -> None:
    """What SPEC 10 asks of it, read from the file systemd reads."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    assert settings["User"] == ["customs-monitor"]
    assert settings["StateDirectory"] == ["customs-monitor"]
    assert settings["EnvironmentFile"] == ["/etc/customs-monitor/monitor.env"]
    assert settings["Restart"] == ["on-failure"]
    exec_start = settings["ExecStart"][0].split()
    assert exec_start[:2] == [f"{PREFIX}/bin/monitor", "run"]
    assert Path(exec_start[exec_start.index("-c") + 1]).is_absolute()
    assert "MONITOR_STATE_DIR=/var/lib/customs-monitor" in settings["Environment"]
    assert settings["ExecReload"] == ["/usr/bin/kill -HUP $MAINPID"]  # systemctl reload
    # above the monitor's stop_timeout and its watchdog after it (app.FORCE_EXIT_AFTER_S)
    from monitor.app import FORCE_EXIT_AFTER_S
    from monitor.config import Config

    stop_timeout = Config.model_fields["stop_timeout"].default
    assert int(settings["TimeoutStopSec"][0]) > stop_timeout + FORCE_EXIT_AFTER_S
