"""The status board's words, for ``GET /api/i18n``: the board asks for them in the chosen
language and redraws without a reload. Marked with ``N_`` for ``make i18n``.

A word the board puts beside a number is a template with the number's place in it
(``%(n)s up``; Russian ``работают: %(n)s``), so each language puts it where no agreement is
needed; ``board.js`` only substitutes. Phrases that need a case (how long a device has
been in its state) are composed by the API (``for_phrase``), where the case forms are.
"""

from __future__ import annotations

from monitor.i18n import ALERT_STATES, KINDS, N_, SEVERITIES, STATES, Texts

WORDS = {
    "page_title": N_("Equipment status — customs post"),  # the browser tab's
    "title": N_("Inspection equipment"),
    "up": N_("up"),
    "down": N_("down"),
    "pending": N_("pending"),
    "maintenance": N_("maintenance"),
    "waiting": N_("waiting for data"),
    "open_alerts": N_("Open alerts"),
    "acknowledge": N_("Acknowledge"),
    "api_token": N_("API token"),
    "ask_token": N_("API token (asked once, kept in this browser):"),
    "ask_name": N_("Your name:"),
    "trucks_today": N_("Trucks today"),
    "released": N_("released"),
    "median_release": N_("median release time"),
    "p90_release": N_("release time of 9 trucks in 10"),
    "inside": N_("inside the post now"),
    "language": N_("Language"),
    "linked_alert": N_("Alert from the link"),
    "close": N_("Close"),
    "link": N_("connection to the monitor"),  # the dot's tooltip: green, or red when lost
    # who acknowledged, for someone who gave no name
    "board_name": N_("status board"),
}
# board.js fills %(n)s, %(who)s, %(time)s, %(id)s with the value; nothing else.
TEMPLATES = {
    "n_up": N_("%(n)s up"),
    "n_down": N_("%(n)s down"),
    "n_maintenance": N_("%(n)s in maintenance"),
    "acknowledged_by": N_("acknowledged by %(who)s"),
    "updated": N_("updated %(time)s"),
    "unreachable": N_("monitor unreachable, trying again in a few seconds"),
    "linked_unknown": N_("This monitor knows no alert %(id)s"),
}
REASONS = {
    "no_data": N_("no data"),
    "offline": N_("offline"),
    "fault": N_("fault"),
    "maintenance": N_("maintenance"),
}


def board_texts(t: Texts) -> dict[str, object]:
    return {
        "language": t.language,
        "words": {key: t.gettext(text) for key, text in {**WORDS, **TEMPLATES}.items()},
        "kinds": {kind: t.gettext(text) for kind, text in KINDS.items()},
        "states": {state: t.gettext(text) for state, text in STATES.items()},
        "reasons": {reason: t.gettext(text) for reason, text in REASONS.items()},
        "severities": {s: t.gettext(text) for s, text in SEVERITIES.items()},
        "alert_states": {s: t.gettext(text) for s, text in ALERT_STATES.items()},
    }
