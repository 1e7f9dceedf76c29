"""CPU cost of Sparkplug B decoding: `python -m bench.sparkplug`; and its bounds under a
flood of garbage (`python -m bench.sparkplug --flood`).

A PLC gateway's DDATA of N metrics by alias (doubles, ints, booleans; one timestamp),
normalized into canonical readings and their line protocol, per message and per metric;
beside it a canonical JSON message of the same metrics (``bench.hotpath``'s kind of work)."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Iterator

from bench.hotpath import best_of
from monitor.clock import SystemClock
from monitor.config import Config
from monitor.normalize.normalizer import Normalizer
from monitor.schemas import sparkplug_b_pb2 as pb
from monitor.sink import schema
from monitor.stats import Stats

NODE = "spBv1.0/plc/{kind}/gw-01"
METRICS = 12  # per message


def main() -> None:
    config = Config(
        sparkplug={
            "enabled": True,
            "groups": {"plc": {"site": "aktau", "area": "a", "kind": "gate_barrier"}},
        },
    )
    n = Normalizer(config)
    types = schema.field_types(Stats(), SystemClock())
    now = int(time.time() * 1000)

    def metric(i: int, name: bool) -> pb.Payload.Metric:
        m = pb.Payload.Metric(alias=i + 1, datatype=(10, 7, 11)[i % 3])
        if name:
            m.name = f"Tag/{i}"
        if i % 3 == 0:
            m.double_value = 20.0 + i
        elif i % 3 == 1:
            m.int_value = 1000 + i
        else:
            m.boolean_value = True
        return m

    def body(name: bool, seq: int) -> bytes:
        metrics = [metric(i, name) for i in range(METRICS)]
        return pb.Payload(timestamp=now, metrics=metrics, seq=seq).SerializeToString()

    n.normalize(
        NODE.format(kind="NBIRTH"),
        pb.Payload(
            metrics=[pb.Payload.Metric(name="bdSeq", datatype=4, long_value=0)], seq=0
        ).SerializeToString(),
        now,
    )
    n.normalize(NODE.format(kind="DBIRTH") + "/gb-01", body(True, 1), now)
    count = 20_000
    messages = [body(False, (i + 2) % 256) for i in range(count)]
    topic = NODE.format(kind="DDATA") + "/gb-01"
    canonical = json.dumps({"ts": now, **{f"tag_{i}": 20.0 + i for i in range(METRICS)}}).encode()
    ctopic = "customs/aktau/a/gate_barrier/gb-01/telemetry"

    def sparkplug() -> None:
        for payload in messages:
            for r in n.normalize(topic, payload, now):  # type: ignore[union-attr]
                schema.reading_line(r, now * 1000, types)

    def json_path() -> None:
        for _ in range(count):
            r = n.normalize(ctopic, canonical, now)
            schema.reading_line(r, now * 1000, types)  # type: ignore[arg-type]

    sp = best_of(5, sparkplug) / count * 1e6
    js = best_of(5, json_path) / count * 1e6
    result = {
        "metrics_per_message": METRICS,
        "sparkplug_us_per_message": round(sp, 2),
        "sparkplug_us_per_metric": round(sp / METRICS, 2),
        "canonical_json_us_per_message": round(js, 2),
    }
    print(json.dumps(result))


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def flood(seconds: float = 30.0) -> None:
    """Garbage from thousands of node ids, in-process (the decoder and the host's duties,
    no broker): 20,000 NDATA of 20,000 node ids, 200 DDATA of 500 new names each on a born
    node, then 100,000 more of new ids, over ``seconds`` of the host's ticks (a manual
    clock). Says the RSS before and after, the state kept and the NCMDs published."""
    from monitor.normalize.sparkplug.host import HostApplication
    from monitor.stats import Stats
    from tests.helpers import ManualClock

    config = Config(
        sparkplug={
            "enabled": True,
            "groups": {"plc": {"site": "aktau", "area": "a", "kind": "gate_barrier"}},
        },
    )
    clock = ManualClock()
    n = Normalizer(config, clock)
    decoder = n.sparkplug
    assert decoder is not None
    host = HostApplication("bench", decoder, clock, Stats(), config.sparkplug)
    sent: list[str] = []

    def publish(topic: str, payload: bytes, retain: bool, qos: int) -> bool:
        sent.append(topic)
        return True

    host.publish = publish
    now = int(time.time() * 1000)

    def body(metrics: list[pb.Payload.Metric], seq: int) -> bytes:
        return pb.Payload(timestamp=now, metrics=metrics, seq=seq).SerializeToString()

    bd = pb.Payload.Metric(name="bdSeq", datatype=4, long_value=0)
    n.normalize("spBv1.0/plc/NBIRTH/gw-01", body([bd], 0), now)
    before = rss_kib()
    started = time.perf_counter()

    def garbage() -> Iterator[tuple[str, bytes]]:  # made as it goes: only what is kept counts
        for i in range(20_000):
            yield f"spBv1.0/plc/NDATA/junk-{i}", body([], i % 256)
        for i in range(200):
            names = [
                pb.Payload.Metric(name=f"n{i}-{j}", datatype=7, int_value=j) for j in range(500)
            ]
            yield "spBv1.0/plc/DDATA/gw-01/gb-01", body(names, (i + 1) % 256)
        for i in range(100_000):
            yield f"spBv1.0/plc/NDATA/more-{i}", body([], 1)

    total = 20_000 + 200 + 100_000
    ticks = int(seconds / 0.25)
    per_tick = total // ticks + 1
    stream = garbage()
    for _ in range(ticks):
        for topic, payload in itertools.islice(stream, per_tick):
            n.normalize(topic, payload, now)
        clock.advance(0.25)
        host.tick()
    elapsed = time.perf_counter() - started
    node = decoder.nodes[("plc", "gw-01")]
    print(
        json.dumps(
            {
                "messages": total,
                "simulated_s": seconds,
                "ncmd_published": len(sent),
                "ncmd_bound": int(config.sparkplug.rebirth_rate * seconds + 10),
                "nodes_kept": len(decoder.nodes),
                "metric_definitions": len(node.metrics),
                "rebirth_wishes_waiting": len(decoder.rebirth_wanted),
                "rss_before_kib": before,
                "rss_after_kib": rss_kib(),
                "cpu_s": round(elapsed, 2),
            }
        )
    )


if __name__ == "__main__":
    flood() if "--flood" in sys.argv else main()
