"""Wiring: config -> parts, one TaskGroup; start downstream first, stop upstream first.

Start: store -> InfluxDB writer -> notifier -> alerting -> HTTP API -> MQTT source.
Stop: stop taking messages, drain and write what was received, ack, then let the rest go.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from monitor import logs, schema
from monitor.alerting import AlertService
from monitor.alerts import AlertEngine, Route, Window
from monitor.api import Api
from monitor.batcher import Batcher
from monitor.clock import Clock, SystemClock, now_ms
from monitor.config import Config
from monitor.influx import InfluxWriter
from monitor.ingest import Ingest
from monitor.liveness import Liveness
from monitor.mqtt import MqttSource
from monitor.normalize import Normalizer
from monitor.notify import Notifier
from monitor.quarantine import Quarantine
from monitor.rules import RuleBook
from monitor.spool import Spool, SpoolingWriter
from monitor.stats import Stats
from monitor.store import Store

log = logs.get(__name__)

# How long a stop may spend writing what it holds before giving up on it (those messages
# are not acknowledged, so the broker redelivers them to the next run).
DRAIN_TIMEOUT_S = 10.0
SPOOL_ALERT_FILL = 0.8


async def _every(interval: float, fn: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(interval)
        fn()


def config_windows(config: Config) -> list[Window]:
    return [
        Window(
            f"config-{i}",
            w.scope,
            w.value,
            w.starts.timestamp(),
            w.ends.timestamp(),
            w.reason,
            "config",
        )
        for i, w in enumerate(config.alerts.maintenance)
    ]


def channels_of(config: Config) -> list[str]:
    return list(
        dict.fromkeys(c for r in config.notify.routes for c in (*r.channels, *r.escalate_to))
    )


async def run(
    config: Config,
    stop: asyncio.Event,
    clock: Clock | None = None,
    stats: Stats | None = None,
    on_api: Callable[[Api], None] | None = None,
) -> Stats:
    """Run until ``stop`` is set; then drain, write, ack and return the final counters."""
    clock = clock or SystemClock()
    stats = stats if stats is not None else Stats()
    instance = config.instance_name
    normalizer = Normalizer(config)
    rulebook = RuleBook(config)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    quarantine = Quarantine(
        config.state_dir / "quarantine", int(config.ingest.quarantine_max_bytes), clock, stats
    )
    batcher = Batcher(config.influx.batch_size, config.influx.flush_interval)
    engine = AlertEngine(
        [Route.from_config(r) for r in config.notify.routes],
        rulebook,
        instance,
        broker_down_after=config.alerts.broker_down_after,
    )
    liveness = Liveness(normalizer.registry.values(), rulebook, engine.in_maintenance)

    def monitor_point() -> None:
        batcher.add([schema.monitor_line(instance, stats, stats.take_latency_ms(), now_ms(clock))])

    log.info(
        "monitor.starting",
        instance=instance,
        broker=f"{config.mqtt.host}:{config.mqtt.port}",
        influx=config.influx.url,
        api=config.influx.api,
        devices=len(normalizer.registry),
        routes=len(config.notify.routes),
    )
    spool = (
        Spool(config.state_dir / "spool.db", int(config.spool_max_bytes), stats)
        if config.spool_max_bytes
        else None
    )
    try:
        async with Store(config.state_dir / "state.db") as store:
            engine.restore(
                store.alerts(open_only=True), [*config_windows(config), *store.windows()]
            )
            liveness.restore(store.devices())
            liveness.grace_from = clock.now()

            def status_tick() -> None:
                if stats.broker_connected:  # our outage is not the devices'
                    batcher.add(liveness.status_lines(clock.now(), force=True))
                store.save_devices(liveness.devices.values())

            async with (
                InfluxWriter(
                    config.influx,
                    stats,
                    clock,
                    on_refused=lambda line, err: quarantine.refuse_point(line, err, now_ms(clock)),
                ) as writer,
                Notifier(store, stats, clock, channels_of(config)) as notifier,
                MqttSource(
                    config.mqtt, config.mqtt.topics or normalizer.subscriptions, stats, clock
                ) as source,
            ):
                sink = SpoolingWriter(writer, spool, stats, retry_max=config.influx.retry.max)

                def monitor_conditions() -> dict[str, str | None]:
                    high = spool is not None and spool.fill >= SPOOL_ALERT_FILL
                    return {
                        "monitor_spool_high": (
                            f"monitor {instance}: the disk spool is {spool.fill:.0%} full"
                            f" ({spool.points} points waiting for InfluxDB); at 100% acks stop"
                        )
                        if high and spool is not None
                        else None
                    }

                service = AlertService(
                    engine,
                    liveness,
                    store,
                    notifier,
                    batcher,
                    clock,
                    lambda: source.down_since,
                    monitor_conditions,
                )

                def connection_changed(connected: bool) -> None:
                    if connected:  # a fresh grace period for every device (SPEC 5)
                        liveness.grace_from = clock.now()
                    service.poke()

                source.on_change = connection_changed
                ingest = Ingest(
                    source,
                    normalizer,
                    sink,
                    quarantine,
                    liveness,
                    batcher,
                    stats,
                    clock,
                    on_change=service.poke,
                )
                names = {d.id: d.name for d in config.devices if d.name}
                async with (
                    Api(
                        config.http, service, store, stats, source, writer, notifier, clock, names
                    ) as api,
                    asyncio.TaskGroup() as tg,
                ):
                    if on_api is not None:
                        on_api(api)
                    flushing = tg.create_task(ingest.flush(), name="influx-writer")
                    background = [
                        tg.create_task(notifier.run(), name="notifier"),
                        tg.create_task(sink.replay(), name="spool-replay"),
                        tg.create_task(service.run(), name="alerting"),
                        tg.create_task(
                            _every(config.status_interval, status_tick), name="device-status"
                        ),
                        tg.create_task(
                            _every(config.stats_interval, monitor_point), name="monitor-stats"
                        ),
                    ]
                    consuming = tg.create_task(ingest.consume(), name="ingest")
                    connection = tg.create_task(source.run(), name="mqtt-connection")
                    await stop.wait()

                    log.info("monitor.stopping")
                    source.close_inbox()
                    await consuming
                    for task in background:
                        task.cancel()
                    store.save_devices(liveness.devices.values())
                    monitor_point()
                    batcher.close()
                    try:
                        async with asyncio.timeout(DRAIN_TIMEOUT_S):
                            await flushing
                    except TimeoutError:
                        log.warning("monitor.drain_timeout", timeout_s=DRAIN_TIMEOUT_S)
                        flushing.cancel()
                    connection.cancel()
    finally:
        quarantine.close()
        if spool is not None:
            spool.close()
    log.info(
        "monitor.stopped",
        received=stats.messages_received,
        rejected=stats.messages_rejected,
        points_written=stats.points_written,
    )
    return stats


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
