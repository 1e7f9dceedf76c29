"""Grafana dashboards: valid, consistent, and every panel's InfluxQL returns data from a
history that the real monitor wrote while the simulator ran (with an outage)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from monitor import app
from monitor.config import load_config
from monitor.i18n import LANGUAGES
from monitor.model import Device
from monitor.reports.availability import availability as availability_of
from monitor.sim import equipment
from monitor.sim import simulate as sim
from monitor.sim.devservers import InfluxDB, Mosquitto, free_port
from monitor.stats import Stats
from tests.helpers import ROOT, SHIPPED_CONFIG, influx_query
from tests.i18n_rules import english_words
from tests.reports.history import HOUR, KINDS, T0, write_history

DASHBOARDS = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "grafana_generate", ROOT / "grafana" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def boards() -> dict[str, dict[str, Any]]:
    """Every committed board, by its path under dashboards/ (``ru/overview.json``)."""
    return {
        str(p.relative_to(DASHBOARDS)): json.loads(p.read_text())
        for p in sorted(DASHBOARDS.glob("*/*.json"))
    }


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    rendered = load_generator().render()
    written = {str(p.relative_to(ROOT / "grafana")) for p in (ROOT / "grafana").rglob("*.json")} | {
        "provisioning/dashboards/dashboards.yaml"
    }
    assert set(rendered) == written
    for name, text in rendered.items():
        written_text = (ROOT / "grafana" / name).read_text()
        assert written_text == text, f"run python grafana/generate.py ({name})"


def test_dashboards_are_consistent() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())
    ds_uid = ds["datasources"][0]["uid"]
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())
    # a folder of boards per language, each provisioned from its own directory
    paths = {p["options"]["path"] for p in provider["providers"]}
    assert paths == {f"/var/lib/grafana/dashboards/{lang}" for lang in LANGUAGES}
    assert len({p["folder"] for p in provider["providers"]}) == len(LANGUAGES)
    uids = [b["uid"] for b in boards().values()]
    assert len(uids) == len(set(uids)) == 5 * len(LANGUAGES)
    for name, b in boards().items():
        lang = name.split("/")[0]
        assert lang in b["tags"] and b["links"][0]["tags"] == ["customs", lang], name
        ids = [p["id"] for p in b["panels"]]
        assert len(ids) == len(set(ids)), name
        defined = {v["name"] for v in b["templating"]["list"]}
        for p in b["panels"]:
            assert p["datasource"]["uid"] == ds_uid
            assert p["title"] and p["targets"]
            for t in p["targets"]:
                used = set(re.findall(r"\$(\w+)", t["query"])) - {"timeFilter", "__interval"}
                assert used <= defined, (name, p["title"], used - defined)
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, p["title"])


def test_every_language_has_the_same_queries() -> None:
    """The Russian and Kazakh boards are the English ones in other words: the same panels
    in the same places, asking InfluxDB the same."""

    def shape(b: dict[str, Any]) -> list[Any]:
        return (
            [
                (p["id"], p["type"], p["gridPos"], [t["query"] for t in p["targets"]])
                for p in b["panels"]
            ]
            + [a["query"] for a in b["annotations"]["list"]]
            + [v["query"] for v in b["templating"]["list"]]
        )

    by_name: dict[str, dict[str, list[Any]]] = {}
    for name, b in boards().items():
        lang, board = name.split("/")
        by_name.setdefault(board, {})[lang] = shape(b)
    assert len(by_name) == 5
    for board, shapes in by_name.items():
        assert set(shapes) == set(LANGUAGES), board
        assert shapes["ru"] == shapes["en"] and shapes["kk"] == shapes["en"], board


def test_localized_boards_say_nothing_in_english() -> None:
    """Titles, descriptions, labels, mappings and renamed columns of the Russian and Kazakh
    boards (what Grafana shows of ours) have no English word beyond ids and units."""
    for name, b in boards().items():
        if name.startswith("en/"):
            continue
        for text in said(b):
            left = english_words(text, RULE_IDS)
            assert not left, (name, text, left)


RULE_IDS = {"no_data", "offline", "fault"}  # rule ids stay as they are in every language


def said(b: dict[str, Any]) -> list[str]:
    out = [b["title"], b["description"], b["links"][0]["title"]]
    out += [a["name"] for a in b["annotations"]["list"]]
    out += [v["label"] for v in b["templating"]["list"]]
    out += [v.get("description", "") for v in b["templating"]["list"]]
    for p in b["panels"]:
        out += [p["title"], p["description"]]
        for m in p["fieldConfig"]["defaults"].get("mappings", []):
            out += [o["text"] for o in m["options"].values() if "text" in o]
        name = p["fieldConfig"]["defaults"].get("displayName", "")
        out.append(re.sub(r"\$\{[^}]*\}", "", name))
        for t in p["transformations"]:
            out += list(t["options"].get("renameByName", {}).values())
            if t["id"] == "renameByRegex":
                out.append(t["options"]["renamePattern"].replace("$1", ""))
    return out


def substitute(query: str, start_ms: int, end_ms: int, status_interval: float) -> str:
    q = query.replace("$timeFilter", f"time >= {start_ms}ms AND time <= {end_ms}ms")
    interval = max(1, (end_ms - start_ms) // 1_000_000)  # ~1,000 points, as Grafana asks
    q = q.replace("$__interval", f"{interval}s").replace("$status_interval", f"{status_interval:g}")
    return re.sub(r"\$(site|area|kind|device)\b", ".*", q)


# -- a history written by the real monitor while the simulator ran ----------------------


@pytest.fixture(scope="module")
def mosquitto_mod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path_factory.mktemp("mosq"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def history(
    influxd: InfluxDB, mosquitto_mod: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, int, int]:
    db = "dashboards"
    devices = [
        Device("xs-01", "xray_scanner", "aktau", "inspection-1"),
        Device("xs-02", "xray_scanner", "aktau", "inspection-1"),  # scanner_vendor_x
        Device("rpm-01", "radiation_portal", "aktau", "gate-in"),
        Device("gb-01", "gate_barrier", "aktau", "gate-in"),  # plc_gateway
        Device("anpr-01", "anpr_camera", "aktau", "gate-in"),
        Device("anpr-03", "anpr_camera", "aktau", "gate-out"),
        Device("anpr-05", "anpr_camera", "aktau", "inspection-1"),
        Device("wb-01", "weighbridge", "aktau", "gate-out"),
    ]
    now = datetime.now(UTC)
    tmp = tmp_path_factory.mktemp("dash")
    key_file = tmp / "plate.key"
    key_file.write_text("dashboards-test-plate-key")
    cfg = {
        "mqtt": {"port": mosquitto_mod.port, "client_id": "monitor-dash"},
        "influx": {"url": influxd.url, "database": db, "flush_interval": "50ms"},
        "state_dir": str(tmp / "state"),
        "http": {"port": free_port()},
        "status_interval": "1s",
        "stats_interval": "1s",
        "alerts": {
            "kinds": {k: {"no_data_timeout": "3s"} for k in {d.kind for d in devices}},
            "maintenance": [
                {
                    "scope": "device",
                    "value": "wb-01",
                    "starts": (now - timedelta(minutes=1)).isoformat(),
                    "ends": (now + timedelta(minutes=10)).isoformat(),
                    "reason": "calibration",
                }
            ],
        },
        "notify": {"routes": []},
        "passages": {
            "plate_key_file": str(key_file),
            "stages": {"inspection": ["inspection-1"]},
        },
        "profiles": yaml.safe_load(SHIPPED_CONFIG.read_text())["profiles"],
        "devices": [{"id": d.id, "kind": d.kind, "site": d.site, "area": d.area} for d in devices],
    }
    (tmp / "m.yaml").write_text(yaml.safe_dump(cfg))
    config = load_config(tmp / "m.yaml")
    start_ms = int(time.time() * 1000) - 6 * 3600 * 1000

    async def run() -> None:
        stop = asyncio.Event()
        monitor = asyncio.create_task(app.run(config, stop, stats=Stats()))
        simulation = sim.Simulation(
            equipment.build(devices, seed=11),
            port=mosquitto_mod.port,
            rate=4,
            duration=22,
            failures=[sim.Failure("xs-01", "silent", 5), sim.Failure("xs-01", "recover", 13)],
            trucks_per_hour=60,
            backfill=6 * 3600,  # passages for the release-time board
        )
        await asyncio.sleep(1)
        await simulation.run()
        await asyncio.sleep(1.5)
        stop.set()
        await monitor

    asyncio.run(run())
    return db, start_ms, int(time.time() * 1000)


def all_queries() -> list[tuple[str, str, str]]:
    out = []
    for name, b in boards().items():
        for p in b["panels"]:
            for t in p["targets"]:
                out.append((name, p["title"], t["query"]))
        for a in b["annotations"]["list"]:
            out.append((name, f"annotation {a['name']}", a["query"]))
    return out


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("board", "panel", "query"), all_queries(), ids=[f"{b}:{p}" for b, p, _ in all_queries()]
)
def test_every_panel_query_returns_data(
    history: tuple[str, int, int], influxd: InfluxDB, board: str, panel: str, query: str
) -> None:
    db, start_ms, end_ms = history
    series = influx_query(influxd.url, db, substitute(query, start_ms, end_ms, 1))
    assert series, f"{board} / {panel}: no data for\n{substitute(query, start_ms, end_ms, 1)}"
    assert any(any(v is not None for v in row[1:]) for s in series for row in s["values"])


@pytest.mark.integration
@pytest.mark.slow
def test_template_variables_list_the_devices(
    history: tuple[str, int, int], influxd: InfluxDB
) -> None:
    db, *_ = history
    for b in boards().values():
        for v in b["templating"]["list"]:
            if v["type"] != "query":
                continue
            series = influx_query(influxd.url, db, re.sub(r"\$\w+", ".*", v["query"]))
            values = {row[1] for s in series for row in s["values"]}
            assert values, v["name"]
            if v["name"] == "device":
                assert {"xs-01", "xs-02", "rpm-01", "gb-01", "anpr-01", "wb-01"} <= values


@pytest.mark.integration
def test_availability_panel_agrees_with_the_report(influxd: InfluxDB, database: str) -> None:
    """On the scripted hour of tests/reports/history.py (15 s cadence), exactly."""
    write_history(influxd, database)
    panels = boards()["en/availability.json"]["panels"]
    (panel,) = [p for p in panels if p["title"] == "Availability"]
    q = substitute(panel["targets"][0]["query"], int(T0 * 1000), int((T0 + HOUR) * 1000) - 1, 15)
    got = {s["tags"]["device"]: s["values"][0][1] for s in influx_query(influxd.url, database, q)}
    series = influx_query(
        influxd.url, database, "SELECT up, reason FROM device_status GROUP BY device"
    )
    for s in series:
        device = s["tags"]["device"]
        points = [(v[0] / 1000, bool(v[1]), v[2]) for v in s["values"]]
        expected = availability_of(points, T0, T0 + HOUR, 45, ("", "", KINDS[device], device))
        assert got[device] == pytest.approx(expected.availability_pct, abs=0.01), device


@pytest.mark.integration
@pytest.mark.slow
def test_release_time_board_agrees_with_the_report(
    history: tuple[str, int, int], influxd: InfluxDB
) -> None:
    """The board's count and median are the report's (p90: InfluxDB rounds the rank, the
    report takes the nearest rank up; they may differ by one passage's dwell)."""
    db, start_ms, end_ms = history
    panels = {p["title"]: p for p in boards()["en/release-time.json"]["panels"]}

    def stat(title: str) -> float:
        q = substitute(panels[title]["targets"][0]["query"], start_ms, end_ms, 1)
        return float(influx_query(influxd.url, db, q)[0]["values"][0][1])

    from monitor.config import Influx
    from monitor.reports.influxql import InfluxQuery
    from monitor.reports.release_time import report

    query = InfluxQuery(Influx(url=influxd.url, database=db))
    [everything] = [
        r
        for r in report(query, start_ms / 1000, end_ms / 1000 + 0.001, 3, 86400, None)
        if r.inspected == "all"
    ]
    assert everything.passages > 100
    assert stat("Trucks released") == everything.passages
    assert everything.median_s is not None
    assert stat("Median release time") == pytest.approx(everything.median_s / 60)
