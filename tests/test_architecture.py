"""The house's rules (docs/architecture.md): stages meet only in the wiring.

Each package of monitor/ may import the shared ground and the packages listed for it here,
nothing else of the monitor; the wiring (app, pipeline, cli) may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

MONITOR = ROOT / "monitor"
SHARED = {
    "monitor.backoff",
    "monitor.clock",
    "monitor.config",
    "monitor.durations",
    "monitor.errors",
    "monitor.i18n",
    "monitor.lifecycle",
    "monitor.logs",
    "monitor.model",
    "monitor.schema_version",
    "monitor.schemas",
    "monitor.stats",
}
# package -> the other packages of the monitor it may import (besides the shared ground)
ALLOWED: dict[str, set[str]] = {
    "shared": set(),
    "source": set(),
    "normalize": set(),
    "sink": set(),
    "alerting": set(),
    "passages": set(),
    "web": {"alerting"},
    "reports": set(),
    "sim": set(),
}


def _package_of(name: str) -> str:
    """monitor.sink.influx -> sink; monitor.config(.Config) -> shared; monitor.app -> wiring.

    ``name`` may be a module or a name imported from one (``from m import x`` gives m.x)."""
    parts = name.split(".")
    top = ".".join(parts[:2])
    if top in SHARED:
        return "shared"
    if len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return "wiring"


def _imports(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from monitor.sink import schema` imports the module monitor.sink.schema
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("monitor.")}


def crossings(module: str, source: str) -> list[str]:
    """The packages that ``module`` imports from but may not."""
    here = _package_of(module)
    if here == "wiring":
        return []
    allowed = {"shared", here, *ALLOWED[here]}
    return sorted({_package_of(m) for m in _imports(source)} - allowed)


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(MONITOR.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        out.append((".".join(rel.parts).removesuffix(".__init__"), path))
    return out


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_a_stage_imports_only_the_shared_ground_and_what_it_may(module: str, path: Path) -> None:
    assert not (found := crossings(module, path.read_text())), f"{module} imports {found}"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("monitor.sink.batcher", "from monitor.source.mqtt import Message", ["source"]),
        ("monitor.normalize.x", "from monitor.sink import lineproto", ["sink"]),
        ("monitor.alerting.x", "import monitor.web.api", ["web"]),
        ("monitor.alerting.x", "from monitor import app", ["wiring"]),
        ("monitor.config", "from monitor.normalize.reasons import REASONS", ["normalize"]),
        ("monitor.web.api", "from monitor.alerting.store import Store", []),
        ("monitor.app", "from monitor.source.mqtt import MqttSource", []),  # the wiring
    ],
)
def test_the_check_sees_crossings(module: str, source: str, expected: list[str]) -> None:
    assert crossings(module, source) == expected
