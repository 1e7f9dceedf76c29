"""The lock files: in step with pyproject.toml's ranges and hashed (the install from them:
tests/deploy/test_install.py)."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)")


def pins(lock: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / lock).read_text().splitlines():
        if m := PIN.match(line):
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [Requirement(r) for r in names]


@pytest.mark.parametrize(
    ("lock", "extra"), [("requirements.lock", None), ("requirements-dev.lock", "test")]
)
def test_every_requirement_is_pinned_within_its_range(lock: str, extra: str | None) -> None:
    pinned = pins(lock)
    for req in requirements(extra):
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in {lock}: run make lock"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {req.name}=={pinned[name]}, outside {req.specifier}: run make lock"
        )


def test_the_dev_lock_runs_the_service_on_the_same_versions() -> None:
    service, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {n: dev.get(n) for n in service} == service


def test_every_pin_carries_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        lines = (ROOT / lock).read_text().splitlines()
        for i, line in enumerate(lines):
            if PIN.match(line):
                assert line.endswith("\\") and "--hash=sha256:" in lines[i + 1], line
