"""Private mosquitto and influxd processes on loopback, for tests, the demo and benchmarks.

Each server gets its own temporary directory and a free port below the kernel's
ephemeral range: a client retrying against a stopped server on an ephemeral port can
otherwise connect to itself and take the port.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PORT_RANGE = (20000, 30000)


def free_port(host: str = "127.0.0.1") -> int:
    """A port in PORT_RANGE that nothing listens on right now."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in {}-{}".format(*PORT_RANGE))


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _find(binary: str, *extra_dirs: str) -> str:
    path = shutil.which(binary) or next(
        (str(Path(d) / binary) for d in extra_dirs if (Path(d) / binary).exists()), None
    )
    if path is None:
        raise FileNotFoundError(f"{binary} not found: install Debian's package (make deps)")
    return path


@dataclass
class _Server:
    """A server process of ours: a work directory, a loopback port, start/stop/restart."""

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _spawn(self, argv: list[str], ready_timeout: float) -> None:
        """Start ``argv`` (stderr kept in the work directory); return once it listens."""
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "stderr.log", "ab"),  # noqa: SIM115
        )
        _wait_port(self.host, self.port, self.proc, ready_timeout)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        _terminate(self.proc)  # SIGTERM: each saves its data on the way out
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Mosquitto(_Server):
    """A private mosquitto; ``restart()`` keeps its port and persistence file."""

    extra_conf: str = ""

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def write_conf(self) -> None:
        # Started as root, mosquitto drops to the 'mosquitto' user, which cannot enter
        # private temp dirs; staying root is fine for a loopback-only test broker.
        user = "user root" if os.geteuid() == 0 else ""
        self.conf_path.write_text(
            f"""
{user}
listener {self.port} {self.host}
allow_anonymous true
persistence true
persistence_location {self.workdir}/
autosave_interval 1
max_inflight_messages 0
max_queued_messages 1000000
max_queued_bytes 0
log_dest file {self.workdir}/mosquitto.log
log_type error
log_type warning
log_type notice
{self.extra_conf}
"""
        )

    def start(self) -> None:
        self.write_conf()
        self._spawn([_find("mosquitto", "/usr/sbin"), "-c", str(self.conf_path)], 10)


@dataclass
class InfluxDB(_Server):
    """A private influxd 1.x with its HTTP API and backup port on loopback; with ``tls``
    (certificate, key) the API is HTTPS."""

    tls: tuple[Path, Path] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.backup_port = free_port(self.host)
        while self.backup_port == self.port:
            self.backup_port = free_port(self.host)

    def write_conf(self) -> Path:
        d = self.workdir
        conf = d / "influxdb.conf"
        https = (
            ""
            if self.tls is None
            else f'  https-enabled = true\n  https-certificate = "{self.tls[0]}"\n'
            f'  https-private-key = "{self.tls[1]}"\n'
        )
        conf.write_text(
            f"""
reporting-disabled = true
bind-address = "{self.host}:{self.backup_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[coordinator]
  log-queries-after = "0s"
[retention]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  log-enabled = false
{https}[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""
        )
        return conf

    def start(self) -> None:
        conf = self.write_conf()
        self._spawn([_find("influxd", "/usr/bin"), "-config", str(conf)], 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/ping", timeout=1, context=self._ca()) as r,
            ):
                if r.status == 204:
                    return
            time.sleep(0.05)
        raise TimeoutError("influxd did not answer /ping")

    def _ca(self) -> ssl.SSLContext | None:
        """The client side of a TLS test rig: its own certificate, unverified."""
        if self.tls is None:
            return None
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass
class VictoriaMetrics(_Server):
    """A private victoria-metrics: a real peer for InfluxDB's /api/v2/write."""

    def start(self) -> None:
        self._spawn(
            [
                _find("victoria-metrics", "/usr/bin"),
                f"-storageDataPath={self.workdir}/data",
                f"-httpListenAddr={self.host}:{self.port}",
                "-loggerLevel=ERROR",
                "-search.latencyOffset=0s",
            ],
            30,
        )
