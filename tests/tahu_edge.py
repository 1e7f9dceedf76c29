"""A real Sparkplug B edge node for the tests: Eclipse Tahu's JavaScript client and encoder
(npm ``sparkplug-client``, ``sparkplug-payload``; tests/tahu/), run by Node as a subprocess
and driven over its stdin (tests/tahu/edge.js says what is Tahu's and what the script adds).

``make deps`` installs Node and runs ``npm ci`` in tests/tahu; without them these tests fail
and say so, they are not skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent / "tahu"
SCRIPT = HERE / "edge.js"

Event = dict[str, Any]


def node_binary() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None or not (HERE / "node_modules" / "sparkplug-client").is_dir():
        pytest.fail(
            "the Tahu edge node needs Node.js and tests/tahu/node_modules: run `make deps`"
            " (apt nodejs npm, then npm ci in tests/tahu)"
        )
    return node


def metric(
    name: str | None,
    type_: str,
    value: object,
    alias: int | None = None,
    **extra: object,
) -> dict[str, Any]:
    """A metric as Tahu's encoder takes it: ``type`` is its datatype's name (UInt32, ...)."""
    m: dict[str, Any] = {"type": type_, "value": value, **extra}
    if name is not None:
        m["name"] = name
    if alias is not None:
        m["alias"] = alias
    return m


class TahuEdge:
    """One edge node process. ``events`` is everything it said, in order."""

    _ids = itertools.count(1)

    def __init__(
        self,
        port: int,
        group: str,
        node: str,
        primary_host: str | None = None,
        client_id: str | None = None,
        devices: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        """``devices``: what its births carry (device id -> metrics), from the first one."""
        self.group, self.node = group, node
        args: dict[str, Any] = {
            "url": f"mqtt://127.0.0.1:{port}",
            "group": group,
            "node": node,
            "clientId": client_id or f"tahu-{node}",
        }
        if primary_host is not None:
            args["primaryHost"] = primary_host
        if devices is not None:
            args["devices"] = devices
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [node_binary(), str(SCRIPT), json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                with self._lock:
                    self.events.append(event)

    def seen(self, kind: str, where: Callable[[Event], bool] = lambda e: True) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.get("event") == kind and where(e)]

    def send(self, cmd: str, timeout: float = 10.0, **fields: object) -> str:
        """Run a command; its result once the client has written what it publishes."""
        cid = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, "id": cid, **fields}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.seen("done", lambda e: e.get("id") == cid)
            if done:
                return str(done[0]["result"])
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"edge node did not run {cmd}: {self.stderr()}")

    async def until(self, kind: str, count: int = 1, timeout: float = 15.0) -> list[Event]:
        """``wait`` without holding the event loop: the monitor under test (in-process)
        must run meanwhile, for the edge node waits on what it publishes (its STATE)."""
        return await asyncio.to_thread(self.wait, kind, count, timeout)

    def wait(self, kind: str, count: int = 1, timeout: float = 15.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.seen(kind)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"edge node: fewer than {count} {kind!r} in {self.events}")

    def define(
        self, devices: dict[str, list[dict[str, Any]]], node: list[dict[str, Any]] | None = None
    ) -> None:
        """What the births carry (now and after every rebirth request)."""
        self.send("define", devices=devices, node=node or [])

    def data(self, device: str | None, metrics: list[dict[str, Any]], hold: bool = False) -> str:
        return self.send("data", device=device, metrics=metrics, hold=hold)

    def kill(self) -> None:
        """The process dies: the kernel closes its socket without DISCONNECT, so the broker
        publishes its Will (the NDEATH Tahu registered at connect)."""
        self.proc.kill()
        self.proc.wait(10)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
