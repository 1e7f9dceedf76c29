"""A payload far over ``max_payload_bytes`` costs no more than its size demands once
(SPEC 3.3): skipped as it streams in, counted as payload_too_large, quarantined truncated,
and the other devices' messages are not held up by it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto
from tests.helpers import MonitorProcess, Publisher, rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIG = 64 * 1024 * 1024
TOPIC = "customs/aktau/inspection-1/xray_scanner/{}/telemetry"


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS KiB) of a process."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return cpu, hwm


async def test_a_64_mb_message_is_skipped_in_linear_time_without_delaying_others(
    configure: Callable[..., Config],
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
) -> None:
    configure(MONITOR_STATS_INTERVAL="1s")
    mon = MonitorProcess(tmp_path / "monitor.log")
    await mon.wait_log("event=mqtt.connected")
    pub, big_pub = Publisher(mosquitto.port, "steady"), Publisher(mosquitto.port, "big")
    stop = asyncio.Event()

    async def steady() -> None:  # xs-02 reports every 20 ms, stamped at sending
        i = 0
        while not stop.is_set():
            pub.publish(
                TOPIC.format("xs-02"), json.dumps({"scans_total": i, "sent_ms": time.time() * 1000})
            )
            i += 1
            await asyncio.sleep(0.02)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(steady())
        await asyncio.sleep(2)
        cpu0, rss0 = proc_stat(mon.proc.pid)
        info = big_pub.publish(TOPIC.format("xs-01"), b"{" + b" " * (BIG - 2) + b"}")
        await asyncio.to_thread(info.wait_for_publish, 60)
        await asyncio.sleep(3)
        stop.set()
    cpu1, rss1 = proc_stat(mon.proc.pid)

    def too_large() -> int:
        q = "SELECT last(rejected_payload_too_large) AS n FROM monitor"
        got = rows(influxd.url, database, q)
        return int(got[0]["n"]) if got else 0

    await wait_for(lambda: too_large() == 1, timeout=15)
    assert await asyncio.to_thread(mon.terminate) == 0
    pub.close()
    big_pub.close()

    # the other device was not held up: receive time minus sending time, per message
    delays = [
        r["time"] - r["sent_ms"]
        for r in rows(
            influxd.url, database, "SELECT sent_ms FROM xray_scanner WHERE device = 'xs-02'"
        )
    ]
    assert len(delays) > 100 and max(delays) < 1000, f"worst delay {max(delays):.0f} ms"
    print(
        f"\nOVERSIZE 64 MiB: peak RSS +{(rss1 - rss0) / 1024:.1f} MiB, CPU {cpu1 - cpu0:.2f} s,"
        f" worst delay of the other device {max(delays):.0f} ms over {len(delays)} messages"
    )
    # memory: about max_payload_bytes (256 KiB), not the message; CPU: linear in its size
    assert rss1 - rss0 < 32 * 1024, f"peak RSS grew by {(rss1 - rss0) / 1024:.0f} MiB"
    assert cpu1 - cpu0 < 3.0, f"{cpu1 - cpu0:.1f} CPU seconds"
    # counted and quarantined, truncated
    record = next(
        json.loads(line)
        for line in (tmp_path / "state" / "quarantine" / "quarantine.jsonl")
        .read_text()
        .splitlines()
        if json.loads(line)["reason"] == "payload_too_large"
    )
    assert record["payload_bytes"] == BIG and record["payload_truncated"] is True
    assert record["topic"] == TOPIC.format("xs-01")
    assert len(record["payload"]) <= 64 * 1024
