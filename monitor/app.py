"""Wiring: config -> parts, one TaskGroup, start downstream first, stop upstream first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from monitor import logs, schema
from monitor.batcher import Batcher
from monitor.clock import Clock, SystemClock, now_ms
from monitor.config import Config
from monitor.influx import InfluxWriter
from monitor.ingest import Ingest
from monitor.liveness import Liveness
from monitor.model import Device
from monitor.mqtt import MqttSource
from monitor.normalize import Normalizer
from monitor.quarantine import Quarantine
from monitor.stats import Stats

log = logs.get(__name__)

# How long a stop may spend writing what it holds before giving up on it (those messages
# are not acknowledged, so the broker redelivers them to the next run).
DRAIN_TIMEOUT_S = 10.0


async def _every(interval: float, fn: Callable[[], Awaitable[None] | None]) -> None:
    while True:
        await asyncio.sleep(interval)
        result = fn()
        if result is not None:
            await result


async def run(
    config: Config, stop: asyncio.Event, clock: Clock | None = None, stats: Stats | None = None
) -> Stats:
    """Run until ``stop`` is set; then drain, write, ack and return the final counters."""
    clock = clock or SystemClock()
    stats = stats if stats is not None else Stats()
    normalizer = Normalizer(config)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    quarantine = Quarantine(
        config.state_dir / "quarantine", int(config.ingest.quarantine_max_bytes), clock, stats
    )
    started_ms = now_ms(clock)

    def timeout_of(device: Device) -> float:
        return config.alerts.no_data_timeout(device.kind)

    liveness = Liveness(normalizer.registry.values(), timeout_of, started_ms)
    batcher = Batcher(config.influx.batch_size, config.influx.flush_interval)
    instance = config.instance_name

    def status_points() -> None:
        batcher.add(liveness.tick(now_ms(clock)))

    def monitor_point() -> None:
        batcher.add([schema.monitor_line(instance, stats, stats.take_latency_ms(), now_ms(clock))])

    log.info(
        "monitor.starting",
        instance=instance,
        broker=f"{config.mqtt.host}:{config.mqtt.port}",
        influx=config.influx.url,
        api=config.influx.api,
        devices=len(normalizer.registry),
    )
    try:
        async with (
            InfluxWriter(
                config.influx,
                stats,
                clock,
                on_refused=lambda line, err: quarantine.refuse_point(line, err, now_ms(clock)),
            ) as writer,
            MqttSource(
                config.mqtt, config.mqtt.topics or normalizer.subscriptions, stats, clock
            ) as source,
        ):
            ingest = Ingest(source, normalizer, writer, quarantine, liveness, batcher, stats, clock)
            async with asyncio.TaskGroup() as tg:
                # downstream first: the writer is ready before anything is received
                flushing = tg.create_task(ingest.flush(), name="influx-writer")
                periodic = [
                    tg.create_task(
                        _every(config.status_interval, status_points), name="device-status"
                    ),
                    tg.create_task(
                        _every(config.stats_interval, monitor_point), name="monitor-stats"
                    ),
                ]
                consuming = tg.create_task(ingest.consume(), name="ingest")
                connection = tg.create_task(source.run(), name="mqtt-connection")
                await stop.wait()

                # upstream first: stop taking messages, drain what was received, write, ack
                log.info("monitor.stopping")
                source.close_inbox()
                await consuming
                for task in periodic:
                    task.cancel()
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
    log.info(
        "monitor.stopped",
        received=stats.messages_received,
        rejected=stats.messages_rejected,
        points_written=stats.points_written,
    )
    return stats


def install_signal_handlers(stop: asyncio.Event) -> None:
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
