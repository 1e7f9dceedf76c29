"""Config: the shipped file, the SPEC's minimal config, env overrides, errors by path, secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import Influx, channel_secret, expand_channel, load_config, mask_url
from monitor.durations import parse as parse_duration
from monitor.errors import ConfigError
from monitor.model import KINDS
from tests.helpers import ROOT, SHIPPED_CONFIG

MINIMAL = """
mqtt:
  host: 127.0.0.1
  port: 1883
  client_id: monitor-aktau-1      # also the persistent-session id
  username: null                  # password: MONITOR_MQTT__PASSWORD
  tls: {enabled: false, ca_file: null, cert_file: null, key_file: null}
influx:
  url: http://127.0.0.1:8086
  api: v1                         # v1: database (+ retention_policy); v2: org + bucket
  database: customs               # token or password: MONITOR_INFLUX__TOKEN
state_dir: ./var                  # SQLite state, disk spool, quarantine
http: {host: 127.0.0.1, port: 8080}   # API token: MONITOR_HTTP__TOKEN
alerts:
  kinds:
    xray_scanner: {no_data_timeout: 60s, fault_for: 30s, offline_for: 10s, severity: critical}
notify:
  routes:
    - name: maintenance-crew
      match: {severity: [critical, warning]}          # also kind, site, area
      channels: ["webhook:http://127.0.0.1:9000/alerts", "mailto://user:pass@smtp.example.kz?to=crew@example.kz"]
      repeat_interval: 1h
      escalate_after: 15m
      escalate_to: ["tgram://bottoken/chatid"]
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MONITOR_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return e.value.problems


def test_shipped_config_describes_the_aktau_post() -> None:
    cfg = load_config(SHIPPED_CONFIG)
    assert len(cfg.devices) >= 20
    assert {d.kind for d in cfg.devices} == set(KINDS)
    assert len({(d.site, d.area) for d in cfg.devices if d.site == "aktau"}) >= 4
    assert {"scanner_vendor_x", "plc_gateway"} <= set(cfg.profiles)
    assert cfg.canonical


def test_minimal_spec_config_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.mqtt.client_id == "monitor-aktau-1"
    assert cfg.alerts.kinds["xray_scanner"].no_data_timeout == 60
    assert cfg.notify.routes[0].repeat_interval == 3600
    assert cfg.notify.routes[0].escalate_after == 900
    assert cfg.devices == [] and cfg.profiles == {}


def test_env_overrides_win_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_MQTT__PORT", "1884")
    monkeypatch.setenv("MONITOR_INFLUX__URL", "http://influxdb:8086")
    monkeypatch.setenv("MONITOR_STATE_DIR", "/var/lib/monitor")
    monkeypatch.setenv("MONITOR_INFLUX__RETRY__MAX", "2m")
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.mqtt.port == 1884
    assert cfg.mqtt.host == "127.0.0.1"  # the rest of the section still comes from the YAML
    assert cfg.influx.url == "http://influxdb:8086"
    assert cfg.influx.database == "customs"
    assert cfg.state_dir == Path("/var/lib/monitor")
    assert cfg.influx.retry.max == 120


def test_every_problem_is_listed_by_its_path(tmp_path: Path) -> None:
    got = problems(
        write(
            tmp_path,
            """
mqtt: {port: "eighty", tls: {enabled: true, ca_file: /nonexistent/ca.pem}}
influx: {api: v3, url: "influx:8086", flush_interval: soon}
prot: 1
devices:
  - {id: xs-01, kind: xray_scanner, site: aktau, area: a}
  - {id: "bad id", kind: toaster, site: aktau, area: a}
profiles:
  p: {topic: "scanners/+/data", fields: {hv: {to: tube_voltage_kv, convert: "V->MV"}}}
""",
        )
    )
    text = "\n".join(got)
    for expected in (
        "mqtt.port:",
        "mqtt.tls:",
        "influx.api:",
        "influx.url:",
        "influx.flush_interval:",
        "prot:",
        "devices[1].id:",
        "devices[1].kind:",
        "profiles.p.topic:",
        "profiles.p.fields.hv.convert:",
    ):
        assert any(p.startswith(expected) for p in got), f"{expected} missing in:\n{text}"
    assert "ca_file '/nonexistent/ca.pem' does not exist" in text


def test_env_problems_are_reported_by_path_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_MQTT__PORT", "99999")
    assert any(p.startswith("mqtt.port:") for p in problems(write(tmp_path, MINIMAL)))


def test_missing_file_is_an_error_not_defaults(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: config file not found"]


def test_secrets_are_refused_in_yaml(tmp_path: Path) -> None:
    got = problems(write(tmp_path, "mqtt: {password: hunter2}\ninflux: {token: abc}\n"))
    assert got == [
        "mqtt.password: secrets may not be written in the config file; set MONITOR_MQTT__PASSWORD"
        " or mqtt.password_file",
        "influx.token: secrets may not be written in the config file; set MONITOR_INFLUX__TOKEN"
        " or influx.token_file",
    ]
    assert "hunter2" not in "".join(got)


def test_secrets_from_env_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "influx-token"
    secret_file.write_text("s3cr3t-token\n")
    monkeypatch.setenv("MONITOR_MQTT__PASSWORD", "hunter2")
    cfg = load_config(
        write(tmp_path, f"mqtt: {{username: monitor}}\ninflux: {{token_file: {secret_file}}}\n")
    )
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "hunter2"
    assert cfg.influx.token is not None and cfg.influx.token.get_secret_value() == "s3cr3t-token"
    assert "hunter2" not in repr(cfg) and "s3cr3t" not in repr(cfg)


def test_check_config_cli(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "MONITOR_MQTT__PASSWORD": "hunter2",
        "MONITOR_HTTP__TOKEN": "api-secret",
    }
    ok = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "-c", str(write(tmp_path, MINIMAL))],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "configuration is valid" in ok.stdout and "maintenance-crew" in ok.stdout
    for secret in ("hunter2", "api-secret", "user:pass", "bottoken"):
        assert secret not in ok.stdout + ok.stderr

    bad = write(tmp_path, "mqtt: {port: 0}\ninflux: {api: v2}\n")
    res = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "-c", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == 2
    assert "mqtt.port: Input should be greater than or equal to 1" in res.stderr
    assert "influx: api v2 needs org and bucket" in res.stderr


def test_run_refuses_an_invalid_config_with_exit_2(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "-c", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == 2
    assert "config file not found" in res.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("7d", 604800),
        (12, 12),
        ("2.5s", 2.5),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        *("soon", "-1s", "5 minutes", True, "1w"),
        *("3000000d", 1e308, float("nan"), float("inf"), 10**400, -(10**400), "1" * 400 + "s"),
    ],
)
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):  # a reason, not an OverflowError
        parse_duration(text)


# Durations no timer takes: each refused by its path (an OverflowError out of load_config
# before: int(inf) in the whole-seconds check, float() of a 400-digit integer).
ABSURD_DURATIONS = [
    ("mqtt: {keepalive: .inf}", "mqtt.keepalive: a duration cannot be longer than 1000 years"),
    ("mqtt: {session_expiry: .nan}", "mqtt.session_expiry: a duration must be a number"),
    ("mqtt: {keepalive: 1" + "0" * 400 + "}", "mqtt.keepalive: a duration cannot be longer"),
    ("status_interval: 3000000d", "status_interval: a duration cannot be longer than 1000"),
    ("alerts: {broker_down_after: 1.0e+308}", "alerts.broker_down_after: a duration cannot be"),
]


@pytest.mark.parametrize(("text", "problem"), ABSURD_DURATIONS)
def test_absurd_durations_are_refused_with_a_reason(
    tmp_path: Path, text: str, problem: str
) -> None:
    assert any(p.startswith(problem) for p in problems(write(tmp_path, text))), problem


def _window(**fields: str) -> str:
    w = {"scope": "device", "value": "xs-01", "starts": "2026-11-22T08:00:00+05:00"} | fields
    window = "alerts: {maintenance: [{" + ", ".join(f"{k}: '{v}'" for k, v in w.items()) + "}]}"
    return window + "\ndevices: [{id: xs-01, kind: xray_scanner, site: aktau, area: inspection-1}]"


# The config's maintenance windows have the limits of the API's (SPEC 6).
BAD_WINDOWS = [
    (_window(ends="10000-01-01T00:00:00+05:00"), "alerts.maintenance[0].ends"),  # unparsable
    (_window(starts="9999-12-31T00:00:00-05:00", ends="9999-12-31T23:00:00-05:00"), "outside"),
    (_window(starts="1969-12-31T23:00:00Z", ends="1970-01-01T01:00:00Z"), "outside"),
    (_window(ends="2027-11-24T08:00:00+05:00"), "at most 366 days"),  # 367 days
    (_window(ends="2026-11-22T08:00:00+05:00"), "end after it starts"),
    (_window(value="xs 01", ends="2026-11-23T08:00:00+05:00"), "a device id must match"),
    (_window(scope="kind", value="toaster", ends="2026-11-23T08:00:00+05:00"), "kind must be"),
    (_window(scope="area", value="", ends="2026-11-23T08:00:00+05:00"), "an area name must"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_WINDOWS)
def test_config_maintenance_windows_have_the_api_limits(
    tmp_path: Path, text: str, problem: str
) -> None:
    found = problems(write(tmp_path, text))
    assert len(found) == 1 and found[0].startswith("alerts.maintenance[0]"), found
    assert problem in found[0], found


def test_a_window_of_366_days_in_the_config_is_taken(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, _window(ends="2027-11-23T08:00:00+05:00")))
    (w,) = cfg.alerts.maintenance
    assert (w.ends - w.starts).days == 366


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "mailto://user:pass@smtp.example.kz?to=crew@example.kz",
            "mailto://***@smtp.example.kz/***",
        ),
        ("tgram://123456:ABCDEF/987", "tgram://***"),  # the bot token is the "host"
        ("slack://TokenA/TokenB/TokenC/#chan", "slack://***"),
        ("webhook:http://127.0.0.1:9000/alerts?key=abc", "webhook:http://127.0.0.1:9000/***"),
        ("mailto://crew:{file:/run/secrets/smtp}@smtp.kz?to=a@b.kz", "mailto://***@smtp.kz/***"),
    ],
)
def test_channel_urls_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("url", "gzip", "compress"),
    [
        ("http://127.0.0.1:8086", "auto", False),
        ("http://localhost:8086", "auto", False),
        ("http://[::1]:8086", "auto", False),
        ("http://influxdb:8086", "auto", True),
        ("https://10.20.0.5:8086", "auto", True),
        ("http://127.0.0.1:8086", True, True),
        ("http://influxdb:8086", False, False),
    ],
)
def test_writes_are_compressed_unless_influxdb_is_on_this_host(
    url: str, gzip: bool | str, compress: bool
) -> None:
    assert Influx(url=url, gzip=gzip).compress is compress  # type: ignore[arg-type]


# Values the MQTT wire (or a timer) cannot carry: each is refused by its path, exit 2,
# before anything runs (keepalive 100000 used to pass check-config and crash `run`).
WIRE_BOUNDS = [
    ("mqtt: {keepalive: 100000}", "mqtt.keepalive:"),  # a u16 of seconds
    ("mqtt: {keepalive: 500ms}", "mqtt.keepalive:"),  # would be 0, keepalive off
    ("mqtt: {keepalive: 1.5}", "mqtt.keepalive:"),
    ("mqtt: {session_expiry: 200000d}", "mqtt.session_expiry:"),  # a u32 of seconds
    ("mqtt: {reconnect: {initial: 0s}}", "mqtt.reconnect.initial:"),
    ("mqtt: {topics: ['customs/#/x']}", "mqtt.topics[0]:"),  # '#' only last
    ("mqtt: {topics: ['customs/a+/x']}", "mqtt.topics[0]:"),  # '+' a whole level
    ("mqtt: {topics: ['']}", "mqtt.topics[0]:"),
    ("influx: {timeout: 0s}", "influx.timeout:"),
    ("status_interval: 0s", "status_interval:"),  # a timer that never sleeps
    ("stats_interval: 0", "stats_interval:"),
    ("ingest: {max_age: 0s}", "ingest.max_age:"),
    ("ingest: {max_payload_bytes: 300MiB}", "ingest.max_payload_bytes:"),  # over MQTT's 256 MiB
    ("alerts: {kinds: {xray_scanner: {no_data_timeout: 0s}}}", "alerts.kinds.xray_scanner"),
    (
        "notify: {routes: [{name: r, channels: ['json://x/y'], repeat_interval: 0s}]}",
        "notify.routes[0].repeat_interval:",
    ),
]


@pytest.mark.parametrize(("text", "path"), WIRE_BOUNDS, ids=[p for _, p in WIRE_BOUNDS])
def test_values_the_wire_cannot_carry_are_refused_by_path(
    tmp_path: Path, text: str, path: str
) -> None:
    assert any(p.startswith(path) for p in problems(write(tmp_path, text))), path


def test_check_config_refuses_a_keepalive_over_65535_with_exit_2(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "check-config",
            "-c",
            str(write(tmp_path, WIRE_BOUNDS[0][0])),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == 2, res.stdout
    assert "mqtt.keepalive:" in res.stderr


def test_whole_seconds_and_off_are_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "mqtt: {keepalive: 0, session_expiry: 7d}"))
    assert (cfg.mqtt.keepalive, cfg.mqtt.session_expiry) == (0, 7 * 86400)


def test_check_config_prints_names_from_the_config_literally(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "notify: {routes: [{name: '[/x] crew [bold]', channels: ['json://h/p']}]}\n"
        "devices: [{id: xs-1, kind: xray_scanner, site: aktau, area: a, name: '[/y]'}]\n",
    )
    res = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "-c", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "[/x] crew [bold]" in res.stdout


TWO_GB01 = """
devices:
  - {id: gb-01, kind: gate_barrier, site: aktau, area: gate-in}
  - {id: gb-01, kind: gate_barrier, site: kuryk, area: gate-in}
"""


def test_a_device_window_for_an_id_at_two_sites_says_which(tmp_path: Path) -> None:
    window = "alerts: {maintenance: [{scope: device, value: gb-01, %s"
    times = "starts: '2026-11-22T08:00:00+05:00', ends: '2026-11-22T10:00:00+05:00'}]}\n"
    assert problems(write(tmp_path, window % times + TWO_GB01)) == [
        "alerts.maintenance[0].site: gb-01 is at aktau, kuryk: say which"
    ]
    cfg = load_config(write(tmp_path, window % ("site: kuryk, " + times) + TWO_GB01))
    assert cfg.alerts.maintenance[0].site == "kuryk"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "devices: [{id: gb-1, kind: gate_barrier, site: a, area: b, profile: scanner_x}]\n"
            "profiles: {scanner_x: {topic: 'scanners/{device}/data', kind: xray_scanner}}",
            "devices[0].profile: scanner_x is for xray_scanner, this device is a gate_barrier",
        ),
        (
            "devices: [{id: gb-1, kind: gate_barrier, site: a, area: b, profile: sparkplug}]",
            "devices[0].profile: Sparkplug is off (sparkplug.enabled: false)",
        ),
        (
            "canonical: false\n"
            "devices: [{id: gb-1, kind: gate_barrier, site: a, area: b, profile: canonical}]",
            "devices[0].profile: canonical topics are off (canonical: false)",
        ),
        (
            "mqtt: {topics: ['$share/monitors/customs/#']}",
            "mqtt.topics[0]: '$share/monitors/customs/#': a shared subscription splits",
        ),
    ],
)
def test_ownership_that_could_not_be_decided_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    """A device no collector could own, or one whose messages the broker would split among
    collectors (SPEC 8), is a config error, not a silent gap (review of issue 19)."""
    found = problems(write(tmp_path, text))
    assert len(found) == 1 and found[0].startswith(problem), found


# -- routes and scopes named in the registry; channels' secrets (issue 22) ----------------

REGISTRY = """
devices:
  - {id: xs-01, kind: xray_scanner, site: aktau, area: inspection-1}
  - {id: gb-01, kind: gate_barrier, site: aktau, area: gate-in}
  - {id: kxs-01, kind: xray_scanner, site: kuryk, area: inspection-1}
"""
TIMES = "starts: '2026-11-22T08:00:00+05:00', ends: '2026-11-22T10:00:00+05:00'"


def route(match: str, channels: str = "['webhook:http://127.0.0.1:9/a']") -> str:
    return f"notify: {{routes: [{{name: crew, match: {match}, channels: {channels}}}]}}\n"


def window(scope: str) -> str:
    return f"alerts: {{maintenance: [{{{scope}, {TIMES}}}]}}\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (route("{site: [aktua]}"), "notify.routes[0].match.site: unknown site 'aktua' (known:"),
        (route("{area: [gate-inn]}"), "notify.routes[0].match.area: unknown area 'gate-inn'"),
        (route("{kind: [scaner]}"), "notify.routes[0].match.kind: unknown kind 'scaner'"),
        (window("scope: site, value: aktua"), "alerts.maintenance[0].value: unknown site"),
        (window("scope: area, value: gate-inn"), "alerts.maintenance[0].value: unknown area"),
        (
            window("scope: area, value: gate-in, site: kuryk"),
            "alerts.maintenance[0].value: area 'gate-in' is not known at kuryk (it is at aktau)",
        ),
        (window("scope: device, value: xs-09"), "alerts.maintenance[0].value: no device 'xs-09'"),
        (
            window("scope: device, value: xs-01, site: kuryk"),
            "alerts.maintenance[0].value: no device 'xs-01' at kuryk is known (it is at aktau)",
        ),
        (
            window("scope: kind, value: xray_scanner, site: aktua"),
            "alerts.maintenance[0].site: unknown",
        ),
    ],
)
def test_a_route_or_window_naming_what_the_registry_does_not_know_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    """A typo would match nothing: no notification, no silence, and nobody told why."""
    found = problems(write(tmp_path, text + REGISTRY))
    assert len(found) == 1 and found[0].startswith(problem), found


def test_names_are_known_from_the_registry_profiles_groups_topics_and_passages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_PASSAGES__PLATE_KEY", "a-plate-key-of-16-chars")
    text = (
        route(
            "{site: [aktau, kuryk, aqtobe, atyrau, khorgos], area: [gate-in, rail-gate,"
            " berth-2, weigh-in, exit-9], kind: [xray_scanner, monitor, site]}"
        )
        + window("scope: area, value: gate-in, site: aktau")
        + "profiles: {x: {topic: 'x/{device}', kind: weighbridge, site: aqtobe, area: weigh-in}}\n"
        + "sparkplug: {enabled: true, groups: {g: {site: atyrau, area: rail-gate}}}\n"
        + "mqtt: {topics: ['customs/khorgos/berth-2/#', 'customs/aktau/#', 'x/#', 'spBv1.0/#']}\n"
        + "passages: {entry_areas: [gate-in], exit_areas: [exit-9]}\n"
        + REGISTRY
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.notify.routes[0].match.site == ["aktau", "kuryk", "aqtobe", "atyrau", "khorgos"]


def test_a_channels_secret_comes_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = "['tgram://{env:CREW_TG_TOKEN}/-100123', 'mailto://crew:{file:%s}@smtp.kz']"
    secret = tmp_path / "smtp_password"
    text = route("{severity: [critical]}", channels % secret)
    assert problems(write(tmp_path, text)) == [
        "notify.routes[0].channels[0]: {env:CREW_TG_TOKEN}: the environment variable is not set",
        f"notify.routes[0].channels[1]: {{file:{secret}}}: cannot read the file: No such file"
        " or directory",
    ]
    monkeypatch.setenv("CREW_TG_TOKEN", "123456:ABC-token")
    secret.write_text("hunter2\n")
    cfg = load_config(write(tmp_path, text))
    # the URL kept is the one written: the secrets are put in when a message is sent
    assert cfg.notify.routes[0].channels == [
        "tgram://{env:CREW_TG_TOKEN}/-100123",
        f"mailto://crew:{{file:{secret}}}@smtp.kz",
    ]
    assert expand_channel(cfg.notify.routes[0].channels[1]) == "mailto://crew:hunter2@smtp.kz"


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("mailto://crew:hunter2@smtp.example.kz?to=a@b.kz", "a password"),
        ("tgram://123456:ABCDEF/-100123", "a Telegram bot token"),
        ("slack://TokenA/TokenB/TokenC/#chan", "Slack tokens"),
        ("webhook:https://hooks.example.kz/alerts?token=abc", "a token"),
        ("json://ops.example.kz/notify?apikey=abc", "a apikey"),
        ("mailto://crew:{env:SMTP_PASSWORD}@smtp.example.kz", None),
        ("tgram://{file:/run/secrets/tg}/-100123", None),
        ("webhook:https://hooks.example.kz/alerts", None),
        ("mailto://smtp.example.kz?to=a@b.kz", None),
        ("json://127.0.0.1:9000/notify", None),
    ],
)
def test_what_secret_a_channel_written_in_the_yaml_carries(url: str, what: str | None) -> None:
    assert channel_secret(url) == what


def test_check_config_refuses_an_unknown_site_and_warns_of_a_secret_in_the_yaml(
    tmp_path: Path,
) -> None:
    def check(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", "check-config", "-c", str(write(tmp_path, text))],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
            cwd=ROOT,
            check=False,
        )

    refused = check(route("{site: [aktua]}") + REGISTRY)
    assert refused.returncode == 2, refused.stdout
    assert "notify.routes[0].match.site: unknown site 'aktua' (known: aktau, kuryk)" in (
        refused.stderr
    )
    warned = check(
        route("{site: [aktau]}", "['tgram://123456:ABCDEF-bot-token/-100123']") + REGISTRY
    )
    assert warned.returncode == 0, warned.stderr
    assert (
        "notify.routes[0].channels[0]: a Telegram bot token written in the config file"
        in " ".join(warned.stdout.split())
    )
    assert "ABCDEF-bot-token" not in warned.stdout + warned.stderr


def test_the_shared_store_is_a_secret_of_postgresql_and_never_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC 8.1: store.url from MONITOR_STORE__URL or a file, a postgresql:// URL; an
    error about it never shows it (it holds a password)."""
    assert problems(write(tmp_path, MINIMAL + "store: {url: 'postgresql://m:pw@db/x'}\n")) == [
        "store.url: secrets may not be written in the config file; set MONITOR_STORE__URL"
        " or store.url_file"
    ]
    monkeypatch.setenv("MONITOR_STORE__URL", "mysql://m:hunter2@db/x")
    got = problems(write(tmp_path, MINIMAL))
    assert got == [
        "store.url: must be a postgresql:// URL (leave it out for SQLite under state_dir)"
    ]
    secret = tmp_path / "url"
    secret.write_text("postgresql://m:hunter2@db/x\n")
    monkeypatch.delenv("MONITOR_STORE__URL")
    monkeypatch.setenv("MONITOR_STORE__URL_FILE", str(secret))
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.store.url is not None
    assert cfg.store.url.get_secret_value() == "postgresql://m:hunter2@db/x"
    assert "hunter2" not in repr(cfg)


def test_a_group_needs_a_failover_of_two_heartbeats_and_a_reachable_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = problems(write(tmp_path, MINIMAL + "ha: {heartbeat: 10s, failover: 15s}\n"))
    assert len(got) == 1 and got[0].startswith("ha: ") and "twice heartbeat" in got[0]
    assert problems(write(tmp_path, MINIMAL + "heartbeat: {url: 'ftp://x'}\n")) == [
        "heartbeat.url: must be an http:// or https:// URL"
    ]
    monkeypatch.setenv("MONITOR_STORE__URL", "postgresql://m:pw@db/x")
    warnings: list[str] = []
    load_config(write(tmp_path, MINIMAL), warnings)
    assert [w for w in warnings if w.startswith("ha.")] == [
        "ha.api_url: not set, and http.host 127.0.0.1 is this host's own: the other monitor"
        " of the group cannot forward acknowledgements and windows here; set http.host to an"
        " address it reaches and ha.api_url to http://<that address>:<port>"
    ]
    warnings.clear()
    reachable = MINIMAL.replace("http: {host: 127.0.0.1,", "http: {host: 10.0.0.5,")
    load_config(write(tmp_path, reachable), warnings)
    assert [w for w in warnings if w.startswith("ha.")] == []
