"""Alerting's sections: the rules per kind and device (SPEC 5 defaults in one table),
maintenance windows."""

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from monitor.config.values import Duration, Interval, Kind, Section
from monitor.model import (
    THRESHOLD_RE,
    window_problem,
)

Severity = Literal["critical", "warning", "info"]


class ThresholdRule(Section):
    """``{name: hot_detector, when: "detector_temp_c > 45", for: 5m, severity: warning}``"""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    when: str
    for_: Duration = Field(0.0, alias="for")
    severity: Severity = "warning"

    @field_validator("when")
    @classmethod
    def _expr(cls, v: str) -> str:
        if not THRESHOLD_RE.match(v):
            raise ValueError(
                f"{v!r}: write it as '<metric> <op> <number>', op one of > >= < <= == !="
            )
        return v


class RuleOverrides(Section):
    """The rules' settings (SPEC 5) as a kind (``alerts.kinds.<kind>``) or a device's entry
    says them; None: not said there. Each is the field of the same name of
    ``alerting.rules.RuleSettings``, which is built from these by name, and has its default
    in ``RULE_DEFAULTS``: a new rule's setting is one line here and its default there."""

    no_data_timeout: Interval | None = None
    fault_for: Duration | None = None
    offline_for: Duration | None = None
    severity: Severity | None = None
    thresholds: list[ThresholdRule] = []  # a device's come on top of its kind's

    def over(self, base: "RuleOverrides") -> "RuleOverrides":
        """These settings over ``base``'s: each one said here wins; thresholds add up."""
        said = {name: getattr(self, name) for name in RULE_SETTINGS}
        changes: dict[str, Any] = {k: v for k, v in said.items() if v is not None}
        changes["thresholds"] = [*base.thresholds, *self.thresholds]
        # validated already, both of them: a copy, not a new validation
        return RuleOverrides.model_construct(**{**dict(base), **changes})


# The settings of RuleOverrides but its thresholds (a list that adds up, not one value).
RULE_SETTINGS: tuple[str, ...] = tuple(n for n in RuleOverrides.model_fields if n != "thresholds")


class KindRules(RuleOverrides):
    """``alerts.kinds.<kind>``: the kind's settings, over its defaults (``RULE_DEFAULTS``)."""


# SPEC 5: the default of every rule setting, per kind; the one place they are written. A
# kind's defaults are the common ones and its own (validated as the YAML would be).
_COMMON_DEFAULTS = {"fault_for": 30.0, "offline_for": 10.0, "severity": "critical"}
RULE_DEFAULTS: dict[str, RuleOverrides] = {
    kind: RuleOverrides.model_validate({**_COMMON_DEFAULTS, **own})
    for kind, own in {
        "xray_scanner": {"no_data_timeout": 60.0},
        "radiation_portal": {"no_data_timeout": 30.0},
        "gate_barrier": {"no_data_timeout": 120.0},
        "anpr_camera": {"no_data_timeout": 60.0},
        "weighbridge": {"no_data_timeout": 120.0},
    }.items()
}


class MaintenanceWindow(Section):
    """Planned downtime: no notifications, downtime counted as planned."""

    scope: Literal["device", "kind", "area", "site"]
    value: str
    site: str | None = None  # only at this site (a device id or an area at two posts)
    starts: datetime
    ends: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.starts.tzinfo is None or self.ends.tzinfo is None:
            raise ValueError("starts and ends need a time zone, e.g. 2026-11-22T08:00:00+05:00")
        # the limits of a window added through the API (SPEC 6)
        starts, ends = self.starts.timestamp(), self.ends.timestamp()
        if problem := window_problem(self.scope, self.value, starts, ends, self.site):
            raise ValueError(problem)
        return self


class Alerts(Section):
    kinds: dict[Kind, KindRules] = {}
    maintenance: list[MaintenanceWindow] = []
    # the monitor's own broker outage becomes one alert after this long (SPEC 5: 30 s)
    broker_down_after: Duration = 30.0

    def rules(self, kind: str) -> RuleOverrides:
        """A kind's rule settings, every one said: its ``kinds`` entry over its defaults."""
        defaults = RULE_DEFAULTS[kind]
        said = self.kinds.get(kind)
        return defaults if said is None else said.over(defaults)

    def no_data_timeout(self, kind: str) -> float:
        timeout = self.rules(kind).no_data_timeout
        assert timeout is not None  # every kind's default has one (RULE_DEFAULTS)
        return timeout


# A channel's secret kept out of the YAML (SPEC 10): ``{env:TELEGRAM_TOKEN}`` or
# ``{file:/run/secrets/smtp_password}`` in its URL, put in only when a message is sent.
