"""CPU cost of the monitor's own per-message work (normalize, liveness, line protocol),
without the network: `python -m bench.hotpath`. Stable enough to compare changes."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench.e2e_rate import payloads
from monitor.alerts import AlertEngine
from monitor.batcher import Batcher
from monitor.config import load_config
from monitor.ingest import Ingest
from monitor.liveness import Liveness
from monitor.mqtt import Message
from monitor.normalize import Normalizer
from monitor.quarantine import Quarantine
from monitor.rules import RuleBook
from monitor.stats import Stats

ROOT = Path(__file__).resolve().parent.parent


class _Clock:
    def now(self) -> float:
        return time.time()


def main(n: int = 50_000, rounds: int = 5) -> None:
    config = load_config(ROOT / "config" / "monitor.yaml")
    stats, clock = Stats(), _Clock()
    normalizer, rules = Normalizer(config), RuleBook(config)
    engine = AlertEngine([], rules, "bench")
    liveness = Liveness(normalizer.registry.values(), rules, engine.in_maintenance)
    quarantine = Quarantine(Path(tempfile.mkdtemp()), 1 << 20, clock, stats)
    ingest = Ingest(
        None,
        normalizer,
        None,
        quarantine,
        liveness,  # type: ignore[arg-type]
        Batcher(5000, 0.1),
        stats,
        clock,
    )
    now_ms = int(time.time() * 1000)
    body = payloads(1, n, now_ms - 60_000).decode().splitlines()
    messages = [
        Message(
            f"customs/aktau/inspection-1/xray_scanner/xs-{i % 40:02d}/telemetry",
            body[i].encode(),
            1,
            i % 65535 + 1,
            False,
            1,
            now_ms,
        )
        for i in range(n)
    ]
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        lines = ingest.process(messages)
        best = min(best, time.perf_counter() - t0)
    assert len(lines) >= n, (len(lines), stats.rejected_by_reason)
    print(
        json.dumps(
            {"messages": n, "best_s": round(best, 4), "us_per_message": round(best / n * 1e6, 2)}
        )
    )


if __name__ == "__main__":
    main()
