"""What an alert says to a person, in the route's language (issues 16, 21): its summary,
and the title and body of a notification.

SPEC 5's English ``summary`` (the webhook JSON, the ``alerts`` points, the API) does not
change; what people read is composed here, in every language including English, from the
alert's facts: each number, duration and time is a value of a template (never a format),
and the translation says which case it takes (``monitor.i18n``). A ``no_data`` alert says
its limit in the summary ("no data for more than 1 minute") and how long it has lasted on
its own line, never one for the other.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from monitor.i18n import ZONE, Count, Duration, Language, Texts, texts

ICONS = {
    "firing": "🔴",
    "repeat": "🔴",
    "escalation": "🚨",
    "acknowledged": "👷",
    "resolved": "✅",
    "closed": "☑️",
    "test": "🧪",
}


def summary(alert: dict[str, Any], facts: dict[str, Any], language: Language) -> str:
    """``summary_localized`` (SPEC 5): the English ``summary`` as it is for ``en``, else the
    sentence in ``language``; ``alert`` is the webhook payload."""
    if language == "en":
        return str(alert["summary"])
    return sentence(alert, facts, language)


def sentence(alert: dict[str, Any], facts: dict[str, Any], language: Language) -> str:
    """What the alert is about, as a person of ``language`` says it; the monitor's own
    alerts keep their technical English summary."""
    t = texts(language)
    rule = alert["rule"]
    values: dict[str, Any] = {
        "device": alert["device"],
        "kind": t.kind(alert["kind"]),
        "area": alert["area"],
        "site": alert["site"],
    }
    if rule == "no_data" and "timeout_s" in facts:
        # TRANSLATORS: %(limit)s is the rule's limit, not the time elapsed (a line of its
        # own says that); a duration takes a case after the colon: %(limit:genitive)s.
        return t.fill(
            t.gettext("%(device)s (%(kind)s, %(area)s): no data for more than %(limit)s"),
            **values,
            limit=Duration(facts["timeout_s"]),
        )
    if rule == "offline":
        if facts.get("how") == "state":
            return t.fill(
                t.gettext("%(device)s (%(kind)s, %(area)s) reported the state offline"),
                **values,
            )
        return t.fill(
            t.gettext("%(device)s (%(kind)s, %(area)s) is offline: its connection was lost"),
            **values,
        )
    if rule == "fault":
        if facts.get("code"):
            return t.fill(
                t.gettext("%(device)s (%(kind)s, %(area)s) reports a fault (code %(code)s)"),
                **values,
                code=facts["code"],
            )
        return t.fill(t.gettext("%(device)s (%(kind)s, %(area)s) reports a fault"), **values)
    if rule.startswith("threshold:") and "metric" in facts:
        return t.fill(
            t.gettext(
                "%(device)s (%(kind)s, %(area)s): %(metric)s is %(value)s"
                " (limit %(op)s %(limit)s) for more than %(for)s"
            ),
            **values,
            metric=facts["metric"],
            value=t.number(facts["value"]),
            op=facts["op"],
            limit=t.number(facts["limit"]),
            **{"for": Duration(facts["for_s"])},
        )
    if rule == "site_silent" and "silent" in facts:
        return t.fill(
            t.gettext(
                "site %(site)s: %(silent:number)s of %(devices)s went silent together"
                " (network link or switch down?)"
            ),
            **values,
            silent=Count(int(facts["silent"]), "device"),
            devices=Count(int(facts["devices"]), "device"),
        )
    return str(alert["summary"])  # the monitor's own alerts: technical, in English


def render(data: dict[str, Any], zone: tzinfo = ZONE) -> tuple[str, str]:
    """(title, body) of a notification, in the language of its route (English without)."""
    language: Language = data.get("language") or "en"
    t = texts(language)
    p, event = data["payload"], data["event"]
    if event == "test":
        return _test(t, p, data)
    facts = data.get("facts") or {}
    resolution = p.get("resolution") or facts.get("resolution")
    closed = event == "resolved" and resolution in ("forgotten", "unowned")
    headlines = {
        "firing": t.pgettext("headline", "DOWN"),
        "repeat": t.pgettext("headline", "STILL DOWN"),
        "escalation": t.pgettext("headline", "ESCALATED"),
        "acknowledged": t.pgettext("headline", "ACKNOWLEDGED"),
        "resolved": t.pgettext("headline", "RECOVERED"),
        "closed": t.pgettext("headline", "CLOSED"),
    }
    shown = "closed" if closed else event
    if p["kind"] == "site":  # the alert is the site's: its name, as the language says it
        what = t.fill(t.gettext("site %(site)s"), site=p["site"])
    else:
        where = p["site"] if p["area"] == "*" else f"{p['site']} / {p['area']}"
        what = f"{p['device']} ({t.kind(p['kind'])}, {where})"
    title = f"{ICONS[shown]} {headlines[shown]}: {what}"
    lines = [sentence(p, facts, language)]
    since = _when(t.when, p["started_at"], zone)
    lasted = Duration(p["duration_s"])
    back = _when(t.when, p["resolved_at"], zone)
    if closed and resolution == "forgotten":
        lines.append(
            t.fill(
                t.gettext(
                    "Closed at %(back)s: a person removed the device from the monitor."
                    " It had been down since %(since)s (%(lasted)s)."
                ),
                back=back,
                since=since,
                lasted=lasted,
            )
        )
    elif closed:
        lines.append(
            t.fill(
                t.gettext(
                    "Closed at %(back)s: another monitor instance watches the device now."
                    " It had been down since %(since)s (%(lasted)s)."
                ),
                back=back,
                since=since,
                lasted=lasted,
            )
        )
    elif event == "resolved":
        lines.append(
            t.fill(
                t.gettext("Back at %(back)s after %(lasted)s down (since %(since)s)."),
                back=back,
                since=since,
                lasted=lasted,
            )
        )
    else:
        lines.append(
            t.fill(
                # TRANSLATORS: %(since)s is a date and time ("26 Nov, 18:33"): it cannot
                # take a case ending; %(elapsed)s a duration (%(elapsed:accusative)s).
                t.gettext("Since %(since)s (%(elapsed)s ago)."),
                since=since,
                elapsed=lasted,
            )
        )
    if event == "acknowledged" and data.get("acked_by"):
        lines.append(t.fill(t.gettext("Acknowledged by %(who)s."), who=data["acked_by"]))
    lines.append(
        t.fill(
            t.gettext("Rule %(rule)s, severity %(severity)s, alert %(id)s."),
            rule=p["rule"],
            severity=t.severity(p["severity"]),
            id=p["alert_id"],
        )
    )
    url = p.get("url")  # the alert on the status board (http.public_url), if there is one
    if event in ("firing", "repeat", "escalation"):
        if url:  # a link a crew member on a phone can follow, and acknowledge there
            lines.append(t.fill(t.gettext("Acknowledge on the status board: %(url)s"), url=url))
        else:  # without a board people can reach: the command, for whoever has a terminal
            lines.append(t.fill(t.gettext("Acknowledge: monitor ack %(id)s"), id=p["alert_id"]))
    elif url:
        lines.append(t.fill(t.gettext("On the status board: %(url)s"), url=url))
    return title, "\n".join(lines)


def _test(t: Texts, p: dict[str, Any], data: dict[str, Any]) -> tuple[str, str]:
    """A test message through a route (``monitor notify-test``, SPEC 10): no alert."""
    route = t.fill(t.gettext("route %(route)s"), route=p["route"])
    headline = t.pgettext("headline", "TEST")
    title = f"{ICONS['test']} {headline}: {route}"
    lines = [
        t.gettext("This is a test message, not an alert: no equipment is down."),
        t.fill(
            t.gettext("Monitor %(instance)s, route %(route)s, asked by %(who)s."),
            instance=data.get("instance") or p["device"],
            route=p["route"],
            who=data.get("by") or "?",
        ),
    ]
    if p.get("url"):
        lines.append(t.fill(t.gettext("The status board: %(url)s"), url=p["url"]))
    return title, "\n".join(lines)


def _when(when: Any, ts: str | None, zone: tzinfo) -> str:
    if ts is None:
        return "-"
    return str(when(datetime.fromisoformat(ts).timestamp(), zone))
