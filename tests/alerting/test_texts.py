"""Notifications as each language renders them (issue 16): every event, every rule."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.alerting.texts import render, summary
from monitor.i18n import ZONE

EVENTS = ["firing", "repeat", "escalation", "acknowledged", "resolved"]
STARTED = "2026-11-26T13:33:20+00:00"  # 18:33 in Aktau
RESOLVED = "2026-11-26T13:54:20+00:00"


def payload(rule: str, duration_s: float = 21 * 60, kind: str = "xray_scanner") -> dict[str, Any]:
    return {
        "alert_id": "a1b2c3",
        "state": "firing",
        "rule": rule,
        "severity": "critical",
        "site": "aktau",
        "area": "inspection-1" if kind != "site" else "*",
        "kind": kind,
        "device": "xs-01" if kind != "site" else "aktau",
        "started_at": STARTED,
        "resolved_at": RESOLVED,
        "duration_s": duration_s,
        "summary": "the English summary",
    }


FACTS = {
    "no_data": {"timeout_s": 60.0},
    "offline": {"how": "will"},
    "fault": {"code": "E42"},
    "threshold:hot": {
        "metric": "detector_temp_c",
        "value": 61.5,
        "op": ">",
        "limit": 55.0,
        "for_s": 120.0,
    },
}
EXPECTED = {
    "ru": {
        "no_data": "xs-01 (Рентгеновский сканер, inspection-1): нет данных уже 1 минута",
        "offline": "xs-01 (Рентгеновский сканер, inspection-1) не в сети: соединение потеряно"
        " (Last Will)",
        "fault": "xs-01 (Рентгеновский сканер, inspection-1) сообщает о неисправности (код E42)",
        "threshold:hot": "xs-01 (Рентгеновский сканер, inspection-1): detector_temp_c = 61.5"
        " (> 55) уже 2 минуты",
    },
    "kk": {
        "no_data": "xs-01 (Рентгендік сканер, inspection-1): 1 минут бойы деректер жоқ",
        "offline": "xs-01 (Рентгендік сканер, inspection-1) желіден тыс: байланыс үзілді"
        " (Last Will)",
        "fault": "xs-01 (Рентгендік сканер, inspection-1) ақау туралы хабарлайды (код E42)",
        "threshold:hot": "xs-01 (Рентгендік сканер, inspection-1): detector_temp_c = 61.5"
        " (> 55), 2 минут бойы",
    },
}
HEADLINES = {
    "ru": {
        "firing": "🔴 НЕ РАБОТАЕТ",
        "repeat": "🔴 ВСЁ ЕЩЁ НЕ РАБОТАЕТ",
        "escalation": "🚨 ЭСКАЛАЦИЯ",
        "acknowledged": "👷 ПРИНЯТО В РАБОТУ",
        "resolved": "✅ ВОССТАНОВЛЕНО",
    },
    "kk": {
        "firing": "🔴 ІСТЕН ШЫҚТЫ",
        "repeat": "🔴 ӘЛІ ІСТЕМЕЙДІ",
        "escalation": "🚨 ЭСКАЛАЦИЯ",
        "acknowledged": "👷 ЖҰМЫСҚА АЛЫНДЫ",
        "resolved": "✅ ҚАЛПЫНА КЕЛДІ",
    },
}


@pytest.mark.parametrize("lang", ["ru", "kk"])
@pytest.mark.parametrize("rule", list(FACTS))
@pytest.mark.parametrize("event", EVENTS)
def test_every_event_and_rule_in_russian_and_kazakh(lang: str, rule: str, event: str) -> None:
    data = {
        "event": event,
        "payload": payload(rule),
        "language": lang,
        "facts": FACTS[rule],
        "acked_by": "Айгерим",
    }
    title, body = render(data, ZONE)
    kind = {"ru": "Рентгеновский сканер", "kk": "Рентгендік сканер"}[lang]
    assert title == f"{HEADLINES[lang][event]}: xs-01 ({kind}, aktau / inspection-1)"
    lines = body.splitlines()
    assert lines[0] == EXPECTED[lang][rule]
    assert "the English summary" not in body
    if event == "resolved":
        assert (
            lines[1]
            == {
                "ru": "Работает с 26 нояб., 18:54, не работало с 26 нояб., 18:33 (21 минута).",
                "kk": "26 қар., 18:54 бастап жұмыс істейді, 26 қар., 18:33 бастап істемеген"
                " (21 минут).",
            }[lang]
        )
    else:
        assert (
            lines[1]
            == {
                "ru": "С 26 нояб., 18:33 (уже 21 минута).",
                "kk": "26 қар., 18:33 бастап (21 минут бұрын).",
            }[lang]
        )
    if event == "acknowledged":
        assert "Айгерим" in body
    if event in ("firing", "repeat", "escalation"):
        assert lines[-1].endswith("monitor ack a1b2c3")


@pytest.mark.parametrize(
    ("minutes", "ru", "kk"),
    [
        (1, "1 минута", "1 минут"),
        (2, "2 минуты", "2 минут"),
        (5, "5 минут", "5 минут"),
        (21, "21 минута", "21 минут"),
    ],
)
def test_plurals_in_a_notification(minutes: int, ru: str, kk: str) -> None:
    for lang, said in (("ru", f"(уже {ru})."), ("kk", f"({kk} бұрын).")):
        data = {"event": "firing", "payload": payload("no_data", minutes * 60), "language": lang}
        assert said in render(data, ZONE)[1]


def test_site_silent_and_the_monitors_own_alerts() -> None:
    site = payload("site_silent", kind="site")
    assert summary(site, {"silent": 5, "devices": 6}, "ru") == (
        "площадка aktau: 5 из 6 устройств замолчали одновременно"
        " (обрыв связи или отказ коммутатора?)"
    )
    own = payload("monitor_state_dir", kind="monitor")
    assert summary(own, {}, "kk") == "the English summary"  # technical: left in English


def test_english_is_as_it_was() -> None:
    title, body = render({"event": "firing", "payload": payload("no_data")}, ZONE)
    assert title == "🔴 DOWN: xs-01 (X-ray scanner, aktau / inspection-1)"
    assert body.splitlines()[:2] == ["the English summary", "Since 26.11 18:33:20 (21 min ago)."]
    assert summary(payload("no_data"), FACTS["no_data"], "en") == "the English summary"
