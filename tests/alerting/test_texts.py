"""Notifications as each language renders them (issue 16): every event, every rule."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.alerting.texts import render, summary
from monitor.i18n import ZONE, Language

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


FACTS: dict[str, dict[str, Any]] = {
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
        "no_data": "xs-01 (Рентгендік сканер, inspection-1): 1 минуттан астам уақыт бойы"
        " деректер жоқ",
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
# A threshold (detector_temp_c > 55) is a reading past its limit, not equipment down: its
# headlines say so, and its time is no downtime (review of issue 21, item 4).
LIMIT_HEADLINES = {
    "en": {
        **HEADLINES["en"],
        "firing": "🔴 OVER THE LIMIT",
        "repeat": "🔴 STILL OVER THE LIMIT",
        "resolved": "✅ BACK WITHIN THE LIMIT",
    },
    "ru": {
        **HEADLINES["ru"],
        "firing": "🔴 ПРЕВЫШЕН ПОРОГ",
        "repeat": "🔴 ПОРОГ ВСЁ ЕЩЁ ПРЕВЫШЕН",
        "resolved": "✅ ПОКАЗАТЕЛЬ В НОРМЕ",
    },
    "kk": {
        **HEADLINES["kk"],
        "firing": "🔴 ШЕКТЕН АСТЫ",
        "repeat": "🔴 ӘЛІ ДЕ ШЕКТЕН АСЫП ТҰР",
        "resolved": "✅ КӨРСЕТКІШ ҚАЛЫПҚА КЕЛДІ",
    },
}
KINDS = {"en": "X-ray scanner", "ru": "Рентгеновский сканер", "kk": "Рентгендік сканер"}
BACK = {
    "en": "Back at 26 Nov, 18:54 after 21 minutes down (since 26 Nov, 18:33).",
    "ru": "Восстановлено: 26 нояб., 18:54. Простой: 21 минута (с 26 нояб., 18:33).",
    "kk": "Қалпына келді: 26 қар., 18:54. Тоқтау ұзақтығы: 21 минут (басталуы: 26 қар., 18:33).",
}
LIMIT_BACK = {
    "en": "Back to normal at 26 Nov, 18:54 after 21 minutes (since 26 Nov, 18:33).",
    "ru": "В норме с 26 нояб., 18:54. Длительность: 21 минута (с 26 нояб., 18:33).",
    "kk": "Қалыпқа келді: 26 қар., 18:54. Ұзақтығы: 21 минут (басталуы: 26 қар., 18:33).",
}
SINCE = {
    "en": "Since 26 Nov, 18:33 (21 minutes ago).",
    "ru": "Начало: 26 нояб., 18:33 (21 минуту назад).",
    "kk": "Басталуы: 26 қар., 18:33 (21 минут бұрын).",
}


CAUSE = {"en": "Cause:", "ru": "Причина:", "kk": "Себебі:"}


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
    limit = rule.startswith("threshold:")  # a reading past its limit: no equipment down
    headline = (LIMIT_HEADLINES if limit else HEADLINES)[lang][event]
    assert title == f"{headline}: xs-01 ({KINDS[lang]}, aktau / inspection-1)"
    lines = body.splitlines()
    if event == "resolved":  # over: the summary is its cause
        assert lines[0] == f"{CAUSE[lang]} {EXPECTED[lang][rule]}"
    else:
        assert lines[0] == EXPECTED[lang][rule]
    assert "the English summary" not in body
    assert lines[1] == ((LIMIT_BACK if limit else BACK) if event == "resolved" else SINCE)[lang]
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


def test_site_silent() -> None:
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


# Closed, not recovered (items 1, 2, 10 of the review): who closed it, and the downtime
# until then said as downtime ("Простой до закрытия"), the subject and object plain.
CLOSED = {
    ("forgotten", "en"): "Closed at 26 Nov, 18:54: a person removed the device from the monitor."
    " It had been down since 26 Nov, 18:33 (21 minutes).",
    ("forgotten", "ru"): "Закрыто: 26 нояб., 18:54 — устройство удалено из мониторинга вручную."
    " Простой до закрытия: 21 минута (с 26 нояб., 18:33).",
    ("forgotten", "kk"): "Жабылды: 26 қар., 18:54 — құрылғы мониторингтен қолмен алынып"
    " тасталды. Оған дейінгі тоқтау ұзақтығы: 21 минут (басталуы: 26 қар., 18:33).",
    ("unowned", "en"): "Closed at 26 Nov, 18:54: another monitor instance watches the device"
    " now. It had been down since 26 Nov, 18:33 (21 minutes).",
    ("unowned", "ru"): "Закрыто: 26 нояб., 18:54 — за устройством теперь следит другой"
    " экземпляр системы мониторинга. Простой до закрытия: 21 минута (с 26 нояб., 18:33).",
    ("unowned", "kk"): "Жабылды: 26 қар., 18:54 — құрылғыны енді мониторинг жүйесінің басқа"
    " данасы бақылайды. Оған дейінгі тоқтау ұзақтығы: 21 минут (басталуы: 26 қар., 18:33).",
}
CLOSED_HEADLINES = {"en": "☑️ CLOSED", "ru": "☑️ ЗАКРЫТО", "kk": "☑️ ЖАБЫЛДЫ"}


@pytest.mark.parametrize(("resolution", "lang"), list(CLOSED))
def test_an_alert_closed_by_a_person_or_a_handover_does_not_say_recovered(
    resolution: str, lang: str
) -> None:
    p = {**payload("no_data"), "resolution": resolution}
    title, body = render(
        {"event": "resolved", "payload": p, "language": lang, "facts": FACTS["no_data"]}, ZONE
    )
    assert title.startswith(CLOSED_HEADLINES[lang])
    assert body.splitlines()[1] == CLOSED[resolution, lang]


def test_a_closed_threshold_alert_says_no_downtime() -> None:
    p = {**payload("threshold:hot"), "resolution": "forgotten"}
    data = {"event": "resolved", "payload": p, "facts": FACTS["threshold:hot"]}
    said = {lang: render({**data, "language": lang}, ZONE)[1].splitlines()[1] for lang in CAUSE}
    assert said["ru"].endswith(" Длительность до закрытия: 21 минута (с 26 нояб., 18:33).")
    assert said["kk"].endswith(" Оған дейінгі ұзақтығы: 21 минут (басталуы: 26 қар., 18:33).")
    assert said["en"].endswith(" It had been open since 26 Nov, 18:33 (21 minutes).")


@pytest.mark.parametrize("lang", ["en", "ru", "kk"])
@pytest.mark.parametrize("resolution", [None, "forgotten", "unowned"])
def test_an_alert_that_is_over_gives_its_summary_as_the_cause(
    lang: str, resolution: str | None
) -> None:
    """Item 14: under ✅ the present-tense summary ("нет данных более 1 минуты") reads, in a
    phone's preview, as if it were still so: it is the cause now."""
    p = {**payload("no_data"), **({"resolution": resolution} if resolution else {})}
    data = {"event": "resolved", "payload": p, "language": lang, "facts": FACTS["no_data"]}
    first = render(data, ZONE)[1].splitlines()[0]
    assert first == f"{CAUSE[lang]} {EXPECTED[lang]['no_data']}"


@pytest.mark.parametrize(
    ("op", "lang", "firing", "repeat"),
    [
        (">", "ru", "🔴 ПРЕВЫШЕН ПОРОГ", "🔴 ПОРОГ ВСЁ ЕЩЁ ПРЕВЫШЕН"),
        (">=", "kk", "🔴 ШЕКТЕН АСТЫ", "🔴 ӘЛІ ДЕ ШЕКТЕН АСЫП ТҰР"),
        ("<", "ru", "🔴 ПОКАЗАТЕЛЬ ВНЕ НОРМЫ", "🔴 ПОКАЗАТЕЛЬ ВСЁ ЕЩЁ ВНЕ НОРМЫ"),
        ("==", "kk", "🔴 КӨРСЕТКІШ ҚАЛЫПТАН ТЫС", "🔴 КӨРСЕТКІШ ӘЛІ ДЕ ҚАЛЫПТАН ТЫС"),
        ("<=", "en", "🔴 OUTSIDE THE LIMIT", "🔴 STILL OUTSIDE THE LIMIT"),
    ],
)
def test_a_threshold_is_a_reading_past_its_limit_not_equipment_down(
    op: str, lang: str, firing: str, repeat: str
) -> None:
    """Item 4: a scanner at 61.5 °C was working; "exceeded" only for a limit from above
    (a supply voltage below its limit is not "превышен"), and no word of downtime."""
    facts = {**FACTS["threshold:hot"], "op": op}
    said = {
        event: render(
            {"event": event, "payload": payload("threshold:hot"), "language": lang, "facts": facts},
            ZONE,
        )
        for event in ("firing", "repeat", "resolved")
    }
    assert said["firing"][0].startswith(f"{firing}: xs-01")
    assert said["repeat"][0].startswith(f"{repeat}: xs-01")
    assert said["resolved"][0].startswith(LIMIT_HEADLINES[lang]["resolved"])
    assert said["resolved"][1].splitlines()[1] == LIMIT_BACK[lang]
    for title, body in said.values():
        for downtime in ("РАБОТАЕТ", "Простой", "ЖҰМЫС", "Тоқтау", "DOWN", " down"):
            assert downtime not in title + body, (downtime, title, body)


def own(rule: str, **facts: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One of the monitor's own alerts, as the engine makes it (site and area "*")."""
    p = {**payload(rule), "site": "*", "area": "*", "kind": "monitor", "device": "collector-1"}
    return {**p, "severity": "warning"}, facts


OWN = {
    "ru": {
        "unreachable": "система мониторинга collector-1 не может подключиться к MQTT-брокеру:"
        " инциденты по оборудованию приостановлены",
        "deaf": "система мониторинга collector-1 подключена к MQTT-брокеру, но не получает от"
        " него сообщений: инциденты по оборудованию приостановлены",
        "spool": "система мониторинга collector-1: буфер на диске заполнен на 83 %, данные"
        " ждут записи в базу данных (InfluxDB); когда буфер заполнится, новые данные будут"
        " ждать на MQTT-брокере",
        "state_dir": "система мониторинга collector-1 не может вести запись в свой каталог"
        " состояния (state_dir): инциденты, отметки о принятии в работу и периоды"
        " техобслуживания до восстановления записи хранятся только в памяти",
    },
    "kk": {
        "unreachable": "collector-1 мониторинг жүйесі MQTT брокеріне қосыла алмайды: жабдық"
        " инциденттері уақытша тоқтатылды",
        "deaf": "collector-1 мониторинг жүйесі MQTT брокеріне қосылған, бірақ одан хабарлар"
        " келмейді: жабдық инциденттері уақытша тоқтатылды",
        "spool": "collector-1 мониторинг жүйесі: дискідегі буфер 83 % толды, деректер"
        " дерекқорға (InfluxDB) жазылуын күтуде; буфер толық толғанда жаңа деректер MQTT"
        " брокерінде күтеді",
        "state_dir": "collector-1 мониторинг жүйесі күй каталогына (state_dir) жаза алмайды:"
        " инциденттер, қабылдау белгілері және техникалық қызмет көрсету кезеңдері жазу"
        " қалпына келгенше тек жадта сақталады",
    },
}
OWN_ALERTS = {
    "unreachable": own("monitor_broker_down", connected=False),
    "deaf": own("monitor_broker_down", connected=True),
    "spool": own("monitor_spool_high", fill=0.834),
    "state_dir": own("monitor_state_dir"),
}


@pytest.mark.parametrize("lang", ["ru", "kk"])
@pytest.mark.parametrize("which", list(OWN_ALERTS))
def test_the_monitors_own_alerts_speak_the_crews_language(lang: Language, which: str) -> None:
    """Item 3 (SPEC 5: nothing English but ids): the monitor's own trouble in the route's
    language, its title without a site ("*"), the monitor named as a system (item 13), its
    headlines the monitoring's, not DOWN (item 4)."""
    p, facts = OWN_ALERTS[which]
    assert summary(p, facts, lang) == OWN[lang][which]
    data = {"payload": p, "language": lang, "facts": facts}
    fired = render({**data, "event": "firing"}, ZONE)
    back = render({**data, "event": "resolved"}, ZONE)
    name = {"ru": "Система мониторинга", "kk": "Мониторинг жүйесі"}[lang]
    impaired, restored = {
        "ru": ("🔴 НАРУШЕНА РАБОТА МОНИТОРИНГА", "✅ РАБОТА МОНИТОРИНГА ВОССТАНОВЛЕНА"),
        "kk": ("🔴 МОНИТОРИНГ ЖҰМЫСЫ БҰЗЫЛДЫ", "✅ МОНИТОРИНГ ЖҰМЫСЫ ҚАЛПЫНА КЕЛДІ"),
    }[lang]
    assert fired[0] == f"{impaired}: collector-1 ({name})"
    assert back[0] == f"{restored}: collector-1 ({name})"
    assert fired[1].splitlines()[0] == OWN[lang][which]
    assert back[1].splitlines()[1] == LIMIT_BACK[lang]  # no downtime: the monitoring's


def test_english_routes_read_the_monitors_own_technical_summary() -> None:
    p, facts = OWN_ALERTS["deaf"]
    assert summary(p, facts, "en") == "the English summary"  # SPEC 5, as the log says it
    title, body = render({"event": "firing", "payload": p, "language": "en", "facts": facts})
    assert title == "🔴 MONITORING IMPAIRED: collector-1 (Monitor)"
    assert body.splitlines()[0] == "the English summary"
    # an alert opened before its facts were kept: the English summary, as it always was
    assert summary(p, {}, "ru") == "the English summary"


@pytest.mark.parametrize(
    ("lang", "seconds", "since"),
    [
        ("ru", 0, "Начало: 26 нояб., 18:33 (только что)."),
        ("kk", 4.4, "Басталуы: 26 қар., 18:33 (жаңа ғана)."),
        ("en", 0, "Since 26 Nov, 18:33 (just now)."),
        ("ru", 5, "Начало: 26 нояб., 18:33 (5 секунд назад)."),
        ("kk", 5, "Басталуы: 26 қар., 18:33 (5 секунд бұрын)."),
    ],
)
def test_a_moment_ago_is_just_now(lang: str, seconds: float, since: str) -> None:
    """Item 20: never "0 секунд назад"."""
    data = {"event": "firing", "payload": payload("no_data", seconds), "language": lang}
    assert render(data, ZONE)[1].splitlines()[1] == since


def test_the_english_summary_of_the_contract_is_kept() -> None:
    """SPEC 5: the webhook's ``summary`` is the English one as it was; English routes get
    no ``summary_localized``."""
    assert summary(payload("no_data"), FACTS["no_data"], "en") == "the English summary"
