from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.devservers import InfluxDB, Mosquitto

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database() -> str:
    """A fresh database name per test, so counts are exact."""
    return f"t{os.getpid()}_{next(_db_counter)}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_stray_monitors() -> Iterator[None]:
    """Whatever a test asserted, the monitor processes it started are gone afterwards."""
    from tests.helpers import MonitorProcess

    yield
    while MonitorProcess.alive:
        proc = MonitorProcess.alive.pop()
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()
