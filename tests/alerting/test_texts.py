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
    "en": {
        "no_data": "xs-01 (X-ray scanner, inspection-1): no data for more than 1 minute",
        "offline": "xs-01 (X-ray scanner, inspection-1) is offline: its connection was lost",
        "fault": "xs-01 (X-ray scanner, inspection-1) reports a fault (code E42)",
        "threshold:hot": "xs-01 (X-ray scanner, inspection-1): detector_temp_c is 61.5"
        " (limit > 55) for more than 2 minutes",
    },
    "ru": {
        "no_data": "xs-01 (Рентгеновский сканер, inspection-1): нет данных более 1 минуты",
        "offline": "xs-01 (Рентгеновский сканер, inspection-1): не в сети — связь с устройством"
        " потеряна",
        "fault": "xs-01 (Рентгеновский сканер, inspection-1): устройство сообщает о"
        " неисправности (код E42)",
        "threshold:hot": "xs-01 (Рентгеновский сканер, inspection-1): detector_temp_c = 61,5"
        " (порог: > 55) дольше 2 минут",
    },
    "kk": {
        "no_data": "xs-01 (Рентгендік сканер, inspection-1): 1 минуттан астам деректер жоқ",
        "offline": "xs-01 (Рентгендік сканер, inspection-1): желіден тыс — құрылғымен байланыс"
        " үзілді",
        "fault": "xs-01 (Рентгендік сканер, inspection-1): құрылғы ақау туралы хабарлайды"
        " (ақау коды: E42)",
        "threshold:hot": "xs-01 (Рентгендік сканер, inspection-1): detector_temp_c = 61,5"
        " (шегі: > 55), 2 минуттан астам уақыт бойы",
    },
}
HEADLINES = {
    "en": {
        "firing": "🔴 DOWN",
        "repeat": "🔴 STILL DOWN",
        "escalation": "🚨 ESCALATED",
        "acknowledged": "👷 ACKNOWLEDGED",
        "resolved": "✅ RECOVERED",
    },
    "ru": {
        "firing": "🔴 НЕ РАБОТАЕТ",
        "repeat": "🔴 ВСЁ ЕЩЁ НЕ РАБОТАЕТ",
        "escalation": "🚨 ЭСКАЛАЦИЯ",
        "acknowledged": "👷 ПРИНЯТО В РАБОТУ",
        "resolved": "✅ ВОССТАНОВЛЕНО",
    },
    "kk": {
        "firing": "🔴 ЖҰМЫС ІСТЕМЕЙДІ",
        "repeat": "🔴 ӘЛІ ДЕ ЖҰМЫС ІСТЕМЕЙДІ",
        "escalation": "🚨 ЖОҒАРЫ ДЕҢГЕЙГЕ ЖЕТКІЗІЛДІ",
        "acknowledged": "👷 ҚАБЫЛДАНДЫ",
        "resolved": "✅ ҚАЛПЫНА КЕЛДІ",
    },
}
KINDS = {"en": "X-ray scanner", "ru": "Рентгеновский сканер", "kk": "Рентгендік сканер"}
BACK = {
    "en": "Back at 26 Nov, 18:54 after 21 minutes down (since 26 Nov, 18:33).",
    "ru": "Восстановлено: 26 нояб., 18:54. Простой: 21 минута (с 26 нояб., 18:33).",
    "kk": "Қалпына келді: 26 қар., 18:54. Тоқтау ұзақтығы: 21 минут (басталуы: 26 қар., 18:33).",
}
SINCE = {
    "en": "Since 26 Nov, 18:33 (21 minutes ago).",
    "ru": "Начало: 26 нояб., 18:33 (21 минуту назад).",
    "kk": "Басталуы: 26 қар., 18:33 (21 минут бұрын).",
}


@pytest.mark.parametrize("lang", ["en", "ru", "kk"])
@pytest.mark.parametrize("rule", list(FACTS))
@pytest.mark.parametrize("event", EVENTS)
def test_every_event_and_rule_in_every_language(lang: str, rule: str, event: str) -> None:
    data = {
        "event": event,
        "payload": payload(rule),
        "language": lang,
        "facts": FACTS[rule],
        "acked_by": "Айгерим",
    }
    title, body = render(data, ZONE)
    assert title == f"{HEADLINES[lang][event]}: xs-01 ({KINDS[lang]}, aktau / inspection-1)"
    lines = body.splitlines()
    assert lines[0] == EXPECTED[lang][rule]
    assert "the English summary" not in body
    assert lines[1] == (BACK if event == "resolved" else SINCE)[lang]
    if event == "acknowledged":
        assert "Айгерим" in body
    if event in ("firing", "repeat", "escalation"):
        assert lines[-1].endswith("monitor ack a1b2c3")


@pytest.mark.parametrize(
    ("minutes", "ru", "kk"),
    [
        (1, "1 минуту", "1 минут"),
        (2, "2 минуты", "2 минут"),
        (5, "5 минут", "5 минут"),
        (21, "21 минуту", "21 минут"),
    ],
)
def test_plurals_and_cases_in_a_notification(minutes: int, ru: str, kk: str) -> None:
    for lang, said in (("ru", f"({ru} назад)."), ("kk", f"({kk} бұрын).")):
        data = {"event": "firing", "payload": payload("no_data", minutes * 60), "language": lang}
        assert said in render(data, ZONE)[1]


def test_a_no_data_summary_says_its_limit_and_its_time_apart() -> None:
    """The limit in the summary, how long it has lasted on its own line: never the limit
    said as if it were the time elapsed ("нет данных уже 1 минута" after 21 minutes)."""
    data = {"event": "firing", "payload": payload("no_data"), "facts": FACTS["no_data"]}
    for lang, limit, lasted in (
        ("en", "more than 1 minute", "21 minutes ago"),
        ("ru", "более 1 минуты", "21 минуту назад"),
        ("kk", "1 минуттан астам", "21 минут бұрын"),
    ):
        summary_line, since_line = render({**data, "language": lang}, ZONE)[1].splitlines()[:2]
        assert limit in summary_line and "21" not in summary_line
        assert lasted in since_line


def test_site_silent_and_the_monitors_own_alerts() -> None:
    site = payload("site_silent", kind="site")
    assert summary(site, {"silent": 5, "devices": 6}, "ru") == (
        "площадка aktau: одновременно пропала связь с 5 из 6 устройств"
        " (обрыв линии или отказ коммутатора?)"
    )
    assert summary(site, {"silent": 21, "devices": 21}, "ru").startswith(
        "площадка aktau: одновременно пропала связь с 21 из 21 устройства"
    )
    assert summary(site, {"silent": 2, "devices": 6}, "kk").startswith(
        "aktau алаңы: бір мезетте 2 құрылғыдан деректер келмей қалды, алаңда барлығы 6 құрылғы"
    )
    title, _ = render({"event": "firing", "payload": site, "language": "kk"}, ZONE)
    assert title == "🔴 ЖҰМЫС ІСТЕМЕЙДІ: aktau алаңы"
    own = payload("monitor_state_dir", kind="monitor")
    assert summary(own, {}, "kk") == "the English summary"  # technical: left in English


@pytest.mark.parametrize(
    ("resolution", "lang", "headline", "said"),
    [
        ("forgotten", "en", "☑️ CLOSED", "Closed at 26 Nov, 18:54: a person removed the device"),
        ("forgotten", "ru", "☑️ ЗАКРЫТО", "Закрыто: 26 нояб., 18:54 — устройство удалено из"),
        ("unowned", "kk", "☑️ ЖАБЫЛДЫ", "Жабылды: 26 қар., 18:54 — құрылғыны енді мониторның"),
        ("unowned", "en", "☑️ CLOSED", "Closed at 26 Nov, 18:54: another monitor instance"),
    ],
)
def test_an_alert_closed_by_a_person_or_a_handover_does_not_say_recovered(
    resolution: str, lang: str, headline: str, said: str
) -> None:
    p = {**payload("no_data"), "resolution": resolution}
    title, body = render({"event": "resolved", "payload": p, "language": lang}, ZONE)
    assert title.startswith(headline)
    assert body.splitlines()[1].startswith(said)


def test_the_english_summary_of_the_contract_is_kept() -> None:
    """SPEC 5: the webhook's ``summary`` is the English one as it was; English routes get
    no ``summary_localized``."""
    assert summary(payload("no_data"), FACTS["no_data"], "en") == "the English summary"
