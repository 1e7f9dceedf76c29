"""The ``monitor`` command line."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from monitor import logs
from monitor.config import Config, format_duration, load_config, mask_url
from monitor.errors import ConfigError, MonitorError
from monitor.model import KINDS
from monitor.normalize import Normalizer

app = typer.Typer(
    help="Inspection equipment telemetry monitor (MQTT -> InfluxDB, downtime alerts).",
    no_args_is_help=True,
    add_completion=False,
)
# Off a terminal (CI logs, pipes) rich assumes 80 columns and truncates table cells.
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="MONITOR_CONFIG",
        show_envvar=True,
        help="Config file (default config/monitor.yaml).",
    ),
]


def _load(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        err_console.print(f"[bold red]invalid configuration[/] ({len(e.problems)} problems):")
        for problem in e.problems:
            err_console.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: ConfigOption = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the collector until SIGINT/SIGTERM; on stop, flush what it holds and exit 0."""
    from monitor import app as monitor_app

    cfg = _load(config)
    logs.setup(log_level)

    async def main() -> None:
        stop = asyncio.Event()
        monitor_app.install_signal_handlers(stop)
        await monitor_app.run(cfg, stop)

    try:
        asyncio.run(main())
    except MonitorError as e:  # e.g. unusable TLS files: one clear line, not a traceback
        err_console.print(f"[red]error:[/] {e}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def simulate(
    config: ConfigOption = None,
    rate: Annotated[float, typer.Option(help="Reports per second per device.")] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Seconds to run (default: until Ctrl-C).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same readings.")] = 1,
    devices: Annotated[
        int | None,
        typer.Option(
            "--devices", help="Simulate N generated devices instead of the config's registry."
        ),
    ] = None,
    fail: Annotated[
        list[str] | None,
        typer.Option(
            help="DEVICE=MODE@SECONDS, MODE: silent, offline, fault, flap, recover (repeatable)."
        ),
    ] = None,
) -> None:
    """A customs post publishing telemetry (canonical and vendor formats), with failures."""
    from monitor import simulate as sim
    from monitor.model import Device

    cfg = _load(config)
    try:
        failures = [sim.Failure.parse(f) for f in fail or []]
    except ValueError as e:
        err_console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    registry = (
        sim.generated_devices(devices)
        if devices
        else [Device(d.id, d.kind, d.site, d.area) for d in cfg.devices]
    )
    if not registry:
        err_console.print("[red]no devices: register some in the config or use --devices N[/]")
        raise typer.Exit(2)
    simulation = sim.Simulation(
        sim.build(registry, seed),
        cfg.mqtt.host,
        cfg.mqtt.port,
        rate,
        duration,
        failures,
        progress=sim.ProgressLine(),
        username=cfg.mqtt.username,
        password=cfg.mqtt.password.get_secret_value() if cfg.mqtt.password else None,
    )

    async def main() -> None:
        from monitor import app as monitor_app

        stop = asyncio.Event()
        monitor_app.install_signal_handlers(stop)
        await simulation.run(stop)

    err_console.print(
        f"simulating {len(registry)} devices on {cfg.mqtt.host}:{cfg.mqtt.port}"
        f" at {rate:g}/s each (seed {seed})"
    )
    try:
        asyncio.run(main())
    except ValueError as e:
        err_console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    except OSError as e:
        err_console.print(f"[red]cannot reach the broker {cfg.mqtt.host}:{cfg.mqtt.port}: {e}[/]")
        raise typer.Exit(1) from None
    err_console.print(f"\nsent {simulation.sent} messages")


def _secret_state(value: object) -> str:
    return "set (hidden)" if value is not None else "not set"


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the config and summarize devices, profiles, rules and routes."""
    cfg = _load(config)
    normalizer = Normalizer(cfg)
    m, i = cfg.mqtt, cfg.influx
    console.print("[bold green]configuration is valid[/]")
    console.print(
        f"broker    {m.host}:{m.port} client_id={m.client_id}"
        f" tls={'on' if m.tls.enabled else 'off'} user={m.username or '-'}"
        f" password={_secret_state(m.password)}"
    )
    target = f"db={i.database}" if i.api == "v1" else f"org={i.org} bucket={i.bucket}"
    console.print(
        f"influx    {i.url} api={i.api} {target} token={_secret_state(i.token)}"
        f" batch={i.batch_size} flush={format_duration(i.flush_interval)}"
    )
    console.print(
        f"http      {cfg.http.host}:{cfg.http.port} token={_secret_state(cfg.http.token)}"
    )
    console.print(f"state_dir {cfg.state_dir}")
    console.print(f"subscribe {', '.join(m.topics or normalizer.subscriptions)}")

    profiles = Table("profile", "topic", "format", "kind", title="Profiles")
    if cfg.canonical:
        profiles.add_row(
            "canonical", "customs/{site}/{area}/{kind}/{device}/{channel}", "json", "from topic"
        )
    for name, p in cfg.profiles.items():
        profiles.add_row(name, p.topic, p.format, p.kind or "from registry")
    console.print(profiles)

    by_kind = Counter(d.kind for d in cfg.devices)
    by_area = Counter(f"{d.site}/{d.area}" for d in cfg.devices)
    devices = Table(
        "kind",
        "devices",
        "no_data timeout",
        "fault for",
        "offline for",
        "severity",
        title=f"Devices ({len(cfg.devices)} registered, in {len(by_area)} areas)",
    )
    for kind in KINDS:
        rules = cfg.alerts.kinds.get(kind)
        devices.add_row(
            kind,
            str(by_kind.get(kind, 0)),
            format_duration(cfg.alerts.no_data_timeout(kind)),
            format_duration(rules.fault_for) if rules else "30s",
            format_duration(rules.offline_for) if rules else "10s",
            rules.severity if rules else "critical",
        )
    console.print(devices)
    if by_area:
        console.print("areas     " + ", ".join(f"{a} ({n})" for a, n in sorted(by_area.items())))

    routes = Table("route", "match", "channels", "repeat", "escalate", title="Notification routes")
    for r in cfg.notify.routes:
        match = " ".join(
            f"{k}={','.join(v)}" for k, v in r.match.model_dump(exclude_none=True).items()
        )
        escalate = (
            f"after {format_duration(r.escalate_after)} to "
            + ", ".join(mask_url(c) for c in r.escalate_to)
            if r.escalate_to
            else "-"
        )
        routes.add_row(
            r.name,
            match or "all",
            "\n".join(mask_url(c) for c in r.channels),
            format_duration(r.repeat_interval),
            escalate,
        )
    console.print(routes)


# -- talking to a running instance -------------------------------------------------------

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="MONITOR_URL",
        show_envvar=True,
        help="The instance's HTTP API (default: http.host/port of the config).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON.")]


class _Client:
    def __init__(self, config: Path | None, url: str | None) -> None:
        token = os.environ.get("MONITOR_HTTP__TOKEN")
        if url is None:
            cfg = _load(config)
            host = "127.0.0.1" if cfg.http.host in ("0.0.0.0", "::") else cfg.http.host
            url = f"http://{host}:{cfg.http.port}"
            if token is None and cfg.http.token is not None:
                token = cfg.http.token.get_secret_value()
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                detail = json.load(e)
            except ValueError:
                detail = {"error": e.reason}
            err_console.print(
                f"[red]{method} {path}: HTTP {e.code}[/] {detail.get('error')}", highlight=False
            )
            for problem in detail.get("problems", []):
                err_console.print(f"  {problem}", markup=False)
            raise typer.Exit(1) from None
        except OSError as e:
            err_console.print(f"[red]cannot reach the monitor at {self.url}:[/] {e}")
            raise typer.Exit(1) from None


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


STATUS_STYLE = {
    "ok": "green",
    "maintenance": "blue",
    "no_data": "red",
    "offline": "red",
    "fault": "red",
}


@app.command()
def devices(
    config: ConfigOption = None, url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """Every device of a running instance: up or down, why, last seen."""
    data = _Client(config, url).call("GET", "/api/devices")
    if as_json:
        console.print_json(data=data)
        return
    table = Table(
        "site", "area", "device", "kind", "status", "state", "last seen", "alerts", title="Devices"
    )
    for d in data["devices"]:
        reason = d["reason"] or "waiting"
        style = STATUS_STYLE.get(reason, "yellow")
        table.add_row(
            d["site"],
            d["area"],
            d["device"],
            d["kind"],
            f"[{style}]{'up' if d['up'] else 'down' if d['up'] is False else '?'} ({reason})[/]",
            d["state"] or "-",
            _age(d["last_seen_age_s"]),
            ", ".join(d["open_alerts"]) or "-",
        )
    console.print(table)


@app.command()
def alerts(
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
    all_: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
) -> None:
    """Open (or all) alerts of a running instance."""
    data = _Client(config, url).call("GET", f"/api/alerts?state={'all' if all_ else 'open'}")
    if as_json:
        console.print_json(data=data)
        return
    table = Table(
        "alert", "state", "severity", "rule", "device", "since", "for", "summary", title="Alerts"
    )
    for a in data["alerts"]:
        table.add_row(
            a["alert_id"],
            a["state"],
            a["severity"],
            a["rule"],
            f"{a['device']} ({a['site']}/{a['area']})",
            a["started_at"],
            _age(a["duration_s"]),
            a["summary"],
        )
    console.print(table)


@app.command()
def ack(
    alert_id: str,
    config: ConfigOption = None,
    url: UrlOption = None,
    by: Annotated[str, typer.Option(help="Who takes it.")] = os.environ.get("USER", "cli"),
) -> None:
    """Acknowledge an alert: stops its repeats and escalation (needs MONITOR_HTTP__TOKEN)."""
    a = _Client(config, url).call("POST", f"/api/alerts/{alert_id}/ack", {"by": by})
    console.print(f"acknowledged {a['alert_id']}: {a['summary']}")


maintenance_app = typer.Typer(
    help="Planned maintenance windows (no notifications).", no_args_is_help=True
)
app.add_typer(maintenance_app, name="maintenance")


@maintenance_app.command("list")
def maintenance_list(
    config: ConfigOption = None, url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """Maintenance windows, from the config and added at run time."""
    data = _Client(config, url).call("GET", "/api/maintenance")
    if as_json:
        console.print_json(data=data)
        return
    table = Table(
        "id", "scope", "value", "starts", "ends", "reason", "by", title="Maintenance windows"
    )
    for w in data["windows"]:
        table.add_row(
            w["id"], w["scope"], w["value"], w["starts"], w["ends"], w["reason"], w["created_by"]
        )
    console.print(table)


@maintenance_app.command("add")
def maintenance_add(
    scope: Annotated[str, typer.Argument(help="device, kind, area or site")],
    value: Annotated[str, typer.Argument(help="e.g. xs-01, xray_scanner, gate-in, aktau")],
    duration: Annotated[str | None, typer.Option(help="e.g. 2h (from now or --starts)")] = None,
    starts: Annotated[str | None, typer.Option(help="RFC 3339, default now")] = None,
    ends: Annotated[str | None, typer.Option(help="RFC 3339")] = None,
    reason: Annotated[str, typer.Option()] = "",
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Add a window (needs MONITOR_HTTP__TOKEN)."""
    body: dict[str, Any] = {
        "scope": scope,
        "value": value,
        "reason": reason,
        "by": os.environ.get("USER", "cli"),
    }
    for key, val in (("duration", duration), ("starts", starts), ("ends", ends)):
        if val is not None:
            body[key] = val
    w = _Client(config, url).call("POST", "/api/maintenance", body)
    console.print(f"maintenance {w['id']}: {w['scope']} {w['value']} {w['starts']} -> {w['ends']}")


@maintenance_app.command("remove")
def maintenance_remove(window_id: str, config: ConfigOption = None, url: UrlOption = None) -> None:
    """Remove a window (needs MONITOR_HTTP__TOKEN)."""
    _Client(config, url).call("DELETE", f"/api/maintenance/{window_id}")
    console.print(f"removed {window_id}")


report_app = typer.Typer(help="Reports from the InfluxDB history.", no_args_is_help=True)
app.add_typer(report_app, name="report")


def _when(text: str, now: float) -> float:
    """``7d`` (ago), ``now``, or an RFC 3339 time."""
    from datetime import datetime

    from monitor.config import parse_duration

    if text == "now":
        return now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise typer.BadParameter(f"{text!r}: give a time zone, e.g. 2026-11-01T00:00:00+05:00")
    return dt.timestamp()


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


@report_app.command("availability")
def report_availability(
    since: Annotated[str, typer.Option(help="7d (ago) or RFC 3339")] = "7d",
    until: Annotated[str, typer.Option(help="now, 1d (ago) or RFC 3339")] = "now",
    site: Annotated[str | None, typer.Option()] = None,
    area: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    max_gap: Annotated[
        float | None,
        typer.Option(
            help="Seconds a status point holds without a newer one (default 3 x status_interval)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Per device: availability %, unplanned downtime, planned maintenance, outages, MTTR,
    MTBF (definitions in the README)."""
    import csv
    import sys
    import time

    from monitor.report import InfluxQuery, report

    cfg = _load(config)
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")
    now = time.time()
    start, end = _when(since, now), _when(until, now)
    if end <= start:
        raise typer.BadParameter("--until must be after --since")
    try:
        rows = report(
            InfluxQuery(cfg.influx),
            start,
            end,
            max_gap or 3 * cfg.status_interval,
            {"site": site, "area": area, "kind": kind},
        )
    except (OSError, RuntimeError) as e:
        err_console.print(f"[red]cannot query InfluxDB at {cfg.influx.url}: {e}[/]")
        raise typer.Exit(1) from None
    if fmt == "json":
        print(
            json.dumps(
                {"since": start, "until": end, "devices": [r.as_dict() for r in rows]}, indent=2
            )
        )
        return
    if fmt == "csv":
        fields = list(rows[0].as_dict()) if rows else ["device"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(r.as_dict())
        return
    table = Table(
        "site",
        "area",
        "device",
        "kind",
        "availability",
        "unplanned",
        "planned",
        "outages",
        "MTTR",
        "MTBF",
        "unknown",
        title=f"Availability {_fmt_time(start)} - {_fmt_time(end)}",
    )
    for r in rows:
        pct = "-" if r.availability_pct is None else f"{r.availability_pct:.2f} %"
        style = (
            "green"
            if (r.availability_pct or 0) >= 99
            else "yellow"
            if (r.availability_pct or 0) >= 95
            else "red"
        )
        table.add_row(
            r.site,
            r.area,
            r.device,
            r.kind,
            f"[{style}]{pct}[/]",
            _hours(r.unplanned_s),
            _hours(r.planned_s),
            str(r.outages),
            _hours(r.mttr_s),
            _hours(r.mtbf_s),
            _hours(r.unknown_s),
        )
    console.print(table)


def _fmt_time(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def main() -> None:
    app()
