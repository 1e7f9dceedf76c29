"""What people read, in their language: English, Russian, Kazakh (issue 16).

Texts are gettext catalogs (``locale/<lang>/LC_MESSAGES/monitor.po``, compiled to ``.mo``
by ``make i18n``, both committed), so plural forms follow each language's rules (Russian
has three: 1 минута, 2 минуты, 5 минут, 21 минута); dates follow the language's CLDR
format (Babel) in Aktau's time (Asia/Aqtau, UTC+5), whatever the server's zone.

Code marks its texts with ``t.gettext("...")``, ``t.ngettext("...", "...", n)`` or, for a
text kept in a table and translated later, ``N_("...")``: that is what extraction finds.
"""

from __future__ import annotations

import gettext
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


def N_(message: str) -> str:
    """gettext's marker: a text kept in a table, translated where it is shown."""
    return message


KINDS = {
    "xray_scanner": N_("X-ray scanner"),
    "radiation_portal": N_("Radiation portal"),
    "gate_barrier": N_("Gate barrier"),
    "anpr_camera": N_("ANPR camera"),
    "weighbridge": N_("Weighbridge"),
    "site": N_("Site"),
    "monitor": N_("Monitor"),
}
STATES = {
    "ready": N_("ready"),
    "busy": N_("busy"),
    "standby": N_("standby"),
    "warming_up": N_("warming up"),
    "maintenance": N_("maintenance"),
    "fault": N_("fault"),
    "offline": N_("offline"),
}


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

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._catalog.ngettext(singular, plural, n) % {"n": n}

    def kind(self, kind: str) -> str:
        return self.gettext(KINDS[kind]) if kind in KINDS else kind

    def state(self, state: str) -> str:
        return self.gettext(STATES[state]) if state in STATES else state

    def duration(self, seconds: float) -> str:
        """As a person says how long: seconds under a minute, minutes and seconds under ten
        minutes, then minutes, hours and minutes, days and hours, each rounded to the
        smaller unit (``45 seconds``, ``3 minutes 5 seconds``, ``21 minutes``, ``1 hour 3
        minutes``, ``2 days 4 hours``)."""
        s = max(0, round(seconds))
        if s < 60:
            return self._seconds(s)
        if s < 600:
            m, rest = divmod(s, 60)
            return self._join(self._minutes(m), self._seconds(rest) if rest else "")
        minutes = round(s / 60)
        if minutes < 60:
            return self._minutes(minutes)
        if minutes < 24 * 60:
            h, m = divmod(minutes, 60)
            return self._join(self._hours(h), self._minutes(m) if m else "")
        d, h = divmod(round(s / 3600), 24)
        return self._join(self._days(d), self._hours(h) if h else "")

    @staticmethod
    def _join(*parts: str) -> str:
        return " ".join(p for p in parts if p)

    def when(self, ts: float, zone: tzinfo = ZONE) -> str:
        """A wall-clock time (in Aktau unless told), as the language writes it."""
        from babel.dates import format_datetime  # only where a time is shown to a person

        moment = datetime.fromtimestamp(ts, zone)
        return format_datetime(moment, "d MMM, HH:mm", tzinfo=zone, locale=self.language)

    def _days(self, n: int) -> str:
        return self.ngettext("%(n)d day", "%(n)d days", n)

    def _hours(self, n: int) -> str:
        return self.ngettext("%(n)d hour", "%(n)d hours", n)

    def _minutes(self, n: int) -> str:
        return self.ngettext("%(n)d minute", "%(n)d minutes", n)

    def _seconds(self, n: int) -> str:
        return self.ngettext("%(n)d second", "%(n)d seconds", n)


@cache
def texts(language: Language) -> Texts:
    return Texts(language)
