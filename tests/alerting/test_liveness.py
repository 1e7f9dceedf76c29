"""Liveness from readings: what is remembered of a device stays bounded."""

from __future__ import annotations

from monitor.alerting.engine import AlertEngine
from monitor.alerting.liveness import Liveness
from monitor.alerting.rules import MAX_METRICS, RuleBook
from monitor.config import load_config
from monitor.model import Device, Reading
from tests.helpers import SHIPPED_CONFIG


def test_a_device_inventing_a_metric_per_message_costs_bounded_memory() -> None:
    rules = RuleBook(load_config(SHIPPED_CONFIG))
    liveness = Liveness([], rules, AlertEngine([], rules, "t").in_maintenance)
    device = Device("xs-01", "xray_scanner", "aktau", "inspection-1")
    for i in range(10_000):
        fields = {"detector_temp_c": 30.0 + i % 10, f"invented_{i}": 1.0}
        liveness.observe(Reading(device, "telemetry", None, dict(fields)), float(i))
    metrics = liveness.devices[("aktau", "xs-01")].metrics
    assert len(metrics) <= MAX_METRICS + 1
    assert metrics["detector_temp_c"] == 30.0 + 9_999 % 10  # known names keep updating
