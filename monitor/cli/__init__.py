"""The ``monitor`` command line: one module per family of commands."""

from __future__ import annotations

from monitor.cli import local, remote, report
from monitor.cli.common import app

__all__ = ["app", "local", "main", "remote", "report"]


def main() -> None:
    app()
