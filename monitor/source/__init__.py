"""The source stage: the MQTT 5 client (``mqtt.py``) and its wire codec (``wire.py``)."""

from __future__ import annotations

from typing import NamedTuple


class BrokerOutage(NamedTuple):
    """The monitor's own outage on the broker side (``MqttSource.outage``): since when,
    what it is (English, for the log, ``/health`` and SPEC 5's summary), and whether the
    monitor is connected meanwhile (a subscription that hears nothing) or cannot reach
    the broker at all; the alert's text in other languages says which."""

    since: float
    why: str
    connected: bool
