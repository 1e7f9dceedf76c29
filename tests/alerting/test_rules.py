"""Rule settings per device (kind defaults, config, registry overrides) and threshold
expressions."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alerting.rules import RuleBook, Threshold
from monitor.config import load_config
from monitor.model import Device


def test_rule_book_applies_kind_defaults_config_and_device_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
alerts:
  kinds:
    xray_scanner:
      fault_for: 45s
      thresholds: [{name: hot, when: "detector_temp_c > 45", for: 5m}]
devices:
  - {id: xs-01, kind: xray_scanner, site: aktau, area: a, no_data_timeout: 90s, severity: warning}
  - {id: rpm-01, kind: radiation_portal, site: aktau, area: a}
""")
    book = RuleBook(load_config(cfg))
    xs = book(Device("xs-01", "xray_scanner", "aktau", "a"))
    assert (xs.no_data_timeout, xs.fault_for, xs.offline_for, xs.severity) == (
        90,
        45,
        10,
        "warning",
    )
    assert xs.thresholds == (Threshold("hot", "detector_temp_c", ">", 45.0, 300.0, "warning"),)
    rpm = book(Device("rpm-01", "radiation_portal", "aktau", "a"))
    assert (rpm.no_data_timeout, rpm.severity) == (30, "critical")
    other = book(Device("gb-77", "gate_barrier", "kuryk", "a"))  # discovered
    assert other.no_data_timeout == 120


@pytest.mark.parametrize(
    ("expr", "ok"),
    [
        ("temp_c > 45", True),
        ("temp_c >= -1.5e2", True),
        ("temp_c >> 4", False),
        ("45 < temp_c", False),
    ],
)
def test_threshold_expressions(expr: str, ok: bool) -> None:
    if ok:
        Threshold.parse("t", expr, 0, "warning")
    else:
        with pytest.raises(ValueError, match="metric"):
            Threshold.parse("t", expr, 0, "warning")
