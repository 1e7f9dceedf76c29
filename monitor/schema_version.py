"""Schema versions of the SQLite files under ``state_dir`` (SPEC 10).

Each store keeps its schema version in SQLite's own ``PRAGMA user_version``: 0 is a file
from before versions. ``migrate`` brings an older file up, one transaction a step, and
refuses a newer one (``StateVersionError``, exit 2) instead of writing into what it does
not understand. ``of`` reads a file's version without changing it (backups check copies).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

from monitor import logs
from monitor.errors import StateMigrationError, StateVersionError

log = logs.get(__name__)

Step = Callable[[sqlite3.Connection], None]


def migrate(
    db: sqlite3.Connection, path: str, schema: str, version: int, steps: Mapping[int, Step]
) -> None:
    """The schema created (a new file) or brought up to ``version``: ``steps[n]`` turns a
    file of version n - 1 into one of version n. ``db`` is in autocommit mode."""
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    if found > version:
        raise StateVersionError(path, found, version)
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
        db.executescript(schema + f"PRAGMA user_version = {version};")  # a new store
        return
    for step in range(found + 1, version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            steps[step](db)
            db.execute(f"PRAGMA user_version = {step}")
            db.execute("COMMIT")
        except sqlite3.OperationalError:  # the disk (full, failing): run degraded, retry
            db.execute("ROLLBACK")
            raise
        except sqlite3.Error as e:  # the rows themselves: retrying cannot help
            db.execute("ROLLBACK")
            raise StateMigrationError(path, step, str(e)) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("store.migrated", path=path, schema=step)
    db.executescript(schema)  # tables an older store did not have yet (IF NOT EXISTS)


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def of(path: Path) -> int:
    """The schema version of a store file, read only (sqlite3.Error if it is not one)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()
