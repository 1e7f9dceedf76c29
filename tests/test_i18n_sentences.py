"""Every sentence the monitor composes, in Russian and Kazakh, with every number a crew may
read (issue 21): 0–125 and 1000–1002 seconds, minutes, hours, days, devices and trucks, in
every notification, summary, board phrase, CLI table and report, read by the rule checkers
of tests/i18n_rules.py (themselves tested in tests/test_i18n_rules.py), and searched for
English left behind."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitor.alerting.notify import trial_message
from monitor.alerting.texts import render, sentence
from monitor.cli.remote import _ago, alerts_table, devices_table, maintenance_table
from monitor.cli.report import availability_table, release_table
from monitor.i18n import CASES, NOUNS, ZONE, Language, texts
from monitor.reports.availability import Availability
from monitor.reports.release_time import ReleaseTime
from monitor.web.api import _for
from monitor.web.board_texts import board_texts
from tests.helpers import ROOT
from tests.i18n_rules import digit_suffixes, english_words, kazakh_problems, russian_problems

SHIPPED: list[Language] = ["ru", "kk"]
NUMBERS = [*range(126), 1000, 1001, 1002]
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
EVENTS = ["firing", "repeat", "escalation", "acknowledged", "resolved"]
# Latin text that stays: the data of the examples (ids, names, rule ids, a fault code, a
# metric) and nothing else.
IDS = {
    "aktau",
    "xs-01",
    "inspection-1",
    "a1b2c3",
    "E42",
    "detector_temp_c",
    "no_data",
    "offline",
    "fault",
    "site_silent",
    "threshold:hot",
    "monitor-aktau-1",
    "maintenance-crew",
    "monitor_broker_down",
    "monitor_spool_high",
    "monitor_state_dir",
}


def problems(lang: Language, text: str) -> list[str]:
    found = russian_problems(text) if lang == "ru" else kazakh_problems(text)
    return found + digit_suffixes(text) + english_words(text, IDS)


def payload(rule: str, duration_s: float, kind: str = "xray_scanner") -> dict[str, Any]:
    device = {"site": "aktau", "monitor": "monitor-aktau-1"}.get(kind, "xs-01")
    return {
        "alert_id": "a1b2c3",
        "state": "firing",
        "rule": rule,
        "severity": "critical",
        "site": "*" if kind == "monitor" else "aktau",
        "area": "inspection-1" if kind not in ("site", "monitor") else "*",
        "kind": kind,
        "device": device,
        "started_at": "2026-11-26T13:33:20+00:00",
        "resolved_at": "2026-11-26T13:54:20+00:00",
        "duration_s": duration_s,
        "summary": "the English summary",
    }


def alerts(seconds: float, count: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every rule's alert whose numbers are ``seconds`` (its limit, its duration) and
    ``count`` (devices)."""
    yield payload("no_data", seconds), {"timeout_s": seconds}
    yield payload("offline", seconds), {"how": "will"}
    yield payload("offline", seconds), {"how": "state"}
    yield payload("fault", seconds), {"code": "E42"}
    yield payload("fault", seconds), {"code": None}
    for op in (">", "<"):
        threshold = {"metric": "detector_temp_c", "value": 61.5, "op": op, "limit": 55.0}
        yield payload("threshold:hot", seconds), {**threshold, "for_s": seconds}
    for devices in sorted({count, max(count, 125), 1002}):
        yield payload("site_silent", seconds, "site"), {"silent": count, "devices": devices}
    yield from own_alerts(seconds, count)


def own_alerts(seconds: float, count: int = 83) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The monitor's own alerts (SPEC 5), their facts as the engine keeps them."""
    for connected in (False, True):
        yield payload("monitor_broker_down", seconds, "monitor"), {"connected": connected}
    yield payload("monitor_spool_high", seconds, "monitor"), {"fill": min(count, 100) / 100}
    yield payload("monitor_state_dir", seconds, "monitor"), {}


BOARD = "https://monitor.aktau.example.kz/#alert=a1b2c3"  # http.public_url's link


def notifications(lang: Language, seconds: float, count: int) -> Iterator[str]:
    for p, facts in alerts(seconds, count):
        for event, url in itertools.product(EVENTS, (None, BOARD)):
            linked = p if url is None else {**p, "url": url}
            data = {"event": event, "payload": linked, "language": lang, "facts": facts}
            title, body = render({**data, "acked_by": "Айгерим"}, ZONE)
            yield title
            yield body
        for resolution in ("forgotten", "unowned"):
            closed = {**p, "resolution": resolution}
            data = {"event": "resolved", "payload": closed, "language": lang, "facts": facts}
            yield "\n".join(render(data, ZONE))


@pytest.mark.parametrize("lang", SHIPPED)
@pytest.mark.parametrize("unit", list(UNITS))
def test_every_notification_reads_right_with_every_number(lang: Language, unit: str) -> None:
    found: dict[str, list[str]] = {}
    for n in NUMBERS:
        for text in notifications(lang, n * UNITS[unit], n):
            for line in text.splitlines():
                if said := problems(lang, line):
                    found.setdefault(line, said)
    assert not found, "\n".join(f"{line}\n    {said}" for line, said in list(found.items())[:20])


@pytest.mark.parametrize("lang", SHIPPED)
def test_a_test_message_reads_right(lang: Language) -> None:
    """``monitor notify-test``'s message through a chat (issue 22)."""
    for board in (None, "https://monitor.aktau.example.kz/"):
        data = trial_message("maintenance-crew", lang, "monitor-aktau-1", "Айгерим", 0.0, board)
        title, body = render(data, ZONE)
        for line in (title, *body.splitlines()):
            assert not problems(lang, line), (line, problems(lang, line))
        assert "maintenance-crew" in title and "Айгерим" in body
        assert board is None or body.endswith(board)


@pytest.mark.parametrize("lang", SHIPPED)
def test_every_counted_noun_in_every_case(lang: Language) -> None:
    """The catalog's forms themselves, in the frames that ask for each case."""
    t = texts(lang)
    frames: dict[str, list[Callable[[str], str]]] = {
        "nominative": [lambda q: f"Простой: {q}."] if lang == "ru" else [lambda q: f"{q} бұрын"],
        "genitive": [lambda q: f"более {q}", lambda q: f"из {q}"],
        "accusative": [lambda q: f"уже {q}", lambda q: f"{q} назад"],
        "ablative": [lambda q: f"{q} бастап", lambda q: f"{q} бері", lambda q: f"{q} астам"],
    }
    found = []
    for noun, case, n in itertools.product(NOUNS, CASES[lang], NUMBERS):
        for frame in frames[case]:
            text = frame(t.quantity(n, noun, case))
            found += [f"{text}: {p}" for p in problems(lang, text)]
    assert not found, found[:20]


def test_a_language_cannot_ask_for_a_case_it_lacks() -> None:
    with pytest.raises(KeyError):
        texts("kk").quantity(5, "minute", "genitive")
    with pytest.raises(KeyError):
        texts("ru").quantity(5, "minute", "ablative")


@pytest.mark.parametrize("lang", SHIPPED)
def test_board_phrases_with_every_number(lang: Language) -> None:
    words = board_texts(texts(lang))["words"]
    assert isinstance(words, dict)
    found = []
    for n, size in itertools.product(NUMBERS, UNITS.values()):
        for text in (
            _for(n * size, lang),
            _ago(n * size, lang),
            *(words[k].replace("%(n)s", str(n)) for k in ("n_up", "n_down", "n_maintenance")),
        ):
            found += [f"{text}: {p}" for p in problems(lang, text)]
    assert not found, found[:20]


@pytest.mark.parametrize("lang", SHIPPED)
def test_the_board_says_nothing_in_english(lang: Language) -> None:
    said = board_texts(texts(lang))
    for group in ("words", "kinds", "states", "reasons", "severities", "alert_states"):
        values = said[group]
        assert isinstance(values, dict)
        for key, text in values.items():
            bare = re.sub(r"%\(\w+\)s", "", text)  # a value's place
            assert not problems(lang, bare), (group, key, text)


def _table_text(table: Any) -> str:
    from rich.console import Console

    console = Console(record=True, width=400, color_system=None)
    console.print(table)
    return console.export_text()


def device_rows() -> dict[str, Any]:
    base = {"site": "aktau", "area": "inspection-1", "kind": "xray_scanner", "open_alerts": []}
    return {
        "devices": [
            {**base, "device": "xs-01", "up": True, "reason": "ok", "state": "busy"}
            | {"last_seen_age_s": 1.0},
            {**base, "device": "xs-01", "up": False, "reason": "no_data", "state": "ready"}
            | {"last_seen_age_s": 21 * 60.0, "open_alerts": ["a1b2c3"]},
            {**base, "device": "xs-01", "up": None, "reason": None, "state": None}
            | {"last_seen_age_s": None},
            *(
                {**base, "device": "xs-01", "up": up, "reason": reason, "state": state}
                | {"last_seen_age_s": 61.0}
                for up, reason, state in (
                    (False, "offline", "offline"),
                    (False, "fault", "fault"),
                    (True, "maintenance", "maintenance"),
                    (True, "ok", "standby"),
                    (True, "ok", "warming_up"),
                )
            ),
        ]
    }


def alert_rows(lang: Language) -> dict[str, Any]:
    rows = []
    for state, severity in itertools.product(
        ("firing", "acknowledged", "resolved"), ("critical", "warning", "info")
    ):
        p = payload("no_data", 21 * 60)
        rows.append(
            {**p, "state": state, "severity": severity}
            | {"summary_text": sentence(p, {"timeout_s": 60.0}, lang)}
        )
    return {"alerts": rows}


WINDOWS = {
    "windows": [
        {
            "id": "w1",
            "scope": scope,
            "value": value,
            "starts": "2026-11-26T13:33:20+00:00",
            "ends": "2026-11-26T15:33:20+00:00",
            "reason": "",
            "created_by": "Айгерим",
        }
        for scope, value in (
            ("device", "xs-01"),
            ("kind", "xray_scanner"),
            ("area", "inspection-1"),
            ("site", "aktau"),
        )
    ]
}


def availability_rows() -> list[Availability]:
    return [
        Availability(
            "aktau", "inspection-1", kind, "xs-01", 86400, 86000, 300, 100, 0, 2, 99.5, 150, 43000
        )
        for kind in ("xray_scanner", "radiation_portal", "gate_barrier", "anpr_camera")
    ]


def release_rows() -> list[ReleaseTime]:
    return [
        ReleaseTime(
            "aktau",
            inspected,
            125,
            3000,
            2800,
            5000,
            6000,
            40.0,
            80.5,
            99.2,
            3,
            20,
            4000,
            7000,
            105,
            2700,
            4800,
        )
        for inspected in ("all", "yes", "no")
    ]


@pytest.mark.parametrize("lang", SHIPPED)
def test_cli_tables_and_reports_say_nothing_in_english(lang: Language) -> None:
    tables = [
        devices_table(device_rows(), lang),
        alerts_table(alert_rows(lang), lang),
        maintenance_table(WINDOWS, lang),
        availability_table(availability_rows(), 1_795_700_000, 1_796_300_000, lang),
        release_table(release_rows(), 1_795_700_000, 1_796_300_000, lang),
    ]
    for table in tables:
        text = _table_text(table)
        for line in text.splitlines():
            assert not problems(lang, line.replace("│", " ").replace("┃", " ")), line


def test_the_same_alert_in_three_languages() -> None:
    """The closing note's example: no_data after 21 minutes (limit 1 minute), a site of 21
    devices silent, and its recovery, as a crew reads them."""
    no_data = payload("no_data", 21 * 60)
    site = payload("site_silent", 21 * 60, "site")
    said = {
        lang: [
            render({"event": "firing", "payload": no_data, "language": lang,
                    "facts": {"timeout_s": 60.0}}, ZONE),
            render({"event": "firing", "payload": site, "language": lang,
                    "facts": {"silent": 21, "devices": 21}}, ZONE),
            render({"event": "resolved", "payload": no_data, "language": lang,
                    "facts": {"timeout_s": 60.0}}, ZONE),
        ]
        for lang in ("en", "ru", "kk")
    }  # fmt: skip
    assert said["ru"][0] == (
        "🔴 НЕ РАБОТАЕТ: xs-01 (Рентгеновский сканер, aktau / inspection-1)",
        "xs-01 (Рентгеновский сканер, inspection-1): нет данных более 1 минуты\n"
        "Начало: 26 нояб., 18:33 (21 минуту назад).\n"
        "Правило: no_data; уровень: критический; инцидент: a1b2c3.\n"
        "Принять в работу: monitor ack a1b2c3",
    )
    assert said["kk"][0][1].splitlines()[:2] == [
        "xs-01 (Рентгендік сканер, inspection-1): 1 минуттан астам уақыт бойы деректер жоқ",
        "Басталуы: 26 қар., 18:33 (21 минут бұрын).",
    ]
    assert said["en"][0][1].splitlines()[:2] == [
        "xs-01 (X-ray scanner, inspection-1): no data for more than 1 minute",
        "Since 26 Nov, 18:33 (21 minutes ago).",
    ]
    assert said["ru"][1][1].splitlines()[0] == (
        "площадка aktau: одновременно пропала связь с 21 из 21 устройства"
        " (обрыв линии или отказ коммутатора?)"
    )
    assert said["kk"][1][1].splitlines()[0] == (
        "aktau алаңы: бір мезетте 21 құрылғыдан деректер келмей қалды, алаңда барлығы"
        " 21 құрылғы (байланыс арнасы не коммутатор істен шықты ма?)"
    )
    assert said["ru"][2][1].splitlines()[0] == (
        "Причина: xs-01 (Рентгеновский сканер, inspection-1): нет данных более 1 минуты"
    )
    assert said["ru"][2][1].splitlines()[1] == (
        "Восстановлено: 26 нояб., 18:54. Простой: 21 минута (с 26 нояб., 18:33)."
    )
    assert said["kk"][2][1].splitlines()[1] == (
        "Қалпына келді: 26 қар., 18:54. Тоқтау ұзақтығы: 21 минут (басталуы: 26 қар., 18:33)."
    )


def test_the_closing_notes_example_is_what_render_says() -> None:
    """docs/i18n-issue-21.md, "After": the same notifications as rendered now, so the note
    cannot fall behind the catalogs (it did once: the review's fixes)."""
    no_data = payload("no_data", 21 * 60)
    site = payload("site_silent", 21 * 60, "site")
    lines = []
    for lang in ("en", "ru", "kk"):
        lines.append(f"--- {lang}")
        for event, p, facts in (
            ("firing", no_data, {"timeout_s": 60.0}),
            ("firing", site, {"silent": 21, "devices": 21}),
            ("resolved", no_data, {"timeout_s": 60.0}),
        ):
            data = {"event": event, "payload": p, "language": lang, "facts": facts}
            lines.extend([*render(data, ZONE), ""])
    note = (ROOT / "docs" / "i18n-issue-21.md").read_text()
    after = note.split("## After\n\n```\n", 1)[1].split("```", 1)[0]
    assert after == "\n".join(lines) + "\n"
