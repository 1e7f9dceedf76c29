"""``/metrics``: the monitor's counters as Prometheus text.

Imported at the first scrape, not at start-up: prometheus_client costs tens of
milliseconds that the first points should not wait for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitor.alerting.notify import Notifier
from monitor.stats import Stats


def exposition(stats: Stats, notifier: Notifier) -> Callable[[], bytes]:
    """A function that renders the counters, as they are when it is called."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatsCollector(stats, notifier))
    return lambda: generate_latest(registry)


class _StatsCollector:
    """Reads the counters at every scrape (a custom collector: no metric objects to keep
    in step)."""

    def __init__(self, stats: Stats, notifier: Notifier) -> None:
        self._stats = stats
        self._notifier = notifier

    def collect(self) -> Any:
        s = self._stats
        for name, value, doc in (
            ("messages_received", s.messages_received, "MQTT messages received"),
            ("messages_rejected", s.messages_rejected, "messages rejected (quarantined)"),
            ("points_written", s.points_written, "points accepted by InfluxDB"),
            ("points_quarantined", s.points_quarantined, "points InfluxDB refused"),
            (
                "field_type_conflicts",
                s.field_type_conflicts,
                "values dropped from their point: their field has another type in InfluxDB",
            ),
            ("write_errors", s.write_errors, "failed InfluxDB write attempts"),
            ("clock_skew", s.clock_skew, "timestamps in the future, replaced"),
            ("broker_connects", s.broker_connects, "successful MQTT connections"),
            ("broker_sessions_lost", s.broker_sessions_lost, "sessions the broker had lost"),
            ("quarantine_write_errors", s.quarantine_write_errors, "rejects the disk refused"),
            ("stalls", s.stalls, "times the monitor stood still (timers paused)"),
            (
                "notifications_given_up",
                s.notifications_given_up,
                "notifications given up: refused for their content, or a day undelivered",
            ),
            (
                "heartbeats_sent",
                s.heartbeats_sent,
                "dead man's switch calls answered (heartbeat.url)",
            ),
            ("heartbeat_failures", s.heartbeat_failures, "dead man's switch calls that failed"),
            ("passages_closed", s.passages_closed, "truck passages closed at an exit"),
            ("passages_unmatched", s.passages_unmatched, "entries that never reached an exit"),
            ("exits_without_entry", s.exits_without_entry, "exit reads with no open passage"),
            (
                "plate_reads_low_confidence",
                s.plate_reads_low_confidence,
                "plate reads below passages.min_confidence, ignored",
            ),
            (
                "plate_reads_not_camera",
                s.plate_reads_not_camera,
                "plate_read events of devices that are no ANPR camera, ignored",
            ),
            ("sparkplug_seq_gaps", s.sparkplug_seq_gaps, "Sparkplug seq gaps"),
            ("sparkplug_unknown_aliases", s.sparkplug_unknown_aliases, "DATA for unknown aliases"),
            ("sparkplug_skipped_metrics", s.sparkplug_skipped_metrics, "null or unsupported"),
            ("sparkplug_stale_deaths", s.sparkplug_stale_deaths, "NDEATHs of old sessions"),
            ("sparkplug_rebirths_sent", s.sparkplug_rebirths_sent, "rebirth requests sent"),
            (
                "sparkplug_reordered",
                s.sparkplug_reordered,
                "messages that came late and filled a seq gap in time",
            ),
            (
                "sparkplug_invalid_names",
                s.sparkplug_invalid_names,
                "metric names that are not UTF-8, skipped",
            ),
            (
                "sparkplug_invalid_states",
                s.sparkplug_invalid_states,
                "state values that are no canonical state, skipped",
            ),
            (
                "sparkplug_transient_metrics",
                s.sparkplug_transient_metrics,
                "is_transient metrics, not written",
            ),
            (
                "sparkplug_too_old",
                s.sparkplug_too_old,
                "historical metrics older than ingest.max_age, dropped",
            ),
            (
                "sparkplug_too_many_metrics",
                s.sparkplug_too_many_metrics,
                "metric definitions beyond sparkplug.max_metrics",
            ),
            (
                "sparkplug_rebirths_dropped",
                s.sparkplug_rebirths_dropped,
                "rebirth wishes beyond sparkplug.max_nodes waiting",
            ),
            (
                "sparkplug_state_reasserted",
                s.sparkplug_state_reasserted,
                "our own offline STATE answered while running",
            ),
        ):
            yield CounterMetricFamily(f"monitor_{name}", doc, value=value)
        rejected = CounterMetricFamily(
            "monitor_rejected_by_reason", "rejected messages by reason", labels=["reason"]
        )
        for reason, n in sorted(s.rejected_by_reason.items()):
            rejected.add_metric([reason], n)
        yield rejected
        restarts = CounterMetricFamily(
            "monitor_task_restarts", "long-running tasks restarted after a failure", labels=["task"]
        )
        for task, n in sorted(s.task_restarts.items()):
            restarts.add_metric([task], n)
        yield restarts
        yield GaugeMetricFamily(
            "monitor_subscriptions_refused",
            "subscriptions the broker refused on the current connection",
            value=s.subscriptions_refused,
        )
        sent = CounterMetricFamily(
            "monitor_notifications",
            "notification delivery outcomes",
            labels=["channel_type", "outcome"],
        )
        for (kind, outcome), n in sorted(self._notifier.outcomes.items()):
            sent.add_metric([kind, outcome], n)
        yield sent
        yield GaugeMetricFamily(
            "monitor_broker_connected",
            "1 while connected to the broker",
            value=int(s.broker_connected),
        )
        yield GaugeMetricFamily(
            "monitor_spool_bytes", "bytes in the disk spool", value=s.spool_bytes
        )
        yield GaugeMetricFamily(
            "monitor_quarantine_bytes", "bytes in the quarantine files", value=s.quarantine_bytes
        )
        yield GaugeMetricFamily(
            "monitor_notification_channels_failing",
            "channels whose last delivery failed",
            value=len(self._notifier.failing),
        )
