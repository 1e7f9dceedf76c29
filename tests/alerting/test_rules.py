"""Rule settings per device (kind defaults, config, registry overrides) and threshold
expressions."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alerting.rules import DeviceState, RuleBook, Threshold, conditions
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


def test_a_born_sparkplug_device_has_no_data_only_as_its_entry_or_group_says() -> None:
    """SPEC 3.4 (issue 20.3): report by exception."""
    from monitor.config import Config

    config = Config(
        devices=[
            {"id": "xs-1", "kind": "xray_scanner", "site": "aktau", "area": "a"},
            {
                "id": "xs-2",
                "kind": "xray_scanner",
                "site": "aktau",
                "area": "a",
                "no_data_timeout": "5m",
            },
        ],
        sparkplug={"enabled": True, "groups": {"g": {}, "h": {"no_data_timeout": "2m"}}},
    )
    book = RuleBook(config)
    xs1 = Device("xs-1", "xray_scanner", "aktau", "a")
    xs2 = Device("xs-2", "xray_scanner", "aktau", "a")
    assert book(xs1).no_data_timeout == 60.0  # not born yet: as any device
    book.by_exception(xs1, "g", True)
    book.by_exception(xs2, "g", True)
    assert (book(xs1).no_data_timeout, book(xs2).no_data_timeout) == (None, 300.0)
    book.by_exception(xs1, "h", True)
    assert book(xs1).no_data_timeout == 120.0
    book.by_exception(xs1, "h", False)  # dead: offline says it; born again, quiet again
    assert book(xs1).no_data_timeout == 60.0
    ds = DeviceState(xs1, last_seen=0.0)
    book.by_exception(xs1, "g", True)
    assert [c.rule for c in conditions(ds, book(xs1), 0.0)] == []
