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
        """As a person says how long: the two largest units, rounded to the smaller one
        (``1 hour 3 minutes``, ``21 minutes``, ``45 seconds``, ``2 days 3 hours``)."""
        s = max(0, round(seconds))
        days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
        if days:
            parts = [self._days(days), self._hours(hours) if hours else ""]
        elif hours:
            parts = [self._hours(hours), self._minutes(minutes) if minutes else ""]
        elif minutes:
            seconds_left = s % 60
            parts = [self._minutes(minutes), self._seconds(seconds_left) if seconds_left else ""]
        else:
            parts = [self._seconds(s)]
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
