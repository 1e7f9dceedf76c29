"""What every command shares: the Typer app, the consoles, the --config option."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from monitor.config import Config, load_config
from monitor.errors import ConfigError

app = typer.Typer(
    help="Inspection equipment telemetry monitor (MQTT -> InfluxDB, downtime alerts).",
    no_args_is_help=True,
    add_completion=False,
)
# Off a terminal (CI logs, pipes) rich assumes 80 columns and truncates table cells.
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="MONITOR_CONFIG",
        show_envvar=True,
        help="Config file (default config/monitor.yaml).",
    ),
]


def load(path: Path | None) -> Config:
    """The config, or every problem with it printed and exit code 2."""
    try:
        return load_config(path)
    except ConfigError as e:
        err_console.print(f"[bold red]invalid configuration[/] ({len(e.problems)} problems):")
        for problem in e.problems:
            err_console.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None
