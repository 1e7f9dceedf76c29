"""Commands that talk to a running instance through its HTTP API."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor import durations
from monitor.cli.common import (
    ConfigOption,
    LangOption,
    add_row,
    app,
    complain,
    console,
    language,
    load,
    new_table,
    say,
    show,
    styled,
    text,
)
from monitor.i18n import N_, Duration, Language, Texts, texts
from monitor.web.board_texts import REASONS, WORDS

if TYPE_CHECKING:  # rich is imported when something is printed
    from rich.table import Table
    from rich.text import Text

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="MONITOR_URL",
        show_envvar=True,
        help="The instance's HTTP API (default: http.host/port of the config).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON.")]


class _Client:
    def __init__(self, config: Path | None, url: str | None, lang: Language = "en") -> None:
        token = os.environ.get("MONITOR_HTTP__TOKEN")
        if url is None:
            cfg = load(config)
            host = "127.0.0.1" if cfg.http.host in ("0.0.0.0", "::") else cfg.http.host
            url = f"http://{host}:{cfg.http.port}"
            if token is None and cfg.http.token is not None:
                token = cfg.http.token.get_secret_value()
        self.url = url.rstrip("/")
        self.token = token
        self.lang = lang

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        refusals: dict[int, str] | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """The API's answer; a refusal ends the command (exit 1), said in the reader's
        language (``refusals``: what a status means for this command; the API's own reason,
        English, is shown as it is otherwise)."""
        t = texts(self.lang)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                detail = json.load(e)
            except ValueError:
                detail = {"error": e.reason}
            meaning = {
                401: t.gettext("the monitor refused the API token (MONITOR_HTTP__TOKEN)"),
                403: t.gettext("the monitor refused the API token (MONITOR_HTTP__TOKEN)"),
                **(refusals or {}),
            }
            if e.code in meaning:
                complain(meaning[e.code], f" (HTTP {e.code})")
            else:
                complain(
                    t.fill(
                        t.gettext("%(method)s %(path)s: HTTP %(status)s %(error)s"),
                        method=method,
                        path=path,
                        status=e.code,
                        error=str(detail.get("error")),
                    )
                )
            for problem in detail.get("problems", []):
                console(stderr=True).print(text("  ", str(problem)))
            raise typer.Exit(1) from None
        except OSError as e:
            complain(
                t.fill(t.gettext("cannot reach the monitor at %(url)s: "), url=self.url), str(e)
            )
            raise typer.Exit(1) from None


def _get(
    config: Path | None, url: str | None, path: str, as_json: bool, lang: Language = "en"
) -> Any:
    """The API's answer; printed as it is (and None returned) with --json."""
    data = _Client(config, url, lang).call("GET", path)
    if as_json:
        console().print_json(data=data)
        return None
    return data


def _aktau(rfc3339: str | None, lang: Language) -> str:
    """An API time as a person reads it: Aktau time, the language's format."""
    if rfc3339 is None:
        return "-"
    try:
        return texts(lang).when(datetime.fromisoformat(rfc3339).timestamp())
    except (ValueError, OverflowError):  # not a time, or not one Aktau's calendar has
        return rfc3339


def _ago(seconds: float | None, lang: Language) -> str:
    """When a device was last heard: ``21 minutes ago`` (ru ``21 минуту назад``)."""
    t = texts(lang)
    if seconds is None:
        return t.pgettext("last seen", "never")
    if (now := t.just_now(seconds)) is not None:  # not "0 seconds ago"
        return now
    if lang == "en":
        return durations.brief(seconds) + " ago"
    return t.fill(t.gettext("%(duration)s ago"), duration=Duration(seconds))


def _lasted(seconds: float, lang: Language) -> str:
    return durations.brief(seconds) if lang == "en" else texts(lang).duration(seconds)


STATUS_STYLE = {
    "ok": "green",
    "maintenance": "blue",
    "no_data": "red",
    "offline": "red",
    "fault": "red",
}


def devices_table(data: dict[str, Any], lang: Language) -> Table:
    """``monitor devices`` as a table, in ``lang``."""
    t = texts(lang)
    table = new_table(
        N_("site"),
        N_("area"),
        N_("device"),
        N_("kind"),
        N_("status"),
        N_("state"),
        N_("last seen"),
        N_("alerts"),
        title=t.gettext(N_("Devices")),
        lang=lang,
    )
    for d in data["devices"]:
        add_row(
            table,
            d["site"],
            d["area"],
            d["device"],
            t.kind(d["kind"]),
            _status(d, t),
            t.state(d["state"]) if d["state"] else "-",
            _ago(d["last_seen_age_s"], lang),
            ", ".join(d["open_alerts"]) or "-",
        )
    return table


def _status(d: dict[str, Any], t: Texts) -> Text:
    """Up or down and why: ``down (no data)``; a device not heard yet is waiting."""
    reason = d["reason"]
    if d["up"] is None or reason is None:
        return styled("yellow", t.gettext(WORDS["waiting"]))
    updown = t.gettext(WORDS["up"] if d["up"] else WORDS["down"])
    style = STATUS_STYLE.get(reason, "yellow")
    if reason == "ok":
        return styled(style, updown)
    why = t.gettext(REASONS[reason]) if reason in REASONS else reason
    return styled(style, updown, f" ({why})")


def alerts_table(data: dict[str, Any], lang: Language) -> Table:
    """``monitor alerts`` as a table, in ``lang``."""
    t = texts(lang)
    table = new_table(
        N_("alert"),
        N_("state"),
        N_("severity"),
        N_("rule"),
        N_("device"),
        t.pgettext("column", "since"),
        t.pgettext("column", "for"),
        N_("summary"),
        title=t.gettext(N_("Alerts")),
        lang=lang,
    )
    for a in data["alerts"]:
        add_row(
            table,
            a["alert_id"],
            t.alert_state(a["state"]),
            t.severity(a["severity"]),
            a["rule"],
            f"{a['device']} ({a['site']}/{a['area']})",
            _aktau(a["started_at"], lang),
            _lasted(a["duration_s"], lang),
            a.get("summary_text") or a.get("summary_localized") or a["summary"],
        )
    return table


def maintenance_table(data: dict[str, Any], lang: Language) -> Table:
    """``monitor maintenance list`` as a table, in ``lang``."""
    t = texts(lang)
    table = new_table(
        N_("id"),
        N_("scope"),
        N_("value"),
        N_("starts"),
        N_("ends"),
        N_("reason"),
        N_("by"),
        title=t.gettext(N_("Maintenance windows")),
        lang=lang,
    )
    for w in data["windows"]:
        add_row(
            table,
            w["id"],
            t.scope(w["scope"]),
            (t.kind(w["value"]) if w["scope"] == "kind" else w["value"])
            + (f" ({w['site']})" if w.get("site") else ""),  # only at that site
            _aktau(w["starts"], lang),
            _aktau(w["ends"], lang),
            w["reason"],
            w["created_by"],
        )
    return table


devices_app = typer.Typer(
    help="Every device of a running instance: up or down, why, last seen; `forget` one.",
    invoke_without_command=True,
)
app.add_typer(devices_app, name="devices")


@devices_app.callback()
def devices(
    ctx: typer.Context,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Every device of a running instance: up or down, why, last seen."""
    if ctx.invoked_subcommand is not None:
        return
    chosen = language(lang, config)
    if (data := _get(config, url, f"/api/devices?lang={chosen}", as_json, chosen)) is None:
        return
    show(devices_table(data, chosen))


@devices_app.command("forget")
def devices_forget(
    device: Annotated[str, typer.Argument(help="The device's id")],
    site: Annotated[
        str | None, typer.Option(help="Its site, where the id is at more than one")
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    lang: LangOption = None,
) -> None:
    """Forget a discovered device that is gone (decommissioned, a test publish): its open
    alerts are resolved and it leaves the board until it speaks again. A registered device
    is removed from the config instead (needs MONITOR_HTTP__TOKEN)."""
    chosen = language(lang, config)
    path = f"/api/devices/{urllib.parse.quote(device, safe='')}"
    if site is not None:
        path += "?" + urllib.parse.urlencode({"site": site})
    gone = _Client(config, url, chosen).call("DELETE", path)["forgotten"]
    t = texts(chosen)
    say(t.fill(t.gettext("forgot %(site)s/%(device)s"), site=gone["site"], device=gone["device"]))


@app.command()
def alerts(
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
    all_: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    lang: LangOption = None,
) -> None:
    """Open (or all) alerts of a running instance."""
    chosen = language(lang, config)
    which = "all" if all_ else "open"
    path = f"/api/alerts?state={which}&lang={chosen}"
    if (data := _get(config, url, path, as_json, chosen)) is None:
        return
    show(alerts_table(data, chosen))


@app.command()
def ack(
    alert_id: str,
    config: ConfigOption = None,
    url: UrlOption = None,
    by: Annotated[str, typer.Option(help="Who takes it.")] = os.environ.get("USER", "cli"),
    lang: LangOption = None,
) -> None:
    """Acknowledge an alert: stops its repeats and escalation (needs MONITOR_HTTP__TOKEN)."""
    chosen = language(lang, config)
    t = texts(chosen)
    path = f"/api/alerts/{urllib.parse.quote(alert_id, safe='')}/ack?lang={chosen}"
    missing = t.fill(t.gettext("no open alert %(id)s"), id=alert_id)
    a = _Client(config, url, chosen).call("POST", path, {"by": by}, refusals={404: missing})
    summary = a.get("summary_text") or a["summary"]
    say(t.fill(t.gettext("acknowledged %(id)s: %(summary)s"), id=a["alert_id"], summary=summary))


@app.command("notify-test")
def notify_test(
    route: Annotated[str, typer.Option("--route", help="The route's name (notify.routes).")],
    config: ConfigOption = None,
    url: UrlOption = None,
    by: Annotated[str, typer.Option(help="Who asks (shown in the message).")] = os.environ.get(
        "USER", "cli"
    ),
    lang: LangOption = None,
) -> None:
    """Send a test message through a route's channels (escalation channels too) and say,
    per channel, delivered or why not; exit 1 if any was not (needs MONITOR_HTTP__TOKEN)."""
    chosen = language(lang, config)
    t = texts(chosen)
    missing = t.fill(t.gettext("the running monitor has no route %(route)s"), route=route)
    # each channel is tried at once, an SMTP server may take its time: the API waits for all
    answer = _Client(config, url, chosen).call(
        "POST", "/api/notify-test", {"route": route, "by": by}, {404: missing}, timeout=90
    )
    say(t.fill(t.gettext("Test message through route %(route)s:"), route=answer["route"]))
    escalation = t.pgettext("channel", "escalation")
    for c in answer["channels"]:
        channel = c["channel"] + (f" ({escalation})" if c["escalation"] else "")
        if c["delivered"]:
            say("  ", styled("green", t.pgettext("notify-test", "delivered")), "  ", channel)
        else:
            said = t.fill(t.gettext("not delivered: %(error)s"), error=c["error"])
            say("  ", styled("red", said), "  ", channel)
    if answer["failed"]:
        raise typer.Exit(1)


maintenance_app = typer.Typer(
    help="Planned maintenance windows (no notifications).", no_args_is_help=True
)
app.add_typer(maintenance_app, name="maintenance")


@maintenance_app.command("list")
def maintenance_list(
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Maintenance windows, from the config and added at run time."""
    chosen = language(lang, config)
    if (data := _get(config, url, "/api/maintenance", as_json, chosen)) is None:
        return
    show(maintenance_table(data, chosen))


@maintenance_app.command("add")
def maintenance_add(
    scope: Annotated[str, typer.Argument(help="device, kind, area or site")],
    value: Annotated[str, typer.Argument(help="e.g. xs-01, xray_scanner, gate-in, aktau")],
    duration: Annotated[str | None, typer.Option(help="e.g. 2h (from now or --starts)")] = None,
    starts: Annotated[str | None, typer.Option(help="RFC 3339, default now")] = None,
    ends: Annotated[str | None, typer.Option(help="RFC 3339")] = None,
    reason: Annotated[str, typer.Option()] = "",
    site: Annotated[
        str | None, typer.Option(help="Only at this site (a device id or area at two posts)")
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    lang: LangOption = None,
) -> None:
    """Add a window (needs MONITOR_HTTP__TOKEN)."""
    chosen = language(lang, config)
    body: dict[str, Any] = {
        "scope": scope,
        "value": value,
        "reason": reason,
        "by": os.environ.get("USER", "cli"),
    }
    for key, val in (("duration", duration), ("starts", starts), ("ends", ends), ("site", site)):
        if val is not None:
            body[key] = val
    w = _Client(config, url, chosen).call("POST", "/api/maintenance", body)
    t = texts(chosen)
    said = t.fill(
        t.gettext("maintenance %(id)s: %(scope)s %(value)s, %(starts)s – %(ends)s"),
        id=w["id"],
        scope=t.scope(w["scope"]),
        value=t.kind(w["value"]) if w["scope"] == "kind" else w["value"],
        starts=_aktau(w["starts"], chosen),
        ends=_aktau(w["ends"], chosen),
    )
    say(said)


@maintenance_app.command("remove")
def maintenance_remove(
    window_id: str, config: ConfigOption = None, url: UrlOption = None, lang: LangOption = None
) -> None:
    """Remove a window (needs MONITOR_HTTP__TOKEN)."""
    chosen = language(lang, config)
    t = texts(chosen)
    missing = t.fill(t.gettext("no maintenance window %(id)s"), id=window_id)
    _Client(config, url, chosen).call(
        "DELETE", f"/api/maintenance/{window_id}", refusals={404: missing}
    )
    say(t.fill(t.gettext("removed %(id)s"), id=window_id))
