"""What every command shares: the Typer app, the consoles, the --config option, and the
way text is printed.

Data (device ids, codes, summaries, reasons, names, errors) is never markup: it goes to the
terminal as ``rich.text.Text``, styled by argument, so ``[/x]`` in a fault code prints as
``[/x]`` instead of crashing Rich or restyling the table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.config import Config, load_config
from monitor.errors import ConfigError

app = typer.Typer(
    help="Inspection equipment telemetry monitor (MQTT -> InfluxDB, downtime alerts).",
    no_args_is_help=True,
    add_completion=False,
)
# Off a terminal (CI logs, pipes) rich assumes 80 columns and wraps table cells: 160
# unless COLUMNS says otherwise.
_WIDTH = None if Console().is_terminal or os.environ.get("COLUMNS") else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)

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


Part = str | Text | None


def text(*parts: Part) -> Text:
    """Literal text from parts; a ``Text`` part keeps its style, None is left out."""
    return Text.assemble(*(p for p in parts if p is not None))


def styled(style: str, *parts: Part) -> Text:
    out = text(*parts)
    out.stylize(style)
    return out


def say(*parts: Part) -> None:
    console.print(text(*parts))


def complain(*parts: Part) -> None:
    """A problem, on stderr, the first part in red."""
    first, *rest = parts
    err_console.print(text(styled("red", first), *rest))


def add_row(table: Table, *cells: Part) -> None:
    table.add_row(*(text(c) for c in cells))


def load(path: Path | None) -> Config:
    """The config, or every problem with it printed and exit code 2."""
    try:
        return load_config(path)
    except ConfigError as e:
        complain("invalid configuration", f" ({len(e.problems)} problems):")
        for problem in e.problems:
            err_console.print(text("  ", problem))
        raise typer.Exit(2) from None
