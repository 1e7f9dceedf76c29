"""Bad input to the HTTP API (SPEC 6): a 4xx with a reason, never a 500 or a traceback in
the log, and a refused request changes nothing, neither what the API lists nor what
state.db holds, across a restart; a window an older version saved does not break the
list. The monitor runs as a real process; requests go over raw sockets, so that bytes no
HTTP client would send (a \\xff in a header) reach it as they are."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.alerting.engine import rfc3339
from monitor.alerting.store.sqlite import SCHEMA
from monitor.config import Config
from monitor.web.api import Health
from tests.helpers import ROOT, SHIPPED_CONFIG, MonitorProcess, running_monitor

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = b"s3cret-api-token"
AUTH = b"Authorization: Bearer " + TOKEN + b"\r\n"
JSON = b"Content-Type: application/json\r\n"


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is; the whole answer (the server closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def call(
    port: int, method: str, path: bytes, body: bytes = b"", headers: bytes = AUTH + JSON
) -> tuple[int, Any]:
    """One request; its status and its JSON body (None when it is not JSON)."""
    head = (
        method.encode()
        + b" "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + headers
    )
    answer = exchange(port, head + b"\r\n" + body)
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    return int(status_line.split()[1]), data


def window(**fields: Any) -> bytes:
    return json.dumps({"scope": "device", "value": "xs-01", **fields}).encode()


# (what it is, method, path, body, headers): each must be refused with a 4xx and a reason
REFUSED: list[tuple[str, str, bytes, bytes, bytes]] = [
    ("non-UTF-8 token byte", "POST", b"/api/maintenance", window(duration="1h"),
     b"Authorization: Bearer \xff\r\n" + JSON),
    ("latin-1 token byte", "POST", b"/api/maintenance", window(duration="1h"),
     b"Authorization: Bearer s3cret-api-tok\xe9n\r\n" + JSON),
    ("no Authorization", "POST", b"/api/maintenance", window(duration="1h"), JSON),
    ("Basic scheme", "POST", b"/api/maintenance", window(duration="1h"),
     b"Authorization: Basic " + TOKEN + b"\r\n" + JSON),
    ("Bearer without token", "POST", b"/api/maintenance", window(duration="1h"),
     b"Authorization: Bearer\r\n" + JSON),
    ("wrong token", "POST", b"/api/maintenance", window(duration="1h"),
     b"Authorization: Bearer s3cret-api-tokeN\r\n" + JSON),
    ("non-UTF-8 token on delete", "DELETE", b"/api/maintenance/abc", b"",
     b"Authorization: Bearer \xff\xfe\r\n"),
    ("non-UTF-8 token on ack", "POST", b"/api/alerts/abc/ack", b"{}",
     b"Authorization: Bearer \xc3\x28\r\n"),
    ("not JSON", "POST", b"/api/maintenance", b"scope=device", AUTH + JSON),
    ("not UTF-8", "POST", b"/api/maintenance", b"\xff\xfe{}", AUTH + JSON),
    ("not an object", "POST", b"/api/maintenance", b"[1, 2]", AUTH + JSON),
    ("nested too deep", "POST", b"/api/maintenance", b"[" * 5000 + b"]" * 5000, AUTH + JSON),
    ("wrong types", "POST", b"/api/maintenance",
     b'{"scope": "device", "value": 7, "duration": true}', AUTH + JSON),
    ("unknown field", "POST", b"/api/maintenance", window(duration="1h", colour="red"),
     AUTH + JSON),
    ("3000000d", "POST", b"/api/maintenance", window(duration="3000000d"), AUTH + JSON),
    ("1e308 s", "POST", b"/api/maintenance", window(duration=1e308), AUTH + JSON),
    ("NaN s", "POST", b"/api/maintenance",
     b'{"scope": "device", "value": "xs-01", "duration": NaN}', AUTH + JSON),
    ("a 400-digit number", "POST", b"/api/maintenance",
     b'{"scope": "device", "value": "xs-01", "duration": 1' + b"0" * 400 + b"}", AUTH + JSON),
    ("negative", "POST", b"/api/maintenance", window(duration=-60), AUTH + JSON),
    ("zero long", "POST", b"/api/maintenance", window(duration="0s"), AUTH + JSON),
    ("367 days", "POST", b"/api/maintenance", window(duration="367d"), AUTH + JSON),
    ("367 days by ends", "POST", b"/api/maintenance",
     window(starts="2026-01-01T00:00:00+05:00", ends="2027-01-03T00:00:00+05:00"), AUTH + JSON),
    ("starts in 1969", "POST", b"/api/maintenance",
     window(starts="1969-12-31T23:00:00Z", duration="2h"), AUTH + JSON),
    ("ends in year 10000", "POST", b"/api/maintenance",
     window(starts="9999-12-31T00:00:00Z", duration="2d"), AUTH + JSON),
    ("year 10000 in UTC", "POST", b"/api/maintenance",
     window(starts="9999-12-31T20:00:00-05:00", ends="9999-12-31T21:00:00-05:00"), AUTH + JSON),
    ("year 10000 written", "POST", b"/api/maintenance",
     window(starts="10000-01-01T00:00:00Z", duration="1h"), AUTH + JSON),
    ("no time zone", "POST", b"/api/maintenance",
     window(starts="2026-11-22T08:00:00", duration="1h"), AUTH + JSON),
    ("ends before starts", "POST", b"/api/maintenance",
     window(starts="2026-11-22T08:00:00Z", ends="2026-11-22T07:00:00Z"), AUTH + JSON),
    ("both ends and duration", "POST", b"/api/maintenance",
     window(ends="2030-01-01T00:00:00Z", duration="1h"), AUTH + JSON),
    ("not a device id", "POST", b"/api/maintenance",
     window(value="xs 01/../x", duration="1h"), AUTH + JSON),
    ("not a kind", "POST", b"/api/maintenance",
     json.dumps({"scope": "kind", "value": "toaster", "duration": "1h"}).encode(), AUTH + JSON),
    ("not a scope", "POST", b"/api/maintenance",
     json.dumps({"scope": "planet", "value": "earth", "duration": "1h"}).encode(), AUTH + JSON),
    ("control characters", "POST", b"/api/maintenance",
     window(duration="1h", reason="tube\u001b[2J"), AUTH + JSON),
    ("ack by a number", "POST", b"/api/alerts/abc/ack", b'{"by": 5}', AUTH + JSON),
    ("state out of range", "GET", b"/api/alerts?state=closed", b"", b""),
    ("state not UTF-8", "GET", b"/api/alerts?state=%ff", b"", b""),
    ("no such window", "DELETE", b"/api/maintenance/%ff", b"", AUTH),
    ("no such path", "GET", b"/api/windows", b"", b""),
    ("no such method", "PUT", b"/api/maintenance", window(duration="1h"), AUTH + JSON),
]  # fmt: skip


def saved_windows(state_dir: Path) -> dict[str, Any]:
    with sqlite3.connect(state_dir / "state.db") as db:
        return {i: json.loads(d) for i, d in db.execute("SELECT id, data FROM maintenance")}


def cli_list(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "maintenance", "list", "-c", str(SHIPPED_CONFIG),
         "--url", f"http://127.0.0.1:{port}", *args],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def no_fault_in(log: str) -> None:
    for sign in ("Traceback", "exc=", "Error handling request", "http.failed"):
        assert sign not in log, log


async def test_bad_input_is_a_4xx_with_a_reason_and_changes_nothing(
    configure: Callable[..., Config], tmp_path: Path
) -> None:
    config = configure(MONITOR_HTTP__TOKEN=TOKEN.decode())
    port, state_dir = config.http.port, config.state_dir
    proc = MonitorProcess(tmp_path / "monitor.log")
    await proc.wait_log("event=http.listening")
    status, kept = await asyncio.to_thread(
        call, port, "POST", b"/api/maintenance",
        window(starts="2026-11-22T08:00:00+05:00", duration="366d", reason="overhaul"),
    )  # fmt: skip
    assert status == 201, kept  # a window of the longest length there is, saved
    listed = {"windows": [kept]}
    on_disk = saved_windows(state_dir)
    assert list(on_disk) == [kept["id"]]

    for what, method, path, body, headers in REFUSED:
        status, answer = await asyncio.to_thread(call, port, method, path, body, headers)
        assert 400 <= status < 500, (what, status, answer)
        assert isinstance(answer, dict) and answer.get("error"), (what, answer)
        # refused: nothing changed, in the API or on disk
        assert await asyncio.to_thread(call, port, "GET", b"/api/maintenance") == (200, listed)
        assert saved_windows(state_dir) == on_disk, what
    by_what = {w: call_ for w, *call_ in REFUSED}
    status, answer = await asyncio.to_thread(call, port, *by_what["non-UTF-8 token byte"])
    assert (status, answer["error"]) == (400, "the Authorization header is not UTF-8 text")
    status, answer = await asyncio.to_thread(call, port, *by_what["ends in year 10000"])
    assert (status, answer["error"]) == (400, "ends is outside the years 1970 to 9999 (UTC)")
    status, answer = await asyncio.to_thread(call, port, *by_what["367 days"])
    assert "at most 366 days" in answer["error"]

    # malformed requests that aiohttp's parser refuses itself: a 400, one quiet log line
    for garbage in (
        b"GARBAGE\r\n\r\n",
        b"GET /api/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/alerts?state=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/maintenance HTTP/1.1\r\nHost: x\r\n" + AUTH[:-2] + b"\x01\r\n\r\n",
    ):
        assert (await asyncio.to_thread(exchange, port, garbage)).startswith(b"HTTP/1.0 400")
    await proc.wait_log("event=http.bad_request")
    await asyncio.sleep(0.5)
    assert proc.log().count("event=http.bad_request") == 1, proc.log()
    assert TOKEN.decode() not in proc.log()
    assert proc.terminate() == 0
    no_fault_in(proc.log())

    # after a restart: the same windows, and the CLI lists them
    restarted = MonitorProcess(tmp_path / "again.log")
    await restarted.wait_log("event=http.listening")
    assert await asyncio.to_thread(call, port, "GET", b"/api/maintenance") == (200, listed)
    shown = await asyncio.to_thread(cli_list, port, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == listed
    table = await asyncio.to_thread(cli_list, port)
    assert table.returncode == 0, table.stderr
    assert kept["id"] in table.stdout and "overhaul" in table.stdout
    assert restarted.terminate() == 0
    no_fault_in(restarted.log())


# What an older version saved before its windows were checked (SPEC 6)
OLD_ROWS = {
    "y10k": {"starts": 1_790_000_000.0, "ends": 253_402_300_800.0 + 3600},
    "3000000d": {"starts": 1_790_000_000.0, "ends": 1_790_000_000.0 + 3_000_000 * 86400.0},
    "1969": {"starts": -3600.0, "ends": 3600.0},
    "nan": {"starts": 1_790_000_000.0, "ends": float("nan")},
    "odd-value": {"starts": 1_790_000_000.0, "ends": 1_790_003_600.0, "value": "x y"},
}


async def test_a_bad_window_saved_by_an_older_version_is_skipped_not_fatal(
    configure: Callable[..., Config], tmp_path: Path
) -> None:
    config = configure(MONITOR_HTTP__TOKEN=TOKEN.decode())
    port, state_dir = config.http.port, config.state_dir
    state_dir.mkdir(parents=True)
    now = float(int(time.time()))  # a window still open: housekeeping keeps it
    good = {
        "id": "good", "scope": "area", "value": "inspection-1", "starts": now - 3600,
        "ends": now + 86400, "reason": "calibration", "created_by": "aigerim",
    }  # fmt: skip
    rows = {"good": good}
    for row_id, fields in OLD_ROWS.items():
        rows[row_id] = {**good, "id": row_id, "reason": "old", **fields}
    with sqlite3.connect(state_dir / "state.db") as db:
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO maintenance (id, data) VALUES (?, ?)",
            [*((i, json.dumps(r)) for i, r in rows.items()), ("not-json", "{'id': ")],
        )
    proc = MonitorProcess(tmp_path / "monitor.log")
    await proc.wait_log("event=http.listening")
    status, listed = await asyncio.to_thread(call, port, "GET", b"/api/maintenance")
    assert status == 200, listed
    assert [w["id"] for w in listed["windows"]] == ["good"]
    assert listed["windows"][0]["ends"] == rfc3339(now + 86400)
    shown = await asyncio.to_thread(cli_list, port)
    assert shown.returncode == 0, shown.stderr
    assert "good" in shown.stdout and "calibration" in shown.stdout and "old" not in shown.stdout
    # said once, which rows; and they are left on disk for a person to look at
    assert proc.log().count("event=store.windows_skipped") == 1, proc.log()
    assert "count=6" in proc.log()
    assert set(saved_windows_raw(state_dir)) == {*rows, "not-json"}
    assert proc.terminate() == 0
    no_fault_in(proc.log())


def saved_windows_raw(state_dir: Path) -> dict[str, str]:
    with sqlite3.connect(state_dir / "state.db") as db:
        return dict(db.execute("SELECT id, data FROM maintenance").fetchall())


async def test_a_fault_of_ours_is_a_json_500_logged_once_per_kind(
    configure: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    """Not bad input but a bug: still JSON, and not a traceback per request (anyone who
    reaches the port could repeat it)."""

    def broken() -> Health:
        raise ZeroDivisionError("a bug")

    async with running_monitor(configure()) as running:
        running.api._health = broken
        for _ in range(5):
            status, answer = await asyncio.to_thread(
                call, running.api.port or 0, "GET", b"/health", b"", b""
            )
            assert status == 500 and "failed" in answer["error"], answer
    failed = [r for r in caplog.records if r.getMessage() == "http.failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert not [r for r in caplog.records if "Error handling request" in r.getMessage()]
