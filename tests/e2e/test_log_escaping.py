"""Text a device or a client sends never reaches the monitor's log raw (SPEC 3.3): a fault
code with CR, ESC, BEL and C1 CSI cannot rewrite what an operator reads in `docker compose
logs`. The monitor runs as a process; its log is read as bytes."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from monitor.sim.devservers import Mosquitto
from tests.helpers import MonitorProcess, Publisher, Webhook, device_topic, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CODE = "E1\r\x1b[2J\x07\u009b31mALL CLEAR"
# C0 but the line feed that ends each line, DEL, and C1 as UTF-8 (U+0080-U+009F)
RAW = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def send_raw_http(port: int, request: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        s.recv(4096)


async def test_a_hostile_fault_code_is_escaped_in_every_log_line(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    tmp_path: Path,
) -> None:
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=["xs-a"])
    port = yaml.safe_load(path.read_text())["http"]["port"]
    monitor = MonitorProcess(tmp_path / "monitor.log", config=path)
    await monitor.wait_log("mqtt.connected")
    pub = Publisher(mosquitto.port)
    pub.publish(device_topic("xs-a", "status"), json.dumps({"state": "fault", "code": CODE}))
    # and a state no device may have, with the same text: a rejection
    pub.publish(device_topic("xs-a", "status"), json.dumps({"state": CODE}))
    # aiohttp's own logger: a request line and a header with control characters
    await asyncio.to_thread(
        send_raw_http, port, b"GET /\x1b[2J\x07 HTTP/1.1\r\nHost: x\x1b\x9b\r\n\r\n"
    )

    async def keep_talking() -> None:  # no no_data alert meanwhile: only the fault
        while True:
            pub.publish(device_topic("xs-a"), json.dumps({"scans_total": 1}))
            await asyncio.sleep(0.25)

    async with asyncio.TaskGroup() as tg:
        talking = tg.create_task(keep_talking())
        await wait_for(lambda: ("xs-a", "fault", "firing") in webhook.events(), timeout=20)
        await monitor.wait_log("event=message.rejected")
        talking.cancel()
    pub.close()
    assert await asyncio.to_thread(monitor.terminate) == 0

    log = monitor.log_path.read_bytes()
    assert RAW.findall(log) == []
    [firing] = [line for line in log.splitlines() if b"event=alert.firing" in line]
    assert rb'reports a fault (code E1\r\x1b[2J\x07\u009b31mALL CLEAR)"' in firing
    [rejected] = [line for line in log.splitlines() if b"event=message.rejected" in line]
    assert b"reason=invalid_state" in rejected
    # the webhook has the text as it came: data, escaped by JSON, not by the log
    assert webhook.received[0][2]["summary"].endswith(f"(code {CODE})")
