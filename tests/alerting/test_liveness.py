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


def test_a_retained_message_alone_makes_no_device_known() -> None:
    """A decommissioned device's retained Last Will, resent at every subscribe, does not
    bring back a device a person forgot (review of issue 19)."""
    rules = RuleBook(load_config(SHIPPED_CONFIG))
    liveness = Liveness([], rules, AlertEngine([], rules, "t").in_maintenance)
    gone = Device("gb-09", "gate_barrier", "kuryk", "gate-in")
    will = Reading(gone, "status", None, online=False, state="offline", retained=True)
    assert liveness.observe(will, 1.0) is False
    assert gone.key not in liveness.devices and liveness.status_point(gone.key, 2.0) is None
    live = Reading(gone, "telemetry", None, {"cycles_total": 1})
    liveness.observe(live, 3.0)
    assert liveness.devices[gone.key].last_seen == 3.0  # a live message: known again
