"""Commands that talk to a running instance through its HTTP API."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

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
from monitor.i18n import N_, Language, texts
from monitor.web.board_texts import REASONS

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
    def __init__(self, config: Path | None, url: str | None) -> None:
        token = os.environ.get("MONITOR_HTTP__TOKEN")
        if url is None:
            cfg = load(config)
            host = "127.0.0.1" if cfg.http.host in ("0.0.0.0", "::") else cfg.http.host
            url = f"http://{host}:{cfg.http.port}"
            if token is None and cfg.http.token is not None:
                token = cfg.http.token.get_secret_value()
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                detail = json.load(e)
            except ValueError:
                detail = {"error": e.reason}
            complain(f"{method} {path}: HTTP {e.code} ", str(detail.get("error")))
            for problem in detail.get("problems", []):
                console(stderr=True).print(text("  ", str(problem)))
            raise typer.Exit(1) from None
        except OSError as e:
            complain(f"cannot reach the monitor at {self.url}: ", str(e))
            raise typer.Exit(1) from None


def _get(config: Path | None, url: str | None, path: str, as_json: bool) -> Any:
    """The API's answer; printed as it is (and None returned) with --json."""
    data = _Client(config, url).call("GET", path)
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


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else durations.brief(seconds)


STATUS_STYLE = {
    "ok": "green",
    "maintenance": "blue",
    "no_data": "red",
    "offline": "red",
    "fault": "red",
}


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
    if (data := _get(config, url, f"/api/devices?lang={chosen}", as_json)) is None:
        return
    t = texts(chosen)
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
        lang=chosen,
    )
    for d in data["devices"]:
        reason = d["reason"] or "waiting"
        style = STATUS_STYLE.get(reason, "yellow")
        updown = t.gettext("up") if d["up"] else t.gettext("down") if d["up"] is False else "?"
        reason_text = t.gettext(REASONS[reason]) if reason in REASONS else reason
        add_row(
            table,
            d["site"],
            d["area"],
            d["device"],
            t.kind(d["kind"]),
            styled(style, updown, f" ({reason_text})"),
            t.state(d["state"]) if d["state"] else "-",
            _age(d["last_seen_age_s"]),
            ", ".join(d["open_alerts"]) or "-",
        )
    show(table)


@devices_app.command("forget")
def devices_forget(
    device: Annotated[str, typer.Argument(help="The device's id")],
    site: Annotated[
        str | None, typer.Option(help="Its site, where the id is at more than one")
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Forget a discovered device that is gone (decommissioned, a test publish): its open
    alerts are resolved and it leaves the board until it speaks again. A registered device
    is removed from the config instead (needs MONITOR_HTTP__TOKEN)."""
    path = f"/api/devices/{urllib.parse.quote(device, safe='')}"
    if site is not None:
        path += "?" + urllib.parse.urlencode({"site": site})
    gone = _Client(config, url).call("DELETE", path)["forgotten"]
    say("forgot ", gone["site"], "/", gone["device"])


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
    if (data := _get(config, url, f"/api/alerts?state={which}&lang={chosen}", as_json)) is None:
        return
    table = new_table(
        N_("alert"),
        N_("state"),
        N_("severity"),
        N_("rule"),
        N_("device"),
        N_("since"),
        N_("for"),
        N_("summary"),
        title=texts(chosen).gettext(N_("Alerts")),
        lang=chosen,
    )
    for a in data["alerts"]:
        add_row(
            table,
            a["alert_id"],
            a["state"],
            a["severity"],
            a["rule"],
            f"{a['device']} ({a['site']}/{a['area']})",
            _aktau(a["started_at"], chosen),
            _age(a["duration_s"]),
            a.get("summary_localized") or a["summary"],
        )
    show(table)


@app.command()
def ack(
    alert_id: str,
    config: ConfigOption = None,
    url: UrlOption = None,
    by: Annotated[str, typer.Option(help="Who takes it.")] = os.environ.get("USER", "cli"),
) -> None:
    """Acknowledge an alert: stops its repeats and escalation (needs MONITOR_HTTP__TOKEN)."""
    a = _Client(config, url).call("POST", f"/api/alerts/{alert_id}/ack", {"by": by})
    say("acknowledged ", a["alert_id"], ": ", a["summary"])


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
    if (data := _get(config, url, "/api/maintenance", as_json)) is None:
        return
    table = new_table(
        N_("id"),
        N_("scope"),
        N_("value"),
        N_("starts"),
        N_("ends"),
        N_("reason"),
        N_("by"),
        title=texts(chosen).gettext(N_("Maintenance windows")),
        lang=chosen,
    )
    for w in data["windows"]:
        add_row(
            table,
            w["id"],
            w["scope"],
            w["value"],
            _aktau(w["starts"], chosen),
            _aktau(w["ends"], chosen),
            w["reason"],
            w["created_by"],
        )
    show(table)


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
) -> None:
    """Add a window (needs MONITOR_HTTP__TOKEN)."""
    body: dict[str, Any] = {
        "scope": scope,
        "value": value,
        "reason": reason,
        "by": os.environ.get("USER", "cli"),
    }
    for key, val in (("duration", duration), ("starts", starts), ("ends", ends), ("site", site)):
        if val is not None:
            body[key] = val
    w = _Client(config, url).call("POST", "/api/maintenance", body)
    say(
        "maintenance ", w["id"], ": ", w["scope"], " ", w["value"], f" {w['starts']} -> {w['ends']}"
    )


@maintenance_app.command("remove")
def maintenance_remove(window_id: str, config: ConfigOption = None, url: UrlOption = None) -> None:
    """Remove a window (needs MONITOR_HTTP__TOKEN)."""
    _Client(config, url).call("DELETE", f"/api/maintenance/{window_id}")
    say("removed ", window_id)
