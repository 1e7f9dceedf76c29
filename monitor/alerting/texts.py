"""What an alert says to a person, in the route's language (issues 16, 21): its summary,
and the title and body of a notification.

SPEC 5's English ``summary`` (the webhook JSON, the ``alerts`` points, the API) does not
change; what people read is composed here, in every language including English, from the
alert's facts: each number, duration and time is a value of a template (never a format),
and the translation says which case it takes (``monitor.i18n``). A ``no_data`` alert says
its limit in the summary ("no data for more than 1 minute") and how long it has lasted on
its own line, never one for the other.

What a notification calls the trouble depends on the rule (issue 21 review): equipment that
is down (``no_data``, ``offline``, ``fault``, ``site_silent``) is DOWN and its time is
downtime; a ``threshold`` is a reading past its limit, and the monitor's own troubles are
the monitoring's, neither of them equipment downtime. Once an alert is over, its summary
(said in the present) is the cause, never news: "Cause: … no data …" under RECOVERED.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, Literal

from monitor.alerting.rules import (
    BROKER_DOWN,
    MONITOR_KIND,
    SITE_KIND,
    SITE_SILENT,
    SPOOL_HIGH,
    STATE_DIR,
    THRESHOLD,
)
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
# What an alert is about: equipment down, a reading past its limit, the monitor itself.
Family = Literal["down", "limit", "monitor"]


def family(alert: dict[str, Any]) -> Family:
    if alert["kind"] == MONITOR_KIND:
        return "monitor"
    if str(alert["rule"]).startswith(f"{THRESHOLD}:"):
        return "limit"
    return "down"


def summary(alert: dict[str, Any], facts: dict[str, Any], language: Language) -> str:
    """``summary_localized`` (SPEC 5): the English ``summary`` as it is for ``en``, else the
    sentence in ``language``; ``alert`` is the webhook payload."""
    if language == "en":
        return str(alert["summary"])
    return sentence(alert, facts, language)


def sentence(alert: dict[str, Any], facts: dict[str, Any], language: Language) -> str:
    """What the alert is about, as a person of ``language`` says it (in the present)."""
    t = texts(language)
    rule = alert["rule"]
    values: dict[str, Any] = {
        "device": alert["device"],
        "kind": t.kind(alert["kind"]),
        "area": alert["area"],
        "site": alert["site"],
    }
    if rule == "no_data" and "timeout_s" in facts:
        return t.fill(
            # TRANSLATORS: %(limit)s is the rule's limit, not the time elapsed (a line of
            # its own says that); a duration takes a case after the colon:
            # %(limit:genitive)s.
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
    if rule == SITE_SILENT and "silent" in facts:
        return t.fill(
            t.gettext(
                "site %(site)s: %(silent:number)s of %(devices)s went silent together"
                " (network link or switch down?)"
            ),
            **values,
            silent=Count(int(facts["silent"]), "device"),
            devices=Count(int(facts["devices"]), "device"),
        )
    if alert["kind"] == MONITOR_KIND and language != "en":
        own = _own(t, rule, alert["device"], facts)
        if own is not None:
            return own
    # English routes read the monitor's own alerts as SPEC 5's summary, with the technical
    # detail (an OS error, the canary's topics) that the log and /health say too
    return str(alert["summary"])


def _own(t: Texts, rule: str, instance: str, facts: dict[str, Any]) -> str | None:
    """One of the monitor's own troubles, as a crew reads it; None for one whose facts are
    not there (an alert opened before they were kept)."""
    if rule == BROKER_DOWN and "connected" in facts:
        if facts["connected"]:
            # TRANSLATORS: crews read this: "monitor" is the software, not a radiation
            # portal monitor (docs/glossary.md: the monitor itself).
            template = t.gettext(
                "monitor %(instance)s is connected to the MQTT broker but hears nothing:"
                " equipment alerts are paused"
            )
        else:
            # TRANSLATORS: crews read this: "monitor" is the software, not a radiation
            # portal monitor (docs/glossary.md: the monitor itself).
            template = t.gettext(
                "monitor %(instance)s cannot reach the MQTT broker: equipment alerts are paused"
            )
        return t.fill(template, instance=instance)
    if rule == SPOOL_HIGH and "fill" in facts:
        return t.fill(
            # TRANSLATORS: %(fill)s is a percentage ("83 %"); when the spool is full the
            # monitor stops taking messages and the broker keeps them.
            t.gettext(
                "monitor %(instance)s: the disk spool is %(fill)s full, data waits to be"
                " written to the database (InfluxDB); when the spool is full, new data"
                " waits on the MQTT broker"
            ),
            instance=instance,
            fill=f"{t.number(round(float(facts['fill']) * 100))} %",
        )
    if rule == STATE_DIR:
        return t.fill(
            # TRANSLATORS: state_dir is the setting's name, kept as it is.
            t.gettext(
                "monitor %(instance)s cannot write to its state directory (state_dir):"
                " alerts, acknowledgements and maintenance windows are kept only in memory"
                " until it can"
            ),
            instance=instance,
        )
    return None


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
    kind = family(p)
    shown = "closed" if closed else event
    if p["kind"] == SITE_KIND:  # the alert is the site's: its name, as the language says it
        what = t.fill(t.gettext("site %(site)s"), site=p["site"])
    elif kind == "monitor":  # the monitor's own: every site's, so no site is named
        what = f"{p['device']} ({t.kind(p['kind'])})"
    else:
        where = p["site"] if p["area"] == "*" else f"{p['site']} / {p['area']}"
        what = f"{p['device']} ({t.kind(p['kind'])}, {where})"
    title = f"{ICONS[shown]} {_headline(t, kind, shown, facts)}: {what}"
    said = sentence(p, facts, language)
    if event == "resolved":  # over: what it was about is the cause, not the news
        said = t.fill(t.gettext("Cause: %(summary)s"), summary=said)
    lines = [said]
    since = _when(t.when, p["started_at"], zone)
    lasted = Duration(p["duration_s"])
    back = _when(t.when, p["resolved_at"], zone)
    if closed:
        why = (
            t.gettext("Closed at %(back)s: a person removed the device from the monitor.")
            if resolution == "forgotten"
            else t.gettext("Closed at %(back)s: another monitor instance watches the device now.")
        )
        before = (
            t.gettext("It had been down since %(since)s (%(lasted)s).")
            if kind == "down"
            else t.gettext("It had been open since %(since)s (%(lasted)s).")
        )
        lines.append(t.fill(why, back=back) + " " + t.fill(before, since=since, lasted=lasted))
    elif event == "resolved":
        back_line = (
            t.gettext("Back at %(back)s after %(lasted)s down (since %(since)s).")
            if kind == "down"
            else t.gettext("Back to normal at %(back)s after %(lasted)s (since %(since)s).")
        )
        lines.append(t.fill(back_line, back=back, since=since, lasted=lasted))
    elif t.just_now(p["duration_s"]) is not None:
        lines.append(t.fill(t.gettext("Since %(since)s (just now)."), since=since))
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


def _headline(t: Texts, kind: Family, shown: str, facts: dict[str, Any]) -> str:
    """The title's first words: what happened to what the alert is about. Equipment is
    DOWN and RECOVERED; a reading is over (or outside) its limit and back within it; the
    monitoring is impaired and restored. Escalation, acknowledgement and closing are said
    alike for all."""
    if shown == "escalation":
        return t.pgettext("headline", "ESCALATED")
    if shown == "acknowledged":
        return t.pgettext("headline", "ACKNOWLEDGED")
    if shown == "closed":
        return t.pgettext("headline", "CLOSED")
    if kind == "limit":
        if shown == "resolved":
            return t.pgettext("headline", "BACK WITHIN THE LIMIT")
        if facts.get("op") in (">", ">="):  # a reading above its limit: "exceeded"
            if shown == "repeat":
                return t.pgettext("headline", "STILL OVER THE LIMIT")
            return t.pgettext("headline", "OVER THE LIMIT")
        if shown == "repeat":  # below it, equal or not equal to a value
            return t.pgettext("headline", "STILL OUTSIDE THE LIMIT")
        return t.pgettext("headline", "OUTSIDE THE LIMIT")
    if kind == "monitor":
        if shown == "resolved":
            return t.pgettext("headline", "MONITORING RESTORED")
        if shown == "repeat":
            return t.pgettext("headline", "MONITORING STILL IMPAIRED")
        return t.pgettext("headline", "MONITORING IMPAIRED")
    if shown == "resolved":
        return t.pgettext("headline", "RECOVERED")
    if shown == "repeat":
        return t.pgettext("headline", "STILL DOWN")
    return t.pgettext("headline", "DOWN")


def _test(t: Texts, p: dict[str, Any], data: dict[str, Any]) -> tuple[str, str]:
    """A test message through a route (``monitor notify-test``, SPEC 10): no alert."""
    route = t.fill(t.gettext("route %(route)s"), route=p["route"])
    headline = t.pgettext("headline", "TEST")
    title = f"{ICONS['test']} {headline}: {route}"
    lines = [
        t.gettext("This is a test message, not an alert: it says nothing about the equipment."),
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
