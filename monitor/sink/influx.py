"""The InfluxDB writer: line protocol over HTTP, v1 (/write) or v2 (/api/v2/write).

One keep-alive session, gzip bodies, microsecond timestamps (or what a spooled batch of an
older version was written with: ``precision``). ``write`` returns only once
every line is stored or, if InfluxDB refuses that very line (400), quarantined: retryable
failures (connection errors, timeouts, 5xx, 429) are retried with jittered backoff,
honouring Retry-After; a refused batch is split in halves until the bad lines are
isolated, so one bad point never costs its neighbours. A batch refused for a field type
conflict is written again without the values of that field's other type (counted), and
the field's type learned (``fieldtypes.py``): the rest of those points is stored.

At start the field types InfluxDB already holds are read with ``SHOW FIELD KEYS`` (on
``/query``: InfluxDB 1.x, and 2.x and 3.x through their v1 compatibility API), so that
the first points of a restart bring no conflict.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import ssl as ssl_
import time
from collections.abc import Callable
from typing import Literal

import aiohttp

from monitor import logs
from monitor.backoff import backoff_delay
from monitor.clock import Clock
from monitor.config import Influx, tls_context
from monitor.errors import InfluxUnavailable, LineProtocolError, WriteError
from monitor.lifecycle import Resource
from monitor.sink import lineproto, schema
from monitor.sink.fieldtypes import Conflict, FieldTypes, parse_conflict
from monitor.stats import Stats

log = logs.get(__name__)

MAX_RETRY_AFTER_S = 300.0
CREATE_DATABASE_TIMEOUT_S = 2.0
FIELD_KEYS_TIMEOUT_S = 2.0  # the first message waits for them, at most this long
# Rounds of "refused for a type conflict, written again without it" per batch: InfluxDB
# names one conflicting field per answer. Beyond, the batch is split as for any refusal.
MAX_CONFLICT_ROUNDS = 8

OnRefused = Callable[[str, str], None]  # (line, InfluxDB's error) -> None
Precision = Literal["us", "ms"]  # of the lines' timestamps
_PRECISION: dict[str, dict[Precision, str]] = {  # as each write API spells it
    "v1": {"us": "u", "ms": "ms"},
    "v2": {"us": "us", "ms": "ms"},
}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from InfluxDB; our own backoff applies


class InfluxWriter(Resource):
    def __init__(
        self,
        config: Influx,
        stats: Stats,
        clock: Clock,
        on_refused: OnRefused,
        *,
        rng: random.Random | None = None,
        types: FieldTypes | None = None,
    ) -> None:
        self._config = config
        self._stats = stats
        self._clock = clock
        self._on_refused = on_refused
        self.types = types or schema.field_types(stats, clock)
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._url, self._params = self._endpoint()
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.compress:
            self._headers["Content-Encoding"] = "gzip"
        if config.token is not None:
            self._headers["Authorization"] = f"Token {config.token.get_secret_value()}"
        self._auth = (
            aiohttp.BasicAuth(config.username, config.password.get_secret_value())
            if config.username and config.password is not None and config.token is None
            else None
        )
        self._failing_since: float | None = None
        self._failures = 0
        self._starting: asyncio.Task[None] | None = None

    def _endpoint(self) -> tuple[str, dict[str, str]]:
        cfg = self._config
        if cfg.api == "v2":
            assert cfg.org is not None
            assert cfg.bucket is not None
            return f"{cfg.url}/api/v2/write", {"org": cfg.org, "bucket": cfg.bucket}
        params = {"db": cfg.database}
        if cfg.retention_policy:
            params["rp"] = cfg.retention_policy
        return f"{cfg.url}/write", params

    async def open(self) -> None:
        ssl: ssl_.SSLContext | bool = tls_context(self._config.ca_file) or True
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._config.timeout),
            connector=aiohttp.TCPConnector(limit=4, ssl=ssl),
        )
        # Beside the MQTT connection, not before it: the first write waits for it, and the
        # first message for the field types.
        self.types.loading()
        self._starting = asyncio.create_task(self._start(), name="influx-start")

    async def aclose(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.wait([self._starting])  # finished before its session closes
        if self._session is not None:
            await self._session.close()

    async def _start(self) -> None:
        try:
            if self._config.api == "v1" and self._config.create_database:
                await self._create_database()
            await self._load_field_types()
        finally:
            self.types.loaded()

    async def _load_field_types(self) -> None:
        """Best effort, like creating the database: without them the types are learned
        from the first values written and from InfluxDB's refusals."""
        assert self._session is not None
        cfg = self._config
        database = cfg.bucket if cfg.api == "v2" else cfg.database
        try:
            async with self._session.get(
                f"{cfg.url}/query",
                params={"db": database or "", "q": "SHOW FIELD KEYS"},
                headers=self._auth_headers(),
                auth=self._auth,
                timeout=aiohttp.ClientTimeout(total=FIELD_KEYS_TIMEOUT_S),
            ) as resp:
                body = await resp.json(content_type=None) if resp.status < 300 else None
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            log.warning("influx.field_types_unknown", error=str(e) or type(e).__name__)
            return
        results = body.get("results") if isinstance(body, dict) else None
        result = results[0] if isinstance(results, list) and results else {}
        if not isinstance(result, dict) or "error" in result or body is None:
            # a new database has none; a v2 bucket may lack a v1 mapping: learn as we go
            error = result.get("error") if isinstance(result, dict) else None
            log.info("influx.field_types_unknown", status=status, error=str(error)[:200])
            return
        learned = self.types.load(result.get("series") or [])
        log.info("influx.field_types_loaded", learned=learned)

    async def _create_database(self) -> None:
        """Best effort: a read-only or token-scoped user may not be allowed to, and an
        InfluxDB that is down must not hold up the start (a 404 later retries this)."""
        assert self._session is not None
        query = f'CREATE DATABASE "{self._config.database}"'
        try:
            async with self._session.post(
                f"{self._config.url}/query",
                data={"q": query},
                headers=self._auth_headers(),
                auth=self._auth,
                timeout=aiohttp.ClientTimeout(total=CREATE_DATABASE_TIMEOUT_S),
            ) as resp:
                if resp.status >= 300:
                    log.warning(
                        "influx.create_database_failed",
                        status=resp.status,
                        database=self._config.database,
                    )
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("influx.create_database_failed", error=str(e) or type(e).__name__)

    def _auth_headers(self) -> dict[str, str]:
        return {k: v for k, v in self._headers.items() if k == "Authorization"}

    # -- writing --

    async def write(
        self, lines: list[str], give_up_after: float | None = None, precision: Precision = "us"
    ) -> None:
        """Store all lines; returns when each is written or was refused and handed over.

        Retryable failures are retried until ``give_up_after`` seconds have passed (then
        InfluxUnavailable), or forever when it is None.
        """
        if not lines:
            return
        if self._starting is not None:
            await asyncio.shield(self._starting)  # cancelling a write leaves it be
            self._starting = None
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        params = {**self._params, "precision": _PRECISION[self._config.api][precision]}
        await self._write_split(lines, deadline, params)

    async def _write_split(
        self, lines: list[str], deadline: float | None, params: dict[str, str], rounds: int = 0
    ) -> None:
        try:
            await self._write_with_retry(lines, deadline, params)
        except InfluxUnavailable:
            raise
        except WriteError as e:
            conflict = parse_conflict(str(e)) if rounds < MAX_CONFLICT_ROUNDS else None
            if conflict is not None and (kept := self._without(lines, conflict)) is not None:
                if kept:
                    await self._write_split(kept, deadline, params, rounds + 1)
                return
            if len(lines) == 1:
                self._stats.points_quarantined += 1
                self._on_refused(lines[0], str(e))
                return
            half = len(lines) // 2
            await self._write_split(lines[:half], deadline, params)
            await self._write_split(lines[half:], deadline, params)

    def _without(self, lines: list[str], conflict: Conflict) -> list[str] | None:
        """The lines without the conflicting field's values of another type than InfluxDB's
        (each counted), the type learned; None if no line has such a value (then the batch
        is split as for any other refusal)."""
        keep = self.types.refused(conflict)
        kept: list[str] = []
        dropped = 0
        for line in lines:
            try:
                rest, was = lineproto.drop_field(line, conflict.measurement, conflict.field, keep)
            except LineProtocolError:  # a name the monitor cannot have written
                return None
            dropped += was
            if rest is not None:
                kept.append(rest)
        if not dropped:
            return None
        self.types.conflict(
            conflict.measurement, conflict.field, conflict.got, keep, "influxdb", dropped
        )
        return kept

    async def _write_with_retry(
        self, lines: list[str], deadline: float | None, params: dict[str, str]
    ) -> None:
        """Post until it succeeds; raises WriteError for a batch InfluxDB refuses, and
        InfluxUnavailable when still failing at the deadline."""
        body = "\n".join(lines).encode("utf-8")
        if self._config.compress:
            body = gzip.compress(body, compresslevel=1)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await self._post(body, params)
            except WriteError as e:
                self._stats.write_errors += 1
                if not e.retryable:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    self._note_failure(e, 0.0)
                    raise InfluxUnavailable(str(e), status=e.status) from None
                delay = backoff_delay(
                    attempt, self._config.retry.initial, self._config.retry.max, self._rng
                )
                if e.retry_after is not None:  # the server knows best, within reason
                    delay = max(delay, min(e.retry_after, MAX_RETRY_AFTER_S))
                if deadline is not None:
                    delay = max(0.0, min(delay, deadline - time.monotonic()))
                self._note_failure(e, delay)
                attempt += 1
                if e.status == 404 and self._config.api == "v1" and self._config.create_database:
                    await self._create_database()  # "database not found": someone dropped it
                await asyncio.sleep(delay)
                continue
            latency_ms = (time.perf_counter() - started) * 1000
            self._stats.record_write(len(lines), latency_ms, self._clock.now())
            self._note_success()
            return

    async def _post(self, body: bytes, params: dict[str, str]) -> None:
        if self._session is None:
            raise RuntimeError("InfluxWriter used outside its context")
        try:
            async with self._session.post(
                self._url,
                params=params,
                data=body,
                headers=self._headers,
                auth=self._auth,
            ) as resp:
                if resp.status < 300:
                    return
                text = (await resp.text())[:500]
                raise self._error_for(resp.status, text, resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as e:
            raise WriteError(
                f"InfluxDB unreachable: {e or type(e).__name__}", retryable=True
            ) from None

    def _error_for(self, status: int, text: str, retry_after: str | None) -> WriteError:
        if status in (400, 413, 422):  # this batch itself is bad (or too big): split it
            return WriteError(f"HTTP {status}: {text}", status=status, retryable=False)
        return WriteError(
            f"HTTP {status}: {text}",
            status=status,
            retryable=True,
            retry_after=_retry_after(retry_after),
        )

    def _note_failure(self, e: WriteError, delay: float) -> None:
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = self._clock.monotonic()
            log.error(
                "influx.write_failing",
                url=self._config.url,
                error=str(e),
                status=e.status,
                retry_in_s=round(delay, 2),
            )

    def _note_success(self) -> None:
        if self._failing_since is not None:
            log.info(
                "influx.write_recovered",
                url=self._config.url,
                failed_attempts=self._failures,
                outage_s=round(self._clock.monotonic() - self._failing_since, 1),
            )
            self._failing_since = None
            self._failures = 0

    @property
    def healthy(self) -> bool:
        return self._failing_since is None
