"""Commands that work from the config alone: run, simulate, check-config."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated

import typer

from monitor import durations
from monitor.cli import collector
from monitor.cli.common import (
    ConfigOption,
    add_row,
    app,
    complain,
    console,
    load,
    new_table,
    say,
    show,
    styled,
    text,
)
from monitor.config import RULE_SETTINGS, SparkplugGroup, mask_url, store_where
from monitor.model import KINDS, key_text
from monitor.normalize.normalizer import Normalizer
from monitor.source.canary import canary_topic


@app.command()
def run(
    config: ConfigOption = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the collector until SIGINT/SIGTERM; on stop, flush what it holds and exit 0."""
    raise typer.Exit(collector.run(config, log_level))


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
            help="DEVICE=MODE@SECONDS, MODE: silent, offline, fault, flap, recover (repeatable;"
            " negative SECONDS: in the backfilled past)."
        ),
    ] = None,
    trucks_per_hour: Annotated[
        float,
        typer.Option(help="Trucks arriving per hour at each site with ANPR cameras (0: none)."),
    ] = 40.0,
    inspect_share: Annotated[
        float, typer.Option(help="Share of trucks selected for an X-ray scan.", min=0, max=1)
    ] = 0.25,
    sparkplug: Annotated[
        list[str] | None,
        typer.Option(
            help="GROUP/NODE=DEVICE[,DEVICE...]: these devices are published by a Sparkplug B"
            " edge node (repeatable)."
        ),
    ] = None,
    backfill: Annotated[
        str,
        typer.Option(
            help="Replay this much of the past first (e.g. 24h), with its own timestamps, as"
            " fast as the broker takes it; then go on live."
        ),
    ] = "0s",
) -> None:
    """A customs post publishing telemetry (canonical and vendor formats), with failures."""
    from monitor.model import Device
    from monitor.sim import equipment
    from monitor.sim import simulate as sim

    cfg = load(config)
    try:
        failures = [sim.Failure.parse(f) for f in fail or []]
        backfill_s = durations.parse(backfill)
        from monitor.sim import sparkplug_node

        nodes = [sparkplug_node.parse(n) for n in sparkplug or []]
    except ValueError as e:
        complain(str(e))
        raise typer.Exit(2) from None
    registry = (
        equipment.generated_devices(devices)
        if devices
        else [Device(d.id, d.kind, d.site, d.area) for d in cfg.devices]
    )
    if not registry:
        complain("no devices: register some in the config or use --devices N")
        raise typer.Exit(2)
    simulation = sim.Simulation(
        equipment.build(registry, seed),
        cfg.mqtt.host,
        cfg.mqtt.port,
        rate,
        duration,
        failures,
        progress=sim.ProgressLine(),
        username=cfg.mqtt.username,
        password=cfg.mqtt.password.get_secret_value() if cfg.mqtt.password else None,
        trucks_per_hour=trucks_per_hour,
        inspect_share=inspect_share,
        backfill=backfill_s,
        seed=seed,
        sparkplug=nodes,
    )

    async def main() -> None:
        from monitor import app as monitor_app

        stop = asyncio.Event()
        monitor_app.install_signal_handlers(stop)
        await simulation.run(stop)

    console(stderr=True).print(
        text(
            f"simulating {len(registry)} devices on {cfg.mqtt.host}:{cfg.mqtt.port}"
            f" at {rate:g}/s each (seed {seed})"
        )
    )
    try:
        asyncio.run(main())
    except ValueError as e:
        complain(str(e))
        raise typer.Exit(2) from None
    except OSError as e:
        complain(f"cannot reach the broker {cfg.mqtt.host}:{cfg.mqtt.port}: ", str(e))
        raise typer.Exit(1) from None
    console(stderr=True).print(text(f"\nsent {simulation.sent} messages"))


def _setting(value: object) -> str:
    """A rule setting as the config would say it: a number of seconds as a duration."""
    if isinstance(value, float):
        return durations.to_config(value)
    return "-" if value is None else str(value)


def _secret_state(value: object) -> str:
    return "set (hidden)" if value is not None else "not set"


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the config and summarize devices, profiles, rules and routes."""
    warnings: list[str] = []
    cfg = load(config, warnings)
    normalizer = Normalizer(cfg)
    m, i = cfg.mqtt, cfg.influx
    show(styled("bold green", "configuration is valid"))
    for warning in warnings:  # valid, but a secret sits in a file people share
        show(styled("yellow", "warning   ", warning))
    say(
        f"broker    {m.host}:{m.port} client_id={m.client_id}"
        f" tls={'on' if m.tls.enabled else 'off'} user={m.username or '-'}"
        f" password={_secret_state(m.password)}"
    )
    target = f"db={i.database}" if i.api == "v1" else f"org={i.org} bucket={i.bucket}"
    say(
        f"influx    {i.url} api={i.api} {target} token={_secret_state(i.token)}"
        f" batch={i.batch_size} flush={durations.to_config(i.flush_interval)}"
    )
    say(
        f"http      {cfg.http.host}:{cfg.http.port} token={_secret_state(cfg.http.token)}"
        f" public_url={cfg.http.public_url or '-'}"
    )
    say(f"state_dir {cfg.state_dir.absolute()}")  # where it lands from here
    if cfg.store.url is None:
        say("store     SQLite under state_dir (one monitor)")
    else:  # SPEC 8.1: the form of the URL only; the database is not asked here
        from monitor.app import api_url

        ha = cfg.ha
        say(
            f"store     {store_where(cfg.store.url.get_secret_value())} (a group:"
            f" {cfg.mqtt.client_id}; heartbeat={durations.human(ha.heartbeat)}"
            f" failover={durations.human(ha.failover)} api_url={api_url(cfg)})"
        )
    if cfg.heartbeat.url is not None:
        say(f"heartbeat every {durations.human(cfg.heartbeat.interval)} while healthy")
    subscriptions = m.topics or normalizer.subscriptions
    say(f"subscribe {', '.join(subscriptions)}")
    canaries = [t for t in (canary_topic(f) for f in subscriptions) if t]
    say(
        f"canary    {', '.join(canaries)} (the monitor writes these: its ACL must allow it)"
        if m.canary.enabled and canaries
        else "canary    off: a subscription that delivers nothing is not told from silence"
    )

    profiles = new_table("profile", "topic", "format", "kind", title="Profiles")
    if cfg.canonical:
        add_row(
            profiles,
            "canonical",
            "customs/{site}/{area}/{kind}/{device}/{channel}",
            "json",
            "from topic",
        )
    for name, p in cfg.profiles.items():
        add_row(profiles, name, p.topic, p.format, p.kind or "from registry")
    show(profiles)

    by_kind = Counter(d.kind for d in cfg.devices)
    by_area = Counter(f"{d.site}/{d.area}" for d in cfg.devices)
    # one column per rule setting (config.RULE_SETTINGS): a new rule's shows up here too
    devices = new_table(
        "kind",
        "devices",
        *(name.replace("_", " ") for name in RULE_SETTINGS),
        title=f"Devices ({len(cfg.devices)} registered, in {len(by_area)} areas)",
    )
    for kind in KINDS:
        rules = cfg.alerts.rules(kind)
        values = (_setting(getattr(rules, name)) for name in RULE_SETTINGS)
        add_row(devices, kind, str(by_kind.get(kind, 0)), *values)
    show(devices)
    if by_area:
        say("areas     " + ", ".join(f"{a} ({n})" for a, n in sorted(by_area.items())))
    if m.topics is not None:  # one of several collectors (SPEC 8): which devices are its
        expected, heard = normalizer.expected, normalizer.heard_only
        say(
            f"owns      {len(expected)} of {len(cfg.devices)} registered devices"
            " (mqtt.topics carry their data)"
        )
        if heard:
            show(
                styled(
                    "yellow",
                    f"warning   {len(heard)} watched only once heard (mqtt.topics carry some"
                    " of their topics: another collector may hear them; say which profile"
                    " each speaks with devices[].profile and, for Sparkplug, each group's"
                    " site with sparkplug.groups.<group>.site): ",
                    ", ".join(key_text(d.key) for d in heard),
                )
            )

    routes = new_table(
        "route", "match", "channels", "repeat", "escalate", "language", title="Notification routes"
    )
    for r in cfg.notify.routes:
        match = " ".join(
            f"{k}={','.join(v)}" for k, v in r.match.model_dump(exclude_none=True).items()
        )
        escalate = (
            f"after {durations.to_config(r.escalate_after)} to "
            + ", ".join(mask_url(c) for c in r.escalate_to)
            if r.escalate_to
            else "-"
        )
        add_row(
            routes,
            r.name,
            match or "all",
            "\n".join(mask_url(c) for c in r.channels),
            durations.to_config(r.repeat_interval),
            escalate,
            r.language or "en",
        )
    show(routes)
    sp = cfg.sparkplug
    if not sp.enabled:
        say("sparkplug off (SPEC 3.4: sparkplug.enabled turns the host application on)")
    else:
        assert normalizer.sparkplug is not None
        say(
            f"sparkplug host_id {sp.host_id or cfg.mqtt.client_id}; subscribes"
            f" {', '.join(normalizer.sparkplug.subscriptions)}; rebirth requests"
            f" {'on' if sp.rebirth else 'off'}; unmapped metrics {sp.unmapped}"
        )
        groups = new_table("group", "site", "area", "kind", "metrics mapped", title="Sparkplug")
        listed = sp.groups.items() if sp.groups else [("(every group)", SparkplugGroup())]
        for name, g in listed:
            fields = {**sp.fields, **g.fields}
            add_row(
                groups,
                name,
                g.site or "registry",
                g.area or "registry",
                g.kind or "registry",
                ", ".join(f"{k} -> {fm.to}" for k, fm in fields.items()) or "-",
            )
        show(groups)
    ps = cfg.passages
    if ps is None:
        say("passages  off (SPEC 9: a passages: section turns them on)")
    else:
        stages = "; ".join(f"{s}: {', '.join(a)}" for s, a in ps.stages.items()) or "none"
        say(
            f"passages  entry {', '.join(ps.entry_areas)} -> exit {', '.join(ps.exit_areas)};"
            f" stages {stages}; max_dwell {durations.to_config(ps.max_dwell)},"
            f" debounce {durations.to_config(ps.debounce)}, min_confidence"
            f" {ps.min_confidence:g} %, plate_key {_secret_state(ps.plate_key)}"
        )
