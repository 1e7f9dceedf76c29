"""What an alert says to a person, in the route's language (issue 16): its summary, and
the title and body of a notification. English stays exactly as before (SPEC 5's
``summary`` and the webhook JSON do not change); Russian and Kazakh come from the catalogs
(``monitor/i18n``), with the alert's facts put into them as values, never as format.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from monitor.i18n import ZONE, Language, texts

ICONS = {"firing": "🔴", "repeat": "🔴", "escalation": "🚨", "acknowledged": "👷", "resolved": "✅"}


def summary(alert: dict[str, Any], facts: dict[str, Any], language: Language) -> str:
    """An alert's summary in ``language``; ``alert`` is its webhook payload (SPEC 5)."""
    if language == "en":
        return str(alert["summary"])
    t = texts(language)
    rule = alert["rule"]
    values: dict[str, Any] = {
        "device": alert["device"],
        "kind": t.kind(alert["kind"]),
        "area": alert["area"],
        "site": alert["site"],
    }
    if rule == "no_data" and "timeout_s" in facts:
        values["for"] = t.duration(facts["timeout_s"])
        return t.gettext("%(device)s (%(kind)s, %(area)s) sent no data for %(for)s") % values
    if rule == "offline":
        if facts.get("how") == "state":
            return t.gettext("%(device)s (%(kind)s, %(area)s) reports state offline") % values
        return (
            t.gettext(
                "%(device)s (%(kind)s, %(area)s) is offline: its connection was lost (Last Will)"
            )
            % values
        )
    if rule == "fault":
        if facts.get("code"):
            values["code"] = facts["code"]
            return t.gettext("%(device)s (%(kind)s, %(area)s) reports a fault (code %(code)s)") % (
                values
            )
        return t.gettext("%(device)s (%(kind)s, %(area)s) reports a fault") % values
    if rule.startswith("threshold:") and "metric" in facts:
        values.update(
            metric=facts["metric"],
            value=facts["value"],
            op=facts["op"],
            limit=f"{facts['limit']:g}",
            duration=t.duration(facts["for_s"]),
        )
        return (
            t.gettext(
                "%(device)s (%(kind)s, %(area)s): %(metric)s is %(value)s"
                " (%(op)s %(limit)s) for %(duration)s"
            )
            % values
        )
    if rule == "site_silent" and "silent" in facts:
        values.update(silent=facts["silent"], devices=facts["devices"])
        return (
            t.gettext(
                "site %(site)s: %(silent)d of %(devices)d devices went silent together"
                " (network link or switch down?)"
            )
            % values
        )
    return str(alert["summary"])  # the monitor's own alerts: technical, in English


def render(data: dict[str, Any], zone: tzinfo = ZONE) -> tuple[str, str]:
    """(title, body) of a notification, in the language of its route."""
    language: Language = data.get("language") or "en"
    if language == "en":
        return _render_en(data, zone)
    t = texts(language)
    p, event = data["payload"], data["event"]
    headlines = {
        "firing": t.gettext("DOWN"),
        "repeat": t.gettext("STILL DOWN"),
        "escalation": t.gettext("ESCALATED"),
        "acknowledged": t.gettext("ACKNOWLEDGED"),
        "resolved": t.gettext("RECOVERED"),
    }
    where = p["site"] if p["area"] == "*" else f"{p['site']} / {p['area']}"
    title = f"{ICONS[event]} {headlines[event]}: {p['device']} ({t.kind(p['kind'])}, {where})"
    lines = [summary(p, data.get("facts") or {}, language)]
    since = _when(t.when, p["started_at"], zone)
    lasted = t.duration(p["duration_s"])
    if event == "resolved":
        back = _when(t.when, p["resolved_at"], zone)
        lines.append(
            t.gettext("Back at %(back)s, down since %(since)s (%(lasted)s).")
            % {"back": back, "since": since, "lasted": lasted}
        )
    else:
        lines.append(t.gettext("Since %(since)s (%(ago)s ago).") % {"since": since, "ago": lasted})
    if event == "acknowledged" and data.get("acked_by"):
        lines.append(t.gettext("Acknowledged by %(who)s.") % {"who": data["acked_by"]})
    lines.append(
        t.gettext("Rule %(rule)s, severity %(severity)s, alert %(id)s.")
        % {"rule": p["rule"], "severity": p["severity"], "id": p["alert_id"]}
    )
    if event in ("firing", "repeat", "escalation"):
        lines.append(t.gettext("Acknowledge: monitor ack %(id)s") % {"id": p["alert_id"]})
    return title, "\n".join(lines)


def _when(when: Any, ts: str | None, zone: tzinfo) -> str:
    if ts is None:
        return "-"
    return str(when(datetime.fromisoformat(ts).timestamp(), zone))


# -- English, as it always was ------------------------------------------------------------

HEADLINES = {
    "firing": "DOWN",
    "repeat": "STILL DOWN",
    "escalation": "ESCALATED",
    "acknowledged": "ACKNOWLEDGED",
    "resolved": "RECOVERED",
}
KIND_NAMES = {
    "xray_scanner": "X-ray scanner",
    "radiation_portal": "radiation portal",
    "gate_barrier": "gate barrier",
    "anpr_camera": "ANPR camera",
    "weighbridge": "weighbridge",
    "site": "site",
    "monitor": "monitor",
}


def _local(ts: str | None, zone: tzinfo) -> str:
    if ts is None:
        return "-"
    return datetime.fromisoformat(ts).astimezone(zone).strftime("%d.%m %H:%M:%S")


def _render_en(data: dict[str, Any], zone: tzinfo) -> tuple[str, str]:
    from monitor import durations

    p, event = data["payload"], data["event"]
    kind = KIND_NAMES.get(p["kind"], p["kind"])
    where = p["site"] if p["area"] == "*" else f"{p['site']} / {p['area']}"
    title = f"{ICONS[event]} {HEADLINES[event]}: {p['device']} ({kind}, {where})"
    lines = [p["summary"]]
    since = _local(p["started_at"], zone)
    if event == "resolved":
        lines.append(
            f"Back at {_local(p['resolved_at'], zone)}, down since {since}"
            f" ({durations.human(p['duration_s'])})."
        )
    else:
        lines.append(f"Since {since} ({durations.human(p['duration_s'])} ago).")
    if event == "acknowledged" and data.get("acked_by"):
        lines.append(f"Acknowledged by {data['acked_by']}.")
    lines.append(f"Rule {p['rule']}, severity {p['severity']}, alert {p['alert_id']}.")
    if event in ("firing", "repeat", "escalation"):
        lines.append(f"Acknowledge: monitor ack {p['alert_id']}")
    return title, "\n".join(lines)
