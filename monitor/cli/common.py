"""What every command shares: the Typer app, the consoles, the --config option, and the
way text is printed.

Data (device ids, codes, summaries, reasons, names, errors) is never markup: it goes to the
terminal as ``rich.text.Text``, styled by argument, so ``[/x]`` in a fault code prints as
``[/x]`` instead of crashing Rich or restyling the table.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeAlias

import typer

from monitor.config import Config, load_config
from monitor.errors import ConfigError
from monitor.i18n import LANGUAGES, Language, texts

if TYPE_CHECKING:  # rich is imported when something is printed: `run` prints nothing
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

app = typer.Typer(
    help="Inspection equipment telemetry monitor (MQTT -> InfluxDB, downtime alerts).",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True)
    ] = False,
) -> None:
    # ``monitor --version`` alone is answered before typer loads (monitor.cli.main); this
    # lists it in --help and answers it beside other words.
    if version:
        import monitor

        print(f"{monitor.DIST} {monitor.__version__}")
        raise typer.Exit(0)


@functools.cache
def console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal (CI logs, pipes) rich assumes 80 columns and wraps table cells: 160
    # unless COLUMNS says otherwise.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, width=width)


def show(renderable: RenderableType, stderr: bool = False) -> None:
    console(stderr).print(renderable)


def new_table(*columns: str, title: str, lang: Language = "en") -> Table:
    """A table whose headings (marked ``N_`` where they are written) are in ``lang``."""
    from rich.table import Table

    t = texts(lang)
    return Table(*(t.gettext(c) for c in columns), title=title)


LangOption = Annotated[
    str | None,
    typer.Option(
        "--lang",
        envvar="MONITOR_LANGUAGE",
        help="en, ru or kk (default: the config's language).",
    ),
]


def language(lang: str | None, config: Path | None) -> Language:
    """``--lang``, else the config's ``language`` (when there is a config), else English."""
    if lang is not None:
        return pick_language(lang, "en")
    if config is None and not Path("config/monitor.yaml").is_file():
        return "en"
    return load(config).language


def pick_language(lang: str | None, default: Language) -> Language:
    """``--lang`` if given (and known), else ``default``."""
    if lang is None:
        return default
    chosen = next((known for known in LANGUAGES if known == lang), None)
    if chosen is None:
        raise typer.BadParameter(f"--lang must be one of {', '.join(LANGUAGES)}")
    return chosen


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


Part: TypeAlias = "str | Text | None"


def text(*parts: Part) -> Text:
    """Literal text from parts; a ``Text`` part keeps its style, None is left out."""
    from rich.text import Text

    return Text.assemble(*(p for p in parts if p is not None))


def styled(style: str, *parts: Part) -> Text:
    out = text(*parts)
    out.stylize(style)
    return out


def say(*parts: Part) -> None:
    show(text(*parts))


def complain(*parts: Part) -> None:
    """A problem, on stderr, the first part in red."""
    first, *rest = parts
    show(text(styled("red", first), *rest), stderr=True)


def add_row(table: Table, *cells: Part) -> None:
    table.add_row(*(text(c) for c in cells))


def load(path: Path | None, warnings: list[str] | None = None) -> Config:
    """The config, or every problem with it printed and exit code 2; what is valid but
    unwise is added to ``warnings``."""
    try:
        return load_config(path, warnings)
    except ConfigError as e:
        complain("invalid configuration", f" ({len(e.problems)} problems):")
        for problem in e.problems:
            show(text("  ", problem), stderr=True)
        raise typer.Exit(2) from None
