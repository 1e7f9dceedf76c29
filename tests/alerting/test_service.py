"""The alert loop's cost under a flood of pokes (one per ingest batch with a change)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.alerting.engine import AlertEngine, Window
from monitor.alerting.liveness import Liveness
from monitor.alerting.notify import Notifier
from monitor.alerting.rules import RuleBook
from monitor.alerting.service import AlertService
from monitor.alerting.store import SqliteStore
from monitor.clock import Clock, SystemClock
from monitor.config import load_config
from monitor.model import Device
from monitor.pipeline import Points
from monitor.sink.batcher import Batcher
from monitor.stats import Stats
from tests.helpers import SHIPPED_CONFIG, ManualClock


def service_for(tmp_path: Path, devices: list[Device], clock: Clock) -> AlertService:
    rules = RuleBook(load_config(SHIPPED_CONFIG))
    engine = AlertEngine([], rules, "test")
    liveness = Liveness(devices, rules, engine.in_maintenance)
    store = SqliteStore(tmp_path / "state.db", clock)
    return AlertService(
        engine,
        liveness,
        store,
        Notifier(store, Stats(), clock, []),
        Points(Batcher(5000, 0.1), "test", Stats(), clock),
        clock,
        lambda: None,
    )


async def test_windows_added_at_run_time_are_forgotten_a_while_after_they_end(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    service = service_for(tmp_path, [], clock)
    t = clock.now()
    service.engine.windows["config-0"] = Window("config-0", "site", "aktau", t - 99, t - 98)
    ended = service.add_window("device", "xs-1", t - 10, t - 5, "tube", "api")
    running = service.add_window("device", "xs-2", t - 10, t + 3600, "", "api")
    service.forget_windows_ended_before(t - 1)
    assert set(service.engine.windows) == {"config-0", running.id}  # the config's stay
    assert {w.id for w in service.store.windows()} == {running.id}
    assert ended.id not in service.engine.windows


async def test_a_flood_of_pokes_takes_at_most_about_a_third_of_the_loop(tmp_path: Path) -> None:
    """Each pass is O(devices); ingest may poke after every batch. The loop rests twice a
    pass's cost between passes, so the event loop stays free for ingest."""
    devices = [Device(f"m{i:05d}", "xray_scanner", "aktau", "a") for i in range(5000)]
    clock = SystemClock()
    service = service_for(tmp_path, devices, clock)
    engine, liveness = service.engine, service.liveness
    now = clock.monotonic()
    liveness.grace_from = now - 100
    for ds in liveness.devices.values():
        ds.last_seen, ds.state = now, "ready"
    busy = 0.0

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            nonlocal busy
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                busy += time.perf_counter() - started

        return run

    # A pass: evaluate, then the next wake-up; both O(devices).
    service.evaluate = timed(service.evaluate)  # type: ignore[method-assign]
    engine.next_wakeup = timed(engine.next_wakeup)  # type: ignore[method-assign]
    runner = asyncio.create_task(service.run())
    started = time.perf_counter()
    while time.perf_counter() - started < 3:
        service.poke()
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    assert busy > 0.05 * elapsed  # it did run, repeatedly
    assert busy < 0.45 * elapsed  # without the rest: nearly all of it
