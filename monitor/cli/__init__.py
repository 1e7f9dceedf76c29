"""The ``monitor`` command line: one module per family of commands.

``monitor run`` skips typer (see ``collector``): the collector's start-up is its time to
the first stored point.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # nothing else loaded: an upgrade script asks this
        import monitor

        print(f"{monitor.DIST} {monitor.__version__}")
        return
    # Imports and config build long-lived objects, hardly any garbage: collecting while
    # they are made costs an eighth of the start-up (see collector.run for the re-enable).
    gc.disable()
    from monitor.cli import collector

    if (plain := collector.plain_run(sys.argv[1:])) is not None:
        sys.exit(collector.run(*plain))
    from monitor.cli import decode, local, remote, report, state  # noqa: F401  (their commands register)
    from monitor.cli.common import app

    gc.enable()
    app()
