"""Private mosquitto, influxd and PostgreSQL processes on loopback, for tests, the demo and
benchmarks.

Each server gets its own temporary directory and a free port below the kernel's
ephemeral range: a client retrying against a stopped server on an ephemeral port can
otherwise connect to itself and take the port.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
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


def _version_key(bindir: Path) -> tuple[int, ...]:
    """/usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6): numeric, so 10 sorts above 9.6."""
    return tuple(int(n) for n in bindir.parent.name.split(".") if n.isdigit())


@functools.cache
def pg_bindir() -> Path:
    """The bin directory of one PostgreSQL installation: initdb, postgres and the clients
    must all be of the same major version. Debian keeps them off PATH, one directory per
    major version; elsewhere they are on PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bindir in debian:
        if (bindir / "postgres").exists() and (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    if initdb is not None and (Path(initdb).parent / "postgres").exists():
        return Path(initdb).parent
    raise FileNotFoundError("PostgreSQL not found: install Debian's package (make deps)")


def _live_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that have not exited yet (zombies have: their memory,
    which is what a new postmaster checks, is released). A killed postmaster's children are
    orphans whose reaping is up to PID 1, which in a container may never do it."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in "ZX":
                live.append(int(stat.parent.name))
    return live


@dataclass
class Postgres(_Server):
    """A private PostgreSQL cluster (trust authentication, superuser ``postgres``) on
    loopback TCP and a Unix socket of its own. ``restart()`` and ``start()`` after
    ``kill()`` keep the port and the data; the cluster is created at the first start.

    Clients are Debian's own binaries (psql, createdb): nothing here needs a Python driver.
    """

    owner: str | None = field(default=None, init=False)
    """The user the server runs as: None for ourselves, 'postgres' when we are root."""
    gid: int | None = field(default=None, init=False, repr=False)
    cluster_dir: Path = field(init=False)
    """The data directory's parent, and the directory of the server's Unix socket."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cluster_dir = self.workdir
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root, and its user cannot reach a workdir under
            # pytest's private (0700) temp dirs. Opening those up would expose every other
            # test's files too; instead the cluster and its socket live in a fresh temp dir
            # of their own owned by 'postgres', removed with this object (or at exit). The
            # log stays in workdir: the server writes it through a descriptor we opened.
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root, PostgreSQL needs the 'postgres' user (Debian's package)"
                ) from None
            self.owner, self.gid = owner.pw_name, owner.pw_gid
            self.cluster_dir = Path(tempfile.mkdtemp(prefix="pg-"))
            os.chown(self.cluster_dir, owner.pw_uid, owner.pw_gid)
            weakref.finalize(self, shutil.rmtree, self.cluster_dir, ignore_errors=True)

    @property
    def data_dir(self) -> Path:
        return self.cluster_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{urllib.parse.quote(database)}"

    def _run_as_owner(self, argv: list[str]) -> None:
        with open(self.log_path, "ab") as log:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.cluster_dir,  # not the caller's: the owner may be unable to enter it
                user=self.owner,
                group=self.gid,
                extra_groups=[] if self.owner else None,  # none of root's groups
            )
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def start(self) -> None:
        bindir = pg_bindir()
        if not (self.data_dir / "PG_VERSION").exists():
            # --no-sync: only initdb's own final flush; the server below fsyncs as usual
            self._run_as_owner(
                [
                    str(bindir / "initdb"),
                    *("-D", str(self.data_dir), "-U", "postgres", "-A", "trust"),
                    *("-E", "UTF8", "--no-locale", "--no-sync"),
                ]
            )
        argv = [str(bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for setting in (
            f"listen_addresses={self.host}",
            f"unix_socket_directories={self.cluster_dir}",
            # Explicit, against a faster setting creeping into postgresql.conf: tests kill
            # the server and expect every committed row back.
            "fsync=on",
        ):
            argv += ["-c", setting]
        with open(self.log_path, "ab") as log:
            # The postmaster itself, not pg_ctl: a handle to signal, and a process group of
            # its own so that kill() takes its children too, as a crash would.
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.cluster_dir,
                user=self.owner,
                group=self.gid,
                extra_groups=[] if self.owner else None,
                process_group=0,
            )
        self._wait_ready(30)

    def _wait_ready(self, timeout: float) -> None:
        """Until it accepts connections: after a crash the port is open well before the
        end of recovery, so the port alone is not enough."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise RuntimeError(f"postgres exited with {code}:\n{self._log_tail()}")
            if self._client("pg_isready", "-d", "postgres", "-t", "1").returncode == 0:
                return
            time.sleep(0.05)
        raise TimeoutError(f"postgres not ready after {timeout}s:\n{self._log_tail()}")

    def _client(self, binary: str, *args: str) -> subprocess.CompletedProcess[str]:
        """One of the server's client binaries, as superuser over TCP."""
        server = ("-h", self.host, "-p", str(self.port), "-U", "postgres")
        return subprocess.run(
            [str(pg_bindir() / binary), *server, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            # The caller's PG* variables (PGPASSWORD, PGSERVICE, PGOPTIONS...) are meant for
            # other servers.
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` in ``database``, stopping at the first error; return the rows
        unaligned, one a line, columns separated by '|'."""
        done = self._client(
            "psql", "-d", database, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql
        )
        if done.returncode:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """Create the database ``name``; return its URL."""
        done = self._client("createdb", "--", name)
        if done.returncode:
            raise RuntimeError(f"createdb {name} failed: {done.stderr.strip()}")
        return self.url_for(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): sessions are cut, the data checkpointed; returns once
        the postmaster, which waits for all its children, has exited."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.proc = None

    def kill(self) -> None:
        """SIGKILL to the postmaster and all its children at once, as in a crash; the
        next start() recovers from the WAL."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        # A new postmaster refuses to start while any old process still holds the shared
        # memory.
        deadline = time.monotonic() + 10
        while _live_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
