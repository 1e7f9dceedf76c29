"""Inspection equipment telemetry monitor for the customs post of the Aktau sea port."""

__version__ = "0.1.0"
