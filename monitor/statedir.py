"""What lives in ``state_dir``, the lock a running monitor holds on it, and its backup and
restore (SPEC 10).

The stores are SQLite files in WAL mode: ``state.db`` (alerts, acknowledgements, windows,
last-seen times, the notification outbox, Sparkplug edge nodes), ``passages.db`` (open
passages) and ``spool.db`` (points waiting for InfluxDB); beside them the quarantine's
JSON lines. A backup copies each store with SQLite's online backup API in one step: each
copy is one consistent moment of its file, taken while the monitor writes. The files are
copied one after the other, so they are not one moment together; nothing needs them to be
(the spool's points are at-least-once anyway: a point replayed after the backup was taken
is written again after a restore, which overwrites itself in InfluxDB).

A running monitor holds an exclusive ``flock`` on ``state_dir/monitor.lock``: a second
monitor on the same ``state_dir``, and a restore, are refused while it runs (the kernel
drops the lock with the process, however it ends).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from monitor import logs, schema_version
from monitor.alerting.store import sqlite as state_store
from monitor.errors import MonitorError, StateVersionError
from monitor.passages import store as passage_store
from monitor.sink import spool as spool_store

log = logs.get(__name__)

LOCK = "monitor.lock"
MANIFEST = "backup.json"
FORMAT = 1  # of the manifest; a restore refuses a backup of a format it does not know
# Each store and the newest schema this monitor reads (older ones it migrates at start).
STORES = {
    "state.db": state_store.SCHEMA_VERSION,
    "passages.db": passage_store.SCHEMA_VERSION,
    "spool.db": spool_store.SCHEMA_VERSION,
}
QUARANTINE = "quarantine"
FILE_MODE = 0o640  # a backup holds alerts and plate hashes: the service's group at most


class StateDirBusy(MonitorError):
    """A monitor runs with this state_dir (it holds the lock)."""

    def __init__(self, state_dir: Path, holder: str) -> None:
        super().__init__(
            f"a monitor is running with state_dir {state_dir} (pid {holder or 'unknown'}):"
            " stop it first (systemctl stop customs-monitor)"
        )


class BackupError(MonitorError):
    """A backup that cannot be taken or restored; nothing was changed."""


# -- the lock a running monitor holds ----------------------------------------------------


def _take(state_dir: Path) -> IO[str]:
    """The lock file, held (StateDirBusy if another process holds it)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    f = open(state_dir / LOCK, "a+")  # noqa: SIM115 - held for as long as the caller runs
    try:
        if os.geteuid() == 0 and (owner := state_dir.stat()).st_uid != 0:
            os.fchown(f.fileno(), owner.st_uid, owner.st_gid)  # root restoring: the service's
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip()[:20]
        f.close()
        raise StateDirBusy(state_dir, holder) from None
    except BaseException:
        f.close()
        raise
    return f


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Held while a monitor runs. A state_dir that cannot even hold the lock file (a full
    or read-only disk) does not stop the monitor: it runs degraded, as its stores do."""
    try:
        f = _take(state_dir)
    except OSError as e:
        log.warning("state_dir.unlocked", path=str(state_dir), error=str(e))
        yield
        return
    try:
        with contextlib.suppress(OSError):  # who holds it, for the refusal's message
            f.truncate(0)
            f.write(f"{os.getpid()}\n")
            f.flush()
        yield
    finally:
        f.close()  # the lock goes with the file


# -- backup ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copied:
    name: str  # relative to state_dir / the backup
    schema: int | None  # None: not a store (the quarantine's lines)
    size: int
    sha256: str


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _copy_store(source: Path, target: Path) -> int:
    """One consistent copy of a live SQLite store (its schema version); the copy is one
    self-contained file (rollback journal, no -wal beside it)."""
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one moment
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{source}: the copy fails SQLite's check ({check})")
            return int(dst.execute("PRAGMA user_version").fetchone()[0])
        finally:
            dst.close()
    finally:
        src.close()


def _copy_lines(source: Path, target: Path) -> None:
    """A file of JSON lines being appended to: its complete lines."""
    data = source.read_bytes()
    target.write_bytes(data[: data.rfind(b"\n") + 1])


def backup(state_dir: Path, dest: Path, version: str) -> list[Copied]:
    """Copy the stores and the quarantine of ``state_dir`` (a monitor may be running) into
    ``dest``, which must be new or empty. The manifest is written last: a backup without
    one is incomplete, and a restore refuses it."""
    if not (state_dir / "state.db").is_file():
        raise BackupError(f"{state_dir} holds no state.db: not a monitor's state_dir")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not empty: give a new directory")
    dest.mkdir(mode=0o750, parents=True, exist_ok=True)
    copied: list[Copied] = []
    try:
        for name in STORES:
            if (state_dir / name).is_file():
                schema = _copy_store(state_dir / name, dest / name)
                copied.append(Copied(name, schema, *_summary(dest / name)))
        quarantine = state_dir / QUARANTINE
        if quarantine.is_dir():
            (dest / QUARANTINE).mkdir(mode=0o750)
            for path in sorted(quarantine.glob("*.jsonl")):
                name = f"{QUARANTINE}/{path.name}"
                _copy_lines(path, dest / name)
                copied.append(Copied(name, None, *_summary(dest / name)))
    except (sqlite3.Error, OSError) as e:
        raise BackupError(f"cannot copy {state_dir} to {dest}: {e}") from None
    manifest = {
        "format": FORMAT,
        "monitor": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "state_dir": str(state_dir.resolve()),
        "files": {c.name: {"schema": c.schema, "size": c.size, "sha256": c.sha256} for c in copied},
    }
    _write_durably(dest / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
    return copied


def _summary(path: Path) -> tuple[int, str]:
    path.chmod(FILE_MODE)
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return path.stat().st_size, _sha256(path)


def _write_durably(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- restore -----------------------------------------------------------------------------


def read_backup(source: Path) -> dict[str, dict[str, object]]:
    """The backup's files, checked: complete, intact, of schemas this monitor reads."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{source} has no {MANIFEST}: not a backup, or not a whole one") from None
    except (OSError, ValueError) as e:
        raise BackupError(f"{source / MANIFEST}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source / MANIFEST}: not a backup format this monitor reads")
    files: dict[str, dict[str, object]] = manifest.get("files", {})
    if "state.db" not in files:
        raise BackupError(f"{source} holds no state.db")
    for name, facts in files.items():
        path = source / name
        if not (name in STORES or _is_quarantine(name)) or not path.is_file():
            raise BackupError(f"{source}: {name} is missing or not a file of a state_dir")
        if path.stat().st_size != facts.get("size") or _sha256(path) != facts.get("sha256"):
            raise BackupError(f"{path} is not the file the backup took (size or sha256 differ)")
        if name in STORES:
            try:
                found = schema_version.of(path)
            except sqlite3.Error as e:
                raise BackupError(f"{path}: {e}") from None
            if found > STORES[name]:
                raise StateVersionError(str(path), found, STORES[name])
    return files


def _is_quarantine(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and parts[0] == QUARANTINE and parts[1].endswith(".jsonl")


def _present(state_dir: Path) -> list[Path]:
    """What of a state in ``state_dir`` a restore would replace."""
    names = [*STORES, *(f"{n}{s}" for n in STORES for s in ("-wal", "-shm", "-journal"))]
    found = [state_dir / n for n in names if (state_dir / n).exists()]
    if (state_dir / QUARANTINE).exists():
        found.append(state_dir / QUARANTINE)
    return found


def restore(source: Path, state_dir: Path, replace: bool) -> tuple[list[str], Path | None]:
    """Put a backup into ``state_dir`` with no monitor running there (StateDirBusy). A
    state already there is refused, or with ``replace`` moved aside (never deleted): the
    names restored and where the old state went."""
    files = read_backup(source)
    with _held(state_dir):
        aside = None
        if present := _present(state_dir):
            if not replace:
                raise BackupError(
                    f"{state_dir} holds a state ({', '.join(p.name for p in present)}):"
                    " --replace moves it aside first"
                )
            aside = state_dir / time.strftime("replaced-%Y%m%dT%H%M%S", time.localtime())
            aside.mkdir()
            for path in present:  # a -wal of the old state beside the new file would be
                path.rename(aside / path.name)  # replayed into it: it goes too
        owner = state_dir.stat()
        for name in files:
            target = state_dir / name
            target.parent.mkdir(mode=0o750, exist_ok=True)
            partial = target.with_name(target.name + ".restoring")
            shutil.copyfile(source / name, partial)
            partial.chmod(FILE_MODE)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            if os.geteuid() == 0 and owner.st_uid != 0:  # root restoring for the service
                os.chown(partial, owner.st_uid, owner.st_gid)
                os.chown(target.parent, owner.st_uid, owner.st_gid)
            partial.replace(target)
            _fsync_dir(target.parent)
        return list(files), aside


@contextlib.contextmanager
def _held(state_dir: Path) -> Iterator[None]:
    f = _take(state_dir)
    try:
        yield
    finally:
        f.close()
