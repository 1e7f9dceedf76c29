"""The Russian and Kazakh catalogs: complete, compiled, and right where people notice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from monitor.i18n import LANGUAGES, LOCALE_DIR, texts
from tests.helpers import ROOT

PYBABEL = [sys.executable, "-m", "babel.messages.frontend"]
SHIPPED = [lang for lang in LANGUAGES if lang != "en"]


def catalog(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "monitor.po"


def extracted(tmp_path: Path) -> set[str]:
    pot = tmp_path / "monitor.pot"
    subprocess.run(
        [*PYBABEL, "-q", "extract", "-F", "babel.cfg", "-k", "N_", "-o", str(pot), "."],
        cwd=ROOT,
        check=True,
    )
    with open(pot, "rb") as f:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}


@pytest.mark.parametrize("lang", SHIPPED)
def test_every_text_the_code_shows_is_translated(lang: str, tmp_path: Path) -> None:
    with open(catalog(lang), "rb") as f:
        po = read_po(f)
    translated = {}
    for m in po:
        if not m.id:
            continue
        key = m.id if isinstance(m.id, str) else m.id[0]
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert "fuzzy" not in m.flags, f"{lang}: {key!r} is fuzzy"
        if all(strings):
            translated[key] = strings
            for s in strings:  # the placeholders survive translation
                assert ("%(n)d" in s) == ("%(n)d" in key), f"{lang}: {key!r} -> {s!r}"
    missing = extracted(tmp_path) - set(translated)
    assert not missing, f"{lang}: untranslated (run make i18n, then translate): {sorted(missing)}"


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


def test_durations_round_to_the_two_largest_units() -> None:
    ru = texts("ru")
    assert ru.duration(3780) == "1 час 3 минуты"
    assert ru.duration(3600 * 5 + 29) == "5 часов"  # seconds do not count after an hour
    assert ru.duration(2 * 86400 + 3 * 3600 + 59 * 60) == "2 дня 4 часа"  # to the hour
    assert ru.duration(21 * 60 + 7) == "21 минута"  # seconds do not count after ten minutes
    assert ru.duration(185) == "3 минуты 5 секунд"
    assert ru.duration(45) == "45 секунд"
    assert texts("en").duration(0) == "0 seconds"


def test_times_are_aktau_times_in_the_languages_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # the server's zone does not matter
    ts = 1_795_700_000.0  # 2026-11-26 13:33:20 UTC = 18:33 in Aktau
    assert texts("en").when(ts) == "26 Nov, 18:33"
    assert texts("ru").when(ts) == "26 нояб., 18:33"
    assert texts("kk").when(ts) == "26 қар., 18:33"


def test_kinds_and_states_have_names() -> None:
    assert texts("ru").kind("xray_scanner") == "Рентгеновский сканер"
    assert texts("kk").kind("xray_scanner") == "Рентгендік сканер"
    assert texts("kk").state("fault") == "ақау"
    assert texts("ru").kind("unknown_kind") == "unknown_kind"
