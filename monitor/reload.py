"""SIGHUP: the config read again, and what it may change applied to the running monitor
(SPEC 10). Part of the wiring: it hands the stages their new parts.

A reload changes, without a restart: the device registry and the profiles (a new
normalizer; the Sparkplug edge nodes it knows stay), the rules (a new rule book), the
notification routes and their channels (a worker for each new channel), the config's
maintenance windows, the languages (routes', the board's), ``http.public_url``. What needs
a restart stays as it runs and is said (``config.restart_needed``): the MQTT connection
and its subscriptions (``mqtt``, and profiles or ``canonical`` that would subscribe to
other topics), ``influx``, ``state_dir``, the HTTP server's address and token,
``passages``, ``sparkplug``, ``ingest``, the intervals and ``stop_timeout``, ``instance``.

Known devices keep what is known of them: last seen, state, timers, open alerts; nobody
gets a fresh grace that could hide an outage. A device the reload registers is expected
from the reload on (its own grace, ``DeviceState.expected_from``). A registered device the
new config no longer lists is forgotten as a person forgetting it would (its open alerts
resolved, ``resolution: forgotten``; it comes back, discovered, if it speaks again). One
the new config gives to another collector (its topics no longer this one's) is resolved
``unowned``, as at a start.

Atomic: everything new is built first; on any problem (an invalid file, a fault of ours)
the running parts are left as they were and the problems logged. The swap is one
synchronous step on the event loop: ingest, which normalizes a chunk between awaits,
never sees a half-swapped monitor.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor import logs
from monitor.alerting.engine import FORGOTTEN, UNOWNED, AlertEngine, Route, Window
from monitor.alerting.liveness import Liveness
from monitor.alerting.notify import Notifier
from monitor.alerting.rules import RuleBook
from monitor.alerting.service import AlertService
from monitor.alerting.store import Store
from monitor.clock import Clock
from monitor.config import Config
from monitor.errors import ConfigError
from monitor.model import DeviceKey, key_text
from monitor.normalize.normalizer import Normalizer
from monitor.pipeline import Ingest
from monitor.web.api import Api


class Parts(Protocol):
    """What a reload reads and replaces of the running monitor (``app.Parts`` has it):
    named here so that this module needs nothing of the wiring that uses it."""

    config: Config
    clock: Clock
    normalizer: Normalizer
    liveness: Liveness
    engine: AlertEngine
    service: AlertService
    store: Store
    notifier: Notifier
    ingest: Ingest[Any]
    api: Api
    subscriptions: list[str]


log = logs.get(__name__)

# Sections a running monitor cannot take without a restart: their running values stay.
RESTART_NEEDED = (
    "mqtt",
    "influx",
    "state_dir",
    "instance",
    "status_interval",
    "stop_timeout",
    "stats_interval",
    "spool_max_bytes",
    "ingest",
    "passages",
    "sparkplug",
    "store",
    "ha",
    "heartbeat",
)
HTTP_RESTART_NEEDED = ("host", "port", "token", "token_file")  # the server, its token
LISTED = 20  # device keys named in a log line
REGISTRY_KEY = "config.registry"  # the registered devices: one dropped while down is gone


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
            w.site,
        )
        for i, w in enumerate(config.alerts.maintenance)
    ]


def channels_of(config: Config) -> list[str]:
    return list(
        dict.fromkeys(c for r in config.notify.routes for c in (*r.channels, *r.escalate_to))
    )


def restart_needed(running: Config, new: Config) -> list[str]:
    """The settings ``new`` changes that only a restart can apply."""
    changed = [name for name in RESTART_NEEDED if getattr(running, name) != getattr(new, name)]
    changed += [
        f"http.{key}"
        for key in HTTP_RESTART_NEEDED
        if getattr(running.http, key) != getattr(new.http, key)
    ]
    return changed


def in_effect(running: Config, new: Config) -> Config:
    """``new`` with what needs a restart as it runs."""
    kept = {name: getattr(running, name) for name in RESTART_NEEDED}
    http = running.http.model_copy(update={"public_url": new.http.public_url})
    return new.model_copy(update={**kept, "http": http})


@dataclass
class Reloaded:
    """What a reload changed, for its log line (and the tests)."""

    added: list[DeviceKey]
    removed: list[DeviceKey]
    unowned: list[DeviceKey]
    channels: list[str]
    restart_needed: list[str]


class Reloader:
    """Reloads on SIGHUP (``wanted``), one at a time, from ``load`` (the file the monitor
    was started with, read again with the environment's overrides)."""

    def __init__(self, parts: Parts, load: Callable[[list[str]], Config]) -> None:
        self._parts = parts
        self._load = load
        self.wanted = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self.wanted.wait()
            self.wanted.clear()  # a SIGHUP during this reload asks for one more after it
            await self.reload()

    async def reload(self) -> Reloaded | None:
        """Read the file, then apply it on the loop in one step; None if it was refused."""
        new = await read_again(self._load)
        return None if new is None else self.apply(new)

    def apply(self, new: Config) -> Reloaded | None:
        """Build the new parts, then swap them in; nothing awaits in between."""
        p = self._parts
        try:
            plan = _Plan(p, new)
        except Exception as e:  # a fault of ours: the running monitor stays as it was
            log.error(
                "config.reload_failed",
                error=f"{type(e).__name__}: {e}"[:500],
                kept="the running config",
                exc_info=True,
            )
            return None
        return plan.swap()


async def read_again(load: Callable[[list[str]], Config]) -> Config | None:
    """The config file read again, in a thread (the loop goes on meanwhile); None, each
    problem said in the log, if it does not validate."""
    warnings: list[str] = []
    try:
        new = await asyncio.to_thread(load, warnings)
    except ConfigError as e:
        log.error("config.reload_refused", problems=len(e.problems), kept="the running config")
        for problem in e.problems:
            log.error("config.problem", problem=problem)
        return None
    except OSError as e:
        log.error("config.reload_refused", error=str(e), kept="the running config")
        return None
    for warning in warnings:
        log.warning("config.warning", problem=warning)
    return new


def remember_registry(store: Store, registry: Iterable[DeviceKey]) -> None:
    """The registered devices, for the next start (``app.previous_registry``)."""
    store.put(REGISTRY_KEY, json.dumps(sorted(registry)))


class _Plan:
    """The new parts of a reload, built without touching the running ones."""

    def __init__(self, p: Parts, new: Config) -> None:
        self.p = p
        self.needed = restart_needed(p.config, new)
        self.config = in_effect(p.config, new)
        cfg = self.config
        old = p.normalizer
        self.normalizer = Normalizer(cfg, p.clock, sparkplug=old.sparkplug)
        wanted = cfg.mqtt.topics or self.normalizer.subscriptions
        self.unsubscribed = sorted(set(wanted) - set(p.subscriptions))
        self.dropped = sorted(set(p.subscriptions) - set(wanted))
        if self.unsubscribed or self.dropped:
            # The connection keeps its subscriptions until a restart: the devices are
            # this collector's as far as what it receives now carries them (SPEC 8).
            mqtt = cfg.mqtt.model_copy(update={"topics": list(p.subscriptions)})
            cfg = cfg.model_copy(update={"mqtt": mqtt})
            self.normalizer = Normalizer(cfg, p.clock, sparkplug=old.sparkplug)
        self.normalizer.remember(d for d in old.discovered if self.normalizer.owns(d))
        self.rulebook = RuleBook(cfg)
        if isinstance(old_rules := p.engine.settings_of, RuleBook):
            self.rulebook.carry_over(old_rules)
        self.routes = [Route.from_config(r) for r in cfg.notify.routes]
        self.windows = config_windows(cfg)
        self.names = {(d.site, d.id): d.name for d in cfg.devices if d.name}

    def swap(self) -> Reloaded:
        p, new = self.p, self.normalizer
        now = p.clock.monotonic()
        removed = [k for k in p.normalizer.registry if k not in new.registry]
        new.take_over()
        if new.sparkplug is not None:
            new.sparkplug.on_device = self.rulebook.by_exception
        p.normalizer = p.ingest.normalizer = new
        p.liveness.use_rules(self.rulebook)
        p.engine.settings_of = self.rulebook
        added = [d.key for d in p.liveness.expect(new.expected, now)]
        for key in removed:  # the config no longer lists it: as a person forgetting it
            if p.liveness.forget(key):
                p.store.forget_device(key)
                p.service.apply_forget(key, FORGOTTEN)
        unowned = [k for k, ds in p.liveness.devices.items() if not new.owns(ds.device)]
        for key in unowned:  # its topics are another collector's now
            p.liveness.forget(key)
            p.service.apply_forget(key, UNOWNED)
        engine = p.engine
        engine.routes = self.routes
        engine.broker_down_after = self.config.alerts.broker_down_after
        engine.link = self.config.http.alert_link
        kept = {i: w for i, w in engine.windows.items() if w.created_by != "config"}
        engine.windows = {**kept, **{w.id: w for w in self.windows}}
        channels = p.notifier.add_channels(channels_of(self.config))
        p.api.reconfigure(
            self.names,
            frozenset(new.registry),
            self.config.language,
            self.config.http.public_url,
        )
        p.config = self.config
        remember_registry(p.store, new.registry)  # a restart forgets as this reload did
        p.service.poke()  # evaluate with the new rules, routes and windows now
        needed = self.needed + (["subscriptions"] if self.unsubscribed or self.dropped else [])
        done = Reloaded(added, removed, unowned, channels, needed)
        self._say(done)
        return done

    def _say(self, done: Reloaded) -> None:
        for setting in self.needed:
            log.warning(
                "config.restart_needed", setting=setting, kept="the running value until then"
            )
        if self.unsubscribed or self.dropped:
            log.warning(
                "config.restart_needed",
                setting="subscriptions",
                subscribe=",".join(self.unsubscribed),
                unsubscribe=",".join(self.dropped),
                kept="the running subscriptions until then (their devices are watched as"
                " far as these carry them)",
            )
        log.info(
            "config.reloaded",
            devices=len(self.normalizer.registry),
            expected=len(self.normalizer.expected),
            added=",".join(key_text(k) for k in done.added[:LISTED]),
            removed=",".join(key_text(k) for k in done.removed[:LISTED]),
            unowned=len(done.unowned),
            routes=len(self.routes),
            new_channels=len(done.channels),
            windows=len(self.windows),
            language=self.config.language,
        )
