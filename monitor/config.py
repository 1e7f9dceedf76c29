"""Configuration: YAML file + ``MONITOR_<SECTION>__<KEY>`` environment overrides.

Validated once at start-up; every problem is reported with its path. Secrets (broker
password, InfluxDB token/password, API token) come only from the environment or from a
``*_file``; the YAML may not hold them.
"""

import ipaddress
import os
import re
import ssl
import urllib.parse
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from monitor import durations
from monitor.errors import ConfigError, MonitorError
from monitor.model import (
    CONVERSIONS,
    DEVICE_ID_RE,
    KINDS,
    NAME_RE,
    STATES,
    THRESHOLD_RE,
    window_problem,
)

DEFAULT_CONFIG_PATH = Path("config/monitor.yaml")

Duration = Annotated[float, BeforeValidator(durations.parse)]
# A period or a timeout: zero would make a timer spin or a condition hold at once.
Interval = Annotated[Duration, Field(gt=0)]


def _whole_seconds(maximum: int) -> AfterValidator:
    """Durations that go on the MQTT wire as an integer of seconds (0: off / at once)."""

    def check(seconds: float) -> float:
        if seconds != int(seconds) or not 0 <= seconds <= maximum:
            raise ValueError(
                f"MQTT carries this as whole seconds from 0 to {maximum}; got {seconds:g} s"
            )
        return seconds

    return AfterValidator(check)


MAX_MQTT_PACKET = 268_435_455  # MQTT's largest remaining length (256 MiB - 1)


def _topic_filter(text: str) -> str:
    """An MQTT topic filter the broker will accept (MQTT 5, section 4.7)."""
    levels = text.split("/")
    if not text or "\x00" in text:
        raise ValueError("a topic filter is non-empty text without NUL")
    if levels[0] == "$share":
        # the broker would split one device's messages among the collectors sharing it:
        # each device's liveness and alerts must live in one (SPEC 8)
        raise ValueError(
            f"{text!r}: a shared subscription splits a device's messages among collectors;"
            " give each collector its own sites instead (SPEC 8)"
        )
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{text!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"{text!r}: '+' must be a whole level")
    return text


TopicFilter = Annotated[str, AfterValidator(_topic_filter)]


def _known_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return kind


def _name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    return value


Language = Literal["en", "ru", "kk"]  # as monitor.i18n.Language: texts people read
SPARKPLUG_ID_RE = re.compile(r"^[^+#/\x00-\x1f]{1,64}\Z")  # a group, node or host id
Kind = Annotated[str, AfterValidator(_known_kind)]  # a canonical device kind (SPEC 2)
Name = Annotated[str, AfterValidator(_name)]  # a site or an area: it becomes a tag


class Section(BaseModel):
    # Typos in the YAML are errors, not silently ignored settings.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(value: SecretStr | None, file: Path | None, what: str) -> SecretStr | None:
    if file is None:
        return value
    try:
        return SecretStr(file.read_text().strip())
    except OSError as e:
        raise ValueError(f"cannot read {what} file {str(file)!r}: {e.strerror}") from None


class TLS(Section):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="skip hostname verification (test rigs only)")

    @model_validator(mode="after")
    def _files_exist(self) -> Self:
        if self.enabled:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(self, name)
                if path is not None and not path.is_file():
                    raise ValueError(f"{name} {str(path)!r} does not exist")
            if (self.cert_file is None) != (self.key_file is None):
                raise ValueError("cert_file and key_file go together")
        return self


class Backoff(Section):
    initial: Interval = 0.5
    max: Interval = 30.0


class CanarySettings(Section):
    """The monitor's own heartbeat through its subscriptions (SPEC 7: a broker that
    accepts the subscription but delivers nothing is the monitor's outage)."""

    enabled: bool = True
    interval: Interval = 5.0
    timeout: Interval = 15.0  # not heard back within this: the subscription is deaf


class MQTT(Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("monitor-aktau-1", min_length=1, max_length=128)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: TLS = TLS()
    keepalive: Annotated[Duration, _whole_seconds(65535)] = 30.0  # 0: no keepalive
    # MQTT 5 Receive Maximum: how many unacknowledged QoS 1 messages the broker may
    # send us. Throughput with ack-after-write is this window / write latency.
    receive_maximum: int = Field(20000, ge=1, le=65535)
    session_expiry: Annotated[Duration, _whole_seconds(2**32 - 1)] = 7 * 86400.0
    reconnect: Backoff = Backoff()
    canary: CanarySettings = CanarySettings()
    # Extra subscriptions beyond those the profiles imply (e.g. to narrow to some sites,
    # set `topics` and the profiles' own topics are not subscribed).
    topics: list[TopicFilter] | None = None

    @model_validator(mode="after")
    def _secret(self) -> Self:
        object.__setattr__(
            self, "password", _read_secret(self.password, self.password_file, "password")
        )
        return self


class Influx(Section):
    @property
    def compress(self) -> bool:
        """Whether to gzip request bodies (``gzip`` resolved)."""
        if self.gzip != "auto":
            return self.gzip
        host = urllib.parse.urlsplit(self.url).hostname or ""
        if host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:  # a name: another host (compose service, cluster)
            return True

    url: str = "http://127.0.0.1:8086"
    # https: the CA bundle that signed InfluxDB's certificate (default: the system's CAs)
    ca_file: Path | None = None
    api: Literal["v1", "v2"] = "v1"
    database: str = "customs"
    retention_policy: str | None = None
    org: str | None = None
    bucket: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    create_database: bool = Field(True, description="v1: CREATE DATABASE at start-up")
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: Duration = 0.1
    timeout: Interval = 10.0
    # "auto": compress unless InfluxDB is on this host. Over loopback gzip saves nothing
    # and costs both sides CPU (measured: influxd -25 % CPU at 40k points/s, bench/README).
    gzip: bool | Literal["auto"] = "auto"
    retry: Backoff = Backoff(initial=0.2, max=30.0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _api_fields(self) -> Self:
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {str(self.ca_file)!r} does not exist")
        object.__setattr__(self, "token", _read_secret(self.token, self.token_file, "token"))
        object.__setattr__(
            self, "password", _read_secret(self.password, self.password_file, "password")
        )
        if self.api == "v2" and not (self.org and self.bucket):
            raise ValueError("api v2 needs org and bucket")
        return self


def tls_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """Verification of an HTTPS server by ``ca_file``'s CAs; None: the system's."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (ssl.SSLError, OSError) as e:
        raise MonitorError(f"influx.ca_file {str(ca_file)!r}: {e}") from None


class HTTP(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token: SecretStr | None = None
    token_file: Path | None = None
    # Where people reach the status board (a TLS proxy in front, say): notifications then
    # link to the alert on it, where it can be acknowledged from a phone (SPEC 10).
    public_url: str | None = None

    @model_validator(mode="after")
    def _secret(self) -> Self:
        object.__setattr__(self, "token", _read_secret(self.token, self.token_file, "token"))
        return self

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"\s", v):
            raise ValueError("must be an http:// or https:// URL, e.g. https://monitor.example.kz")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError("the board's address only: no user, query or #fragment")
        return v.rstrip("/")

    def alert_link(self, alert_id: str) -> str | None:
        """The alert on the status board (``board.js`` opens ``#alert=<id>``)."""
        if self.public_url is None:
            return None
        return f"{self.public_url}/#alert={urllib.parse.quote(alert_id, safe='')}"


class Ingest(Section):
    max_payload_bytes: ByteSize = Field(ByteSize(256 * 1024), gt=0, le=MAX_MQTT_PACKET)
    max_age: Interval = 7 * 86400.0
    max_clock_skew: Duration = 300.0
    quarantine_max_bytes: ByteSize = ByteSize(64 * 1024 * 1024)
    # Devices discovered from canonical topics (beyond the registry): a publisher spraying
    # made-up device ids must not grow memory without bound.
    max_devices: int = Field(50_000, ge=1)


class Passages(Section):
    """Truck passages from plate reads (SPEC 9). Absent: off; present in the YAML or
    through any MONITOR_PASSAGES__* variable (the plate key alone, say): on."""

    entry_areas: list[Name] = Field(["gate-in"], min_length=1)
    exit_areas: list[Name] = Field(["gate-out"], min_length=1)
    stages: dict[Name, list[Name]] = {}  # stage -> the areas whose reads mark it
    max_dwell: Interval = 86400.0
    min_confidence: float = Field(80.0, ge=0, le=100)
    debounce: Duration = Field(120.0, ge=0)
    # The key of the plates' keyed hash: from MONITOR_PASSAGES__PLATE_KEY or this file.
    plate_key: SecretStr | None = None
    plate_key_file: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        key = _read_secret(self.plate_key, self.plate_key_file, "plate_key")
        if key is None or len(key.get_secret_value()) < 16:
            raise ValueError(
                "plate reads need a secret plate key of at least 16 characters: set "
                "MONITOR_PASSAGES__PLATE_KEY or passages.plate_key_file"
            )
        object.__setattr__(self, "plate_key", key)
        roles: dict[str, str] = {}
        named = [("entry", a) for a in self.entry_areas] + [("exit", a) for a in self.exit_areas]
        named += [(f"stage {s}", a) for s, areas in self.stages.items() for a in areas]
        for role, area in named:
            if roles.setdefault(area, role) != role:
                raise ValueError(f"area {area!r} is both {roles[area]} and {role}")
        return self


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
SECRET_PLACEHOLDER = re.compile(r"\{(env|file):([^{}\s]+)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def expand_channel(url: str) -> str:
    """The channel URL with its secrets put in, from the environment or their files, as
    they are now (a rotated file is read anew). ``ValueError`` names what is missing,
    never a secret. The result is for the channel alone: never logged, never stored."""

    def secret(m: re.Match[str]) -> str:
        source, name = m.groups()
        if source == "env":
            if not ENV_NAME.match(name):
                raise ValueError(f"{{env:{name}}}: not an environment variable name")
            value = os.environ.get(name)
            if value is None:
                raise ValueError(f"{{env:{name}}}: the environment variable is not set")
            return value.strip()
        try:
            return Path(name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise ValueError(f"{{file:{name}}}: cannot read the file: {why}") from None

    return SECRET_PLACEHOLDER.sub(secret, url)


def _check_channel(url: str) -> str:
    # The shape is checked with each secret's place standing for it; the secrets are read
    # now (a missing variable or file is refused at load) but kept out of the URL kept.
    expand_channel(url)
    shape = SECRET_PLACEHOLDER.sub("secret", url)
    if shape.startswith("webhook:"):
        if not re.match(r"^webhook:https?://\S+$", shape):
            raise ValueError("webhook channel must be webhook:http(s)://...")
    elif not re.match(r"^[a-z][a-z0-9+.-]*://\S*$", shape):
        raise ValueError(f"channel {mask_url(url)!r} is neither an Apprise URL nor webhook:<url>")
    return url


# Where a channel URL written in the YAML carries a secret (SPEC 10: check-config warns).
# Apprise services whose URL's first part is a token (tgram://BOTTOKEN/CHAT_ID) rather
# than a server's name; a query parameter of these names; a password in the authority.
TOKEN_SCHEMES = {
    "tgram": "a Telegram bot token",
    "discord": "a Discord webhook",
    "slack": "Slack tokens",
    "msteams": "an MS Teams webhook",
    "pbul": "a Pushbullet token",
    "pover": "Pushover keys",
    "ifttt": "an IFTTT key",
    "join": "a Join API key",
    "signal": "a Signal account",
}
SECRET_PARAMETERS = frozenset(
    {"pass", "password", "pwd", "token", "key", "apikey", "api_key", "secret", "access_token"}
)


def channel_secret(url: str) -> str | None:
    """What secret a channel URL carries as written (a placeholder carries none), or None."""
    literal = SECRET_PLACEHOLDER.sub("", url).removeprefix("webhook:")
    m = re.match(r"^([a-z][a-z0-9+.-]*)://([^/?#]*)[^?#]*(?:\?([^#]*))?", literal, re.I)
    if m is None:
        return None
    scheme, authority, query = m.group(1).lower(), m.group(2), m.group(3) or ""
    userinfo = authority.rpartition("@")[0]
    if userinfo.partition(":")[2]:
        return "a password"
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name.lower() in SECRET_PARAMETERS and value:
            return f"a {name.lower()}"
    service = scheme if scheme in TOKEN_SCHEMES else scheme.removesuffix("s")  # slacks://
    if service in TOKEN_SCHEMES and authority:
        return TOKEN_SCHEMES[service]
    return None


def yaml_channel_secrets(raw: Any) -> list[str]:
    """Warnings, by path, for channel URLs written in the YAML with a secret in them: the
    secret is in a file people share, copy and commit (SPEC 10)."""
    notify = raw.get("notify") if isinstance(raw, dict) else None
    routes = notify.get("routes") if isinstance(notify, dict) else None
    warnings: list[str] = []
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(route, dict):
            continue
        for key in ("channels", "escalate_to"):
            urls = route.get(key)
            for j, url in enumerate(urls if isinstance(urls, list) else []):
                if isinstance(url, str) and (what := channel_secret(url)) is not None:
                    warnings.append(
                        f"notify.routes[{i}].{key}[{j}]: {what} written in the config file;"
                        " put it in the environment or a file and write {env:NAME} or"
                        " {file:/path} in its place"
                    )
    return warnings


class ChannelURL(str):
    """A notification channel URL: it carries tokens and passwords, so its repr is masked
    (a config printed in a traceback or a debug line does not leak them)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_url(self))


Channel = Annotated[
    str, BeforeValidator(lambda v: _check_channel(str(v))), AfterValidator(ChannelURL)
]


class RouteMatch(Section):
    severity: list[Severity] | None = None
    kind: list[str] | None = None
    site: list[str] | None = None
    area: list[str] | None = None


class Route(Section):
    name: str
    match: RouteMatch = RouteMatch()
    channels: list[Channel] = Field(min_length=1)
    repeat_interval: Interval = 3600.0
    escalate_after: Duration = 900.0
    escalate_to: list[Channel] = []
    # The crew's language (en, ru, kk): its messages in it; the webhook JSON adds
    # summary_localized. None: English, and the webhook JSON exactly as SPEC 5 has it.
    language: Language | None = None


class Notify(Section):
    routes: list[Route] = []


ValueMap = dict[str, str]


class FieldMap(Section):
    """Where one vendor value goes: a canonical metric (or ``state``), converted."""

    to: str
    convert: str | None = None  # a named conversion, see model.CONVERSIONS
    scale: float = 1.0
    offset: float = 0.0
    map: ValueMap | None = None  # vendor value (as text) -> canonical value

    @field_validator("convert")
    @classmethod
    def _convert(cls, v: str | None) -> str | None:
        if v is not None and v not in CONVERSIONS:
            raise ValueError(f"unknown conversion {v!r} (known: {', '.join(CONVERSIONS)})")
        return v

    @model_validator(mode="after")
    def _state_map(self) -> Self:
        if self.to == "state":
            if not self.map:
                raise ValueError("a field mapped to state needs a map of vendor values")
            _check_states(self.map)
        return self


class StateMap(Section):
    field: str
    map: ValueMap

    @field_validator("map")
    @classmethod
    def _states(cls, v: ValueMap) -> ValueMap:
        _check_states(v)
        return v


def _check_states(mapping: ValueMap) -> None:
    if bad := sorted({v for v in mapping.values() if v not in STATES}):
        raise ValueError(f"{bad} not canonical states ({', '.join(sorted(STATES))})")


class Timestamp(Section):
    field: str = "ts"
    unit: Literal["ms", "s", "us", "ns", "rfc3339", "auto"] = "auto"


class Profile(Section):
    """A vendor topic/payload format mapped onto the canonical model (SPEC 3.2)."""

    topic: str
    format: Literal["json", "plain"] = "json"
    kind: Kind | None = None  # when neither the topic nor the registry gives it
    site: str | None = None
    area: str | None = None
    # status: the payload is online/offline or {"state": ...}, as on canonical status topics
    channel: Literal["telemetry", "status"] = "telemetry"
    timestamp: Timestamp | None = None
    state: StateMap | None = None
    # json: keyed by payload key (dotted for nested); plain: keyed by the {signal} segment.
    fields: dict[str, FieldMap] = {}
    unmapped: Literal["keep", "drop"] = "keep"

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        levels = v.split("/")
        if any(("+" in lv or "#" in lv) for lv in levels) or not all(levels):
            raise ValueError("use {name} segments, not MQTT wildcards, and no empty levels")
        names = [lv[1:-1] for lv in levels if lv.startswith("{") and lv.endswith("}")]
        if "device" not in names:
            raise ValueError("the topic needs a {device} segment")
        allowed = {"device", "site", "area", "kind", "signal"}
        if bad := set(names) - allowed:
            raise ValueError(f"unknown segment(s) {sorted(bad)}; allowed: {sorted(allowed)}")
        return v


class SparkplugGroup(Section):
    """Defaults for the devices of one Sparkplug group that the registry does not name."""

    site: Name | None = None
    area: Name | None = None
    kind: Kind | None = None
    fields: dict[str, FieldMap] = {}  # metric name -> canonical, over sparkplug.fields
    # Sparkplug reports by exception: a born device is alive however quiet (SPEC 3.4), so
    # no_data applies to this group's devices only when set here (or in their entry).
    no_data_timeout: Interval | None = None


class Sparkplug(Section):
    """Eclipse Sparkplug B 3.0 (SPEC 3.4): the monitor as a Host Application."""

    enabled: bool = False
    host_id: str | None = None  # spBv1.0/STATE/{host_id}; default: mqtt.client_id
    # The host's own MQTT session (Clean Start, expiry 0, its STATE as Will), beside the
    # persistent one: default "<mqtt.client_id>-sparkplug".
    client_id: str | None = Field(None, min_length=1, max_length=128)
    groups: dict[str, SparkplugGroup] = {}  # subscribed to; none: every group
    rebirth: bool = True  # ask a node to rebirth on a seq gap or an unknown alias
    # A seq gap not filled within this asks for a rebirth (clustered brokers reorder
    # across topics); 0: at once.
    reorder_timeout: Duration = Field(2.0, ge=0)
    rebirth_interval: Interval = 30.0  # at most one rebirth request per node in this long
    rebirth_rate: float = Field(10.0, gt=0)  # rebirth requests per second, all nodes together
    max_nodes: int = Field(1000, ge=1)  # edge nodes known; a new one beyond: too_many_nodes
    max_metrics: int = Field(100_000, ge=1)  # metric definitions (device, name), all nodes
    fields: dict[str, FieldMap] = {}  # metric name -> canonical metric (as in profiles)
    unmapped: Literal["keep", "drop"] = "keep"

    @field_validator("host_id")
    @classmethod
    def _host_id(cls, v: str | None) -> str | None:
        if v is not None and not SPARKPLUG_ID_RE.match(v):
            raise ValueError("must be a valid MQTT topic level without +, # or /")
        return v

    @field_validator("groups")
    @classmethod
    def _group_ids(cls, v: dict[str, SparkplugGroup]) -> dict[str, SparkplugGroup]:
        if bad := [g for g in v if not SPARKPLUG_ID_RE.match(g)]:
            raise ValueError(f"{bad} are not Sparkplug group ids (no +, #, / or empty)")
        return v


class DeviceEntry(RuleOverrides):
    """A registered device: where it is, how it speaks, and its own rule settings (over its
    kind's)."""

    id: str
    kind: Kind
    site: Name
    area: Name
    name: str | None = None  # a human label for the status board
    # How it speaks: a profile's name, "canonical" or "sparkplug". Optional; it says which
    # collector owns the device (SPEC 8) and which entry a topic without a site means.
    profile: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not DEVICE_ID_RE.match(v):
            raise ValueError("device id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
        return v


SECRET_KEYS = {
    ("mqtt", "password"): "MONITOR_MQTT__PASSWORD",
    ("influx", "password"): "MONITOR_INFLUX__PASSWORD",
    ("influx", "token"): "MONITOR_INFLUX__TOKEN",
    ("http", "token"): "MONITOR_HTTP__TOKEN",
    ("passages", "plate_key"): "MONITOR_PASSAGES__PLATE_KEY",
}


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MONITOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    mqtt: MQTT = MQTT()
    influx: Influx = Influx()
    state_dir: Path = Path("./var")
    http: HTTP = HTTP()
    instance: str | None = None  # the `monitor` measurement's tag; default: mqtt.client_id
    status_interval: Interval = 15.0
    # A stop (SIGTERM) ends within this, exit 0; what it could not write stays
    # unacknowledged, so the broker delivers it again (SPEC 7).
    stop_timeout: Interval = 15.0
    stats_interval: Interval = 10.0
    # Disk spool for batches InfluxDB cannot take (0 turns it off: then nothing is acked
    # until InfluxDB is back). An alert fires at 80 %; when full, acks stop.
    spool_max_bytes: ByteSize = ByteSize(1024**3)
    ingest: Ingest = Ingest()
    alerts: Alerts = Alerts()
    notify: Notify = Notify()
    passages: Passages | None = None
    sparkplug: Sparkplug = Sparkplug()
    language: Language = "en"  # of the status board, the CLI and the reports (--lang)
    canonical: bool = Field(True, description="ingest the canonical customs/... topics")
    profiles: dict[str, Profile] = {}
    devices: list[DeviceEntry] = []

    @property
    def instance_name(self) -> str:
        return self.instance or self.mqtt.client_id

    @model_validator(mode="after")
    def _registry(self) -> Self:
        if problems := registry_problems(self) + scope_problems(self):
            raise ValueError("\n".join(problems))
        return self

    def siteless_routes(self) -> dict[str, str | None]:
        """The profiles whose topics name no site (``scanners/{device}/data``; Sparkplug
        groups without a site of their own), with the kind each is for: their devices are
        found by id alone."""
        routes: dict[str, str | None] = {
            name: p.kind
            for name, p in self.profiles.items()
            if p.site is None and "{site}" not in p.topic
        }
        sp = self.sparkplug
        if sp.enabled and (not sp.groups or any(g.site is None for g in sp.groups.values())):
            routes[SPARKPLUG_ROUTE] = None
        return routes

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then the YAML file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if (from_file := _from_yaml.get()) is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=from_file))
        return tuple(sources)


CANONICAL_ROUTE = "canonical"
SPARKPLUG_ROUTE = "sparkplug"


def registry_problems(config: Config) -> list[str]:
    """A device is its site and id (SPEC 2): each registered once, and an id that a topic
    without a site would name ambiguously refused, with how to say which one is meant."""
    problems: list[str] = []
    routes = {CANONICAL_ROUTE, SPARKPLUG_ROUTE, *config.profiles}
    first: dict[tuple[str, str], int] = {}
    by_id: dict[str, list[int]] = {}
    for i, dev in enumerate(config.devices):
        key = (dev.site, dev.id)
        if key in first:
            problems.append(
                f"devices[{i}]: {dev.site}/{dev.id} is registered twice (devices[{first[key]}] too)"
            )
        first.setdefault(key, i)
        by_id.setdefault(dev.id, []).append(i)
        if dev.profile is not None and (why := _cannot_speak(config, dev, routes)):
            problems.append(f"devices[{i}].profile: {why}")
    for i, w in enumerate(config.alerts.maintenance):
        at = sorted({config.devices[j].site for j in by_id.get(w.value, [])})
        if w.scope == "device" and w.site is None and len(at) > 1:
            problems.append(
                f"alerts.maintenance[{i}].site: {w.value} is at {', '.join(at)}: say which"
            )
    for route, kind in config.siteless_routes().items():
        for device_id, entries in by_id.items():
            fitting = [
                i
                for i in entries
                if (kind is None or config.devices[i].kind == kind)
                and config.devices[i].profile in (None, route)
            ]
            if len(fitting) > 1:
                sites = ", ".join(config.devices[i].site for i in fitting)
                problems.append(
                    f"devices[{fitting[1]}]: {device_id} is registered at {sites}, and"
                    f" {route}'s topics name no site: say which one speaks {route}"
                    f" (profile: {route} on it, another profile on the others)"
                )
    return problems


# Kinds a route may match besides the equipment's: the monitor's own alerts and a site's.
ALERT_KINDS = ("monitor", "site")
CANONICAL_ROOT = "customs"  # customs/{site}/{area}/...: a filter may name a site, an area
SHOWN_KNOWN = 12  # names listed in a refusal (a registry of thousands is not printed)


@dataclass
class KnownNames:
    """The sites, areas and devices a config knows by name (SPEC 10): a route's ``match``
    or a window's scope naming anything else would silently match nothing, so it is
    refused. Known: the registry's devices, their sites and areas; a profile's or a
    Sparkplug group's site and area; the passages' areas; a site or an area that
    ``mqtt.topics`` names in the canonical topics. A site only ever discovered (a device
    publishing on ``customs/<site>/...`` that nobody registered) is not: the config cannot
    tell it from a typo. The API adds what liveness has heard (``Parts.known_names``)."""

    sites: set[str] = field(default_factory=set)
    areas: dict[str, set[str]] = field(default_factory=dict)  # area -> its sites ("" any)
    devices: dict[str, set[str]] = field(default_factory=dict)  # id -> its sites

    @classmethod
    def of(cls, config: Config) -> Self:
        known = cls()
        for d in config.devices:
            known.add(d.site, d.area, d.id)
        for p in config.profiles.values():
            known.add(p.site, p.area)
        for g in config.sparkplug.groups.values():
            known.add(g.site, g.area)
        if (ps := config.passages) is not None:
            for area in (
                *ps.entry_areas,
                *ps.exit_areas,
                *(a for v in ps.stages.values() for a in v),
            ):
                known.add(None, area)
        for topic in config.mqtt.topics or ():
            levels = topic.split("/")
            if levels[0] == CANONICAL_ROOT and len(levels) > 1:
                site = None if levels[1] in ("+", "#") else levels[1]
                zone = levels[2] if len(levels) > 2 and levels[2] not in ("+", "#") else None
                known.add(site, zone)
        return known

    def add(self, site: str | None, area: str | None = None, device: str | None = None) -> None:
        if site is not None:
            self.sites.add(site)
        if area is not None:
            self.areas.setdefault(area, set()).add(site or "")
        if device is not None and site is not None:
            self.devices.setdefault(device, set()).add(site)

    def route_problems(self, match: RouteMatch) -> list[str]:
        """``match.<key>: why`` for each value the registry does not know."""
        problems = [
            f"kind: unknown kind {k!r} (known: {', '.join([*KINDS, *ALERT_KINDS])})"
            for k in match.kind or ()
            if k not in KINDS and k not in ALERT_KINDS
        ]
        problems += [
            f"site: {why}" for s in match.site or () if (why := self.site_problem(s)) is not None
        ]
        problems += [
            f"area: {why}" for a in match.area or () if (why := self.area_problem(a)) is not None
        ]
        return problems

    def window_problem(self, scope: str, value: str, site: str | None) -> str | None:
        """Why a maintenance window's scope names nothing the registry knows; None if it
        does (its shape and times are ``model.window_problem``'s)."""
        if site is not None and (why := self.site_problem(site)) is not None:
            return why
        if scope == "site":
            return self.site_problem(value)
        if scope == "area":
            return self.area_problem(value, site)
        if scope == "device":
            sites = self.devices.get(value, set())
            if site is None and sites:
                return None
            if site in sites:
                return None
            where = f" at {site}" if site is not None else ""
            known = f" (it is at {', '.join(sorted(sites))})" if sites else ""
            return f"no device {value!r}{where} is known{known}"
        return None

    def site_problem(self, site: str) -> str | None:
        if site in self.sites:
            return None
        return (
            f"unknown site {site!r} (known: {_listed(self.sites)}); a site is known by a"
            " device registered there"
        )

    def area_problem(self, area: str, site: str | None = None) -> str | None:
        sites = self.areas.get(area)
        if sites is not None and (site is None or site in sites or "" in sites):
            return None
        if sites is None:
            return f"unknown area {area!r} (known: {_listed(self.areas)})"
        at = ", ".join(sorted(s for s in sites if s))
        return f"area {area!r} is not known at {site} (it is at {at})"


def _listed(names: Iterable[str]) -> str:
    shown = sorted(names)
    more = f", ... ({len(shown) - SHOWN_KNOWN} more)" if len(shown) > SHOWN_KNOWN else ""
    return (", ".join(shown[:SHOWN_KNOWN]) or "none") + more


def scope_problems(config: Config) -> list[str]:
    """Routes and windows that name what the registry does not know (SPEC 10): refused,
    instead of matching nothing (a typo in a route's site would hide every alert)."""
    known = KnownNames.of(config)
    problems = [
        f"notify.routes[{i}].match.{why}"
        for i, r in enumerate(config.notify.routes)
        for why in known.route_problems(r.match)
    ]
    for i, w in enumerate(config.alerts.maintenance):
        if (why := known.window_problem(w.scope, w.value, w.site)) is not None:
            what = "site" if w.site is not None and known.site_problem(w.site) else "value"
            problems.append(f"alerts.maintenance[{i}].{what}: {why}")
    return problems


def _cannot_speak(config: Config, dev: DeviceEntry, routes: set[str]) -> str | None:
    """Why an entry cannot speak the profile it names (no collector would then own it)."""
    assert dev.profile is not None
    if dev.profile not in routes:
        return f"unknown {dev.profile!r} (known: {', '.join(sorted(routes))})"
    if dev.profile == CANONICAL_ROUTE and not config.canonical:
        return "canonical topics are off (canonical: false)"
    if dev.profile == SPARKPLUG_ROUTE and not config.sparkplug.enabled:
        return "Sparkplug is off (sparkplug.enabled: false)"
    p = config.profiles.get(dev.profile)
    if p is not None and p.kind not in (None, dev.kind):
        return f"{dev.profile} is for {p.kind}, this device is a {dev.kind}"
    if p is not None and p.site not in (None, dev.site):
        return f"{dev.profile} is for site {p.site}, this device is at {dev.site}"
    return None


# The YAML being loaded, parsed once, for the duration of one load_config().
_from_yaml: ContextVar[dict[str, Any] | None] = ContextVar("from_yaml", default=None)
# libyaml's parser where PyYAML has it: ten times the pure-Python one, at start-up.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for a dict key: the key itself is named
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _validation_problems(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        if not e["loc"] and re.match(r"^[a-z_]+(\[\d+\])?[\w.\[\]]*: ", msg):
            # a check across sections names its own paths, one problem a line
            problems.extend(msg.splitlines())
            continue
        problems.append(f"{_format_loc(e['loc'])}: {msg}")
    return problems


def _secrets_in_yaml(raw: Any) -> list[str]:
    problems: list[str] = []
    if not isinstance(raw, dict):
        return problems
    for (section, key), env in SECRET_KEYS.items():
        sec = raw.get(section)
        if isinstance(sec, dict) and sec.get(key) is not None:
            problems.append(
                f"{section}.{key}: secrets may not be written in the config file; "
                f"set {env} or {section}.{key}_file"
            )
    return problems


def load_config(path: Path | str | None = None, warnings: list[str] | None = None) -> Config:
    """Load and validate; raises ConfigError listing every problem by its path. What is
    valid but unwise (a channel's secret written in the YAML) is added to ``warnings``."""
    path = Path(path or os.environ.get("MONITOR_CONFIG") or DEFAULT_CONFIG_PATH)
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found"])
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not valid YAML: {e}"]) from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    if problems := _secrets_in_yaml(raw):
        raise ConfigError(problems)
    if warnings is not None:
        warnings.extend(yaml_channel_secrets(raw))

    token = _from_yaml.set(raw or {})
    try:
        return Config()
    except ValidationError as e:
        raise ConfigError(_validation_problems(e)) from None
    finally:
        _from_yaml.reset(token)


# Schemes whose host part is a server name; for the others (tgram://TOKEN/CHAT,
# discord://ID/TOKEN, ...) the "host" may itself be the credential.
_HOST_SCHEMES = frozenset(
    {"http", "https", "json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"}
)


def mask_url(url: str) -> str:
    """A channel URL safe to print: no user, password, token, path or query."""
    url = SECRET_PLACEHOLDER.sub("secret", url)  # {file:/a/b} would split the authority
    prefix = ""
    if url.startswith("webhook:"):
        prefix, url = "webhook:", url[len("webhook:") :]
    m = re.match(r"^([a-z][a-z0-9+.-]*)://([^/?#]*)(.*)$", url, re.I)
    if not m:
        return prefix + "***"
    scheme, authority, rest = m.groups()
    if "@" in authority:
        host = "***@" + authority.rsplit("@", 1)[1]
    elif scheme.lower() in _HOST_SCHEMES:
        host = authority
    else:
        return f"{prefix}{scheme}://***"
    return f"{prefix}{scheme}://{host}{'/***' if rest else ''}"
