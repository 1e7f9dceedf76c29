"""CPU cost of turning plate reads into passages: `python -m bench.passages`.

match: the pure matcher alone (``Matcher.read``), per read, over a day of simulated
trucks (entry, a stage for a quarter of them, exit; two reads per area as cameras do);
decode: normalizing a `plate_read` message (JSON, the keyed plate hash) per read;
end to end: decode + match + the points' line protocol (``pipeline.passage_lines``)."""

from __future__ import annotations

import json
import os
import random

from bench.hotpath import best_of
from monitor.config import Passages, load_config
from monitor.normalize.normalizer import Normalizer
from monitor.passages.matcher import Matcher, PlateRead
from monitor.passages.tracker import rules_of
from monitor.pipeline import passage_lines

SETTINGS = Passages.model_validate(
    {"plate_key": "bench-plate-key-0123456789", "stages": {"inspection": ["inspection-1"]}}
)


def day_of_reads(trucks: int, seed: int = 7) -> list[PlateRead]:
    rng = random.Random(seed)
    reads: list[PlateRead] = []
    t = 1_790_000_000_000
    for n in range(trucks):
        t += int(rng.expovariate(1 / 90_000))  # 40 trucks/h
        plate = f"{n:016x}"
        path = ["gate-in", *(["inspection-1"] if rng.random() < 0.25 else []), "gate-out"]
        at = t
        for area in path:
            for burst in (0, 1_500):  # each camera reads a truck twice
                reads.append(PlateRead("aktau", area, f"cam-{area}", plate, at + burst, 95.0))
            at += int(rng.uniform(5, 60) * 60_000)
    reads.sort(key=lambda r: r.ts_ms)
    return reads


def main() -> None:
    reads = day_of_reads(20_000)

    def match() -> None:
        m = Matcher(rules_of(SETTINGS))
        for r in reads:
            m.read(r)

    match_us = best_of(5, match) / len(reads) * 1e6

    os.environ["MONITOR_PASSAGES__PLATE_KEY"] = "bench-plate-key-0123456789"
    normalizer = Normalizer(load_config(None))
    messages = [
        (
            f"customs/aktau/{r.area}/anpr_camera/{r.device}/event",
            json.dumps(
                {
                    "ts": r.ts_ms,
                    "type": "plate_read",
                    "plate": f"{i % 999:03d}ABC02",
                    "confidence": 95,
                }
            ).encode(),
        )
        for i, r in enumerate(reads[:20_000])
    ]
    now_ms = reads[-1].ts_ms

    def decode() -> None:
        for topic, payload in messages:
            normalizer.normalize(topic, payload, now_ms)

    decode_us = best_of(5, decode) / len(messages) * 1e6

    def end_to_end() -> None:
        m = Matcher(rules_of(SETTINGS))
        for (topic, payload), r in zip(messages, reads, strict=False):
            normalizer.normalize(topic, payload, now_ms)
            passage_lines(m.read(r))

    total_us = best_of(5, end_to_end) / len(messages) * 1e6
    per_read = {"match": match_us, "decode": decode_us, "decode+match+points": total_us}
    print(json.dumps({"reads": len(reads)} | {k: round(v, 2) for k, v in per_read.items()}))


if __name__ == "__main__":
    main()
