"""The Russian and Kazakh catalogs: complete, compiled, and right where people notice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from monitor.i18n import CASES, LANGUAGES, LOCALE_DIR, texts
from tests.helpers import ROOT

ALL_CASES = set(CASES["en"])

PYBABEL = [sys.executable, "-m", "babel.messages.frontend"]
SHIPPED = [lang for lang in LANGUAGES if lang != "en"]


def catalog(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "monitor.po"


Key = tuple[str | None, str]  # (context, msgid)


def extracted(tmp_path: Path) -> set[Key]:
    """What ``make i18n`` extracts (its keywords: tests and Makefile must agree)."""
    makefile = (ROOT / "Makefile").read_text()
    keywords = re.search(r"^I18N_KEYWORDS := (.*)$", makefile, re.MULTILINE)
    assert keywords is not None
    pot = tmp_path / "monitor.pot"
    extract = [*PYBABEL, "-q", "extract", "-F", "babel.cfg", *keywords.group(1).split()]
    subprocess.run(
        [*extract, "-o", str(pot), "."],
        cwd=ROOT,
        check=True,
    )
    with open(pot, "rb") as f:
        return {key(m) for m in read_po(f) if m.id}


def key(m: Message) -> Key:
    return m.context, m.id if isinstance(m.id, str) else m.id[0]


@pytest.mark.parametrize("lang", SHIPPED)
def test_every_text_the_code_shows_is_translated(lang: str, tmp_path: Path) -> None:
    """Every text, and a counted noun in every case the language has (CASES): a noun in a
    case the language lacks (Kazakh genitive, Russian ablative) is left untranslated, as
    no template of that language may ask for it."""
    with open(catalog(lang), "rb") as f:
        po = read_po(f)
    translated = {}
    for m in po:
        if not m.id:
            continue
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert "fuzzy" not in m.flags, f"{lang}: {key(m)!r} is fuzzy"
        if all(strings):
            translated[key(m)] = strings
            for s in strings:  # the placeholders survive translation
                assert ("%(n)d" in s) == ("%(n)d" in key(m)[1]), f"{lang}: {key(m)!r} -> {s!r}"
    cases = set(CASES[lang])  # type: ignore[index]
    unused = {k for k in extracted(tmp_path) if k[0] in ALL_CASES and k[0] not in cases}
    missing = extracted(tmp_path) - set(translated) - unused
    assert not missing, f"{lang}: untranslated (run make i18n, then translate): {sorted(missing)}"
    assert not unused & set(translated), f"{lang}: a case the language lacks is translated"


@pytest.mark.parametrize("lang", SHIPPED)
def test_the_compiled_catalog_is_the_po(lang: str, tmp_path: Path) -> None:
    with open(catalog(lang), "rb") as f:
        po = read_po(f)
    with open(tmp_path / "monitor.mo", "wb") as f:
        write_mo(f, po)
    committed = catalog(lang).with_suffix(".mo").read_bytes()
    assert (tmp_path / "monitor.mo").read_bytes() == committed, "run make i18n"


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", ["1 minute", "2 minutes", "5 minutes", "21 minutes"]),
        ("ru", ["1 минута", "2 минуты", "5 минут", "21 минута"]),
        ("kk", ["1 минут", "2 минут", "5 минут", "21 минут"]),
    ],
)
def test_durations_as_people_say_them(lang: str, expected: list[str]) -> None:
    t = texts(lang)  # type: ignore[arg-type]
    assert [t.duration(m * 60) for m in (1, 2, 5, 21)] == expected


def test_durations_in_the_case_a_sentence_needs() -> None:
    ru, kk = texts("ru"), texts("kk")
    assert [ru.duration(m * 60, "genitive") for m in (1, 2, 5, 21)] == [
        "1 минуты",
        "2 минут",
        "5 минут",
        "21 минуты",
    ]
    assert [ru.duration(s, "accusative") for s in (1, 21, 22, 60, 3660)] == [
        "1 секунду",
        "21 секунду",
        "22 секунды",
        "1 минуту",
        "1 час 1 минуту",
    ]
    assert ru.duration(3780, "genitive") == "1 часа 3 минут"  # every part in Russian ...
    assert kk.duration(3780, "ablative") == "1 сағат 3 минуттан"  # ... the last in Kazakh
    assert kk.duration(86400, "ablative") == "1 күннен"


def test_values_take_the_case_the_translation_names() -> None:
    from monitor.i18n import Count, Duration

    ru = texts("ru")
    assert ru.fill("более %(x:genitive)s, уже %(x:accusative)s", x=Duration(60)) == (
        "более 1 минуты, уже 1 минуту"
    )
    assert ru.fill("%(n:number)s из %(n:genitive)s", n=Count(21, "device")) == (
        "21 из 21 устройства"
    )
    with pytest.raises(KeyError):  # only a Duration or a Count has cases
        ru.fill("%(name:genitive)s", name="xs-01")


def test_durations_round_to_the_two_largest_units() -> None:
    ru = texts("ru")
    assert ru.duration(3780) == "1 час 3 минуты"
    assert ru.duration(3600 * 5 + 29) == "5 часов"  # seconds do not count after an hour
    assert ru.duration(2 * 86400 + 3 * 3600 + 59 * 60) == "2 дня 4 часа"  # to the hour
    assert ru.duration(21 * 60 + 7) == "21 минута"  # seconds do not count after ten minutes
    assert ru.duration(185) == "3 минуты 5 секунд"
    assert ru.duration(45) == "45 секунд"
    assert texts("en").duration(0) == "0 seconds"


def test_numbers_as_the_language_writes_them() -> None:
    assert texts("ru").number(61.5) == "61,5"
    assert texts("kk").number(99.5, 2) == "99,50"
    assert texts("en").number(61.5) == "61.5"
    assert texts("ru").number("E42") == "E42"  # a device's text stays as it is


def test_times_are_aktau_times_in_the_languages_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # the server's zone does not matter
    ts = 1_795_700_000.0  # 2026-11-26 13:33:20 UTC = 18:33 in Aktau
    assert texts("en").when(ts) == "26 Nov, 18:33"
    assert texts("ru").when(ts) == "26 нояб., 18:33"
    assert texts("kk").when(ts) == "26 қар., 18:33"


def test_kinds_states_severities_and_alert_states_have_names() -> None:
    assert texts("ru").kind("xray_scanner") == "Рентгеновский сканер"
    assert texts("kk").kind("xray_scanner") == "Рентгендік сканер"
    assert texts("kk").state("fault") == "ақау"
    assert texts("ru").kind("unknown_kind") == "unknown_kind"
    assert texts("ru").severity("critical") == "критический"
    assert texts("kk").alert_state("acknowledged") == "қабылданған"
    assert texts("ru").alert_state("firing") == "не принят в работу"


@pytest.mark.parametrize(
    ("lang", "just_now", "five"),
    [
        ("ru", "только что", ("уже 5 секунд", "5 секунд назад")),
        ("kk", "жаңа ғана", ("5 секунд бойы", "5 секунд бұрын")),
        ("en", "just now", ("for 5 seconds", "5 s ago")),
    ],
)
def test_a_moment_ago_is_just_now_on_the_board_and_in_the_cli(
    lang: str, just_now: str, five: tuple[str, str]
) -> None:
    """Review of issue 21, item 20: a tile or an alert that has just changed, a device
    heard a second ago: never "уже 0 секунд", "0 секунд назад", "0 секунд бұрын"."""
    from monitor.cli.remote import _ago
    from monitor.web.api import _for

    for seconds in (0.0, 1.0, 4.4):
        assert _for(seconds, lang) == just_now  # type: ignore[arg-type]
        assert _ago(seconds, lang) == just_now  # type: ignore[arg-type]
    assert (_for(5.0, lang), _ago(5.0, lang)) == five  # type: ignore[arg-type]
