"""Counters of the running monitor: the `monitor` measurement and /metrics read them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    messages_received: int = 0
    messages_rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    clock_skew: int = 0
    points_written: int = 0
    points_quarantined: int = 0
    field_type_conflicts: int = 0  # values dropped from their point: their field has another type
    batches_written: int = 0
    write_errors: int = 0
    broker_connected: bool = False
    broker_connects: int = 0
    broker_connect_failures: int = 0
    broker_sessions_lost: int = 0  # the broker had forgotten our session: its queue is gone
    subscriptions_refused: int = 0  # on the current connection
    subscriptions_downgraded: int = 0  # granted QoS 0 on the current connection
    notifications_sent: int = 0
    notifications_failed: int = 0  # failed delivery attempts (each retry counts)
    notifications_given_up: int = 0  # refused for their content, or undelivered for a day
    heartbeats_sent: int = 0  # the dead man's switch called (SPEC 8.1)
    heartbeat_failures: int = 0  # ... and not answered with 2xx
    spool_bytes: int = 0
    spool_points: int = 0
    spool_refusals: int = 0  # batches that found the spool full (acks held back)
    points_replayed: int = 0
    quarantine_bytes: int = 0
    quarantine_write_errors: int = 0  # rejected messages the disk refused to keep
    task_restarts: Counter[str] = field(default_factory=Counter)  # by task name
    stalls: int = 0  # times the monitor stood still (SIGSTOP, a paused VM): timers paused
    # truck passages (SPEC 9)
    passages_closed: int = 0
    passages_unmatched: int = 0
    exits_without_entry: int = 0
    plate_reads_low_confidence: int = 0
    plate_reads_not_camera: int = 0  # plate reads of other kinds: no reads (SPEC 9)
    # Sparkplug B (SPEC 3.4)
    sparkplug_seq_gaps: int = 0
    sparkplug_unknown_aliases: int = 0
    sparkplug_skipped_metrics: int = 0  # null, unsupported type, UInt64 beyond int64
    sparkplug_stale_deaths: int = 0  # NDEATHs of an earlier session, ignored
    sparkplug_rebirths_sent: int = 0
    sparkplug_reordered: int = 0  # messages that came late and filled a seq gap in time
    sparkplug_invalid_names: int = 0  # metric names that are not UTF-8, skipped
    sparkplug_invalid_states: int = 0  # state values that are no canonical state, skipped
    sparkplug_transient_metrics: int = 0  # is_transient metrics, not written
    sparkplug_too_old: int = 0  # historical metrics older than ingest.max_age, dropped
    sparkplug_too_many_metrics: int = 0  # metric definitions beyond sparkplug.max_metrics
    sparkplug_rebirths_dropped: int = 0  # rebirth wishes beyond sparkplug.max_nodes waiting
    sparkplug_state_reasserted: int = 0  # our own offline STATE answered while running
    sparkplug_nodes: int = 0  # edge nodes known (a gauge)
    sparkplug_session_connected: bool = False  # the host's own MQTT session
    # write latency of the batches since the last `monitor` point
    _latency_sum_ms: float = 0.0
    _latency_n: int = 0
    last_write_ok: float | None = None  # wall clock seconds

    def record_write(self, points: int, latency_ms: float, now: float) -> None:
        self.points_written += points
        self.batches_written += 1
        self._latency_sum_ms += latency_ms
        self._latency_n += 1
        self.last_write_ok = now

    def take_latency_ms(self) -> float | None:
        """Mean write latency since the previous call (None when nothing was written)."""
        if not self._latency_n:
            return None
        mean = self._latency_sum_ms / self._latency_n
        self._latency_sum_ms, self._latency_n = 0.0, 0
        return mean
