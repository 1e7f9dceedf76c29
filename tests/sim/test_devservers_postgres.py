"""The private PostgreSQL: committed data survives a crash, a stop leaves nothing running,
and each test gets a database of its own."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from monitor.sim.devservers import Postgres, pg_bindir

pytestmark = pytest.mark.integration

QUIET = ("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1")  # no psqlrc, rows only


def psql(url: str, sql: str) -> str:
    """Through the psql binary and the URL alone, as another program would connect."""
    return subprocess.run(
        [str(pg_bindir() / "psql"), *QUIET, "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def group_members(pgid: int) -> str:
    """pgrep counts zombies too: after a clean stop there must not be any."""
    return subprocess.run(
        ["pgrep", "-a", "-g", str(pgid)], capture_output=True, text=True, check=False
    ).stdout


def test_committed_rows_survive_sigkill(tmp_path: Path) -> None:
    server = Postgres(tmp_path / "pg")
    server.start()
    try:
        url = server.create_database("crash")
        assert url == f"postgresql://postgres@127.0.0.1:{server.port}/crash"
        psql(url, "CREATE TABLE t (n int); INSERT INTO t VALUES (42)")
        port, postmaster = server.port, server.proc
        assert postmaster is not None

        server.kill()
        assert postmaster.returncode == -9
        server.start()

        assert server.port == port
        assert psql(url, "SELECT n FROM t") == "42\n"
        assert "automatic recovery in progress" in server.log_path.read_text()
    finally:
        server.stop()


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    server = Postgres(tmp_path / "pg")
    server.start()
    assert server.proc is not None
    pgid = server.proc.pid
    psql(server.url, "SELECT 1")  # a backend, besides the postmaster's helpers
    assert "postgres" in group_members(pgid)

    server.stop()

    assert server.proc is None
    assert group_members(pgid) == ""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=1).close()
    server.restart()  # the same cluster, port and data again
    try:
        assert psql(server.url, "SELECT current_user") == "postgres\n"
    finally:
        server.stop()


def test_each_test_gets_its_own_database(postgres_server: Postgres, postgres_url: str) -> None:
    assert postgres_url.startswith(f"postgresql://postgres@127.0.0.1:{postgres_server.port}/")
    database = postgres_url.rsplit("/", 1)[1]
    psql(postgres_url, "CREATE TABLE t (n int)")
    assert postgres_server.psql("SELECT count(*) FROM t", database) == "0\n"
    names = postgres_server.psql("SELECT datname FROM pg_database").split()
    assert database in names
