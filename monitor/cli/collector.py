"""``monitor run``: the collector, reached without loading the rest of the command line.

Its start-up is the time to its first stored point, so ``main`` hands a plain ``run`` to
this module before typer and rich (the other commands' tools) are imported; ``run
--help`` and anything unusual still go through typer, which calls the same ``run``.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error")


def run(config: Path | None, log_level: str) -> int:
    """Run the collector until SIGINT/SIGTERM (SIGHUP reloads the config); the process's
    exit code."""
    from monitor import app, logs
    from monitor.config import load_config
    from monitor.errors import (
        ConfigError,
        MonitorError,
        StateMigrationError,
        StateVersionError,
        StoreOwnedError,
    )
    from monitor.statedir import StateDirBusy

    if log_level.lower() not in LOG_LEVELS:
        _say(f"error: --log-level must be one of {', '.join(LOG_LEVELS)}")
        return 2
    warnings: list[str] = []
    try:
        cfg = load_config(config, warnings)
    except ConfigError as e:
        _say(f"invalid configuration ({len(e.problems)} problems):")
        for problem in e.problems:
            _say(f"  {problem}")
        return 2
    logs.setup(log_level)
    for warning in warnings:  # a channel's secret in the YAML: said, never the secret
        logs.get("monitor.config").warning("config.warning", problem=warning)
    # What start-up made lives as long as the process: out of the collector's way, so
    # a full collection scans only what runs.
    gc.freeze()
    gc.enable()

    async def main() -> None:
        stop = asyncio.Event()
        app.install_signal_handlers(stop, bound=cfg.stop_timeout)
        # SIGHUP: the same file read again, with the same environment (SPEC 10)
        await app.run(cfg, stop, load=lambda warnings: load_config(config, warnings))

    try:
        asyncio.run(main())
    except (StateVersionError, StateMigrationError, StoreOwnedError, StateDirBusy) as e:
        # a restart cannot help (the unit's RestartPreventExitStatus=2)
        _say(f"error: {e}")
        return 2
    except MonitorError as e:  # e.g. unusable TLS files: one clear line, not a traceback
        _say(f"error: {e}")
        return 1
    return 0


def plain_run(argv: Sequence[str]) -> tuple[Path | None, str] | None:
    """``run``'s config and log level if ``argv`` is a plain ``run`` (options
    ``-c/--config`` and ``--log-level`` only), else None: a case for typer."""
    if not argv or argv[0] != "run":
        return None
    options = {"-c": "config", "--config": "config", "--log-level": "log_level"}
    found: dict[str, str] = {}
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if name not in options or options[name] in found or (eq and name == "-c"):
            return None
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        found[options[name]] = value
    config = found.get("config")
    return (Path(config) if config else None), found.get("log_level", "info")


def _say(line: str) -> None:
    print(line, file=sys.stderr)  # plain text: the message may quote the user's input
