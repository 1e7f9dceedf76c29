"""``monitor decode``: a dry run of the normalizer on a sample message.

Which route takes the topic (canonical, a profile's name, sparkplug), the device it
resolves to, each reading it makes, or the reason it is rejected: what ``monitor run``
would make of the same message now, from the config alone. Nothing is connected to,
written or quarantined. Several messages go through one normalizer in order, so a
Sparkplug node's births can come before its data by alias.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from monitor.cli.common import ConfigOption, app, complain, load, say, show, styled, text
from monitor.config import CANONICAL_ROUTE, SPARKPLUG_ROUTE
from monitor.model import Reading, key_text
from monitor.normalize.normalizer import Normalizer
from monitor.normalize.reasons import REASONS, Rejected

REJECTED = 1  # the exit code when a message is rejected (2: the config or the arguments)


@dataclass(frozen=True)
class Outcome:
    """One message's dry run."""

    topic: str
    route: str | None
    result: list[Reading] | Rejected
    note: str | None = None  # why no reading came, when none did and nothing was rejected


def read_payload(value: str, stdin: BinaryIO | None = None) -> bytes:
    """``@FILE`` (its bytes: a Sparkplug payload is binary), ``-`` (standard input) or
    the payload itself as text."""
    if value == "-":
        return (stdin or sys.stdin.buffer).read()
    if value.startswith("@"):
        return Path(value[1:]).read_bytes()
    return value.encode()


def dry_run(normalizer: Normalizer, topic: str, payload: bytes, retained: bool) -> Outcome:
    """What the collector's normalizer makes of one message received now."""
    received_ms = int(time.time() * 1000)
    route = normalizer.route_of(topic)
    result = normalizer.normalize(topic, payload, received_ms, retained)
    if isinstance(result, Rejected):
        return Outcome(topic, route, result)
    readings = result if isinstance(result, list) else [result]
    note = None
    if not readings:
        note = "no reading: the message makes nothing to write"
        sp = normalizer.sparkplug
        if route == SPARKPLUG_ROUTE and sp is not None and sp.rebirth_wanted:
            note = (
                "no reading: the edge node was not born in this run, so its data cannot be"
                " read (aliases and datatypes come from its births): give its NBIRTH (and"
                " the device's DBIRTH) first, as earlier --topic/--payload pairs"
            )
        elif route == SPARKPLUG_ROUTE:
            note = "no reading: the message only changes what is known of the edge node"
    return Outcome(topic, route, readings, note)


def _time(ts_ms: int) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reading(normalizer: Normalizer, r: Reading) -> dict[str, Any]:
    d = r.device
    out: dict[str, Any] = {
        "device": {
            "site": d.site,
            "id": d.id,
            "kind": d.kind,
            "area": d.area,
            "registered": d.key in normalizer.registry,
        },
        "channel": r.channel,
        "ts_ms": r.ts_ms,
        "ts": None if r.ts_ms is None else _time(r.ts_ms),
        "fields": r.fields,
        "state": r.state,
    }
    extras = {"online": r.online, "code": r.code, "event_type": r.event_type}
    out.update({k: v for k, v in extras.items() if v is not None})
    flags = {"retained": r.retained, "historical": r.historical, "clock_skew": r.clock_skew}
    out.update({k: v for k, v in flags.items() if v})
    return out


def as_json(normalizer: Normalizer, o: Outcome) -> dict[str, Any]:
    """One message's outcome for scripts (``--json``, one object a line)."""
    out: dict[str, Any] = {"topic": o.topic, "route": o.route}
    if isinstance(o.result, Rejected):
        reason = o.result.reason
        out["rejected"] = {
            "reason": reason,
            "detail": o.result.detail,
            "meaning": REASONS.get(reason, ""),
        }
    else:
        out["readings"] = [_reading(normalizer, r) for r in o.result]
        if o.note:
            out["note"] = o.note
    return out


def _route_text(normalizer: Normalizer, route: str | None) -> str:
    if route is None:
        return "none (no route's pattern matches the topic)"
    if route == SPARKPLUG_ROUTE:
        return "sparkplug (Sparkplug B host application)"
    pattern = next(r.pattern.text for r in normalizer.routes if r.name == route)
    what = "built in" if route == CANONICAL_ROUTE else "profile"
    return f"{route} ({what}: {pattern})"


def _show(normalizer: Normalizer, o: Outcome) -> None:
    """One message's outcome for a person; device-supplied text stays data (``text``)."""
    say(styled("bold", o.topic))
    say("  route     ", _route_text(normalizer, o.route))
    if isinstance(o.result, Rejected):
        reason = o.result.reason
        show(text("  ", styled("bold red", "rejected"), "  ", reason, ": ", o.result.detail))
        meaning = REASONS.get(reason, "")
        if meaning and meaning != o.result.detail:
            say("            (", meaning, ")")
        return
    if o.note:
        say("  ", o.note)
    for r in o.result:
        data = _reading(normalizer, r)
        device = data["device"]
        how = "registered" if device["registered"] else "discovered"
        say(
            "  device    ",
            key_text(r.device.key),
            f": {r.device.kind} in {r.device.area} ({how})",
        )
        if r.ts_ms is None:
            when = "none in the payload: stamped with the receive time"
            if r.clock_skew:
                when = "the payload's is beyond max_clock_skew ahead: the receive time instead"
        else:
            when = f"{data['ts']} ({r.ts_ms} ms)"
        show(text("  ", styled("bold green", "reading"), f"   {r.channel}, time {when}"))
        details = [
            (name, data[name])
            for name in ("state", "online", "code", "event_type", "retained", "historical")
            if data.get(name) is not None
        ]
        for name, value in [*details, *r.fields.items()]:
            say(f"    {name:<22}", json.dumps(value, ensure_ascii=False))


@app.command()
def decode(
    topic: Annotated[
        list[str],
        typer.Option(
            metavar="TOPIC", help="The message's topic (repeatable: several messages, in order)."
        ),
    ],
    payload: Annotated[
        list[str],
        typer.Option(
            metavar="PAYLOAD",
            help="@FILE (its bytes), - (standard input) or the payload as text; one per --topic.",
        ),
    ],
    config: ConfigOption = None,
    retained: Annotated[
        bool, typer.Option("--retained", help="As a retained message (on subscribing).")
    ] = False,
    as_json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per message, for scripts.")
    ] = False,
) -> None:
    """Dry-run the normalizer on a sample message: which route (canonical, a profile,
    sparkplug) takes it, which device it is, each reading, or why it is rejected. Connects
    to nothing. Exit 0: read; 1: rejected; 2: a bad config or argument."""
    if len(topic) != len(payload):
        complain("give one --payload per --topic", f" ({len(topic)} topics, {len(payload)})")
        raise typer.Exit(2)
    if payload.count("-") > 1:
        complain("standard input (--payload -) can be read for one message only")
        raise typer.Exit(2)
    cfg = load(config)
    try:
        payloads = [read_payload(p) for p in payload]
    except OSError as e:
        complain("cannot read the payload: ", f"{e.filename}: {e.strerror}")
        raise typer.Exit(2) from None
    normalizer = Normalizer(cfg)
    outcomes = [dry_run(normalizer, t, p, retained) for t, p in zip(topic, payloads, strict=True)]
    for o in outcomes:
        if as_json_lines:
            print(json.dumps(as_json(normalizer, o), ensure_ascii=False))
        else:
            _show(normalizer, o)
    if any(isinstance(o.result, Rejected) for o in outcomes):
        raise typer.Exit(REJECTED)
