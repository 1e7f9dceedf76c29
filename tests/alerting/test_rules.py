"""Rule settings per device (kind defaults, config, registry overrides) and threshold
expressions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from monitor.alerting.rules import DeviceState, RuleBook, RuleSettings, Threshold, conditions
from monitor.config import (
    RULE_DEFAULTS,
    RULE_SETTINGS,
    DeviceEntry,
    KindRules,
    RuleOverrides,
    load_config,
)
from monitor.model import KINDS, Device


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
  - {id: xs-02, kind: xray_scanner, site: aktau, area: a,
     thresholds: [{name: cold, when: "detector_temp_c < 5", for: 1m, severity: info}]}
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
    hot = Threshold("hot", "detector_temp_c", ">", 45.0, 300.0, "warning")
    assert xs.thresholds == (hot,)
    xs2 = book(Device("xs-02", "xray_scanner", "aktau", "a"))  # its own on top of its kind's
    assert xs2.thresholds == (hot, Threshold("cold", "detector_temp_c", "<", 5.0, 60.0, "info"))
    assert (xs2.no_data_timeout, xs2.fault_for, xs2.severity) == (60, 45, "critical")
    rpm = book(Device("rpm-01", "radiation_portal", "aktau", "a"))
    assert (rpm.no_data_timeout, rpm.severity) == (30, "critical")
    other = book(Device("gb-77", "gate_barrier", "kuryk", "a"))  # discovered
    assert other.no_data_timeout == 120


def test_the_defaults_are_one_table_of_every_kind_and_setting() -> None:
    """SPEC 5's defaults, written once (config.RULE_DEFAULTS): every kind has every
    setting, so a new setting without its default fails here."""
    assert set(RULE_DEFAULTS) == set(KINDS)
    for kind, rules in RULE_DEFAULTS.items():
        assert all(getattr(rules, name) is not None for name in RULE_SETTINGS), kind
        assert (rules.fault_for, rules.offline_for, rules.severity) == (30, 10, "critical")
    timeouts = {kind: rules.no_data_timeout for kind, rules in RULE_DEFAULTS.items()}
    assert timeouts == {
        "xray_scanner": 60,
        "radiation_portal": 30,
        "gate_barrier": 120,
        "anpr_camera": 60,
        "weighbridge": 120,
    }


def test_rule_settings_are_the_configs_by_name() -> None:
    """A setting is said in the YAML of a kind and of a device alike, and read by the
    conditions under the same name: nothing lists the settings a second time."""
    fields = {f.name for f in dataclasses.fields(RuleSettings)}
    assert fields == set(RuleOverrides.model_fields) == {*RULE_SETTINGS, "thresholds"}
    for said in (KindRules, DeviceEntry):
        assert set(RuleOverrides.model_fields) <= set(said.model_fields)


def test_a_kind_said_in_part_keeps_the_rest_of_its_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("alerts: {kinds: {weighbridge: {severity: warning, offline_for: 1m}}}\n")
    config = load_config(cfg)
    rules = config.alerts.rules("weighbridge")
    said = (rules.no_data_timeout, rules.fault_for, rules.offline_for, rules.severity)
    assert said == (120, 30, 60, "warning")
    assert config.alerts.kinds["weighbridge"].fault_for is None  # the YAML did not say it
    assert config.alerts.no_data_timeout("gate_barrier") == 120


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
