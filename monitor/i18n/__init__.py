"""What people read, in their language: English, Russian, Kazakh (issues 16, 21).

Texts are gettext catalogs (``locale/<lang>/LC_MESSAGES/monitor.po``, compiled to ``.mo``
by ``make i18n``, both committed), so plural forms follow each language's rules (Russian
has three: 1 минута, 2 минуты, 5 минут, 21 минута); dates follow the language's CLDR
format (Babel) in Aktau's time (Asia/Aqtau, UTC+5), whatever the server's zone.

Code marks its texts with ``t.gettext("...")``, ``t.pgettext("context", "...")`` (one
English word that needs two translations), ``t.ngettext(...)`` or, for a text kept in a
table and translated later, ``N_("...")``: that is what extraction finds.

How a sentence is made (issue 21). A number, a duration or a count never lands where a
case ending is needed unless it is inflected by rule: a template receives it as a value
(``Duration``, ``Count``) and the *translation* says which form it needs, by naming a case
after the placeholder: Russian ``нет данных более %(limit:genitive)s`` (более 1 минуты,
более 5 минут), Kazakh ``%(limit:ablative)s астам`` (1 минуттан астам). The noun forms of
each case come from the catalog (``npgettext`` with the case as context, marked ``NP_``),
so the grammar stays with the translation and the code only knows which cases exist.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

Language = Literal["en", "ru", "kk"]
LANGUAGES: tuple[Language, ...] = ("en", "ru", "kk")
ZONE = ZoneInfo("Asia/Aqtau")
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "monitor"

Case = Literal["nominative", "genitive", "accusative", "ablative"]
# The cases a language's templates may ask for; its catalog translates the noun forms of
# these (tests/test_i18n.py), and asking for another is an error, not a silent fallback.
# English nouns do not inflect: every case is the one form.
CASES: dict[Language, tuple[Case, ...]] = {
    "en": ("nominative", "genitive", "accusative", "ablative"),
    "ru": ("nominative", "genitive", "accusative"),
    "kk": ("nominative", "ablative"),
}
# Under this many seconds a moment is "just now" (только что, жаңа ғана): never "0 seconds
# ago" or "for 0 seconds", which no one says.
JUST_NOW_S = 5.0
# Kazakh is agglutinative: a case ending goes on the last word of a noun phrase only
# ("1 сағат 3 минуттан"), where Russian inflects every part ("более 1 часа 3 минут").
PHRASE_FINAL_CASE: frozenset[Language] = frozenset({"kk"})


def N_(message: str) -> str:
    """gettext's marker: a text kept in a table, translated where it is shown."""
    return message


def NP_(context: str, singular: str, plural: str) -> tuple[str, str, str]:
    """A counted noun's forms in one case (``context``), translated where counted."""
    return context, singular, plural


KINDS = {
    "xray_scanner": N_("X-ray scanner"),
    "radiation_portal": N_("Radiation portal"),
    "gate_barrier": N_("Gate barrier"),
    "anpr_camera": N_("ANPR camera"),
    "weighbridge": N_("Weighbridge"),
    "site": N_("Site"),
    # TRANSLATORS: the monitor itself, the kind of its own alerts. At a
    # customs post "монитор" alone is a radiation portal monitor: name the
    # software as a system (docs/glossary.md: the monitor itself).
    "monitor": N_("Monitor"),
}
# Device states stand alone on a tile, beside any kind (a scanner, a camera, the scales):
# the translations are nouns or phrases that need no agreement with it.
STATES = {
    "ready": N_("ready"),
    "busy": N_("busy"),
    "standby": N_("standby"),
    "warming_up": N_("warming up"),
    "maintenance": N_("maintenance"),
    "fault": N_("fault"),
    "offline": N_("offline"),
}
SEVERITIES = {
    "critical": N_("critical"),
    "warning": N_("warning"),
    "info": N_("info"),
}
# An alert's state (SPEC 5) as the crews say it; the words agree with the chosen term for
# an alert (docs/glossary.md).
ALERT_STATES = {
    "firing": N_("not acknowledged"),
    "acknowledged": N_("acknowledged"),
    "resolved": N_("closed"),
}
SCOPES = {
    "device": N_("device"),
    "kind": N_("kind"),
    "area": N_("area"),
    "site": N_("site"),
}

Noun = Literal["second", "minute", "hour", "day", "device", "truck"]
# Every counted noun in every case, written out so that extraction finds each (context,
# singular, plural); a language translates the cases it has (CASES).
NOUNS: dict[Noun, dict[Case, tuple[str, str, str]]] = {
    "second": {
        "nominative": NP_("nominative", "%(n)d second", "%(n)d seconds"),
        "genitive": NP_("genitive", "%(n)d second", "%(n)d seconds"),
        "accusative": NP_("accusative", "%(n)d second", "%(n)d seconds"),
        "ablative": NP_("ablative", "%(n)d second", "%(n)d seconds"),
    },
    "minute": {
        "nominative": NP_("nominative", "%(n)d minute", "%(n)d minutes"),
        "genitive": NP_("genitive", "%(n)d minute", "%(n)d minutes"),
        "accusative": NP_("accusative", "%(n)d minute", "%(n)d minutes"),
        "ablative": NP_("ablative", "%(n)d minute", "%(n)d minutes"),
    },
    "hour": {
        "nominative": NP_("nominative", "%(n)d hour", "%(n)d hours"),
        "genitive": NP_("genitive", "%(n)d hour", "%(n)d hours"),
        "accusative": NP_("accusative", "%(n)d hour", "%(n)d hours"),
        "ablative": NP_("ablative", "%(n)d hour", "%(n)d hours"),
    },
    "day": {
        "nominative": NP_("nominative", "%(n)d day", "%(n)d days"),
        "genitive": NP_("genitive", "%(n)d day", "%(n)d days"),
        "accusative": NP_("accusative", "%(n)d day", "%(n)d days"),
        "ablative": NP_("ablative", "%(n)d day", "%(n)d days"),
    },
    "device": {
        "nominative": NP_("nominative", "%(n)d device", "%(n)d devices"),
        "genitive": NP_("genitive", "%(n)d device", "%(n)d devices"),
        "accusative": NP_("accusative", "%(n)d device", "%(n)d devices"),
        "ablative": NP_("ablative", "%(n)d device", "%(n)d devices"),
    },
    "truck": {
        "nominative": NP_("nominative", "%(n)d truck", "%(n)d trucks"),
        "genitive": NP_("genitive", "%(n)d truck", "%(n)d trucks"),
        "accusative": NP_("accusative", "%(n)d truck", "%(n)d trucks"),
        "ablative": NP_("ablative", "%(n)d truck", "%(n)d trucks"),
    },
}


@dataclass(frozen=True, slots=True)
class Duration:
    """A length of time put into a template; the translation picks its case."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Count:
    """A number of things (``device``, ``truck``) put into a template; the translation
    picks its case, or ``%(name:number)s`` for the bare number."""

    n: int
    noun: Noun


class Forms(Mapping[str, object]):
    """The values of one template, as ``%`` reads them: ``%(name)s`` is a value (a
    ``Duration`` or ``Count`` in the nominative), ``%(name:case)s`` the form a
    translation asks for. Values are never formats: they are only ever substituted."""

    def __init__(self, t: Texts, values: Mapping[str, object]) -> None:
        self._t, self._values = t, values

    def __getitem__(self, key: str) -> object:
        name, _, case = key.partition(":")
        value = self._values[name]
        if isinstance(value, Duration):
            return self._t.duration(value.seconds, self._t.case(case or "nominative"))
        if isinstance(value, Count):
            if case == "number":
                return str(value.n)
            return self._t.quantity(value.n, value.noun, self._t.case(case or "nominative"))
        if case:
            raise KeyError(f"{key}: only a Duration or a Count has cases")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Texts:
    """One language's texts, durations and times."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self._catalog: gettext.NullTranslations = (
            gettext.NullTranslations()
            if language == "en"
            else gettext.translation(DOMAIN, LOCALE_DIR, [language])
        )

    def gettext(self, message: str) -> str:
        return self._catalog.gettext(message)

    def pgettext(self, context: str, message: str) -> str:
        return self._catalog.pgettext(context, message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._catalog.ngettext(singular, plural, n) % {"n": n}

    def fill(self, template: str, /, **values: object) -> str:
        """A translated template with its values (``Duration``, ``Count``, text) in the
        forms the translation names."""
        return template % Forms(self, values)

    def case(self, name: str) -> Case:
        for known in CASES[self.language]:
            if known == name:
                return known
        raise KeyError(f"{self.language} has no case {name!r} (CASES)")

    def quantity(self, n: int, noun: Noun, case: Case = "nominative") -> str:
        """``n`` things in ``case``: ru genitive ``из 21 устройства``, kk ablative
        ``5 құрылғыдан``."""
        context, singular, plural = NOUNS[noun][self.case(case)]
        return self._catalog.npgettext(context, singular, plural, n) % {"n": n}

    def kind(self, kind: str) -> str:
        return self.gettext(KINDS[kind]) if kind in KINDS else kind

    def state(self, state: str) -> str:
        return self.gettext(STATES[state]) if state in STATES else state

    def severity(self, severity: str) -> str:
        return self.gettext(SEVERITIES[severity]) if severity in SEVERITIES else severity

    def alert_state(self, state: str) -> str:
        return self.gettext(ALERT_STATES[state]) if state in ALERT_STATES else state

    def scope(self, scope: str) -> str:
        return self.gettext(SCOPES[scope]) if scope in SCOPES else scope

    def just_now(self, seconds: float) -> str | None:
        """``just now`` (только что, жаңа ғана) for a moment under ``JUST_NOW_S`` ago, where
        a duration would say "0 seconds ago"; None for a longer one."""
        return self.gettext("just now") if seconds < JUST_NOW_S else None

    def duration(self, seconds: float, case: Case = "nominative") -> str:
        """As a person says how long: seconds under a minute, minutes and seconds under ten
        minutes, then minutes, hours and minutes, days and hours, each rounded to the
        smaller unit (``45 seconds``, ``3 minutes 5 seconds``, ``21 minutes``, ``1 hour 3
        minutes``, ``2 days 4 hours``), in ``case``."""
        s = max(0, round(seconds))
        parts: list[tuple[int, Noun]]
        if s < 60:
            parts = [(s, "second")]
        elif s < 600:
            m, rest = divmod(s, 60)
            parts = [(m, "minute"), (rest, "second")]
        elif (minutes := round(s / 60)) < 60:
            parts = [(minutes, "minute")]
        elif minutes < 24 * 60:
            h, m = divmod(minutes, 60)
            parts = [(h, "hour"), (m, "minute")]
        else:
            d, h = divmod(round(s / 3600), 24)
            parts = [(d, "day"), (h, "hour")]
        if len(parts) == 2 and parts[1][0] == 0:
            parts = parts[:1]
        last = len(parts) - 1
        return " ".join(
            self.quantity(
                n,
                noun,
                case if i == last or self.language not in PHRASE_FINAL_CASE else "nominative",
            )
            for i, (n, noun) in enumerate(parts)
        )

    def number(self, value: object, digits: int | None = None) -> str:
        """A measured number as the language writes it (``61,5`` in Russian and Kazakh);
        anything else (a device's text) as it is."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return str(value)
        if self.language == "en":
            return f"{value:.{digits}f}" if digits is not None else f"{value:g}"
        from babel.numbers import format_decimal  # only where a number is shown

        pattern = "#,##0." + "0" * digits if digits else "#,##0.###"
        return str(format_decimal(value, format=pattern, locale=self.language))

    def when(self, ts: float, zone: tzinfo = ZONE) -> str:
        """A wall-clock time (in Aktau unless told), as the language writes it."""
        from babel.dates import format_datetime  # only where a time is shown to a person

        moment = datetime.fromtimestamp(ts, zone)
        return format_datetime(moment, "d MMM, HH:mm", tzinfo=zone, locale=self.language)


@cache
def texts(language: Language) -> Texts:
    return Texts(language)
