"""Wiring: the config becomes parts (``build``), and the parts run in one TaskGroup (``serve``).

Start, downstream first: store -> InfluxDB writer (+ spool replay) -> notifier -> alerting
-> HTTP API -> ingest -> MQTT source. Stop, upstream first: ``stop_sequence`` below.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from monitor import logs, statedir
from monitor.alerting.engine import FORGOTTEN, UNOWNED, AlertEngine, Route, Trouble
from monitor.alerting.liveness import Liveness
from monitor.alerting.notify import Notifier
from monitor.alerting.rules import SPOOL_HIGH, STATE_DIR, DeviceState, RuleBook
from monitor.alerting.service import AlertService
from monitor.alerting.store import SqliteStore, Store
from monitor.clock import Clock, Mark, SystemClock, wall_offset
from monitor.config import Config, KnownNames
from monitor.errors import StoreUnavailable
from monitor.lifecycle import supervised
from monitor.model import Device, DeviceKey, key_text
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.quarantine import Quarantine
from monitor.passages.store import PassageStore
from monitor.passages.store import Store as PassageStoreProtocol
from monitor.passages.tracker import PassageTracker
from monitor.pipeline import Ingest, Points
from monitor.reload import (
    REGISTRY_KEY,
    Reloader,
    channels_of,
    config_windows,
    in_effect,
    read_again,
    remember_registry,
    restart_needed,
)
from monitor.sink.batcher import Batcher
from monitor.sink.influx import InfluxWriter
from monitor.sink.spool import Spool, SpoolingWriter
from monitor.source.mqtt import Message, MqttSource
from monitor.stats import Stats
from monitor.web.api import Api, Health
from monitor.web.forward import forwarder

if TYPE_CHECKING:
    from monitor.ha.lease import Lease
    from monitor.normalize.sparkplug.host import HostApplication

log = logs.get(__name__)

# Of a stop's time (config stop_timeout), what closing the connections may take once the
# drain is over or given up: the DISCONNECT, the HTTP server, the sessions, the files.
CLOSE_RESERVE_S = 3.0
# A stop still not over this long after its own bound (a part stuck past every timeout of
# its own) ends the process anyway: what was not written was not acknowledged either.
FORCE_EXIT_AFTER_S = 5.0
SPOOL_ALERT_FILL = 0.8
HOUSEKEEPING_S = 3600.0
SPARKPLUG_TICK_S = 0.25  # rebirth requests go out this soon after the gap that wants them
SPARKPLUG = "spBv1.0"  # the Sparkplug B topic namespace: the host session's topics
PASSAGES_EXPIRE_S = 60.0  # entries past max_dwell given up: a minute late at the most
SUBSCRIPTIONS_KEY = "mqtt.subscriptions"  # what the persistent session is subscribed to
CLOCK_KEY = "clock.mark"  # how the next start carries the monotonic clock on (clock.py)
GRACE_KEY = "liveness.grace_from"  # the leaders' grace (SPEC 8.1: a takeover keeps it)
# A new leader judges no device before the broker has delivered the session's backlog
TAKEOVER_SETTLE_S = 3.0
WINDOWS_KEPT_S = 7 * 86400.0  # maintenance windows added at run time, after they ended
Forgotten = Literal["forgotten", "registered", "unknown"]


def resume_clock(clock: Clock, store: Store) -> None:
    """The monotonic clock carried on from the last run, so that the times in the store
    keep their meaning whatever the wall clock says at this start (SPEC 5, clock.py)."""
    if not isinstance(clock, SystemClock):
        return  # a test's own clock: its times are what the test says
    resumed = clock.resume(Mark.from_json(store.get(CLOCK_KEY)), lambda: latest_stored(store))
    fields: dict[str, object] = {
        "how": resumed.how,
        "down_s": None if resumed.down_s is None else round(resumed.down_s, 1),
        "wall_offset_s": round(wall_offset(clock), 1),
    }
    if resumed.how == "unsynchronized":
        log.warning(
            "clock.resumed",
            **fields,
            note="another boot and the wall clock not synchronized: the time between the"
            " runs counts as 0, so open alerts repeat and escalate late by as much, never early",
        )
    else:
        log.info("clock.resumed", **fields)
    store.put(CLOCK_KEY, clock.mark().to_json())


def previous_registry(store: Store) -> set[DeviceKey]:
    """The registered devices of the config the last run had (``remember_registry``)."""
    try:
        keys = json.loads(store.get(REGISTRY_KEY) or "[]")
        return {(str(site), str(device)) for site, device in keys}
    except (ValueError, TypeError):  # not what we wrote: forget nobody
        return set()


def mark_clock(clock: Clock, store: Store) -> None:
    """The last moment this run was known alive, for the next start (``resume_clock``)."""
    if isinstance(clock, SystemClock):
        store.put(CLOCK_KEY, clock.mark().to_json())


def latest_stored(store: Store) -> float | None:
    """The latest monotonic time in the store: later than the last mark when the run was
    killed between two, and the only clue in a state from before marks."""
    times = [
        t
        for ds in store.devices()
        for t in (ds.last_seen, ds.state_since, ds.offline_since)
        if t is not None
    ]
    for a in store.alerts(open_only=True, limit=None):
        times += [a.started_at, a.fired_at, *a.notified.values()]
        if a.acked_at is not None:
            times.append(a.acked_at)
    return max(times, default=None)


@dataclass
class Standing:
    """What a standby knows (SPEC 8.1): who leads, where its API is, and why the shared
    store does not answer, while it does not."""

    leader: str | None = None
    leader_api: str | None = None
    problem: str | None = None


@dataclass
class Parts:
    """Everything one monitor is made of, built from the config and wired together."""

    config: Config
    clock: Clock
    stats: Stats
    normalizer: Normalizer
    quarantine: Quarantine
    batcher: Batcher[Message]
    points: Points
    engine: AlertEngine
    liveness: Liveness
    store: Store
    spool: Spool | None
    writer: InfluxWriter
    sink: SpoolingWriter
    notifier: Notifier
    source: MqttSource
    service: AlertService
    ingest: Ingest[Message]
    api: Api
    passages: PassageTracker | None = None
    sparkplug: HostApplication | None = None  # SPEC 3.4, when enabled
    # what the connections subscribe to (a reload cannot change it: SPEC 10)
    subscriptions: list[str] = field(default_factory=list)
    reloader: Reloader | None = None  # SIGHUP (SPEC 10), when the config came from a file
    # SPEC 8.1, with a shared store: the leadership this monitor holds (None: a single
    # monitor, or a standby's view), and whether its first connection is a takeover's
    lease: Lease | None = None
    takeover: bool = False
    standing: Standing | None = None  # a standby's view: what its /health says

    def restore(self) -> None:
        """Open alerts, maintenance windows and last-seen times from before a restart, of
        the devices this collector still owns (SPEC 5, 8): one whose data its subscriptions
        no longer carry is another collector's now, or nobody's. And the Sparkplug edge
        nodes as they were (SPEC 3.4: a death after the restart is honoured)."""
        if self.normalizer.sparkplug is not None:
            self.normalizer.sparkplug.restore(self.store.sparkplug_nodes())
        # registered by the last run, not by this config: removed from it while the monitor
        # was down, forgotten as a reload forgets it (SPEC 10), not taken for discovered
        gone = previous_registry(self.store) - set(self.normalizer.registry)
        saved = [
            ds
            for ds in self.store.devices()
            if self.normalizer.owns(ds.device) and ds.device.key not in gone
        ]
        saved.sort(key=lambda ds: ds.last_seen or 0.0, reverse=True)  # the newest first
        self.normalizer.remember(ds.device for ds in saved)
        self.engine.restore(
            self.store.alerts(open_only=True, limit=None),  # every one, however many
            [*config_windows(self.config), *self.store.windows()],
        )
        self.liveness.restore(saved)
        self.liveness.grace_from = self.clock.monotonic()
        if self.takeover and (group := self.store.get(GRACE_KEY)) is not None:
            # the group's grace goes on: a device silent since before the failover is
            # as late as it was (SPEC 8.1), not given a fresh grace by a new leader
            self.liveness.grace_from = min(float(group), self.liveness.grace_from)
        self.store.put(GRACE_KEY, repr(self.liveness.grace_from))
        for a in list(self.engine.open.values()):
            device = Device(a.device, a.kind, a.site, a.area)
            if a.kind in ("site", "monitor"):
                continue
            if device.key in gone:
                self.service.apply_forget(device.key, FORGOTTEN)
            elif not self.normalizer.owns(device):
                # its sites went to another collector: that one watches it now
                self.service.apply_forget(device.key, UNOWNED)
        for key in gone:
            self.store.forget_device(key)
        remember_registry(self.store, self.normalizer.registry)

    def known_names(self) -> KnownNames:
        """What a window added at run time may name (SPEC 10): the config's sites, areas
        and devices, and the devices heard (discovered ones too) with their sites and
        areas."""
        known = KnownNames.of(self.config)
        for ds in self.liveness.devices.values():
            d = ds.device
            known.add(d.site, d.area, d.id)
        return known

    def forget(self, key: DeviceKey) -> Forgotten:
        """A device a person said is gone (SPEC 5): its open alerts resolved (reason
        ``forgotten``), dropped from liveness, the store and the normalizer's discovered
        devices; it comes back only if it speaks again. A registered one is the config's."""
        if key in self.normalizer.registry:
            return "registered"
        if not self.liveness.forget(key):
            return "unknown"
        self.normalizer.forget(key)
        self.store.forget_device(key)
        self.service.apply_forget(key, FORGOTTEN)
        log.info("device.forgotten", site=key[0], device=key[1])
        return "forgotten"

    def status_tick(self) -> None:
        """``device_status`` of every device (SPEC 4), and last-seen times saved."""
        # Our outage is not the devices': nor is a connection that hears nothing.
        if self.stats.broker_connected and self.source.outage() is None:
            self.points.statuses(self.liveness.status_points(self.clock.monotonic(), force=True))
        self.store.save_devices(self.liveness.devices.values())  # and retries what is pending
        mark_clock(self.clock, self.store)  # after: no saved time is later than the mark
        for part in (self.spool, self.quarantine):
            if part is not None:
                part.retry()

    def housekeeping(self) -> None:
        """History kept bounded: old resolved alerts and deliveries, ended windows."""
        self.store.prune(self.clock.monotonic())
        self.service.forget_windows_ended_before(self.clock.now() - WINDOWS_KEPT_S)

    def state_dir_problems(self) -> list[str]:
        """Why state_dir refuses writes, part by part (a full or failing disk)."""
        parts: list[Store | Spool | Quarantine | PassageTracker | None] = [
            self.store if self.lease is None else None,  # a group's is PostgreSQL
            self.spool,
            self.quarantine,
            self.passages if self.lease is None else None,
        ]
        return [p.problem for p in parts if p is not None and p.problem is not None]

    def shared_store_problems(self) -> list[str]:
        """Why the group's PostgreSQL does not take the state (SPEC 8.1)."""
        if self.lease is None:
            return []
        parts: list[Store | PassageTracker | None] = [self.store, self.passages]
        return [p.problem for p in parts if p is not None and p.problem is not None]

    def monitor_conditions(self) -> dict[str, Trouble | None]:
        """The monitor's own troubles that are alerts: what each is while it holds."""
        instance = self.config.instance_name
        spool = self.spool
        high = spool is not None and spool.fill >= SPOOL_ALERT_FILL
        problems = self.state_dir_problems()
        return {
            SPOOL_HIGH: Trouble(
                f"monitor {instance}: the disk spool is {spool.fill:.0%} full"
                f" ({spool.points} points waiting for InfluxDB); at 100% acks stop",
                {"fill": spool.fill},
            )
            if high and spool is not None
            else None,
            STATE_DIR: Trouble(
                f"monitor {instance} cannot write to its state_dir ({'; '.join(problems)}):"
                " alerts, acknowledgements and windows are kept in memory until it can"
            )
            if problems
            else None,
        }

    def connection_changed(self, connected: bool) -> None:
        if connected and self.takeover:
            self.takeover = False
            self._taken_over()
        elif connected:  # a fresh grace period for every device (SPEC 5)
            self.liveness.grace_from = self.clock.monotonic()
            self.store.put(GRACE_KEY, repr(self.liveness.grace_from))
        self.service.poke()

    def _taken_over(self) -> None:
        """The first connection of a new leader (SPEC 8.1): each device keeps the rest of
        its grace from its last-seen time in the store, but none is judged before the
        broker has handed over what it kept for the session (TAKEOVER_SETTLE_S): the
        messages of the failover, newer than any last-seen time stored."""
        settled = self.clock.monotonic() + TAKEOVER_SETTLE_S
        for ds in self.liveness.devices.values():
            timeout = self.liveness.rules_of(ds.device).no_data_timeout
            if timeout is not None:
                floor = settled - timeout
                ds.expected_from = max(floor, ds.expected_from or floor)

    def close_files(self) -> None:
        """What ``build`` opened (a standby's view, never served as a leader)."""
        self.store.close()
        for part in (
            self.spool,
            self.quarantine,
            None if self.passages is None else self.passages.store,
        ):
            if part is not None:
                part.close()

    def view_from_store(self) -> None:
        """A standby's picture (SPEC 8.1): the open alerts, windows and devices as the
        leader last wrote them; nothing is evaluated or written here."""
        self.engine.restore(
            self.store.alerts(open_only=True, limit=None),
            [*config_windows(self.config), *self.store.windows()],
        )
        self.liveness.devices = {d.key: DeviceState(d) for d in self.normalizer.expected}
        self.liveness.restore(self.store.devices())

    def sparkplug_tick(self) -> None:
        """The host's duties (its STATE, reorder windows, rebirth requests), and what
        changed of the edge nodes saved for the next run."""
        assert self.sparkplug is not None
        assert self.normalizer.sparkplug is not None
        if self.lease is not None and not self.lease.valid():
            return  # a leader cut off publishes nothing (SPEC 8.1)
        self.sparkplug.tick()
        self.store.save_sparkplug_nodes(self.normalizer.sparkplug.snapshots())

    def healthy(self) -> bool:
        """What the dead man's switch asks (SPEC 8.1): leading, the broker heard, writes
        flowing."""
        return (self.lease is None or self.lease.valid()) and not self.health().reasons

    def health(self) -> Health:
        """Unhealthy (503) while any reason holds; warnings do not make it so."""
        if (standing := self.standing) is not None:
            why = [] if standing.problem is None else [standing.problem]
            return Health(why, [], False, True, None, "standby", standing.leader)
        reasons: list[str] = []
        warnings: list[str] = []
        source = self.source
        connected = source.connected.is_set()
        if not connected:
            reasons.append("MQTT broker not connected")
        elif (outage := source.outage()) is not None:
            reasons.append(f"MQTT: the monitor {outage.why}")
        reasons.extend(f"MQTT subscription {t} refused: {r}" for t, r in source.refused.items())
        if (host := source.host) is not None:
            if not host.connected:
                reasons.append("the Sparkplug host session is not connected to the broker")
            reasons.extend(
                f"MQTT subscription {t} (Sparkplug) refused: {r}" for t, r in host.refused.items()
            )
        warnings.extend(
            f"MQTT subscription {t} granted QoS 0: its messages are not acknowledged"
            for t in source.downgraded
        )
        if source.canary_refused is not None:
            warnings.append(
                f"the broker refused the monitor's canary ({source.canary_refused}): a"
                " subscription that stops delivering cannot be told from every device"
                " falling silent (README: The broker)"
            )
        warnings.extend(self.notifier.warnings())
        if not self.writer.healthy:
            reasons.append("InfluxDB writes failing")
        elif self.stats.last_write_ok is None and self.clock.monotonic() - self.api.started > 60:
            reasons.append("no successful InfluxDB write yet")
        reasons.extend(f"state_dir: {p}" for p in self.state_dir_problems())
        reasons.extend(f"store: {p}" for p in self.shared_store_problems())
        return Health(
            reasons,
            warnings,
            broker_connected=connected,
            influx_healthy=self.writer.healthy,
            last_write_ok=self.stats.last_write_ok,
        )


def build(
    config: Config,
    clock: Clock,
    stats: Stats,
    store: Store | None = None,
    fence: Callable[[Any], None] | None = None,
    with_passages: bool = True,
) -> Parts:
    """The parts of a monitor, wired; nothing is connected yet (``serve`` does that).
    ``store``: the group's (SPEC 8.1); by default SQLite under state_dir. ``fence``: the
    leadership's, run in every write of the passages; ``with_passages``: False for a
    standby's view, which shows no passages."""
    instance = config.instance_name
    # first: the one part that may find a group's database gone, before any file is open
    open_passages = passage_store(config, fence) if config.passages and with_passages else None
    normalizer = Normalizer(config, clock)  # its clock read only once resumed (below)
    rulebook = RuleBook(config)
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # the parts that live there say so, and run without it meanwhile
        log.error("monitor.state_dir_unusable", path=str(config.state_dir), error=str(e))
    if store is None:
        store = SqliteStore(config.state_dir / "state.db", clock)
    resume_clock(clock, store)  # first: no part may read the monotonic clock before
    quarantine = Quarantine(
        config.state_dir / "quarantine", int(config.ingest.quarantine_max_bytes), clock, stats
    )
    batcher: Batcher[Message] = Batcher(config.influx.batch_size, config.influx.flush_interval)
    points = Points(batcher, instance, stats, clock)
    engine = AlertEngine(
        [Route.from_config(r) for r in config.notify.routes],
        rulebook,
        instance,
        broker_down_after=config.alerts.broker_down_after,
    )
    engine.link = config.http.alert_link
    liveness = Liveness(normalizer.expected, rulebook, engine.in_maintenance)
    spool = (
        Spool(config.state_dir / "spool.db", int(config.spool_max_bytes), stats, clock)
        if config.spool_max_bytes
        else None
    )
    writer = InfluxWriter(
        config.influx,
        stats,
        clock,
        on_refused=quarantine.refuse_point,
    )
    sink = SpoolingWriter(writer, spool, stats, retry_max=config.influx.retry.max)
    notifier = Notifier(store, stats, clock, channels_of(config))
    topics = config.mqtt.topics or normalizer.subscriptions
    subscriptions = list(topics)
    # Sparkplug's topics go to the host's own clean session, the rest to the persistent one
    sparkplug_topics = [t for t in topics if t.split("/")[0] == SPARKPLUG]
    source = MqttSource(
        config.mqtt,
        [t for t in topics if t.split("/")[0] != SPARKPLUG],
        stats,
        clock,
        max_payload=int(config.ingest.max_payload_bytes),
        subscribed_before=json.loads(store.get(SUBSCRIPTIONS_KEY) or "[]"),
    )
    host = None
    if (decoder := normalizer.sparkplug) is not None:  # only Sparkplug configs import it
        from monitor.normalize.sparkplug.host import HostApplication

        host = HostApplication(decoder.host_id, decoder, clock, stats, config.sparkplug)
        if not any(t in (f"{SPARKPLUG}/#", "#") for t in sparkplug_topics):
            sparkplug_topics.append(decoder.state_topic)  # its own STATE (SPEC 3.4)
        session = source.add_host_session(
            config.sparkplug.client_id or f"{config.mqtt.client_id}-sparkplug",
            sparkplug_topics,
            will=host.will,
            on_connected=host.connected,
            last_words=host.last_words,
        )
        host.publish = session.publish
        host.reconnect = session.reconnect
        decoder.on_device = rulebook.by_exception  # report by exception (SPEC 3.4)
    source.on_subscribed = lambda topics: store.put(SUBSCRIPTIONS_KEY, json.dumps(topics))
    parts: Parts
    service = AlertService(
        engine,
        liveness,
        store,
        notifier,
        points,
        clock,
        source.outage,
        lambda: parts.monitor_conditions(),
        stats,
    )
    passages = (
        PassageTracker(config.passages, open_passages, stats, clock)
        if config.passages is not None and open_passages is not None
        else None
    )
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
        passages=passages,
        types=writer.types,
    )
    names = {(d.site, d.id): d.name for d in config.devices if d.name}
    api = Api(
        config.http,
        service,
        store,
        stats,
        lambda: parts.health(),
        notifier,
        clock,
        names,
        release_today=None if passages is None else lambda: asdict(passages.today()),
        language=config.language,
        forget=lambda key: parts.forget(key),
        registered=frozenset(normalizer.registry),
        known=lambda: parts.known_names(),
    )
    parts = Parts(
        config,
        clock,
        stats,
        normalizer,
        quarantine,
        batcher,
        points,
        engine,
        liveness,
        store,
        spool,
        writer,
        sink,
        notifier,
        source,
        service,
        ingest,
        api,
        passages,
        host,
        subscriptions,
    )
    source.on_change = parts.connection_changed
    return parts


def passage_store(config: Config, fence: Callable[[Any], None] | None) -> PassageStoreProtocol:
    """Open passages in ``store.url`` when there is one (SPEC 8.1: the next leader takes
    them over), else in SQLite under state_dir. On the loop, before it serves anything."""
    if config.store.url is None:
        return PassageStore(config.state_dir / "passages.db")
    from monitor.passages.store_postgres import PostgresPassageStore  # psycopg only when used

    url = config.store.url.get_secret_value()
    return PostgresPassageStore(url, fence, session=config.ha.session())


@dataclass
class Tasks:
    """The running monitor's tasks, by the order they are stopped in."""

    consuming: asyncio.Task[None]
    background: list[asyncio.Task[None]]
    flushing: asyncio.Task[None]
    connection: asyncio.Task[None]


async def _every(interval: float, fn: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(interval)
        fn()


def start_tasks(tg: asyncio.TaskGroup, p: Parts) -> Tasks:
    """Downstream first: the writer is waiting before ingest feeds it, and ingest before
    the first message arrives. Each runs inside its error boundary (``supervised``)."""
    config = p.config

    def task(
        name: str, run: Callable[[], Awaitable[None]], on_failure: Callable[[], None] = _nothing
    ) -> asyncio.Task[None]:
        restarts = p.stats.task_restarts
        return tg.create_task(supervised(name, run, restarts, on_failure=on_failure), name=name)

    # A batch lost to a failure in the pipeline was not acknowledged: a new connection
    # makes the broker deliver it again (a duplicate write is harmless).
    flushing = task("influx-writer", p.ingest.flush, on_failure=p.source.drop)
    background = [
        task("store", p.store.run),
        task("notifier", p.notifier.run),
        task("spool-replay", p.sink.replay),
        task("alerting", p.service.run),
        task("device-status", lambda: _every(config.status_interval, p.status_tick)),
        task("monitor-stats", lambda: _every(config.stats_interval, p.points.monitor)),
        task("housekeeping", lambda: _every(HOUSEKEEPING_S, p.housekeeping)),
    ]
    if p.sparkplug is not None:
        background.append(
            task("sparkplug-host", lambda: _every(SPARKPLUG_TICK_S, p.sparkplug_tick))
        )
    if (passages := p.passages) is not None:
        expire = lambda: p.points.passages(passages.expire())  # noqa: E731
        background.append(task("passages", lambda: _every(PASSAGES_EXPIRE_S, expire)))
    if (reloader := p.reloader) is not None:
        background.append(task("config-reload", reloader.run))
    if (lease := p.lease) is not None:
        background.append(task("leadership", lease.keep))
        # last-seen times for the next leader, fresh to within a heartbeat (SPEC 8.1)
        save = lambda: p.store.save_devices(p.liveness.devices.values())  # noqa: E731
        background.append(task("devices-saved", lambda: _every(config.ha.heartbeat, save)))
    if config.heartbeat.url is not None:
        from monitor.ha.heartbeat import beat

        background.append(task("heartbeat", lambda: beat(config.heartbeat, p.healthy, p.stats)))
    consuming = task("ingest", p.ingest.consume, on_failure=p.source.drop)
    connection = task("mqtt-connection", p.source.run)
    return Tasks(consuming, background, flushing, connection)


def _nothing() -> None:
    pass


async def stop_sequence(p: Parts, t: Tasks) -> None:
    """Upstream first (SPEC 7), all of it within ``stop_timeout``: take no more messages,
    write what was received and ack it. What cannot be written in time (InfluxDB down and
    the spool full, say) stays unacknowledged, and the broker delivers it to the next run.
    The DISCONNECT follows the acks when the source exits."""
    timeout = p.config.stop_timeout
    log.info("monitor.stopping", timeout_s=timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout / 2, timeout - CLOSE_RESERVE_S)
    p.source.close_inbox()  # 1. no more messages
    for task in t.background:  # 2. alerting, notifications (kept in the outbox), ticks
        task.cancel()
    try:
        async with asyncio.timeout_at(deadline):
            await t.consuming  # 3. normalize what was received into the batcher
            p.points.monitor()
            p.batcher.close()  # 4. write what is held, ack it
            await t.flushing
    except TimeoutError:
        t.consuming.cancel()
        t.flushing.cancel()
        log.warning(
            "monitor.stop_timeout",
            timeout_s=timeout,
            unwritten="not acknowledged: the broker delivers it to the next run",
        )
    finally:
        p.store.save_devices(p.liveness.devices.values())  # 5. last-seen times, next run
        mark_clock(p.clock, p.store)
    t.connection.cancel()  # 6. then the connection


async def serve(
    p: Parts,
    stop: asyncio.Event,
    on_api: Callable[[Api], None] | None,
    lost: asyncio.Event | None = None,
) -> None:
    """Connect the parts (start order), run until ``stop`` is set, stop them in order. If
    ``lost`` is set first (the leadership, SPEC 8.1), step down at once instead: nothing
    more is written, sent or acknowledged; the broker gives the new leader the rest."""
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(p.quarantine.close)
        if p.spool is not None:
            stack.callback(p.spool.close)
        if p.passages is not None:
            stack.callback(p.passages.store.close)
        await stack.enter_async_context(p.store)
        p.restore()
        for part in (p.writer, p.notifier, p.source, p.api):
            await stack.enter_async_context(part)
        if on_api is not None:
            on_api(p.api)
        async with asyncio.TaskGroup() as tg:
            tasks = start_tasks(tg, p)
            ending = [tg.create_task(stop.wait(), name="wait-stop")]
            if lost is not None:
                ending.append(tg.create_task(lost.wait(), name="wait-lost"))
            await asyncio.wait(ending, return_when=asyncio.FIRST_COMPLETED)
            for waiting in ending:
                waiting.cancel()
            if lost is not None and lost.is_set() and not stop.is_set():
                log.warning("monitor.stepping_down", why="the leadership is another's now")
                for task in (tasks.consuming, tasks.flushing, tasks.connection, *tasks.background):
                    task.cancel()
            else:
                await stop_sequence(p, tasks)


async def run(
    config: Config,
    stop: asyncio.Event,
    clock: Clock | None = None,
    stats: Stats | None = None,
    on_api: Callable[[Api], None] | None = None,
    load: Callable[[list[str]], Config] | None = None,
) -> Stats:
    """Run until ``stop`` is set; then drain, write, ack and return the final counters.
    ``load``: the config read again (its warnings into the list) on SIGHUP (SPEC 10)."""
    stats = stats if stats is not None else Stats()
    with statedir.locked(config.state_dir):  # one monitor per state_dir; restore waits
        clock = clock or SystemClock()
        if config.store.url is None:
            await lead(build(config, clock, stats), stop, on_api, load)
        else:
            await run_in_group(config, stop, clock, stats, on_api, load)
    log.info(
        "monitor.stopped",
        received=stats.messages_received,
        rejected=stats.messages_rejected,
        points_written=stats.points_written,
    )
    return stats


def on_sighup(fn: Callable[[], None]) -> None:
    with contextlib.suppress(NotImplementedError):  # on the loop: reloads run there
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, fn)


async def lead(
    parts: Parts,
    stop: asyncio.Event,
    on_api: Callable[[Api], None] | None,
    load: Callable[[list[str]], Config] | None,
    hup: asyncio.Event | None = None,
) -> None:
    """Run these parts: the monitor, or the leader of its group (SPEC 8.1; ``hup``: the
    group's SIGHUP, which the standby reads too)."""
    config = parts.config
    if load is not None:
        parts.reloader = Reloader(parts, load)
        if hup is not None:  # a group's: one SIGHUP handler for every term
            parts.reloader.wanted = hup
        else:
            on_sighup(parts.reloader.wanted.set)
    log.info(
        "monitor.starting",
        instance=config.instance_name,
        broker=f"{config.mqtt.host}:{config.mqtt.port}",
        influx=config.influx.url,
        state_dir=str(config.state_dir.absolute()),  # a relative one lands in the cwd
        api=config.influx.api,
        devices=len(parts.normalizer.registry),
        expected=len(parts.normalizer.expected),
        routes=len(config.notify.routes),
        role="single" if parts.lease is None else "leader",
    )
    if heard_only := parts.normalizer.heard_only:
        # mqtt.topics carry some of their topics, not all: another collector may hear them
        log.warning(
            "monitor.devices_watched_once_heard",
            devices=",".join(key_text(d.key) for d in heard_only[:20]),
            count=len(heard_only),
            fix="say which profile each speaks (devices[].profile) and, for Sparkplug,"
            " the site of each group (sparkplug.groups.<group>.site)",
        )
    await serve(parts, stop, on_api, None if parts.lease is None else parts.lease.lost)


@dataclass
class Group:
    """A group's monitor across its terms as leader and standby (SPEC 8.1): the config as
    last read (a reload while leading or standing by holds for the next term too), and
    the SIGHUP that asks for one."""

    config: Config
    load: Callable[[list[str]], Config] | None
    hup: asyncio.Event = field(default_factory=asyncio.Event)

    async def reload_standing_by(self) -> None:
        """A standby's SIGHUP: the file read again, for the next term (what needs a
        restart as it runs, as a leader's reload keeps it)."""
        if not self.hup.is_set() or self.load is None:
            return
        self.hup.clear()
        if (new := await read_again(self.load)) is None:
            return
        for setting in restart_needed(self.config, new):
            log.warning("config.restart_needed", setting=setting, kept="the running value")
        self.config = in_effect(self.config, new)
        log.info("config.reloaded", role="standby")


async def run_in_group(
    config: Config,
    stop: asyncio.Event,
    clock: Clock,
    stats: Stats,
    on_api: Callable[[Api], None] | None,
    load: Callable[[list[str]], Config] | None,
) -> None:
    """One of the monitors that share ``store.url`` (SPEC 8.1): stand by until the
    leadership is free, lead while it holds, stand by again once it is another's."""
    from monitor.alerting.store.postgres import PostgresStore  # psycopg only when used
    from monitor.ha.lease import Lease

    assert config.store.url is not None
    url = config.store.url.get_secret_value()
    ha = config.ha
    lease = Lease(url, config.mqtt.client_id, ha.heartbeat, ha.failover, api=api_url(config))
    session = ha.session()
    group = Group(config, load)
    if load is not None:
        on_sighup(group.hup.set)
    try:
        while await stand_by(group, clock, stats, lease, stop):
            try:
                store = await asyncio.to_thread(
                    functools.partial(
                        PostgresStore, url, clock, lease.fence, group=lease.name, session=session
                    )
                )
            except StoreUnavailable as e:
                log.error("store.unavailable", store=e.where, error=e.reason)
                await asyncio.to_thread(lease.release)
                continue
            try:  # the passages' store is read here (on the loop: nothing else runs yet)
                parts = build(group.config, clock, stats, store, lease.fence)
            except StoreUnavailable as e:
                log.error("store.unavailable", store=e.where, error=e.reason)
                store.close()
                await asyncio.to_thread(lease.release)
                continue
            parts.lease, parts.takeover = lease, True
            parts.notifier.may_send = parts.source.may_connect = lease.valid
            # cut off from the database, it ingests on only while the broker keeps the
            # connection it had: a standby that took over makes the broker drop it
            parts.sink.may_write = functools.partial(_may_write, lease, parts.stats)
            store.on_written = parts.notifier.wake
            await lead(parts, stop, on_api, load, group.hup)
            group.config = parts.config  # as a reload left it
            if stop.is_set():  # a clean stop: a standby takes over at once
                await asyncio.to_thread(lease.release)
                return
    finally:
        await asyncio.to_thread(lease.close)


def _may_write(lease: Lease, stats: Stats) -> bool:
    return lease.valid() or (lease.may_ingest() and stats.broker_connected)


async def stand_by(
    group: Group, clock: Clock, stats: Stats, lease: Lease, stop: asyncio.Event
) -> bool:
    """Until this monitor takes the leadership (True) or is stopped (False): the board
    and the read-only API served from the shared store, read again every ``ha.heartbeat``;
    changes forwarded to the leader; /health 200 with ``role: standby``. Nothing is
    connected to the broker, written to InfluxDB or sent."""
    from monitor.alerting.store.postgres import PostgresStore

    config = group.config
    assert config.store.url is not None
    url = config.store.url.get_secret_value()
    state = Standing()
    # served at once, the database there or not: /health says why it is not
    store = PostgresStore(
        url, clock, connect=False, read_only=True, group=lease.name, session=config.ha.session()
    )
    view = build(config, clock, stats, store, with_passages=False)
    view.standing = state
    view.api.forward = forwarder(lambda: state.leader_api, api_url(config))
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(view.close_files)
        await stack.enter_async_context(view.api)
        said = False
        while not stop.is_set():
            try:
                if await asyncio.to_thread(lease.acquire):
                    return True
                holder = await asyncio.to_thread(lease.holder_now)
                state.leader = None if holder is None else holder[0]
                state.leader_api = None if holder is None else holder[2]
                await asyncio.to_thread(store.reload)
                view.view_from_store()
                state.problem = None
                if not said:
                    said = True
                    log.info("monitor.standing_by", leader=state.leader, group=lease.name)
                    if view.spool is not None and view.spool.points:
                        log.warning(
                            "spool.waiting_for_leadership",
                            points=view.spool.points,
                            why="written to InfluxDB when this monitor leads (docs/deploy.md)",
                        )
            except StoreUnavailable as e:
                if state.problem != str(e):
                    log.error("store.waiting", store=e.where, error=e.reason)
                state.problem = str(e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.ha.heartbeat)
            await group.reload_standing_by()
    return False


def api_url(config: Config) -> str:
    """How the other monitors of the group reach this one's API (``ha.api_url``)."""
    if config.ha.api_url is not None:
        return config.ha.api_url
    host = config.http.host
    if host in ("", "0.0.0.0", "::"):  # every address: the host's name reaches it
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.http.port}"


def install_signal_handlers(stop: asyncio.Event, bound: float | None = None) -> None:
    """SIGINT and SIGTERM set ``stop``. With a ``bound``, a process whose stop is not over
    by then (plus FORCE_EXIT_AFTER_S) exits anyway, with 0."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            return
        stop.set()
        if bound is not None:
            watchdog = threading.Timer(bound + FORCE_EXIT_AFTER_S, _force_exit)
            watchdog.daemon = True
            watchdog.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)


def _force_exit() -> None:
    log.error("monitor.stop_forced", after_s=FORCE_EXIT_AFTER_S)
    logging.shutdown()
    os._exit(0)
