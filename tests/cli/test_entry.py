"""`monitor run` takes a short way in (no typer, no rich); everything else is typer's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli.collector import plain_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run"], (None, "info")),
        (["run", "-c", "a.yaml"], (Path("a.yaml"), "info")),
        (["run", "--config", "a.yaml", "--log-level", "debug"], (Path("a.yaml"), "debug")),
        (["run", "--config=a.yaml", "--log-level=warning"], (Path("a.yaml"), "warning")),
    ],
)
def test_a_plain_run_is_recognised(argv: list[str], expected: tuple[Path | None, str]) -> None:
    assert plain_run(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["check-config"],
        ["run", "--help"],
        ["run", "-c"],  # a missing value: typer says so
        ["run", "-c", "a", "-c", "b"],
        ["run", "--verbose"],
        ["run", "-c=a.yaml"],  # click reads "=a.yaml" as the value: leave it to click
        ["simulate", "run"],
    ],
)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert plain_run(argv) is None


def _monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


def test_run_help_and_bad_options_still_go_through_typer() -> None:
    helped = _monitor("run", "--help")
    assert helped.returncode == 0 and "--log-level" in helped.stdout
    wrong = _monitor("run", "--no-such-option")
    assert wrong.returncode == 2 and "No such option" in wrong.stderr


def test_a_bad_log_level_is_one_line_not_a_traceback() -> None:
    res = _monitor("run", "--log-level", "loud", "-c", "config/monitor.yaml")
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --log-level must be one of debug, info, warning, error"


def test_run_does_not_import_what_only_other_commands_need() -> None:
    """The collector's start-up is its time to the first point: no typer, rich, apprise
    or prometheus_client on the way in (an invalid config stops it right after loading)."""
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['monitor', 'run', '-c', 'no-such.yaml']\n"
        "try:\n"
        "    runpy.run_module('monitor', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "import monitor.app\n"  # and what serving imports at module level
        "print(' '.join(sorted(m for m in ('typer', 'rich', 'apprise', 'prometheus_client')"
        " if m in sys.modules)))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def test_version_is_the_package_metadata_and_loads_nothing_else() -> None:
    """`monitor --version` answers from the distribution's metadata (pyproject.toml's
    version), before typer, rich, pydantic or the config are loaded."""
    from importlib import metadata

    probe = (
        "import sys; sys.argv = ['monitor', '--version']\n"
        "from monitor.cli import main; main()\n"
        "print(sorted(m for m in ('typer', 'rich', 'pydantic', 'aiohttp', 'monitor.config')"
        " if m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert res.returncode == 0, res.stderr
    expected = metadata.version("customs-telemetry-monitor")
    assert res.stdout == f"customs-telemetry-monitor {expected}\n[]\n"
    assert _monitor("--version").stdout == f"customs-telemetry-monitor {expected}\n"
