"""The status board in a real browser (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import load_config
from monitor.model import Device
from monitor.sim import equipment
from monitor.sim import simulate as sim
from monitor.sim.devservers import Mosquitto, free_port
from tests.helpers import ROOT, SHIPPED_CONFIG, Webhook, running_monitor

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
# the texts on the board that do not fit where they are (cut or spilling over)
OVERFLOWING = """() =>
    [...document.querySelectorAll('.tile > div, footer .legend, #summary, button')]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"""
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def test_board_turns_a_tile_red_on_failure_and_green_on_recovery(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.async_api import Dialog, async_playwright

    monkeypatch.setenv("MONITOR_HTTP__TOKEN", "board-token")

    ids = ["xs-a", "xs-b", "xs-c", "xs-d"]
    profiles = {"profiles": yaml.safe_load(SHIPPED_CONFIG.read_text())["profiles"]}
    config = load_config(
        alert_config(
            channels=[f"webhook:{webhook.url}"],
            devices=ids,
            extra=yaml.safe_dump(profiles),
        )
    )
    simulation = sim.Simulation(
        equipment.build([Device(i, "xray_scanner", "aktau", "inspection-1") for i in ids], seed=3),
        port=mosquitto.port,
        rate=4.0,
        duration=40,
        failures=[sim.Failure("xs-a", "silent", 4), sim.Failure("xs-a", "recover", 12)],
    )
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_monitor(config) as monitor, async_playwright() as pw:
        running = asyncio.create_task(simulation.run())
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await page.goto(f"http://127.0.0.1:{monitor.api.port}/")
            tile = page.locator('.tile[data-device="xs-a"]')
            await page.wait_for_selector(
                '.tile[data-device="xs-a"][data-status="up"]', timeout=10_000
            )
            assert await page.locator(".tile").count() == 4
            await page.wait_for_selector(
                '.tile[data-device="xs-a"][data-status="down"]', timeout=15_000
            )
            assert "no data" in await tile.inner_text()
            await page.wait_for_selector("#alert-list li", timeout=10_000)
            assert "xs-a" in await page.locator("#alert-list").inner_text()
            await page.screenshot(path=str(ARTIFACTS / "board-down.png"))

            # From a phone, by the notification's link (http.public_url, issue 22): the
            # alert on top, acknowledged there; token and name are asked once, then kept
            alert_id = await page.locator("#alert-list li").first.get_attribute("data-alert")
            assert alert_id is not None
            phone = await browser.new_page(viewport={"width": 390, "height": 844})
            answers = iter(["board-token", "Dana (night shift)"])

            async def answer(dialog: Dialog) -> None:
                await dialog.accept(next(answers))

            phone.on("dialog", answer)
            await phone.goto(f"http://127.0.0.1:{monitor.api.port}/#alert={alert_id}")
            linked = phone.locator(f'#focus:not([hidden]) li[data-alert="{alert_id}"]')
            await linked.locator("button.ack").wait_for(timeout=10_000)
            assert "xs-a" in await linked.inner_text()
            await phone.screenshot(path=str(ARTIFACTS / "board-phone.png"), full_page=True)
            await linked.locator("button.ack").click()
            await linked.locator(".acked").wait_for(timeout=10_000)
            # and the wall screen shows it taken
            await page.wait_for_selector("#alert-list .acked", timeout=10_000)
            assert (
                "acknowledged by Dana (night shift)"
                in await page.locator("#alert-list").inner_text()
            )
            assert ("xs-a", "no_data", "acknowledged") in webhook.events()
            await phone.wait_for_selector('.tile[data-device="xs-a"][data-status="down"]')
            await page.wait_for_selector(
                '.tile[data-device="xs-a"][data-status="up"]', timeout=15_000
            )
            await page.wait_for_selector("#alerts[hidden]", state="attached", timeout=10_000)
            await page.screenshot(path=str(ARTIFACTS / "board-recovered.png"))
            # the link still opens it, resolved, with nothing to acknowledge
            await linked.locator(".state", has_text="closed").wait_for(timeout=10_000)
            assert await linked.locator("button.ack").count() == 0
            # the colours a person sees, not just the class names
            green = await tile.evaluate("e => getComputedStyle(e).backgroundColor")
            assert green == "rgb(31, 122, 58)"
        finally:
            await browser.close()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
    assert (ARTIFACTS / "board-down.png").stat().st_size > 10_000


async def test_board_shows_todays_release_time_from_its_own_state_with_influxdb_down(
    configure: Callable[..., object], mosquitto: Mosquitto
) -> None:
    """The strip's figures come from the monitor itself: InfluxDB (and so Grafana) can be
    down. A backfilled half day of trucks, then live ones."""
    from playwright.async_api import async_playwright

    from monitor.config import Config

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every write fails
    config = configure(
        MONITOR_INFLUX__URL=dead,
        MONITOR_PASSAGES__PLATE_KEY="board-test-plate-key",
        MONITOR_PASSAGES__STAGES='{"inspection": ["inspection-1"]}',
    )
    assert isinstance(config, Config)
    devices = [Device(d.id, d.kind, d.site, d.area) for d in config.devices]
    simulation = sim.Simulation(
        equipment.build(devices, seed=5),
        port=mosquitto.port,
        rate=1.0,
        duration=60,
        trucks_per_hour=60,
        backfill=12 * 3600,
    )
    async with running_monitor(config) as monitor, async_playwright() as pw:
        running = asyncio.create_task(simulation.run())
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await page.goto(f"http://127.0.0.1:{monitor.api.port}/")
            await page.wait_for_selector("#release:not([hidden])", timeout=10_000)
            await page.wait_for_function(
                "Number(document.getElementById('rt-inside').textContent) > 5", timeout=20_000
            )
            today = await asyncio.to_thread(monitor_passages, monitor.api.port)
            assert today["inside"] > 5  # 60 trucks an hour, each inside for most of an hour
            assert monitor.stats.passages_closed > 300  # 12 h of them
            assert monitor.stats.write_errors > 0  # InfluxDB is really down
            if today["passages"]:  # (none yet right after local midnight)
                await page.wait_for_function(
                    "document.getElementById('rt-median').textContent.includes('min')"
                )
                shown = await page.locator("#rt-passages").inner_text()
                assert int(shown) >= today["passages"] - 60  # it may have moved on since
            await page.screenshot(path=str(ARTIFACTS / "board-release-time.png"))
        finally:
            await browser.close()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running


def monitor_passages(port: int | None) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/passages", timeout=5) as r:
        body = json.load(r)
    assert body["enabled"] is True
    today: dict[str, Any] = body["today"]
    return today


# The board's words that are no element's text: the tab's title, the link's tooltip, the
# language switch's and the close button's names for a screen reader.
UNSEEN_WORDS = """() => [document.title, document.getElementById('link').title,
  document.getElementById('lang').getAttribute('aria-label'),
  document.getElementById('focus-close').getAttribute('aria-label')]"""
UNSEEN = {
    "ru": ["Состояние оборудования — таможенный пост", "связь с системой мониторинга", "Язык",
           "Закрыть"],
    "kk": ["Жабдық жай-күйі — кеден бекеті", "мониторинг жүйесімен байланыс", "Тіл", "Жабу"],
}  # fmt: skip


async def test_board_switches_language_without_a_reload_and_the_words_fit(
    alert_config: Callable[..., Path],
    mosquitto: Mosquitto,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Russian and Kazakh on the wall screen: the page's words, the kinds, the states, the
    alert in the crew's language; switched from the page, no reload; nothing overflows.
    Nor is English left where no element's text is: the tab's title, the link's tooltip,
    what a screen reader says, who acknowledged when no name was given."""
    from playwright.async_api import Dialog, async_playwright

    monkeypatch.setenv("MONITOR_HTTP__TOKEN", "board-token")

    ids = ["xs-a", "xs-b", "xs-c"]
    config = load_config(alert_config(channels=[f"webhook:{webhook.url}"], devices=ids))
    simulation = sim.Simulation(
        equipment.build([Device(i, "xray_scanner", "aktau", "inspection-1") for i in ids], seed=3),
        port=mosquitto.port,
        rate=4.0,
        duration=40,
        failures=[sim.Failure("xs-a", "silent", 2)],
    )
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_monitor(config) as monitor, async_playwright() as pw:
        running = asyncio.create_task(simulation.run())
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1920, "height": 1080})
            page = await context.new_page()
            await page.goto(f"http://127.0.0.1:{monitor.api.port}/")
            await page.wait_for_selector("#alert-list li", timeout=15_000)
            await page.evaluate("window.notReloaded = true")
            for lang, title, kind, alert_words in (
                ("ru", "Досмотровое оборудование", "Рентгеновский сканер", "нет данных более"),
                ("kk", "Тексеру жабдығы", "Рентгендік сканер", "астам уақыт бойы деректер жоқ"),
            ):
                await page.select_option("#lang", lang)
                await page.wait_for_function(
                    "t => document.getElementById('t-title').textContent === t", arg=title
                )
                await page.wait_for_function(
                    "k => document.querySelector('.tile .kind').textContent === k", arg=kind
                )
                await page.wait_for_function(
                    "w => document.getElementById('alert-list').textContent.includes(w)",
                    arg=alert_words,
                )
                assert await page.evaluate("window.notReloaded") is True
                assert await page.evaluate("document.documentElement.lang") == lang
                assert await page.evaluate(UNSEEN_WORDS) == UNSEEN[lang]
                overflowing = await page.evaluate(OVERFLOWING)
                assert overflowing == [], f"{lang}: text does not fit: {overflowing}"
                await page.screenshot(path=str(ARTIFACTS / f"board-{lang}.png"))
            # acknowledged in Kazakh by someone who gave no name: the board took it
            await page.evaluate("localStorage.setItem('monitorToken', 'board-token')")

            async def no_name(dialog: Dialog) -> None:
                await dialog.dismiss()

            page.on("dialog", no_name)
            await page.locator("#alert-list button.ack").first.click()
            await page.wait_for_function(
                "() => document.getElementById('alert-list').textContent"
                ".includes('қабылдаған: күй тақтасы')"
            )
            # the choice is kept in this browser
            again = await context.new_page()
            await again.set_viewport_size({"width": 390, "height": 844})
            await again.goto(f"http://127.0.0.1:{monitor.api.port}/")
            await again.wait_for_function(
                "() => document.getElementById('t-title').textContent === 'Тексеру жабдығы'"
            )
            await again.screenshot(path=str(ARTIFACTS / "board-kk-phone.png"), full_page=True)
        finally:
            await browser.close()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
