"""The ``monitor`` command line."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from monitor import logs
from monitor.config import Config, format_duration, load_config, mask_url
from monitor.errors import ConfigError
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

    asyncio.run(main())


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


def main() -> None:
    app()
