"""Rejected messages: counted by reason, logged at most once per reason per minute, and
kept in a bounded JSON-lines quarantine under ``state_dir`` for a person to inspect."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import logs
from monitor.clock import Clock
from monitor.normalize.plates import REDACTED_TEXT, redact
from monitor.stats import Stats

log = logs.get(__name__)

LOG_EVERY_S = 60.0
MAX_STORED_PAYLOAD = 64 * 1024  # a 10 MB junk payload is kept as its first 64 KiB
FLUSH_BYTES = 256 * 1024  # records collected before a write, at the most
FREE_ENOUGH = 1024 * 1024  # free space at which a refusing disk is worth trying again
REDACTED = b"(not kept: it may carry a licence plate)"
SPARKPLUG = "spBv1.0/"
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")  # a value as repr() quotes it


class Quarantine:
    """Two rotating files (``quarantine.jsonl`` and ``.1``), together at most ``max_bytes``.

    Records are collected and written together (``flush``, before the batch they belong to
    is acknowledged). A disk that refuses them costs the records, never the monitor: they
    are counted (``quarantine_write_errors``), ``problem`` says why, and the next flush
    tries again.
    """

    def __init__(self, directory: Path, max_bytes: int, clock: Clock, stats: Stats) -> None:
        self.path = directory / "quarantine.jsonl"
        self._old = directory / "quarantine.1.jsonl"
        self._limit = max(max_bytes // 2, 4096)
        self._clock = clock
        self._stats = stats
        self.problem: str | None = None
        self._fd: int | None = None
        self._size = self._old_size = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._open()

    def _open(self) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            self._old_size = self._old.stat().st_size if self._old.exists() else 0
        except OSError as e:
            self._failed(e)
            return False
        self._update_stats()
        return True

    def retry(self) -> None:
        """While the disk refuses the quarantine, see whether it has room again."""
        if self.problem is None:
            return
        if self._fd is None:
            self._open()
            return
        try:
            free = os.statvfs(self.path.parent)
        except OSError:
            return
        if free.f_bavail * free.f_frsize >= FREE_ENOUGH:
            log.info("quarantine.recovered", path=str(self.path))
            self.problem = None

    def _failed(self, e: OSError) -> None:
        problem = f"cannot write {self.path}: {e.strerror or e}"
        if problem != self.problem:
            log.error("quarantine.failing", path=str(self.path), error=e.strerror or str(e))
        self.problem = problem

    def reject(
        self,
        topic: str,
        payload: bytes,
        reason: str,
        detail: str,
        received_ms: int,
        size: int | None = None,
    ) -> None:
        """Count and keep a rejected message; ``size``: of a payload of which ``payload``
        is only the start. No clear licence plate is kept or logged (SPEC 9), whichever
        topic it came on: ``plates.redact`` says what of the payload may be kept."""
        self._stats.messages_rejected += 1
        self._stats.rejected_by_reason[reason] += 1
        size = len(payload) if size is None else size
        kept, plates = _redacted(topic, payload)
        for plate in plates:
            if len(plate) > 1:  # a detail may quote a value: never a plate
                detail = detail.replace(plate, REDACTED_TEXT)
        if kept is None:  # which values it holds is unknown: no quoted value then
            detail = _QUOTED.sub("'***'", detail)
        self._log(reason, detail, topic)
        partial = size > len(payload)  # only its start was received
        if kept is None:  # not kept at all: nothing of it is truncated either
            kept, partial = REDACTED, False
        self._append(topic, kept, reason, detail, received_ms, size, kept is not payload, partial)

    def refuse_point(self, line: str, error: str) -> None:
        """InfluxDB refused this one point (e.g. a field type conflict): keep it here."""
        self._stats.rejected_by_reason["influx_rejected"] += 1
        self._log("influx_rejected", error[:300], "(influx)")
        now_ms = int(self._clock.now() * 1000)
        self._append("(influx)", line.encode(), "influx_rejected", error[:300], now_ms)

    def _log(self, reason: str, detail: str, topic: str) -> None:
        now = self._clock.monotonic()
        last = self._last_logged.get(reason)
        if last is not None and now - last < LOG_EVERY_S:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last_logged[reason] = now
        log.warning(
            "message.rejected",
            reason=reason,
            detail=detail,
            topic=topic[:200],
            similar_since_last_log=self._suppressed.pop(reason, 0),
            quarantine=str(self.path),
        )

    def _append(
        self,
        topic: str,
        payload: bytes,
        reason: str,
        detail: str,
        received_ms: int,
        size: int | None = None,
        redacted: bool = False,
        partial: bool = False,
    ) -> None:
        size = len(payload) if size is None else size
        record: dict[str, Any] = {
            "received_at": datetime.fromtimestamp(received_ms / 1000, UTC).isoformat(
                timespec="milliseconds"
            ),
            "topic": topic,
            "reason": reason,
            "detail": detail,
            "payload_bytes": size,
        }
        stored = payload[:MAX_STORED_PAYLOAD]
        if redacted:
            record["payload_redacted"] = True  # plates replaced by ***, or none of it kept
        try:
            record["payload"] = stored.decode("utf-8")
        except UnicodeDecodeError:
            record["payload_b64"] = base64.b64encode(stored).decode("ascii")
        if len(stored) < len(payload) or partial:
            record["payload_truncated"] = True
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the records collected so far (they are lost, and counted, if it fails)."""
        if not self._pending:
            return
        records = self._pending
        self._pending, self._pending_bytes = [], 0
        try:
            if self._fd is None and not self._open():
                raise OSError(self.problem)
            run = bytearray()  # records that fit in the current file, in one write
            for record in records:
                if self._size + len(run) + len(record) > self._limit and (run or self._size):
                    self._write(run)
                    run.clear()
                    self._rotate()
                run += record
            self._write(run)
        except OSError as e:
            self._stats.quarantine_write_errors += len(records)
            self._failed(e)
            return
        self._update_stats()
        if self.problem is not None:
            log.info("quarantine.recovered", path=str(self.path))
            self.problem = None

    def _write(self, data: bytearray) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):  # no half record left behind
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        os.replace(self.path, self._old)
        self._old_size, self._size = self._size, 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _update_stats(self) -> None:
        self._stats.quarantine_bytes = self._old_size + self._size

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _redacted(topic: str, payload: bytes) -> tuple[bytes | None, list[str]]:
    """``plates.redact``, and a Sparkplug payload's texts replaced: its plates may come by
    alias, under no name to tell them by."""
    if topic.startswith(SPARKPLUG):
        from monitor.normalize.sparkplug.decoder import without_text  # protobuf: only here

        scrubbed = without_text(payload)
        if scrubbed is not None:
            return scrubbed
    return redact(topic, payload)
