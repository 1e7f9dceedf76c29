"""What the docs and the code say about the project holds: every file of the repository
they name exists, and every measured figure has one home (bench/README.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

# A path inside the repository, as docs and comments name one: `tests/e2e/test_soak.py`.
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:monitor|tests|bench|grafana|docs|config)/[\w./-]*\w\.(?:py|md|json|yaml|proto))\b"
)
WRITTEN_BY_RUNS = {"bench/results.json"}  # made by `make bench`, not committed


def _texts() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "docs").glob("*.md"))]
    for top in ("monitor", "tests", "bench", "grafana"):
        found += sorted((ROOT / top).rglob("*.py")) + sorted((ROOT / top).rglob("*.md"))
    return [p for p in found if "node_modules" not in p.parts]


def named_paths(text: str) -> set[str]:
    return {m.group(1).rstrip(".") for m in REPO_PATH.finditer(text)}


def test_every_file_the_docs_and_code_name_exists() -> None:
    missing = {
        f"{path.relative_to(ROOT)}: {named}"
        for path in _texts()
        for named in named_paths(path.read_text(encoding="utf-8"))
        if named not in WRITTEN_BY_RUNS and not (ROOT / named).exists()
    }
    assert not missing, sorted(missing)


def test_the_path_check_sees_paths() -> None:
    text = "see tests/e2e/test_soak.py, and `docs/architecture.md`; /etc/monitor/monitor.yaml"
    assert named_paths(text) == {"tests/e2e/test_soak.py", "docs/architecture.md"}


# A measured figure: a rate, a per-message cost, CPU time, memory of a process, a latency
# percentile. Written here, it would disagree with the next measurement.
FIGURE = re.compile(
    r"\d[\d,.]*\s*k?\s*(?:msg/s|messages/s)"
    r"|\d[\d.]*\s*µs"
    r"|CPU[- ]seconds?|CPU s\b|s of CPU|CPU second"
    r"|\bRSS\b|\bp99\b"
)


@pytest.mark.parametrize("doc", ["README.md", "docs/architecture.md", "docs/sparkplug.md"])
def test_measured_figures_live_in_bench_readme_only(doc: str) -> None:
    """bench/README.md is the one home of each measured figure; the other docs point there."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    found = [f"{doc}:{i}: {line.strip()}" for i, line in enumerate(lines, 1) if FIGURE.search(line)]
    assert not found, found


def test_the_figure_check_sees_figures() -> None:
    for line in (
        "39–50k messages/s end to end",
        "decoding costs about 4 µs per metric",
        "85–96 MiB RSS at 20,000 devices",
        "p99 publish-to-queryable 165 ms",
        "2.4, 2.5 and 4.4 CPU-seconds per 100k",
    ):
        assert FIGURE.search(line), line
    assert not FIGURE.search("SPEC 8: tens of thousands of messages a second")
