"""Writes grafana/dashboards/<lang>/*.json and the provisioning of their folders:
`python grafana/generate.py` after changing a panel.

The dashboards are data; this file keeps them readable and consistent (one datasource,
the same template variables, the same colours). Each language is a folder of the same
boards (issue 21): one definition, its words through the monitor's catalogs (`t.gettext`,
extracted by `make i18n` like the monitor's own texts), its queries the same in every
language. tests/deploy/test_dashboards.py checks that the committed files are what this
produces and runs every panel's InfluxQL, in every language, against InfluxDB.

What a query returns keeps its name (an alias, a tag, a stored value such as `firing`);
the words people read come from Grafana's display options: value mappings (up/down,
states, severities), `organize` renames of table columns and `renameByRegex` of series
names. The alerts' `summary` is SPEC 5's English text: the Russian and Kazakh boards do
not show it (the rule, device, state and duration say the same).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from monitor.i18n import ALERT_STATES, LANGUAGES, N_, SEVERITIES, Language, Texts, texts

ROOT = Path(__file__).parent
OUT = ROOT / "dashboards"
PROVIDERS = ROOT / "provisioning" / "dashboards" / "dashboards.yaml"
CONTAINER_PATH = "/var/lib/grafana/dashboards"  # where docker-compose.yml mounts OUT
DS = {"type": "influxdb", "uid": "influxdb-customs"}
GREEN, AMBER, RED, BLUE = "#1f7a3a", "#b7791f", "#c0392b", "#2f5fa7"
SITE_AREA = '"site" =~ /^$site$/ AND "area" =~ /^$area$/'
RESOLVED_DOWN = '"state" = \'resolved\' AND "rule" =~ /^(no_data|offline|fault)$/'


def var(name: str, query: str, label: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


class Words:
    """One language's words for the boards, and the display options that put them on
    what the queries return (which stay as they are)."""

    def __init__(self, t: Texts) -> None:
        self.t = t
        self.language = t.language

    @property
    def english(self) -> bool:
        return self.language == "en"

    def variables(self, *names: str) -> list[dict[str, Any]]:
        _ = self.t.gettext
        site_area = SITE_AREA
        known = {
            "site": var(
                "site", 'SHOW TAG VALUES FROM "device_status" WITH KEY = "site"', _("Site")
            ),
            "area": var(
                "area",
                'SHOW TAG VALUES FROM "device_status" WITH KEY = "area" WHERE "site" =~ /^$site$/',
                _("Area"),
            ),
            "kind": var(
                "kind",
                'SHOW TAG VALUES FROM "device_status" WITH KEY = "kind" WHERE ' + site_area,
                _("Kind"),
            ),
            "device": var(
                "device",
                'SHOW TAG VALUES FROM "device_status" WITH KEY = "device" WHERE '
                + site_area
                + ' AND "kind" =~ /^$kind$/',
                _("Device"),
            ),
            "passages_site": var(
                "site", 'SHOW TAG VALUES FROM "passages" WITH KEY = "site"', _("Site")
            ),
            "status_interval": {
                "name": "status_interval",
                "label": _("status_interval (s)"),
                "type": "constant",
                "query": "15",
                "hide": 2,
                "description": _(
                    "the monitor's status_interval: one device_status point per device per interval"
                ),
            },
        }
        return [known[n] for n in names]

    def up_down(self) -> list[dict[str, Any]]:
        _ = self.t.gettext
        return [
            {
                "type": "value",
                "options": {
                    "1": {"text": _("UP"), "color": GREEN},
                    "0": {"text": _("DOWN"), "color": RED},
                },
            }
        ]

    def states(self) -> list[dict[str, Any]]:
        colours = {
            "ready": GREEN,
            "busy": "#2e9e5b",
            "standby": "#6b8e7a",
            "warming_up": AMBER,
            "maintenance": BLUE,
            "fault": RED,
            "offline": "#7a1f1a",
        }
        options: dict[str, Any] = {}
        for state, colour in colours.items():
            options[state] = {"color": colour}
            if not self.english:
                options[state]["text"] = self.t.state(state)
        return [{"type": "value", "options": options}]

    def alert_values(self) -> list[dict[str, Any]]:
        """Alert states and severities as the crews say them, wherever a table shows one."""
        if self.english:
            return []
        words = {s: self.t.gettext(w) for s, w in {**ALERT_STATES, **SEVERITIES}.items()}
        return [{"type": "value", "options": {v: {"text": w} for v, w in words.items()}}]

    def columns(self, *names: str) -> dict[str, str]:
        """Table columns (aliases and tags of the queries) renamed into the language."""
        if self.english:
            return {}
        _, t = self.t.gettext, self.t
        words = {
            "Time": _("time"),
            "state": _("state"),
            "severity": _("severity"),
            "rule": _("rule"),
            "site": _("site"),
            "area": _("area"),
            "device": _("device"),
            "for": t.pgettext("column", "for"),
            "duration_s": _("duration, s"),
            "unplanned": _("unplanned"),
            "planned": _("planned"),
            "outages": _("outages"),
            "mttr": _("MTTR"),
            "mtbf": _("MTBF"),
        }
        return {n: words[n] for n in names}

    def series(self, **aliases: str) -> list[dict[str, Any]]:
        """Series named by their alias (``received``, ``p90``) renamed into the language:
        Grafana names an InfluxQL series ``<measurement>.<alias> {<tags>}``."""
        if self.english:
            return []
        return [
            {
                "id": "renameByRegex",
                "options": {
                    "regex": rf"^(?:[\w-]+\.)?{re.escape(alias)}(\b.*)?$",
                    "renamePattern": self.t.gettext(word) + "$1",
                },
            }
            for alias, word in aliases.items()
        ]

    def inspected(self, with_field: bool = False) -> list[dict[str, Any]]:
        """Series of a ``GROUP BY "inspected"``: ``yes``/``no`` are stored values; the
        language's words replace them in the series' names (``досмотр: да``), after the
        field's own name where a panel shows several (``median (досмотр: да)``)."""
        if self.english:
            return []
        _ = self.t.gettext
        out = []
        for value, word in (("yes", "yes"), ("no", "no")):
            said = self.t.fill(_("inspected: %(value)s"), value=_(word))
            out.append(
                {
                    "id": "renameByRegex",
                    "options": {
                        "regex": rf"^(?:[\w-]+\.)?(\w+)\s*\{{.*\binspected\W+{value}\b.*\}}$",
                        "renamePattern": f"$1 ({said})" if with_field else said,
                    },
                }
            )
        return out


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


PCT = {
    "unit": "percent",
    "min": 0,
    "max": 100,
    "decimals": 2,
    "thresholds": thresholds((None, RED), (95, AMBER), (99, GREEN)),
    "color": {"mode": "thresholds"},
}


def annotations(w: Words) -> list[dict[str, Any]]:
    """On every board: when equipment went down and came back, and when it was in
    maintenance (from the `alerts` the monitor writes at each transition). The text of an
    alert's mark is its summary in English; the other languages show the device."""
    _ = w.t.gettext
    text = "summary" if w.english else "device"
    return [
        {
            "name": _("Equipment down"),
            "datasource": DS,
            "enable": True,
            "iconColor": RED,
            "query": 'SELECT "summary", "device" FROM "alerts" WHERE $timeFilter AND "state" ='
            " 'firing' AND \"rule\" =~ /^(no_data|offline|fault)$/",
            "textColumn": text,
            "tagsColumn": "device",
        },
        {
            "name": _("Back up"),
            "datasource": DS,
            "enable": True,
            "iconColor": GREEN,
            "query": 'SELECT "summary", "device" FROM "alerts" WHERE $timeFilter AND "state" ='
            " 'resolved' AND \"rule\" =~ /^(no_data|offline|fault)$/",
            "textColumn": text,
            "tagsColumn": "device",
        },
        {
            "name": _("Maintenance"),
            "datasource": DS,
            "enable": True,
            "iconColor": BLUE,
            "query": 'SELECT "reason", "device" FROM (SELECT first("reason") AS "reason" FROM'
            ' "device_status" WHERE $timeFilter AND "reason" = \'maintenance\' GROUP BY'
            ' time(1h), "site", "device")',
            "textColumn": "reason" if w.english else "device",
            "tagsColumn": "device",
        },
    ]


PASSAGES_WHERE = '$timeFilter AND "site" =~ /^$site$/'
MINUTES = {"unit": "m", "decimals": 0}


class Board:
    def __init__(
        self,
        w: Words,
        uid: str,
        title: str,
        description: str,
        variables: list[dict[str, Any]],
        time_from: str = "now-24h",
        refresh: str = "30s",
    ) -> None:
        self.w = w
        # English keeps the uids bookmarks and links already use
        self.uid = uid if w.english else f"{uid}-{w.language}"
        self.title, self.description = title, description
        self.variables = variables
        self.time_from, self.refresh = time_from, refresh
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._row_h = 0

    def panel(
        self,
        kind: str,
        title: str,
        queries: list[str],
        w: int,
        h: int,
        fmt: str = "time_series",
        defaults: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        description: str = "",
        transformations: list[dict[str, Any]] | None = None,
    ) -> None:
        if self._x + w > 24:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": {"x": self._x, "y": self._y, "w": w, "h": h},
                "targets": [
                    {
                        "refId": chr(65 + i),
                        "datasource": DS,
                        "query": q,
                        "rawQuery": True,
                        "resultFormat": fmt,
                    }
                    for i, q in enumerate(queries)
                ],
                "fieldConfig": {"defaults": defaults or {}, "overrides": []},
                "options": options or {},
                "transformations": transformations or [],
            }
        )
        self._x += w
        self._row_h = max(self._row_h, h)

    def table(
        self,
        title: str,
        queries: list[str],
        w: int,
        h: int,
        columns: tuple[str, ...] = (),
        **kw: Any,
    ) -> None:
        """A table; ``columns`` (of COLUMNS) are renamed into the language, and alert
        states and severities in its cells are said in it."""
        defaults = {"custom": {"align": "auto"}, **kw.pop("defaults", {})}
        if mappings := self.w.alert_values():
            defaults["mappings"] = mappings
        transformations = list(kw.pop("transformations", []))
        renames = self.w.columns(*columns)
        hidden = {} if self.w.english else {"summary": True}  # English text (SPEC 5)
        organized = [t for t in transformations if t["id"] == "organize"]
        if organized:
            organized[0]["options"].setdefault("renameByName", {}).update(renames)
            organized[0]["options"].setdefault("excludeByName", {}).update(hidden)
        elif renames or hidden:
            transformations.append(
                {"id": "organize", "options": {"excludeByName": hidden, "renameByName": renames}}
            )
        self.panel(
            "table",
            title,
            queries,
            w,
            h,
            fmt="table",
            defaults=defaults,
            transformations=transformations,
            **kw,
        )

    def availability_bars(
        self, title: str, query: str, w: int, h: int, description: str = ""
    ) -> None:
        self.panel(
            "bargauge",
            title,
            [query],
            w,
            h,
            defaults={**PCT, "displayName": "${__field.labels.device}"},
            options={
                "orientation": "horizontal",
                "displayMode": "lcd",
                "reduceOptions": {"calcs": ["lastNotNull"]},
            },
            description=description,
        )

    def json(self) -> dict[str, Any]:
        lang = self.w.language
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["customs", "aktau", lang],
            "timezone": "browser",
            "schemaVersion": 39,
            "version": 1,
            "editable": False,
            "graphTooltip": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": self.variables},
            "panels": self.panels,
            "annotations": {"list": annotations(self.w)},
            "links": [
                {
                    "title": self.w.t.gettext("Customs post"),
                    "type": "dashboards",
                    "tags": ["customs", lang],  # the boards of the same language
                    "asDropdown": True,
                },
            ],
        }


def overview(w: Words) -> Board:
    _ = w.t.gettext
    b = Board(
        w,
        "customs-overview",
        _("Customs post overview"),
        _("Wall screen: which equipment is up, open alerts, availability, traffic."),
        w.variables("site", "area"),
        refresh="15s",
    )
    b.panel(
        "stat",
        _("Equipment now"),
        [
            f'SELECT last("up") FROM "device_status" WHERE $timeFilter AND {SITE_AREA}'
            ' GROUP BY "site", "area", "device"'
        ],
        w=24,
        h=7,
        defaults={
            "mappings": w.up_down(),
            "color": {"mode": "thresholds"},
            "thresholds": thresholds((None, RED), (1, GREEN)),
            "displayName": "${__field.labels.device}",
        },
        options={
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
            "reduceOptions": {"calcs": ["lastNotNull"]},
            "orientation": "horizontal",
        },
        description=_("Last status of every device, by area. Red: no data, offline or fault."),
    )
    b.panel(
        "state-timeline",
        _("Up / down by device"),
        [
            f'SELECT last("up") FROM "device_status" WHERE $timeFilter AND {SITE_AREA}'
            ' GROUP BY time($__interval), "site", "device" fill(previous)'
        ],
        w=24,
        h=9,
        defaults={
            "mappings": w.up_down(),
            "color": {"mode": "thresholds"},
            "thresholds": thresholds((None, RED), (1, GREEN)),
            "displayName": "${__field.labels.device}",
        },
        options={"showValue": "never", "mergeValues": True},
    )
    b.table(
        _("Open alerts"),
        [
            f'SELECT last("state") AS "state", last("summary") AS "summary",'
            f' last("duration_s") AS "for" FROM "alerts" WHERE $timeFilter AND {SITE_AREA}'
            ' GROUP BY "severity", "rule", "site", "device"'
        ],
        w=12,
        h=8,
        columns=("Time", "state", "for", "severity", "rule", "site", "device"),
        transformations=[
            {
                "id": "filterByValue",
                "options": {
                    "type": "exclude",
                    "match": "any",
                    "filters": [
                        {
                            "fieldName": "state",
                            "config": {"id": "equal", "options": {"value": "resolved"}},
                        }
                    ],
                },
            }
        ],
        description=_("Alerts whose last transition is not 'resolved'."),
    )
    b.availability_bars(
        _("Availability, last 24 h"),
        (
            'SELECT mean("up") * 100 FROM "device_status" WHERE time > now() - 24h AND'
            f' "reason" != \'maintenance\' AND {SITE_AREA} GROUP BY "site", "device"'
        ),
        w=6,
        h=8,
        description=_("Up time over monitored time, planned maintenance excluded."),
    )
    b.availability_bars(
        _("Availability, last 7 days"),
        (
            'SELECT mean("up") * 100 FROM "device_status" WHERE time > now() - 7d AND'
            f' "reason" != \'maintenance\' AND {SITE_AREA} GROUP BY "site", "device"'
        ),
        w=6,
        h=8,
    )
    b.panel(
        "timeseries",
        _("Container scans per hour"),
        [
            'SELECT spread("scans_total") FROM "xray_scanner" WHERE $timeFilter AND'
            f' {SITE_AREA} GROUP BY time(1h), "site", "device" fill(none)'
        ],
        w=8,
        h=8,
        defaults={
            "unit": "none",
            "custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}},
            "displayName": "${__field.labels.device}",
        },
    )
    b.panel(
        "timeseries",
        _("Trucks through the gates per hour"),
        [
            'SELECT sum("trucks") FROM (SELECT spread("cycles_total") AS "trucks" FROM'
            f' "gate_barrier" WHERE $timeFilter AND {SITE_AREA} GROUP BY time(1h), "site",'
            ' "device", "area") GROUP BY time(1h), "area" fill(none)'
        ],
        w=8,
        h=8,
        defaults={
            "unit": "none",
            "custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}},
            "displayName": "${__field.labels.area}",
        },
        description=_("Barrier opening cycles (one per truck), counted within each hour."),
    )
    b.panel(
        "timeseries",
        _("Radiation background (unoccupied)"),
        [
            'SELECT mean("gamma_cps") FROM "radiation_portal" WHERE $timeFilter AND'
            f' "occupied" = false AND {SITE_AREA} GROUP BY time($__interval), "site", "device"'
            " fill(none)"
        ],
        w=8,
        h=8,
        defaults={"unit": "cps", "displayName": "${__field.labels.device}"},
    )
    return b


def device(w: Words) -> Board:
    _ = w.t.gettext
    one = '"device" =~ /^$device$/'
    b = Board(
        w,
        "customs-device",
        _("Device detail"),
        _("One device: its metrics, states, alerts and outages."),
        w.variables("site", "area", "kind", "device"),
        time_from="now-6h",
    )
    b.panel(
        "state-timeline",
        _("State"),
        [
            f'SELECT last("state") FROM "device_status" WHERE $timeFilter AND {one}'
            ' GROUP BY time($__interval), "site", "device" fill(previous)'
        ],
        w=24,
        h=5,
        defaults={
            "mappings": w.states(),
            "color": {"mode": "thresholds"},
            "displayName": "${__field.labels.device}",
        },
        options={"showValue": "auto", "mergeValues": True},
    )
    b.panel(
        "timeseries",
        _("Metrics"),
        [
            f"SELECT mean(*) FROM /^$kind$/ WHERE $timeFilter AND {one}"
            ' GROUP BY time($__interval), "site", "device" fill(none)'
        ],
        w=24,
        h=10,
        defaults={"unit": "short"},
        description=_("Every numeric metric of the device; units are in the names."),
    )
    b.table(
        _("Alerts"),
        [
            f'SELECT "state", "rule", "severity", "duration_s", "summary" FROM "alerts"'
            f" WHERE $timeFilter AND {one}"
        ],
        w=14,
        h=8,
        columns=("Time", "state", "rule", "severity", "duration_s"),
    )
    b.table(
        _("Outages (unplanned)"),
        [
            f'SELECT "duration_s", "rule", "summary" FROM "alerts" WHERE $timeFilter AND {one}'
            f" AND {RESOLVED_DOWN}"
        ],
        w=10,
        h=8,
        columns=("Time", "duration_s", "rule"),
    )
    return b


def availability(w: Words) -> Board:
    _ = w.t.gettext
    b = Board(
        w,
        "customs-availability",
        _("Availability & downtime"),
        _(
            "How available each device was: unplanned vs planned downtime, outages, MTTR,"
            " MTBF. Availability = up / (monitored - planned maintenance); the exact"
            " definitions are in the README and in `monitor report availability`."
        ),
        w.variables("site", "area", "kind", "status_interval"),
        time_from="now-7d",
        refresh="5m",
    )
    where = f'$timeFilter AND {SITE_AREA} AND "kind" =~ /^$kind$/'
    b.availability_bars(
        _("Availability"),
        (
            f'SELECT mean("up") * 100 FROM "device_status" WHERE {where} AND'
            ' "reason" != \'maintenance\' GROUP BY "site", "device"'
        ),
        w=8,
        h=12,
    )
    b.table(
        _("Downtime, outages, MTTR, MTBF per device"),
        [
            f'SELECT count("up") * $status_interval AS "unplanned" FROM "device_status" WHERE'
            f' {where} AND "up" = 0 AND "reason" != \'maintenance\' GROUP BY "site", "device"',
            f'SELECT count("up") * $status_interval AS "planned" FROM "device_status" WHERE'
            f' {where} AND "reason" = \'maintenance\' GROUP BY "site", "device"',
            f'SELECT count("duration_s") AS "outages", mean("duration_s") AS "mttr" FROM'
            f' "alerts" WHERE {where} AND {RESOLVED_DOWN} GROUP BY "site", "device"',
            f'SELECT count("up") * $status_interval AS "uptime" FROM "device_status" WHERE'
            f' {where} AND "up" = 1 GROUP BY "site", "device"',
        ],
        w=16,
        h=12,
        defaults={"unit": "s"},
        columns=("site", "device", "unplanned", "planned", "outages", "mttr", "mtbf"),
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "calculateField",
                "options": {
                    "mode": "binary",
                    "alias": "mtbf",
                    "binary": {"left": "uptime", "operator": "/", "right": "outages"},
                },
            },
            {"id": "organize", "options": {"excludeByName": {"Time": True, "uptime": True}}},
        ],
        description=_(
            "Unplanned downtime: no_data, offline, fault. Planned: maintenance. Outages and"
            " MTTR from resolved alerts; MTBF = up time / outages."
        ),
    )
    b.panel(
        "timeseries",
        _("Unplanned vs planned downtime per day"),
        [
            f'SELECT count("up") * $status_interval / 60 AS "unplanned" FROM "device_status"'
            f' WHERE {where} AND "up" = 0 AND "reason" != \'maintenance\' GROUP BY time(1d)',
            f'SELECT count("up") * $status_interval / 60 AS "planned" FROM "device_status"'
            f" WHERE {where} AND \"reason\" = 'maintenance' GROUP BY time(1d)",
        ],
        w=12,
        h=9,
        defaults={"unit": "m", "custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}},
        transformations=w.series(unplanned=N_("unplanned"), planned=N_("planned")),
    )
    b.table(
        _("Longest outages"),
        [
            f'SELECT top("duration_s", "device", 20) AS "duration_s", "rule", "summary"'
            f' FROM "alerts" WHERE {where} AND {RESOLVED_DOWN}'
        ],
        w=12,
        h=9,
        columns=("Time", "duration_s", "device", "rule"),
    )
    return b


def health(w: Words) -> Board:
    _ = w.t.gettext
    b = Board(
        w,
        "customs-monitor-health",
        _("Monitor health"),
        _("The monitor itself: throughput, rejections, writes, spool, broker, notifications."),
        [],
        time_from="now-6h",
    )
    rate = 'non_negative_derivative(last("{f}"), 1s)'
    b.panel(
        "timeseries",
        _("Messages per second"),
        [
            f'SELECT {rate.format(f="messages_received")} AS "received",'
            f' {rate.format(f="messages_rejected")} AS "rejected" FROM "monitor"'
            ' WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)'
        ],
        w=12,
        h=8,
        defaults={"unit": "reqps"},
        transformations=w.series(received=N_("received"), rejected=N_("rejected")),
    )
    b.panel(
        "timeseries",
        _("Write latency"),
        [
            'SELECT mean("write_latency_ms") FROM "monitor" WHERE $timeFilter'
            ' GROUP BY time($__interval), "instance" fill(none)'
        ],
        w=12,
        h=8,
        defaults={"unit": "ms"},
    )
    b.panel(
        "timeseries",
        _("Points written per second, write errors"),
        [
            f'SELECT {rate.format(f="points_written")} AS "points", {rate.format(f="write_errors")}'
            ' AS "errors" FROM "monitor" WHERE $timeFilter GROUP BY time($__interval), "instance"'
            " fill(none)"
        ],
        w=8,
        h=8,
        defaults={"unit": "short"},
        transformations=w.series(points=N_("points written"), errors=N_("write errors")),
    )
    b.panel(
        "timeseries",
        _("Spool and quarantine"),
        [
            'SELECT last("spool_bytes") AS "spool", last("quarantine_bytes") AS "quarantine"'
            ' FROM "monitor" WHERE $timeFilter GROUP BY time($__interval), "instance"'
            " fill(previous)"
        ],
        w=8,
        h=8,
        defaults={"unit": "bytes"},
        transformations=w.series(spool=N_("spool"), quarantine=N_("quarantine")),
    )
    b.panel(
        "state-timeline",
        _("Broker connection"),
        [
            'SELECT last("broker_connected") FROM "monitor" WHERE $timeFilter'
            ' GROUP BY time($__interval), "instance" fill(previous)'
        ],
        w=8,
        h=8,
        defaults={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        # the connection's words, not a device's (up / DOWN)
                        "1": {"text": w.t.pgettext("broker", "connected"), "color": GREEN},
                        "0": {"text": w.t.pgettext("broker", "DOWN"), "color": RED},
                    },
                }
            ],
            "color": {"mode": "thresholds"},
        },
    )
    b.panel(
        "timeseries",
        _("Rejected messages by reason"),
        [
            'SELECT non_negative_derivative(last(*), 1m) FROM "monitor" WHERE $timeFilter'
            ' GROUP BY time($__interval), "instance" fill(none)'
        ],
        w=12,
        h=8,
        defaults={"unit": "short"},
        description=_(
            "Messages rejected per minute, by reason (fields rejected_<reason>). The"
            " quarantine file has the messages."
        ),
    )
    b.panel(
        "timeseries",
        _("Notifications: delivered, failed attempts, given up"),
        [
            'SELECT non_negative_derivative(last("notifications_sent"), 1m) AS "delivered",'
            ' non_negative_derivative(last("notifications_failed"), 1m) AS "failed attempts",'
            ' non_negative_derivative(last("notifications_given_up"), 1m) AS "given up"'
            ' FROM "monitor" WHERE $timeFilter GROUP BY time($__interval), "instance"'
            " fill(none)",
            'SELECT count("alert_id") AS "alert transitions" FROM "alerts" WHERE $timeFilter'
            ' GROUP BY time($__interval), "state" fill(none)',
        ],
        w=12,
        h=8,
        defaults={"unit": "short"},
        transformations=w.series(
            **{
                "delivered": N_("delivered"),
                "failed attempts": N_("failed attempts"),
                "given up": N_("given up"),
                "alert transitions": N_("alert transitions"),
            }
        ),
        description=_(
            "Per minute. Given up: refused for their content (3 tries) or a day undelivered;"
            " the log's notify.given_up says which. By channel: /metrics"
            " monitor_notifications_total."
        ),
    )
    return b


def release_time(w: Words) -> Board:
    _ = w.t.gettext
    b = Board(
        w,
        "customs-release-time",
        _("Release time"),
        _(
            "Trucks through the post, from the ANPR cameras' plate reads (SPEC 9): a passage"
            " is entry gate to exit gate; release time (dwell) is exit - entry. Inspected:"
            " read in an inspection stage on the way. Annotations: equipment outages. The"
            " same figures as `monitor report release-time`."
        ),
        w.variables("passages_site"),
        time_from="now-24h",
        refresh="1m",
    )
    where = PASSAGES_WHERE

    def stat(title: str, select: str, calc: str, defaults: dict[str, Any] | None = None) -> None:
        options = {"reduceOptions": {"calcs": [calc]}, "graphMode": "none"}
        query = f'SELECT {select} FROM "passages" WHERE {where}'
        b.panel("stat", title, [query], w=6, h=5, defaults=defaults, options=options)

    inspected_label = w.t.fill(_("inspected: %(value)s"), value="${__field.labels.inspected}")
    stat(_("Trucks released"), 'count("dwell_s")', "sum")
    stat(_("Median release time"), 'median("dwell_s") / 60', "lastNotNull", MINUTES)
    stat(
        _("Release time of 9 trucks in 10"),
        'percentile("dwell_s", 90) / 60',
        "lastNotNull",
        MINUTES,
    )
    b.panel(
        "piechart",
        _("Inspected share"),
        [f'SELECT count("dwell_s") FROM "passages" WHERE {where} GROUP BY "inspected"'],
        w=6,
        h=5,
        defaults={"displayName": inspected_label},
        options={"reduceOptions": {"calcs": ["sum"]}, "legend": {"displayMode": "list"}},
        transformations=w.inspected(),
    )
    b.panel(
        "timeseries",
        _("Trucks released per hour"),
        [
            f'SELECT count("dwell_s") FROM "passages" WHERE {where} GROUP BY time(1h),'
            ' "inspected" fill(0)'
        ],
        w=12,
        h=9,
        defaults={
            "displayName": inspected_label,
            "custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}},
        },
        transformations=w.inspected(),
    )
    b.panel(
        "timeseries",
        _("Median and p90 release time per hour"),
        [
            f'SELECT median("dwell_s") / 60 AS "median", percentile("dwell_s", 90) / 60 AS "p90"'
            f' FROM "passages" WHERE {where} GROUP BY time(1h), "inspected" fill(none)'
        ],
        w=12,
        h=9,
        defaults={**MINUTES, "displayName": "${__field.name} (" + inspected_label + ")"},
        transformations=[
            *w.inspected(with_field=True),
            *w.series(median=N_("median"), p90=N_("p90")),
        ],
        description=_(
            "By the hour trucks left. An X-ray scanner outage shows as inspected trucks'"
            " release time rising after it: they queued for the scanners that were left."
        ),
    )
    b.panel(
        "histogram",
        _("Release time distribution"),
        [f'SELECT "dwell_s" / 60 AS "minutes" FROM "passages" WHERE {where}'],
        w=12,
        h=9,
        defaults={"unit": "m"},
        options={"bucketSize": 10},
        transformations=w.series(minutes=N_("minutes")),
    )
    b.panel(
        "timeseries",
        _("Release time vs. equipment down"),
        [
            f'SELECT percentile("dwell_s", 90) / 60 AS "p90 release time (min)" FROM "passages"'
            f" WHERE {where} AND \"inspected\" = 'yes' GROUP BY time(1h) fill(none)",
            'SELECT sum("down") AS "devices down" FROM (SELECT 1 - min("up") AS "down" FROM'
            ' "device_status" WHERE $timeFilter AND "site" =~ /^$site$/ AND "reason" !='
            " 'maintenance' GROUP BY time(1h), \"device\") GROUP BY time(1h) fill(0)",
        ],
        w=12,
        h=9,
        defaults={"custom": {"drawStyle": "line"}},
        transformations=w.series(
            **{
                "p90 release time (min)": N_("p90 release time (min)"),
                "devices down": N_("devices down"),
            }
        ),
        description=_(
            "The downtime impact: inspected trucks' p90 release time per hour beside how many"
            " devices of the site were down (unplanned) at some time in that hour."
        ),
    )
    return b


BOARDS = {
    "overview.json": overview,
    "device.json": device,
    "availability.json": availability,
    "monitor-health.json": health,
    "release-time.json": release_time,
}


def providers() -> str:
    """Grafana's provisioning of the boards: one folder per language."""
    lines = [
        "# Written by grafana/generate.py. Dashboards are files in grafana/dashboards/<lang>/,",
        "# provisioned read-only (change them in git), each language in its own folder.",
        "apiVersion: 1",
        "providers:",
    ]
    for lang in LANGUAGES:
        lines += [
            f"  - name: customs-monitor-{lang}",
            f"    folder: {json.dumps(texts(lang).gettext('Customs post'), ensure_ascii=False)}",
            f"    folderUid: customs-{lang}",
            "    type: file",
            "    disableDeletion: true",
            "    allowUiUpdates: false",
            "    updateIntervalSeconds: 60",
            "    options:",
            f"      path: {CONTAINER_PATH}/{lang}",
            "      foldersFromFilesStructure: false",
        ]
    return "\n".join(lines) + "\n"


def render() -> dict[str, str]:
    """Every file this writes, by its path under grafana/."""
    out = {
        f"dashboards/{lang}/{name}": json.dumps(
            make(Words(texts(lang))).json(), indent=2, ensure_ascii=False
        )
        + "\n"
        for lang in LANGUAGES
        for name, make in BOARDS.items()
    }
    out["provisioning/dashboards/dashboards.yaml"] = providers()
    return out


def language_of(path: str) -> Language:
    return next(lang for lang in LANGUAGES if path.startswith(f"dashboards/{lang}/"))


if __name__ == "__main__":
    for name, text in render().items():
        path = ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print("wrote", path)
