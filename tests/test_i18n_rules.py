"""The rule checkers of tests/i18n_rules.py on sentences a native speaker would and would
not write: each must pass the good ones and catch the bad ones, or it proves nothing."""

from __future__ import annotations

import pytest

from tests.i18n_rules import (
    digit_suffixes,
    english_words,
    kazakh_problems,
    kk_ablative,
    ru_expected,
    russian_problems,
)

RUSSIAN_GOOD = [
    "нет данных более 1 минуты",
    "нет данных более 21 минуты",
    "нет данных более 2 минут",
    "нет данных более 11 минут",
    "нет данных более 1 часа 3 минут",
    "пропала связь с 5 из 21 устройства",
    "пропала связь с 3 из 6 устройств",
    "из 1 устройства",
    "Начало: 26 нояб., 18:33 (21 минуту назад).",
    "Начало: 26 нояб., 18:33 (1 час 1 минуту назад).",
    "уже 1 минуту",
    "уже 22 минуты",
    "уже 5 минут",
    "уже 1 час",
    "через 1 секунду",
    "Простой: 21 минута (с 26 нояб., 18:33).",
    "Простой: 2 дня 4 часа.",
    "время выпуска 9 из 10 грузовиков",
    "обновлено: 18:33:20",
    "detector_temp_c = 61,5 (порог: > 55) дольше 5 минут",
    "0 секунд",
    "1000 устройств, 1001 устройство, 1002 устройства",
]
RUSSIAN_BAD = [
    "нет данных уже 1 минута",  # the old no_data line: accusative after уже
    "из 21 устройств",  # the old site_silent line: genitive singular after из 21
    "более 1 минута",
    "более 5 минуты",
    "более 1 часа 3 минуты",  # the whole compound takes the case
    "21 минута назад",
    "уже 21 секунда",
    "Простой: 21 минут",
    "5 устройство",
    "2 грузовиков",
    "1001 устройств",
]


@pytest.mark.parametrize("text", RUSSIAN_GOOD)
def test_russian_checker_passes_what_is_right(text: str) -> None:
    assert russian_problems(text) == []


@pytest.mark.parametrize("text", RUSSIAN_BAD)
def test_russian_checker_catches_what_is_wrong(text: str) -> None:
    assert russian_problems(text), text


def test_russian_forms_by_number_and_case() -> None:
    assert [ru_expected(n, "минута", "nominative") for n in (1, 2, 5, 11, 21, 22, 25)] == [
        "минута",
        "минуты",
        "минут",
        "минут",
        "минута",
        "минуты",
        "минут",
    ]
    assert [ru_expected(n, "минута", "genitive") for n in (1, 2, 5, 21)] == [
        "минуты",
        "минут",
        "минут",
        "минуты",
    ]
    assert [ru_expected(n, "секунда", "accusative") for n in (1, 2, 5, 21)] == [
        "секунду",
        "секунды",
        "секунд",
        "секунду",
    ]
    assert ru_expected(1, "час", "accusative") == "час"  # masculine: as the nominative


KAZAKH_GOOD = [
    "xs-01 (Рентгендік сканер, inspection-1): 1 минуттан астам деректер жоқ",
    "2 сағат 5 минуттан астам",
    "3 күннен бері",
    "Басталуы: 26 қар., 18:33 (21 минут бұрын).",
    "бір мезетте 5 құрылғыдан деректер келмей қалды, алаңда барлығы 6 құрылғы",
    "21 секундтан бастап",
    "басынан бастап",  # the possessive's -нан
    "жұмыс істейді: 5",
    "120 мин ішінде шығарылды",
    "көліктердің 90 пайызы шығарылған уақыт",
    "бірнеше секундтан соң қайта қосылады",
]
KAZAKH_BAD = [
    "26 қар., 18:33 бастап",  # the old "since" line: a time cannot carry the ablative
    "18:33-тен бастап",  # ... nor take a suffix on its digits
    "5 құрылғылар үнсіз қалды",
    "3 минуттардан астам",
    "1 минут астам",
    "21 минуттен бастап",  # harmony: минут is back-vowelled
    "3 күнден бері",  # күн ends in н: -нен
    "2 сағатдан бері",  # сағат ends voiceless: -тан
    "6 құрылғының 2-сі",
    "10 көліктің 9-ы",
]


@pytest.mark.parametrize("text", KAZAKH_GOOD)
def test_kazakh_checker_passes_what_is_right(text: str) -> None:
    assert kazakh_problems(text) == []


@pytest.mark.parametrize("text", KAZAKH_BAD)
def test_kazakh_checker_catches_what_is_wrong(text: str) -> None:
    assert kazakh_problems(text), text


def test_kazakh_ablative_by_rule() -> None:
    assert kk_ablative("минут") == {"тан"}
    assert kk_ablative("секунд") == {"тан"}
    assert kk_ablative("күн") == {"нен"}
    assert kk_ablative("сағат") == {"тан"}
    assert kk_ablative("құрылғы") == {"дан", "нан"}
    assert kk_ablative("көлік") == {"тен"}
    assert kk_ablative("жыл") == {"дан"}


def test_suffixes_on_digits() -> None:
    assert digit_suffixes("6 құрылғының 2-сі, 18:33-тен, 90 %-ы") == ["2-сі", "33-тен", "90 %-ы"]
    assert digit_suffixes("xs-01, inspection-1, 18:33, 2026-11-26") == []


def test_english_words_beyond_ids() -> None:
    assert english_words("Правило: no_data; инцидент: a1b2c3; monitor ack a1b2c3") == []
    assert english_words("xs-01 (Рентгеновский сканер, inspection-1)") == []
    assert english_words("площадка aktau", allowed={"aktau"}) == []
    assert english_words("уровень: critical; last seen 21 min") == [
        "critical",
        "last",
        "seen",
        "min",
    ]
    assert english_words("состояние: open") == ["open"]
    assert english_words("Токен API (HTTP 404)") == []
    assert english_words("по каналам: /metrics, monitor_notifications_total.") == []
