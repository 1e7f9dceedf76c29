"""The status board's words, for ``GET /api/i18n``: the board asks for them in the chosen
language and redraws without a reload. Marked with ``N_`` for ``make i18n``."""

from __future__ import annotations

from monitor.i18n import KINDS, N_, STATES, Texts

WORDS = {
    "title": N_("Inspection equipment"),
    "up": N_("up"),
    "down": N_("down"),
    "pending": N_("pending"),
    "maintenance": N_("maintenance"),
    "waiting": N_("waiting for data"),
    "in_maintenance": N_("in maintenance"),
    "open_alerts": N_("Open alerts"),
    "acknowledge": N_("Acknowledge"),
    "acknowledged_by": N_("acknowledged by"),
    "since": N_("since"),
    "for": N_("for"),
    "updated": N_("updated"),
    "unreachable": N_("monitor unreachable, retrying"),
    "api_token": N_("API token"),
    "ask_token": N_("API token (asked once, kept in this browser):"),
    "ask_name": N_("Your name:"),
    "trucks_today": N_("Trucks today"),
    "released": N_("released"),
    "median_release": N_("median release time"),
    "p90_release": N_("9 in 10 released within"),
    "inside": N_("inside the post now"),
    "language": N_("Language"),
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
        "words": {key: t.gettext(text) for key, text in WORDS.items()},
        "kinds": {kind: t.gettext(text) for kind, text in KINDS.items()},
        "states": {state: t.gettext(text) for state, text in STATES.items()},
        "reasons": {reason: t.gettext(text) for reason, text in REASONS.items()},
    }
