"""CPU cost of the monitor's own per-message work without the network:
`python -m bench.hotpath`. Stable enough to compare changes.

receive: framing and decoding PUBLISH packets from 64 KiB reads (``wire.parse``);
process: normalize, liveness, line protocol; gzip: compressing the lines for the write;
ack: encoding the PUBACKs."""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from pathlib import Path

from bench.e2e_rate import payloads
from bench.load import publish_packet
from monitor.alerting.engine import AlertEngine
from monitor.alerting.liveness import Liveness
from monitor.alerting.rules import RuleBook
from monitor.clock import SystemClock
from monitor.config import load_config
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.quarantine import Quarantine
from monitor.pipeline import Ingest
from monitor.sink.batcher import Batcher
from monitor.source import wire
from monitor.source.mqtt import Message
from monitor.stats import Stats

ROOT = Path(__file__).resolve().parent.parent


def best_of(rounds: int, fn: object) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


class _NoSource:
    """process() asks the source only whether a rejected message is its own."""

    def own(self, topic: str, payload: bytes) -> bool:
        return False


def main(n: int = 50_000, rounds: int = 5) -> None:
    config = load_config(ROOT / "config" / "monitor.yaml")
    stats, clock = Stats(), SystemClock()
    normalizer, rules = Normalizer(config), RuleBook(config)
    engine = AlertEngine([], rules, "bench")
    liveness = Liveness(normalizer.registry.values(), rules, engine.in_maintenance)
    quarantine = Quarantine(Path(tempfile.mkdtemp()), 1 << 20, clock, stats)
    ingest: Ingest[Message] = Ingest(
        _NoSource(),  # type: ignore[arg-type]  # process() needs no more of a source
        normalizer,
        None,  # type: ignore[arg-type]  # nor a sink
        quarantine,
        liveness,
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
            now_ms * 1000,
        )
        for i in range(n)
    ]
    stream = b"".join(publish_packet(m.topic.encode(), m.payload, m.mid) for m in messages)
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]

    def receive() -> list[Message]:
        got: list[Message] = []
        rest = b""
        for chunk in chunks:
            buf = rest + chunk if rest else chunk
            rest = buf[wire.parse(buf, 1, now_ms * 1000, got, []) :]
        return got

    assert len(receive()) == n
    lines = ingest.process(messages)
    assert len(lines) >= n, (len(lines), stats.rejected_by_reason)
    body_bytes = "\n".join(lines).encode()
    mids = [m.mid for m in messages]
    stages = {
        "receive": best_of(rounds, receive),
        "process": best_of(rounds, lambda: ingest.process(messages)),
        "gzip": best_of(rounds, lambda: gzip.compress(body_bytes, 1)),
        "ack": best_of(rounds, lambda: wire.pubacks(mids)),
    }
    us = {k: round(v / n * 1e6, 2) for k, v in stages.items()}
    print(json.dumps({"messages": n, "us_per_message": us, "total_us": round(sum(us.values()), 2)}))


if __name__ == "__main__":
    main()
