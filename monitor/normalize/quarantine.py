"""Rejected messages: counted by reason, logged at most once per reason per minute, and
kept in a bounded JSON-lines quarantine under ``state_dir`` for a person to inspect."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from monitor import logs
from monitor.clock import Clock
from monitor.stats import Stats

log = logs.get(__name__)

LOG_EVERY_S = 60.0
MAX_STORED_PAYLOAD = 64 * 1024  # a 10 MB junk payload is kept as its first 64 KiB


class Quarantine:
    """Two rotating files (``quarantine.jsonl`` and ``.1``), together at most ``max_bytes``."""

    def __init__(self, directory: Path, max_bytes: int, clock: Clock, stats: Stats) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "quarantine.jsonl"
        self._old = directory / "quarantine.1.jsonl"
        self._limit = max(max_bytes // 2, 4096)
        self._clock = clock
        self._stats = stats
        self._file: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - owned until close()
        self._size = self._file.tell()
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._update_stats()

    def reject(
        self, topic: str, payload: bytes, reason: str, detail: str, received_ms: int
    ) -> None:
        self._stats.messages_rejected += 1
        self._stats.rejected_by_reason[reason] += 1
        self._log(reason, detail, topic)
        self._append(topic, payload, reason, detail, received_ms)

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
        self, topic: str, payload: bytes, reason: str, detail: str, received_ms: int
    ) -> None:
        record: dict[str, Any] = {
            "received_at": datetime.fromtimestamp(received_ms / 1000, UTC).isoformat(
                timespec="milliseconds"
            ),
            "topic": topic,
            "reason": reason,
            "detail": detail,
            "payload_bytes": len(payload),
        }
        stored = payload[:MAX_STORED_PAYLOAD]
        try:
            record["payload"] = stored.decode("utf-8")
        except UnicodeDecodeError:
            record["payload_b64"] = base64.b64encode(stored).decode("ascii")
        if len(stored) < len(payload):
            record["payload_truncated"] = True
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        if self._size + len(data) > self._limit:
            self._rotate()
        self._file.write(data)
        self._size += len(data)
        self._update_stats()

    def _rotate(self) -> None:
        self._file.close()
        os.replace(self.path, self._old)
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def _update_stats(self) -> None:
        old = self._old.stat().st_size if self._old.exists() else 0
        self._stats.quarantine_bytes = old + self._size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
