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
    "ha": set(),
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
    """What a module imports, anywhere in it (a function's import and one under
    TYPE_CHECKING included)."""
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


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles in a module graph: each a list of modules that import each other (by
    any path), sorted (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def module_graph() -> dict[str, set[str]]:
    """Which of the monitor's modules each imports. ``from monitor.sim import trucks``
    depends on the module ``trucks``, not on the package that holds it (a package's
    ``__init__`` runs first whatever imports it)."""
    modules = dict(_modules())
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        found = {m for m in _imports(path.read_text()) if m in modules and m != module}
        holders = {m for m in found if any(other.startswith(m + ".") for other in found)}
        graph[module] = found - holders
    return graph


def test_no_modules_import_each_other_in_a_circle() -> None:
    """A circle (``a`` imports ``b`` imports ``a``, even inside a function) makes the
    order of imports matter and neither module readable without the other."""
    assert cycles(module_graph()) == []


def test_the_circle_check_sees_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]


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
