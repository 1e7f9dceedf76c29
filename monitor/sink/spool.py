"""The disk spool: batches InfluxDB could not take, kept until it can.

SQLite (its own file, WAL, synchronous=FULL): an append is on disk (fsync'd) when it
returns, which is what lets the writer acknowledge the batch's MQTT messages; batches come
back oldest first; deleting a replayed batch is atomic. Bounded by ``max_bytes`` of
compressed data: when full, ``append`` refuses and the caller stops acknowledging, so the
broker keeps the messages instead of anything being dropped. A disk that refuses the spool
(full, failing) is the same as a full spool, never an error: ``problem`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path

from monitor import logs, schema_version
from monitor.backoff import backoff_delay
from monitor.clock import Clock, SystemClock
from monitor.errors import InfluxUnavailable
from monitor.lifecycle import always, leading
from monitor.sink.influx import InfluxWriter, Precision
from monitor.stats import Stats

log = logs.get(__name__)

# A live batch gets this long against a failing InfluxDB before it goes to the spool: long
# enough to ride out a blip, short enough that acks (and the broker's window) keep moving.
LIVE_GIVE_UP_S = 2.0
RETRY_S = 5.0  # a spool the disk refused is tried again at most this often

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY AUTOINCREMENT,
    points INTEGER NOT NULL, data BLOB NOT NULL, precision TEXT NOT NULL);
"""


def _precision(db: sqlite3.Connection) -> None:
    columns = schema_version.columns(db, "batches")
    if columns and "precision" not in columns:  # spooled by a version that wrote milliseconds
        db.execute("ALTER TABLE batches ADD COLUMN precision TEXT NOT NULL DEFAULT 'ms'")


# PRAGMA user_version of spool.db: 0, a monitor before versions (issue 22), its batches
# with or without their precision (before: milliseconds); 1, each batch with its precision.
# A spool newer than this monitor is refused, not replayed wrongly.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, schema_version.Step] = {1: _precision}


class Spool:
    def __init__(
        self, path: Path, max_bytes: int, stats: Stats, clock: Clock | None = None
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._stats = stats
        self._clock = clock or SystemClock()
        self._db: sqlite3.Connection | None = None
        self.problem: str | None = None  # why the disk refuses the spool, while it does
        self._retry_at = 0.0
        self.bytes = self.batches = self.points = 0
        self._open_db()

    def _open_db(self) -> bool:
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # the version first: a newer store is left exactly as it was, header and all
            schema_version.migrate(db, str(self.path), SCHEMA, SCHEMA_VERSION, MIGRATIONS)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            row = db.execute(
                "SELECT COALESCE(SUM(LENGTH(data)), 0), COUNT(*), COALESCE(SUM(points), 0)"
                " FROM batches"
            ).fetchone()
        except (sqlite3.Error, OSError) as e:
            if db is not None:
                db.close()
            self._failed("cannot open", e)
            return False
        except BaseException:  # a newer store (exit 2), or one that defeats its migration
            if db is not None:
                db.close()
            raise
        self._db = db
        self.bytes, self.batches, self.points = int(row[0]), int(row[1]), int(row[2])
        self._publish()
        return True

    def _failed(self, doing: str, e: Exception) -> None:
        problem = f"{doing} {self.path}: {e}"
        if problem != self.problem:
            log.error("spool.failing", path=str(self.path), error=str(e))
        self.problem = problem
        self._retry_at = self._clock.monotonic() + RETRY_S

    def retry(self) -> None:
        """While the disk refuses the spool, try it again (paced): the problem goes as soon
        as a small write goes through, not only when InfluxDB next fails."""
        if self.problem is None or self._clock.monotonic() < self._retry_at:
            return
        if self._db is None:
            self._open_db()
            return
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS probe (data BLOB)")
            self._db.execute("INSERT INTO probe VALUES (randomblob(4096))")
            self._db.execute("DELETE FROM probe")
        except sqlite3.Error as e:
            self._failed("cannot write", e)
            return
        log.info("spool.recovered", path=str(self.path))
        self.problem = None

    def _usable(self) -> bool:
        if self._db is not None:
            return True
        return self._clock.monotonic() >= self._retry_at and self._open_db()

    def append(self, lines: list[str]) -> bool:
        """Durably keep a batch; False (and nothing kept) when it does not fit, or when the
        disk refuses it: then, as when full, the caller does not acknowledge."""
        data = zlib.compress("\n".join(lines).encode(), 1)
        if self.bytes + len(data) > self.max_bytes or not self._usable():
            return False
        assert self._db is not None
        try:
            self._db.execute(
                "INSERT INTO batches (points, data, precision) VALUES (?, ?, 'us')",
                (len(lines), data),
            )
        except sqlite3.Error as e:
            self._failed("cannot write", e)
            return False
        if self.problem is not None:
            log.info("spool.recovered", path=str(self.path))
            self.problem = None
        self.bytes += len(data)
        self.batches += 1
        self.points += len(lines)
        self._publish()
        return True

    def oldest(self) -> tuple[int, list[str], Precision] | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute(
                "SELECT id, data, precision FROM batches ORDER BY id LIMIT 1"
            ).fetchone()
        except sqlite3.Error as e:
            self._failed("cannot read", e)
            return None
        if row is None:
            return None
        precision: Precision = "ms" if row[2] == "ms" else "us"
        return int(row[0]), zlib.decompress(row[1]).decode().split("\n"), precision

    def remove(self, batch_id: int) -> None:
        """Forget a replayed batch; if the disk refuses, it is replayed again (harmless)."""
        if self._db is None:
            return
        try:
            row = self._db.execute(
                "DELETE FROM batches WHERE id = ? RETURNING LENGTH(data), points", (batch_id,)
            ).fetchone()
        except sqlite3.Error as e:
            self._failed("cannot delete from", e)
            return
        if row is not None:
            self.bytes -= int(row[0])
            self.batches -= 1
            self.points -= int(row[1])
            self._publish()

    @property
    def fill(self) -> float:
        return self.bytes / self.max_bytes if self.max_bytes else 0.0

    def _publish(self) -> None:
        self._stats.spool_bytes = self.bytes
        self._stats.spool_points = self.points

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class SpoolingWriter:
    """InfluxDB when it answers, the spool when it does not, and replay in between.

    While InfluxDB is known to be down, live batches go straight to the spool (acked in
    milliseconds); the replay task probes with the oldest spooled batch, with backoff, and
    once that is written, live batches go to InfluxDB again while the replay drains the
    rest, oldest first, side by side with live data.
    """

    def __init__(
        self,
        writer: InfluxWriter,
        spool: Spool | None,
        stats: Stats,
        live_give_up: float = LIVE_GIVE_UP_S,
        retry_max: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._writer = writer
        self._spool = spool
        self._stats = stats
        self._live_give_up = live_give_up
        self._retry_max = retry_max
        self._rng = rng or random.Random()
        self.influx_down = False
        # Whether this monitor may write (SPEC 8.1: the leader, while its lease holds),
        # asked before every batch: one that may not is neither written nor acked.
        self.may_write: Callable[[], bool] = always
        self._spooled = asyncio.Event()
        self._room = asyncio.Event()

    async def write(self, lines: list[str]) -> None:
        """Returns once the batch is in InfluxDB or durably in the spool: then ack."""
        await leading(self.may_write)
        if self._spool is None:
            await self._writer.write(lines)  # no spool: retry for as long as it takes
            return
        if not self.influx_down and await self._try_influx(lines):
            return
        refused = False
        attempt = 0
        while not self._spool.append(lines):
            if not refused:  # full: stop acknowledging; the broker keeps the messages
                refused = True
                self._stats.spool_refusals += 1
                log.error(
                    "spool.full", spool_bytes=self._spool.bytes, max_bytes=self._spool.max_bytes
                )
            # Wait for the replay to make room, but also probe InfluxDB ourselves: with a
            # batch bigger than the free space the replay may have nothing to probe with.
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff_delay(attempt, 0.5, self._retry_max, self._rng)):
                    await self._room.wait()
            attempt += 1
            if await self._try_influx(lines):
                return
        self._spooled.set()

    async def _try_influx(self, lines: list[str]) -> bool:
        try:
            await self._writer.write(lines, give_up_after=self._live_give_up)
        except InfluxUnavailable:
            if not self.influx_down:
                self.influx_down = True
                log.warning("spool.spooling", reason="InfluxDB unavailable")
            return False
        self.influx_down = False
        return True

    async def replay(self) -> None:
        """Drain the spool oldest first whenever InfluxDB takes writes; until cancelled."""
        if self._spool is None:
            return
        attempt = 0
        while True:
            item = self._spool.oldest()
            if item is None:
                self._room.set()
                self._spooled.clear()
                await self._spooled.wait()
                continue
            batch_id, lines, precision = item
            try:
                await leading(self.may_write)
                await self._writer.write(lines, self._live_give_up, precision)
            except InfluxUnavailable:
                self.influx_down = True
                await asyncio.sleep(backoff_delay(attempt, 0.5, self._retry_max, self._rng))
                attempt += 1
                continue
            attempt = 0
            if self.influx_down:
                self.influx_down = False
                log.info("spool.replaying", batches=self._spool.batches, points=self._spool.points)
            self._spool.remove(batch_id)
            self._stats.points_replayed += len(lines)
            self._room.set()
            if self._spool.batches == 0:
                log.info("spool.drained")
