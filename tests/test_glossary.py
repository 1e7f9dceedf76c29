"""The catalogs keep to docs/glossary.md: a text that uses a term is translated with the
term chosen there, and no translation uses a word the glossary turned down."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from babel.messages.pofile import read_po

from monitor.alerting.notify import trial_message
from monitor.alerting.texts import render
from monitor.i18n import LOCALE_DIR, ZONE, Language, texts
from monitor.web.board_texts import board_texts
from tests.helpers import ROOT
from tests.test_i18n_sentences import notifications

GLOSSARY = ROOT / "docs" / "glossary.md"
COLUMN = {"ru": 1, "kk": 2}
# Where an English term is an id, not a word: a list of rule ids is kept as it is.
IDS_IN_TEXT = re.compile(r"no_data, offline, fault|\w+_\w+|%\(\w+\)s")


@dataclass(frozen=True)
class Term:
    english: str
    said: dict[str, list[str]]  # language -> the term's forms (alternatives)
    refused: list[str]  # patterns no translation of a text with the term may contain
    alone: bool  # "up (alone)": held where the text is the word itself, not "given up"
    context: str | None = None  # "down [broker]": only the entries of that msgctxt


def terms() -> list[Term]:
    row = r"^\| (?!English|---)(.+?) \| (.+?) \| (.+?) \|(.*)\|$"
    rows = re.findall(row, GLOSSARY.read_text(), re.M)
    out = []
    for english, ru, kk, refused in rows:
        said = {"ru": [s.strip() for s in ru.split("/")], "kk": [s.strip() for s in kk.split("/")]}
        word = english.removesuffix(" (alone)")
        context = re.search(r" \[(\w+)\]$", word)
        if context is not None:
            word = word[: context.start()]
        patterns = [r.strip() for r in refused.split(",") if r.strip()]
        out.append(
            Term(
                word,
                said,
                patterns,
                alone=english.endswith(" (alone)"),
                context=context.group(1) if context else None,
            )
        )
    return out


def stems(phrase: str) -> list[str]:
    """What stays of each word of a term in any of its cases: its start."""
    return [w if len(w) <= 3 else w[: max(3, len(w) - 2)] for w in phrase.lower().split()]


def uses(translation: str, forms: list[str]) -> bool:
    text = translation.lower()
    return any(all(stem in text for stem in stems(form)) for form in forms)


def catalog(lang: str) -> dict[tuple[str | None, str], str]:
    with open(LOCALE_DIR / lang / "LC_MESSAGES" / "monitor.po", "rb") as f:
        po = read_po(f)
    out = {}
    for m in po:
        if not m.id:
            continue
        msgid = m.id if isinstance(m.id, str) else m.id[0]
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if all(strings):
            out[m.context, msgid] = " ".join(strings)
    return out


def mentions(msgid: str, term: str, alone: bool = False) -> bool:
    """Whether an English text uses the term (or its plural); ``alone``: is it."""
    english = IDS_IN_TEXT.sub(" ", msgid)
    if alone:
        return re.sub(r"[^\w ]", "", english).strip().lower() == term
    found = re.search(rf"(?<![\w-]){re.escape(term)}(?:s|es)?(?![\w-])", english, re.IGNORECASE)
    return found is not None


def texts_with(term: Term, lang: str) -> list[tuple[str, str]]:
    """(msgid, translation) of every text that uses ``term`` and no longer term that holds
    it ("maintenance window" speaks for itself, not as "maintenance"); a term of one
    context ("down [broker]") holds the entries of that context, which the other rows of
    its word leave alone."""
    longer = [t for t in terms() if t.english != term.english and term.english in t.english]
    claimed = {
        t.context for t in terms() if t.context and t.english.lower() == term.english.lower()
    }
    return [
        (msgid, translation)
        for (context, msgid), translation in catalog(lang).items()
        if (context == term.context if term.context else context not in claimed)
        and mentions(msgid, term.english, term.alone)
        and not any(mentions(msgid, t.english, t.alone) for t in longer)
    ]


def test_the_glossary_has_the_terms_the_issue_asks_for() -> None:
    english = {t.english for t in terms()}
    assert {"alert", "acknowledge", "outage", "maintenance window"} <= english
    assert {"ready", "busy", "standby", "warming up", "maintenance", "fault", "offline"} <= english
    assert {"xray_scanner"} - english  # kinds are in the catalogs' own entries, below
    assert len(terms()) >= 30


@pytest.mark.parametrize("lang", ["ru", "kk"])
def test_every_text_with_a_term_uses_the_glossarys_word(lang: str) -> None:
    wrong = [
        f"{term.english!r} in {msgid!r}: {translation!r}"
        for term in terms()
        for msgid, translation in texts_with(term, lang)
        if not uses(translation, term.said[lang])
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("lang", ["ru", "kk"])
def test_no_translation_uses_a_word_the_glossary_turned_down(lang: str) -> None:
    wrong = [
        f"{pattern!r} ({term.english}) in {translation!r}"
        for term in terms()
        for pattern in term.refused
        for _, translation in texts_with(term, lang)
        if re.search(pattern, translation, re.IGNORECASE)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_checks_catch_a_wrong_word() -> None:
    """The holding itself: the old catalog's words fail it."""
    alert = next(t for t in terms() if t.english == "alert")
    assert not uses("Открытые тревоги", alert.said["ru"])
    assert uses("Активные инциденты", alert.said["ru"])
    ack = next(t for t in terms() if t.english == "acknowledge")
    assert any(re.search(p, "Жұмысқа алу", re.IGNORECASE) for p in ack.refused)
    window = next(t for t in terms() if t.english == "maintenance window")
    assert not uses("Қызмет көрсету терезелері", window.said["kk"])
    maintenance = next(t for t in terms() if t.english == "maintenance")
    assert any(re.search(p, "на обслуживании", re.IGNORECASE) for p in maintenance.refused)
    assert not any(re.search(p, "на техобслуживании", re.IGNORECASE) for p in maintenance.refused)
    assert mentions("Open alerts", "alert") and not mentions("no_data, offline, fault", "fault")
    assert mentions("%(n)s up", "up", alone=True) and not mentions("given up", "up", alone=True)
    # the review of issue 21: the words it found wrong fail the rows that hold them now
    by_word = {(t.english, t.context): t for t in terms()}
    truck = by_word["truck", None]
    assert any(re.search(p, "Бүгінгі жүк көліктері") for p in truck.refused)
    assert uses("Бүгінгі көліктер", truck.said["kk"])
    monitor = by_word["monitor", None]
    assert any(re.search(p, "Монитор", re.IGNORECASE) for p in monitor.refused)
    assert not any(re.search(p, "Система мониторинга", re.IGNORECASE) for p in monitor.refused)
    outages = by_word["outages", None]
    assert not uses("простои", outages.said["ru"]) and not uses("тоқтаулар", outages.said["kk"])
    rejected = by_word["rejected", None]
    assert any(re.search(p, "по причинам отказа") for p in rejected.refused)
    assert any(re.search(p, "бас тарту себептері") for p in rejected.refused)
    broker_down = by_word["down", "broker"]
    assert texts_with(broker_down, "ru") == [("DOWN", "НЕТ СВЯЗИ")]
    assert any(re.search(p, "НЕ РАБОТАЕТ", re.IGNORECASE) for p in broker_down.refused)
    assert ("DOWN", "НЕТ СВЯЗИ") not in texts_with(by_word["down", None], "ru")
    connected = by_word["connected", "broker"]
    assert any(re.search(p, "подключён") for p in connected.refused)
    assert any(re.search(p, "қосулы") for p in connected.refused)


# «монитор» alone: at a customs post, a radiation portal monitor (the kind's own name)
MONITOR_ALONE = re.compile(r"(?<![\w-])монитор(?!инг)\w*", re.IGNORECASE)
PORTAL = re.compile(r"портальный монитор|порталдық монитор", re.IGNORECASE)


def what_crews_read(lang: Language) -> list[str]:
    """Every notification (every rule, the monitor's own too, every event, closed), the
    test message, and every word of the status board."""
    said = [*notifications(lang, 21 * 60, 21)]
    for board in (None, "https://monitor.aktau.example.kz/"):
        data = trial_message("crew", lang, "collector-1", "Айгерим", 0.0, board)
        said.extend(render(data, ZONE))
    for group in board_texts(texts(lang)).values():
        if isinstance(group, dict):
            said.extend(str(v) for v in group.values())
    return said


@pytest.mark.parametrize("lang", ["ru", "kk"])
def test_crews_read_the_monitor_as_a_system_operators_as_the_monitor(lang: Language) -> None:
    """docs/glossary.md, the monitor itself: what a crew reads never says «монитор» but for
    a radiation portal; the operators' boards and the CLI name the program they run."""
    wrong = sorted(
        {text for text in what_crews_read(lang) if MONITOR_ALONE.search(PORTAL.sub("", text))}
    )
    assert not wrong, "\n".join(wrong[:10])
    said = catalog(lang)
    for msgid in ("Monitor health", "cannot reach the monitor at %(url)s: "):
        assert MONITOR_ALONE.search(said[None, msgid]), (msgid, said[None, msgid])
