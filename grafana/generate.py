"""Writes grafana/dashboards/*.json: `python grafana/generate.py` after changing a panel.

The dashboards are data; this file keeps them readable and consistent (one datasource,
the same template variables, the same colours). tests/test_dashboards.py checks that the
committed JSON is what this produces and runs every panel's InfluxQL against InfluxDB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
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


SITE = var("site", 'SHOW TAG VALUES FROM "device_status" WITH KEY = "site"', "Site")
AREA = var(
    "area",
    'SHOW TAG VALUES FROM "device_status" WITH KEY = "area" WHERE "site" =~ /^$site$/',
    "Area",
)
KIND = var(
    "kind", 'SHOW TAG VALUES FROM "device_status" WITH KEY = "kind" WHERE ' + SITE_AREA, "Kind"
)
DEVICE = var(
    "device",
    'SHOW TAG VALUES FROM "device_status" WITH KEY = "device" WHERE '
    + SITE_AREA
    + ' AND "kind" =~ /^$kind$/',
    "Device",
)
INTERVAL = {
    "name": "status_interval",
    "label": "status_interval (s)",
    "type": "constant",
    "query": "15",
    "hide": 2,
    "description": "the monitor's status_interval: one device_status point per device per interval",
}

UP_DOWN = [
    {
        "type": "value",
        "options": {"1": {"text": "UP", "color": GREEN}, "0": {"text": "DOWN", "color": RED}},
    }
]
STATES = [
    {
        "type": "value",
        "options": {
            "ready": {"color": GREEN},
            "busy": {"color": "#2e9e5b"},
            "standby": {"color": "#6b8e7a"},
            "warming_up": {"color": AMBER},
            "maintenance": {"color": BLUE},
            "fault": {"color": RED},
            "offline": {"color": "#7a1f1a"},
        },
    }
]


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


# On every board: when equipment went down and came back, and when it was in maintenance
# (from the `alerts` the monitor writes at each transition).
ANNOTATIONS = [
    {
        "name": "Equipment down",
        "datasource": DS,
        "enable": True,
        "iconColor": RED,
        "query": 'SELECT "summary", "device" FROM "alerts" WHERE $timeFilter AND "state" ='
        " 'firing' AND \"rule\" =~ /^(no_data|offline|fault)$/",
        "textColumn": "summary",
        "tagsColumn": "device",
    },
    {
        "name": "Back up",
        "datasource": DS,
        "enable": True,
        "iconColor": GREEN,
        "query": 'SELECT "summary", "device" FROM "alerts" WHERE $timeFilter AND "state" ='
        " 'resolved' AND \"rule\" =~ /^(no_data|offline|fault)$/",
        "textColumn": "summary",
        "tagsColumn": "device",
    },
    {
        "name": "Maintenance",
        "datasource": DS,
        "enable": True,
        "iconColor": BLUE,
        "query": 'SELECT "reason", "device" FROM (SELECT first("reason") AS "reason" FROM'
        ' "device_status" WHERE $timeFilter AND "reason" = \'maintenance\' GROUP BY'
        ' time(1h), "site", "device")',
        "textColumn": "reason",
        "tagsColumn": "device",
    },
]

PASSAGES_WHERE = '$timeFilter AND "site" =~ /^$site$/'
MINUTES = {"unit": "m", "decimals": 0}


class Board:
    def __init__(
        self,
        uid: str,
        title: str,
        description: str,
        variables: list[dict[str, Any]],
        time_from: str = "now-24h",
        refresh: str = "30s",
    ) -> None:
        self.uid, self.title, self.description = uid, title, description
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

    def table(self, title: str, queries: list[str], w: int, h: int, **kw: Any) -> None:
        defaults = {"custom": {"align": "auto"}, **kw.pop("defaults", {})}
        self.panel("table", title, queries, w, h, fmt="table", defaults=defaults, **kw)

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
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["customs", "aktau"],
            "timezone": "browser",
            "schemaVersion": 39,
            "version": 1,
            "editable": False,
            "graphTooltip": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": self.variables},
            "panels": self.panels,
            "annotations": {"list": ANNOTATIONS},
            "links": [
                {
                    "title": "Customs post",
                    "type": "dashboards",
                    "tags": ["customs"],
                    "asDropdown": True,
                },
            ],
        }


def overview() -> Board:
    b = Board(
        "customs-overview",
        "Customs post overview",
        "Wall screen: which equipment is up, open alerts, availability, traffic.",
        [SITE, AREA],
        refresh="15s",
    )
    b.panel(
        "stat",
        "Equipment now",
        [
            f'SELECT last("up") FROM "device_status" WHERE $timeFilter AND {SITE_AREA}'
            ' GROUP BY "site", "area", "device"'
        ],
        w=24,
        h=7,
        defaults={
            "mappings": UP_DOWN,
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
        description="Last status of every device, by area. Red: no data, offline or fault.",
    )
    b.panel(
        "state-timeline",
        "Up / down by device",
        [
            f'SELECT last("up") FROM "device_status" WHERE $timeFilter AND {SITE_AREA}'
            ' GROUP BY time($__interval), "site", "device" fill(previous)'
        ],
        w=24,
        h=9,
        defaults={
            "mappings": UP_DOWN,
            "color": {"mode": "thresholds"},
            "thresholds": thresholds((None, RED), (1, GREEN)),
            "displayName": "${__field.labels.device}",
        },
        options={"showValue": "never", "mergeValues": True},
    )
    b.table(
        "Open alerts",
        [
            f'SELECT last("state") AS "state", last("summary") AS "summary",'
            f' last("duration_s") AS "for" FROM "alerts" WHERE $timeFilter AND {SITE_AREA}'
            ' GROUP BY "severity", "rule", "site", "device"'
        ],
        w=12,
        h=8,
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
        description="Alerts whose last transition is not 'resolved'.",
    )
    b.availability_bars(
        "Availability, last 24 h",
        (
            'SELECT mean("up") * 100 FROM "device_status" WHERE time > now() - 24h AND'
            f' "reason" != \'maintenance\' AND {SITE_AREA} GROUP BY "site", "device"'
        ),
        w=6,
        h=8,
        description="Up time over monitored time, planned maintenance excluded.",
    )
    b.availability_bars(
        "Availability, last 7 days",
        (
            'SELECT mean("up") * 100 FROM "device_status" WHERE time > now() - 7d AND'
            f' "reason" != \'maintenance\' AND {SITE_AREA} GROUP BY "site", "device"'
        ),
        w=6,
        h=8,
    )
    b.panel(
        "timeseries",
        "Container scans per hour",
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
        "Trucks through the gates per hour",
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
        description="Barrier opening cycles (one per truck), counted within each hour.",
    )
    b.panel(
        "timeseries",
        "Radiation background (unoccupied)",
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


def device() -> Board:
    one = '"device" =~ /^$device$/'
    b = Board(
        "customs-device",
        "Device detail",
        "One device: its metrics, states, alerts and outages.",
        [SITE, AREA, KIND, DEVICE],
        time_from="now-6h",
    )
    b.panel(
        "state-timeline",
        "State",
        [
            f'SELECT last("state") FROM "device_status" WHERE $timeFilter AND {one}'
            ' GROUP BY time($__interval), "site", "device" fill(previous)'
        ],
        w=24,
        h=5,
        defaults={
            "mappings": STATES,
            "color": {"mode": "thresholds"},
            "displayName": "${__field.labels.device}",
        },
        options={"showValue": "auto", "mergeValues": True},
    )
    b.panel(
        "timeseries",
        "Metrics",
        [
            f"SELECT mean(*) FROM /^$kind$/ WHERE $timeFilter AND {one}"
            ' GROUP BY time($__interval), "site", "device" fill(none)'
        ],
        w=24,
        h=10,
        defaults={"unit": "short"},
        description="Every numeric metric of the device; units are in the names.",
    )
    b.table(
        "Alerts",
        [
            f'SELECT "state", "rule", "severity", "duration_s", "summary" FROM "alerts"'
            f" WHERE $timeFilter AND {one}"
        ],
        w=14,
        h=8,
    )
    b.table(
        "Outages (unplanned)",
        [
            f'SELECT "duration_s", "rule", "summary" FROM "alerts" WHERE $timeFilter AND {one}'
            f" AND {RESOLVED_DOWN}"
        ],
        w=10,
        h=8,
    )
    return b


def availability() -> Board:
    b = Board(
        "customs-availability",
        "Availability & downtime",
        "How available each device was: unplanned vs planned downtime, outages, MTTR, MTBF."
        " Availability = up / (monitored - planned maintenance); the exact definitions are"
        " in the README and in `monitor report availability`.",
        [SITE, AREA, KIND, INTERVAL],
        time_from="now-7d",
        refresh="5m",
    )
    where = f'$timeFilter AND {SITE_AREA} AND "kind" =~ /^$kind$/'
    b.availability_bars(
        "Availability",
        (
            f'SELECT mean("up") * 100 FROM "device_status" WHERE {where} AND'
            ' "reason" != \'maintenance\' GROUP BY "site", "device"'
        ),
        w=8,
        h=12,
    )
    b.table(
        "Downtime, outages, MTTR, MTBF per device",
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
        description="Unplanned downtime: no_data, offline, fault. Planned: maintenance."
        " Outages and MTTR from resolved alerts; MTBF = up time / outages.",
    )
    b.panel(
        "timeseries",
        "Unplanned vs planned downtime per day",
        [
            f'SELECT count("up") * $status_interval / 60 AS "unplanned" FROM "device_status"'
            f' WHERE {where} AND "up" = 0 AND "reason" != \'maintenance\' GROUP BY time(1d)',
            f'SELECT count("up") * $status_interval / 60 AS "planned" FROM "device_status"'
            f" WHERE {where} AND \"reason\" = 'maintenance' GROUP BY time(1d)",
        ],
        w=12,
        h=9,
        defaults={"unit": "m", "custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}},
    )
    b.table(
        "Longest outages",
        [
            f'SELECT top("duration_s", "device", 20) AS "duration_s", "rule", "summary"'
            f' FROM "alerts" WHERE {where} AND {RESOLVED_DOWN}'
        ],
        w=12,
        h=9,
    )
    return b


def health() -> Board:
    b = Board(
        "customs-monitor-health",
        "Monitor health",
        "The collector itself: throughput, rejections, writes, spool, broker, notifications.",
        [],
        time_from="now-6h",
    )
    rate = 'non_negative_derivative(last("{f}"), 1s)'
    b.panel(
        "timeseries",
        "Messages per second",
        [
            f'SELECT {rate.format(f="messages_received")} AS "received",'
            f' {rate.format(f="messages_rejected")} AS "rejected" FROM "monitor"'
            ' WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)'
        ],
        w=12,
        h=8,
        defaults={"unit": "reqps"},
    )
    b.panel(
        "timeseries",
        "Write latency",
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
        "Points written per second, write errors",
        [
            f'SELECT {rate.format(f="points_written")} AS "points", {rate.format(f="write_errors")}'
            ' AS "errors" FROM "monitor" WHERE $timeFilter GROUP BY time($__interval), "instance"'
            " fill(none)"
        ],
        w=8,
        h=8,
        defaults={"unit": "short"},
    )
    b.panel(
        "timeseries",
        "Spool and quarantine",
        [
            'SELECT last("spool_bytes") AS "spool", last("quarantine_bytes") AS "quarantine"'
            ' FROM "monitor" WHERE $timeFilter GROUP BY time($__interval), "instance"'
            " fill(previous)"
        ],
        w=8,
        h=8,
        defaults={"unit": "bytes"},
    )
    b.panel(
        "state-timeline",
        "Broker connection",
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
                        "1": {"text": "connected", "color": GREEN},
                        "0": {"text": "DOWN", "color": RED},
                    },
                }
            ],
            "color": {"mode": "thresholds"},
        },
    )
    b.panel(
        "timeseries",
        "Rejected messages by reason",
        [
            'SELECT non_negative_derivative(last(*), 1m) FROM "monitor" WHERE $timeFilter'
            ' GROUP BY time($__interval), "instance" fill(none)'
        ],
        w=12,
        h=8,
        defaults={"unit": "short"},
        description="Per minute; fields rejected_<reason>. The quarantine file has the messages.",
    )
    b.panel(
        "timeseries",
        "Notifications: delivered, failed attempts, given up",
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
        description="Per minute. Given up: refused for their content (3 tries) or a day"
        " undelivered; the log's notify.given_up says which. By channel: /metrics"
        " monitor_notifications_total.",
    )
    return b


def release_time() -> Board:
    site = var("site", 'SHOW TAG VALUES FROM "passages" WITH KEY = "site"', "Site")
    b = Board(
        "customs-release-time",
        "Release time",
        "Trucks through the post, from the ANPR cameras' plate reads (SPEC 9): a passage is"
        " entry gate to exit gate; release time (dwell) is exit - entry. Inspected: read in an"
        " inspection stage on the way. Annotations: equipment outages. The same figures as"
        " `monitor report release-time`.",
        [site],
        time_from="now-24h",
        refresh="1m",
    )
    w = PASSAGES_WHERE

    def stat(title: str, select: str, calc: str, defaults: dict[str, Any] | None = None) -> None:
        options = {"reduceOptions": {"calcs": [calc]}, "graphMode": "none"}
        query = f'SELECT {select} FROM "passages" WHERE {w}'
        b.panel("stat", title, [query], w=6, h=5, defaults=defaults, options=options)

    stat("Trucks released", 'count("dwell_s")', "sum")
    stat("Median release time", 'median("dwell_s") / 60', "lastNotNull", MINUTES)
    stat("90 % released within", 'percentile("dwell_s", 90) / 60', "lastNotNull", MINUTES)
    b.panel(
        "piechart",
        "Inspected share",
        [f'SELECT count("dwell_s") FROM "passages" WHERE {w} GROUP BY "inspected"'],
        w=6,
        h=5,
        defaults={"displayName": "inspected: ${__field.labels.inspected}"},
        options={"reduceOptions": {"calcs": ["sum"]}, "legend": {"displayMode": "list"}},
    )
    b.panel(
        "timeseries",
        "Trucks released per hour",
        [
            f'SELECT count("dwell_s") FROM "passages" WHERE {w} GROUP BY time(1h), "inspected"'
            " fill(0)"
        ],
        w=12,
        h=9,
        defaults={
            "displayName": "inspected: ${__field.labels.inspected}",
            "custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}},
        },
    )
    b.panel(
        "timeseries",
        "Median and p90 release time per hour",
        [
            f'SELECT median("dwell_s") / 60 AS "median", percentile("dwell_s", 90) / 60 AS "p90"'
            f' FROM "passages" WHERE {w} GROUP BY time(1h), "inspected" fill(none)'
        ],
        w=12,
        h=9,
        defaults={
            **MINUTES,
            "displayName": "${__field.name} (inspected: ${__field.labels.inspected})",
        },
        description="By the hour trucks left. An X-ray scanner outage shows as inspected trucks'"
        " release time rising after it: they queued for the scanners that were left.",
    )
    b.panel(
        "histogram",
        "Release time distribution",
        [f'SELECT "dwell_s" / 60 AS "minutes" FROM "passages" WHERE {w}'],
        w=12,
        h=9,
        defaults={"unit": "m"},
        options={"bucketSize": 10},
    )
    b.panel(
        "timeseries",
        "Release time vs. equipment down",
        [
            f'SELECT percentile("dwell_s", 90) / 60 AS "p90 release time (min)" FROM "passages"'
            f" WHERE {w} AND \"inspected\" = 'yes' GROUP BY time(1h) fill(none)",
            'SELECT sum("down") AS "devices down" FROM (SELECT 1 - min("up") AS "down" FROM'
            ' "device_status" WHERE $timeFilter AND "site" =~ /^$site$/ AND "reason" !='
            " 'maintenance' GROUP BY time(1h), \"device\") GROUP BY time(1h) fill(0)",
        ],
        w=12,
        h=9,
        defaults={"custom": {"drawStyle": "line"}},
        description="The downtime impact: inspected trucks' p90 release time per hour beside how"
        " many devices of the site were down (unplanned) at some time in that hour.",
    )
    return b


BOARDS = {
    "overview.json": overview,
    "device.json": device,
    "availability.json": availability,
    "monitor-health.json": health,
    "release-time.json": release_time,
}


def render() -> dict[str, str]:
    return {
        name: json.dumps(make().json(), indent=2, ensure_ascii=False) + "\n"
        for name, make in BOARDS.items()
    }


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print("wrote", OUT / name)
