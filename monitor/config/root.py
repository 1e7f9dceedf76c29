"""The whole config (``Config``): its sections, the checks across them (the registry,
routes and scopes against what is known), and loading it from YAML and the environment."""

import os
import re
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import (
    ByteSize,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from monitor.config.alerts import Alerts
from monitor.config.connections import HTTP, MQTT, Influx, StoreSettings
from monitor.config.ha import HA, Heartbeat
from monitor.config.inputs import DeviceEntry, Ingest, Passages, Profile, Sparkplug
from monitor.config.notify import Notify, RouteMatch, yaml_channel_secrets
from monitor.config.values import DEFAULT_CONFIG_PATH, Interval, Language
from monitor.errors import ConfigError
from monitor.model import (
    KINDS,
)

SECRET_KEYS = {
    ("mqtt", "password"): "MONITOR_MQTT__PASSWORD",
    ("influx", "password"): "MONITOR_INFLUX__PASSWORD",
    ("influx", "token"): "MONITOR_INFLUX__TOKEN",
    ("http", "token"): "MONITOR_HTTP__TOKEN",
    ("passages", "plate_key"): "MONITOR_PASSAGES__PLATE_KEY",
    ("store", "url"): "MONITOR_STORE__URL",
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
    store: StoreSettings = StoreSettings()
    ha: HA = HA()
    heartbeat: Heartbeat = Heartbeat()
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
        config = Config()
    except ValidationError as e:
        raise ConfigError(_validation_problems(e)) from None
    finally:
        _from_yaml.reset(token)
    if warnings is not None:
        warnings.extend(group_warnings(config))
    return config


def group_warnings(config: Config) -> list[str]:
    """SPEC 8.1: what keeps the monitors of a group from reaching each other."""
    if config.store.url is None or config.ha.api_url is not None:
        return []
    host = config.http.host
    if host in ("localhost", "::1") or host.startswith("127."):
        return [
            f"ha.api_url: not set, and http.host {host} is this host's own: the other monitor"
            " of the group cannot forward acknowledgements and windows here; set http.host"
            " to an address it reaches and ha.api_url to http://<that address>:<port>"
        ]
    return []


# Schemes whose host part is a server name; for the others (tgram://TOKEN/CHAT,
# discord://ID/TOKEN, ...) the "host" may itself be the credential.
