from __future__ import annotations

import functools
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from monitor.config import Config
from monitor.sim.devservers import InfluxDB, Mosquitto, Postgres
from tests.helpers import SmallDisk, Webhook

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


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One PostgreSQL for the session; tests that stop or kill a server start their own."""
    server = Postgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> str:
    """The URL of a fresh database per test, so tables start empty."""
    return postgres_server.create_database(f"t{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def configure(
    monkeypatch: pytest.MonkeyPatch,
    mosquitto: Mosquitto,
    influxd: InfluxDB,
    database: str,
    tmp_path: Path,
) -> Callable[..., Config]:
    """``monitor_config`` for this test's broker, InfluxDB database and state dir; keyword
    arguments (client_id, MONITOR_* overrides) pass through."""
    from tests.helpers import monitor_config

    return functools.partial(
        monitor_config,
        monkeypatch,
        mqtt_port=mosquitto.port,
        influx_url=influxd.url,
        database=database,
        state_dir=tmp_path / "state",
    )


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


@pytest.fixture
def alert_config(
    tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxDB, database: str
) -> Callable[..., Path]:
    """``alerting_config`` for this test's servers: channels, devices and options vary."""
    from tests.helpers import alerting_config

    return functools.partial(
        alerting_config,
        tmp_path / "m.yaml",
        mqtt_port=mosquitto.port,
        influx_url=influxd.url,
        database=database,
    )


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:

    hook = Webhook()
    async with hook.serving():
        yield hook


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A tmpfs of 4 MiB at tmp_path/state (alerting_config's state_dir) to fill up."""
    disk = SmallDisk(tmp_path / "state")
    yield disk
    disk.unmount()
