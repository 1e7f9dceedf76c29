"""Inspection equipment telemetry monitor for the customs post of the Aktau sea port."""

from __future__ import annotations

DIST = "customs-telemetry-monitor"  # the distribution's name (pyproject.toml)


def __getattr__(name: str) -> str:
    # The version is the installed distribution's (pyproject.toml's), read when asked:
    # importing monitor stays free of importlib.metadata.
    if name == "__version__":
        from importlib import metadata

        try:
            return metadata.version(DIST)
        except metadata.PackageNotFoundError:  # a checkout run without installing it
            return "unknown (not installed)"
    raise AttributeError(name)
