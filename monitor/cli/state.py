"""``monitor backup`` and ``monitor restore``: the state_dir, copied while the monitor runs
and put back while it does not (SPEC 10; the how is ``monitor/statedir.py``).

Their words are for the post's IT, in English like the logs and check-config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import monitor
from monitor import statedir
from monitor.cli.common import ConfigOption, app, complain, load, say
from monitor.errors import MonitorError

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="MONITOR_STATE_DIR",
        show_envvar=True,
        help="The monitor's state_dir (default: the config's; then no secret is needed).",
    ),
]


def _state_dir(given: Path | None, config: Path | None) -> Path:
    # The state_dir alone needs no config: the config would need every secret (a plate
    # key, with passages on), which the service's environment file keeps from the shell.
    return given if given is not None else load(config).state_dir


KEEP_TOO = (
    "Not in it, keep them too: the secrets (MONITOR_* in /etc/customs-monitor/monitor.env or"
    " the compose .env), above all MONITOR_PASSAGES__PLATE_KEY (a new key makes every open"
    " passage a stranger), and the config."
)


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="A new (or empty) directory for the copy.")],
    state_dir: StateDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Copy the state (alerts, windows, passages, spool, quarantine) while the monitor runs."""
    state = _state_dir(state_dir, config)
    try:
        copied = statedir.backup(state, dest, monitor.__version__)
    except MonitorError as e:
        complain("backup refused: ", str(e))
        raise typer.Exit(2) from None
    for c in copied:
        schema = "" if c.schema is None else f" schema {c.schema}"
        say(f"  {c.name}{schema}, {c.size} bytes")
    say(f"backup of {state} in {dest} (each store one consistent moment)")
    say(KEEP_TOO)


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A directory made by monitor backup.")],
    state_dir: StateDirOption = None,
    config: ConfigOption = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Move the state_dir's present state aside (never deleted) first."
        ),
    ] = False,
) -> None:
    """Put a backup into the state_dir; the monitor must be stopped."""
    state = _state_dir(state_dir, config)
    try:
        names, aside = statedir.restore(source, state, replace)
    except MonitorError as e:
        complain("restore refused: ", str(e))
        raise typer.Exit(2) from None
    if aside is not None:
        say(f"the state that was there is in {aside}")
    say(f"restored {', '.join(names)} into {state}; start the monitor")
