"""CPU cost of Sparkplug B decoding: `python -m bench.sparkplug`.

A PLC gateway's DDATA of N metrics by alias (doubles, ints, booleans; one timestamp),
normalized into canonical readings and their line protocol, per message and per metric;
beside it a canonical JSON message of the same metrics (``bench.hotpath``'s kind of work)."""

from __future__ import annotations

import json
import time

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


if __name__ == "__main__":
    main()
