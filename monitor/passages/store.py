"""Open passages on disk (SQLite, ``state_dir/passages.db``), so a restart loses none;
with ``store.url`` they are in PostgreSQL instead (``store_postgres``), behind the same
``Store`` protocol and the same tests (tests/passages/test_store_contract.py).

``save`` runs before the acks of the messages whose reads changed the state (like the
quarantine's flush), so a crash never leaves an acknowledged read unknown to the next
start. Writes never raise: what the disk refuses stays in memory (the matcher's state is
the truth; the changes are keyed, so they stay bounded by it) and is written at the next
save that succeeds; ``problem`` says why meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Protocol

from monitor import logs, schema_version
from monitor.passages.matcher import Changes, OpenKey, OpenPassage, Passage, ReadKey

log = logs.get(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS open_passages (
    site TEXT NOT NULL, plate_hash TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (site, plate_hash));
CREATE TABLE IF NOT EXISTS last_reads (
    site TEXT NOT NULL, plate_hash TEXT NOT NULL, area TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    PRIMARY KEY (site, plate_hash, area));
CREATE TABLE IF NOT EXISTS closed (
    site TEXT NOT NULL, plate_hash TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (site, plate_hash));
CREATE TABLE IF NOT EXISTS released (
    site TEXT NOT NULL, plate_hash TEXT NOT NULL, exit_ms INTEGER NOT NULL,
    dwell_s REAL NOT NULL, inspected INTEGER NOT NULL,
    PRIMARY KEY (site, plate_hash, exit_ms));
CREATE INDEX IF NOT EXISTS released_exit ON released (exit_ms);
"""

# PRAGMA user_version of passages.db: 0, a monitor before versions (issue 22); 1, the same
# tables, versioned. A store newer than this monitor is refused, not overwritten.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, schema_version.Step] = {
    1: lambda db: None,  # the tables are what schema 0 had: only the version is new
}

Released = tuple[str, str, int, float, bool]  # site, plate hash, exit ms, dwell s, inspected
Loaded = tuple[dict[OpenKey, OpenPassage], dict[ReadKey, int], dict[OpenKey, Passage]]


class Store(Protocol):
    """What the tracker needs of a store of passages: SQLite's or PostgreSQL's."""

    @property
    def problem(self) -> str | None: ...

    def load(self) -> Loaded: ...

    def released(self, since_ms: int) -> list[Released]: ...

    def save(self, changes: Changes, released: list[Passage], forget_before_ms: int) -> None: ...

    async def asave(
        self, changes: Changes, released: list[Passage], forget_before_ms: int
    ) -> None: ...

    def close(self) -> None: ...


class PassageStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None
        self._pending = Changes()
        self._released: dict[tuple[str, str, int], Released] = {}
        self._forget_before: int | None = None
        self._db: sqlite3.Connection | None = None
        self._open()

    def _open(self) -> None:
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            # the version first: a newer store is left exactly as it was, header and all
            schema_version.migrate(db, str(self.path), SCHEMA, SCHEMA_VERSION, MIGRATIONS)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as e:
            if db is not None:
                db.close()
            self._failed("cannot open", e)
            return
        except BaseException:  # a newer store (exit 2), or one that defeats its migration
            if db is not None:
                db.close()
            raise
        self._db = db

    def _failed(self, doing: str, e: Exception) -> None:
        problem = f"{doing} {self.path}: {e}"
        if problem != self.problem:
            log.error("passages.store_failing", path=str(self.path), error=str(e))
        self.problem = problem

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- reading it back at start --

    def load(self) -> Loaded:
        if self._db is None:
            return {}, {}, {}
        try:
            open_ = {
                (site, h): OpenPassage(**json.loads(data))
                for site, h, data in self._db.execute("SELECT * FROM open_passages")
            }
            reads = {
                (site, h, area): ts
                for site, h, area, ts in self._db.execute("SELECT * FROM last_reads")
            }
            closed = {
                (site, h): Passage(**json.loads(data))
                for site, h, data in self._db.execute("SELECT * FROM closed")
            }
        except (sqlite3.Error, TypeError, ValueError) as e:
            self._failed("cannot read", e)
            return {}, {}, {}
        return open_, reads, closed

    def released(self, since_ms: int) -> list[Released]:
        """Passages released since ``since_ms`` (for the status board)."""
        rows: dict[tuple[str, str, int], Released] = {}
        if self._db is not None:
            try:
                for site, h, exit_ms, dwell_s, inspected in self._db.execute(
                    "SELECT * FROM released WHERE exit_ms >= ?", (since_ms,)
                ):
                    rows[(site, h, exit_ms)] = (site, h, exit_ms, dwell_s, bool(inspected))
            except sqlite3.Error as e:
                self._failed("cannot read", e)
        rows.update((k, v) for k, v in self._released.items() if v[2] >= since_ms)
        return sorted(rows.values(), key=lambda r: r[2])

    # -- writing --

    def save(self, changes: Changes, released: list[Passage], forget_before_ms: int) -> None:
        """Write these changes (and any the disk refused before) in one transaction."""
        pending = self._pending
        pending.open.update(changes.open)
        pending.reads.update(changes.reads)
        pending.closed.update(changes.closed)
        for p in released:
            key = (p.site, p.plate_hash, p.exit_ms)
            self._released[key] = (*key, p.dwell_s, p.inspected)
        self._forget_before = forget_before_ms
        if not (pending or self._released):
            return
        if self._db is None:
            self._open()
            if self._db is None:
                return
        try:
            self._write(self._db)
        except sqlite3.Error as e:
            self._failed("cannot write", e)
            return
        if self.problem is not None:
            log.info("passages.store_recovered", path=str(self.path))
            self.problem = None
        self._pending, self._released = Changes(), {}

    async def asave(self, changes: Changes, released: list[Passage], forget_before_ms: int) -> None:
        """``save``, on the loop: a local file, written as it always was (a WAL append)."""
        self.save(changes, released, forget_before_ms)

    def _write(self, db: sqlite3.Connection) -> None:
        p = self._pending
        with db:  # one transaction: all or nothing
            db.execute("BEGIN")
            for (site, h), passage in p.open.items():
                if passage is None:
                    db.execute("DELETE FROM open_passages WHERE site=? AND plate_hash=?", (site, h))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO open_passages VALUES (?, ?, ?)",
                        (site, h, json.dumps(open_data(passage))),
                    )
            for (site, h, area), ts in p.reads.items():
                if ts is None:
                    db.execute(
                        "DELETE FROM last_reads WHERE site=? AND plate_hash=? AND area=?",
                        (site, h, area),
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO last_reads VALUES (?, ?, ?, ?)", (site, h, area, ts)
                    )
            for (site, h), done in p.closed.items():
                if done is None:
                    db.execute("DELETE FROM closed WHERE site=? AND plate_hash=?", (site, h))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO closed VALUES (?, ?, ?)",
                        (site, h, json.dumps(passage_data(done))),
                    )
            db.executemany(
                "INSERT OR REPLACE INTO released VALUES (?, ?, ?, ?, ?)",
                [(s, h, ms, d, int(i)) for s, h, ms, d, i in self._released.values()],
            )
            if self._forget_before is not None:
                db.execute("DELETE FROM released WHERE exit_ms < ?", (self._forget_before,))


def open_data(p: OpenPassage) -> dict[str, object]:
    return {
        "site": p.site,
        "plate_hash": p.plate_hash,
        "entry_area": p.entry_area,
        "entry_device": p.entry_device,
        "entry_ms": p.entry_ms,
        "stages": p.stages,
    }


def passage_data(p: Passage) -> dict[str, object]:
    return {
        "site": p.site,
        "plate_hash": p.plate_hash,
        "entry_area": p.entry_area,
        "exit_area": p.exit_area,
        "entry_ms": p.entry_ms,
        "exit_ms": p.exit_ms,
        "stages": p.stages,
    }
