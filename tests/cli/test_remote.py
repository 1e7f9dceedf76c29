"""The CLI against a running instance: devices, alerts, ack, maintenance."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.sim.devservers import Mosquitto
from tests.helpers import (
    ALERT_TIMEOUT,
    ROOT,
    Publisher,
    Talker,
    Webhook,
    device_topic,
    running_monitor,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_cli_talks_to_a_running_instance(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_HTTP__TOKEN", "cli-token")
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=["xs-a", "xs-d"])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args, "-c", str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
            timeout=30,
        )

    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-d"])
    async with running_monitor(load_config(path)), asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        await wait_for(lambda: webhook.received, timeout=ALERT_TIMEOUT + 5)  # xs-a: no_data
        devs = await asyncio.to_thread(cli, "devices", "--json")
        assert devs.returncode == 0, devs.stderr
        by = {d["device"]: d for d in json.loads(devs.stdout)["devices"]}
        assert (by["xs-a"]["up"], by["xs-a"]["reason"]) == (False, "no_data")
        assert (by["xs-d"]["up"], by["xs-d"]["reason"]) == (True, "ok")
        table = await asyncio.to_thread(cli, "alerts")
        assert "no_data" in table.stdout
        alert_id = webhook.received[0][2]["alert_id"]
        assert alert_id in table.stdout
        # in the reader's language: headings, kinds, words, summaries
        ru = await asyncio.to_thread(cli, "devices", "--lang", "ru")
        assert "Устройства" in ru.stdout and "Рентгеновский сканер" in ru.stdout
        assert "не работает (нет данных)" in ru.stdout and "работает" in ru.stdout
        kk = await asyncio.to_thread(cli, "alerts", "--lang", "kk")
        assert "Инциденттер" in kk.stdout and "астам уақыт бойы деректер жоқ" in kk.stdout
        bad = await asyncio.to_thread(cli, "alerts", "--lang", "de")
        assert bad.returncode == 2 and "--lang must be one of en, ru, kk" in bad.stderr

        acked = await asyncio.to_thread(cli, "ack", alert_id, "--by", "Nurlan")
        assert acked.returncode == 0, acked.stderr
        assert f"acknowledged {alert_id}" in acked.stdout
        missing = await asyncio.to_thread(cli, "ack", "no-such-alert")
        assert missing.returncode == 1
        assert "HTTP 404" in missing.stderr
        # what `monitor ack` answers, in the reader's language too
        again = await asyncio.to_thread(cli, "ack", alert_id, "--by", "Nurlan", "--lang", "ru")
        assert again.returncode == 0, again.stderr
        assert f"инцидент {alert_id} принят в работу: xs-a" in again.stdout
        assert "нет данных более" in again.stdout
        missing = await asyncio.to_thread(cli, "ack", "no-such-alert", "--lang", "kk")
        assert missing.returncode == 1
        assert "no-such-alert нөмірлі белсенді инцидент жоқ (HTTP 404)" in missing.stderr

        added = await asyncio.to_thread(
            cli,
            "maintenance",
            "add",
            "area",
            "inspection-1",
            "--duration",
            "2h",
            "--reason",
            "calibration",
        )
        assert added.returncode == 0, added.stderr
        window_id = added.stdout.split()[1].rstrip(":")
        listed = await asyncio.to_thread(cli, "maintenance", "list", "--json")
        assert [w["id"] for w in json.loads(listed.stdout)["windows"]] == [window_id]
        ru = await asyncio.to_thread(cli, "maintenance", "list", "--lang", "ru")
        assert "Периоды техобслуживания" in ru.stdout and "calibration" in ru.stdout
        removed = await asyncio.to_thread(cli, "maintenance", "remove", window_id)
        assert removed.returncode == 0, removed.stderr
        talking.cancel()
    pub.close()
    assert ("xs-a", "no_data", "acknowledged") in webhook.events()


async def test_device_and_user_text_is_printed_literally(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault code and a maintenance reason that look like Rich markup: printed as they
    are, by every command that shows them (they used to crash it with MarkupError)."""
    monkeypatch.setenv("MONITOR_HTTP__TOKEN", "cli-token")
    path = alert_config(channels=[f"webhook:{webhook.url}"], devices=["xs-a"])
    code, reason = "[/x] [bold]boom", "[/oops] tube"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args, "-c", str(path)],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "300"},
            cwd=ROOT,
            check=False,
            timeout=30,
        )

    pub = Publisher(mosquitto.port)
    talker = Talker(pub, ["xs-a"])
    async with running_monitor(load_config(path)), asyncio.TaskGroup() as tg:
        talking = tg.create_task(talker.run())
        talker.state["xs-a"] = "fault"
        pub.publish(device_topic("xs-a", "status"), json.dumps({"state": "fault", "code": code}))
        await wait_for(lambda: ("xs-a", "fault", "firing") in webhook.events(), timeout=10)
        for args in (("alerts",), ("alerts", "--all")):
            shown = await asyncio.to_thread(cli, *args)
            assert shown.returncode == 0, shown.stderr
            assert f"(code {code})" in shown.stdout
        added = await asyncio.to_thread(
            cli, "maintenance", "add", "device", "xs-a", "--duration", "1h", "--reason", reason
        )
        assert added.returncode == 0, added.stderr
        listed = await asyncio.to_thread(cli, "maintenance", "list")
        assert listed.returncode == 0, listed.stderr
        assert reason in listed.stdout
        talking.cancel()
    pub.close()
