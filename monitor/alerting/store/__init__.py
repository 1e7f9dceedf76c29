"""Alerting's durable state: alerts, acknowledgements, maintenance windows, devices' last
seen, the notification outbox and its delivery history, Sparkplug edge nodes, small facts.

Two places keep it, behind one ``Store`` protocol and one test suite
(tests/alerting/test_store_contract.py):

- ``sqlite.py``: ``state_dir/state.db``, the embedded default for a single monitor;
- ``postgres.py``: ``store.url: postgresql://…``, shared by the monitors of SPEC 8.1 (one
  leads, the others stand by).

What both promise: writes never raise; what the database does not take is kept in memory,
seen by every read and written as soon as it takes it again; ``problem`` says why
meanwhile; a notification is taken by ``outbox_next`` in the order it was queued, until
``outbox_done``.
"""

from monitor.alerting.store.base import KEEP_ROWS, KEEP_S, OutboxItem, Store
from monitor.alerting.store.sqlite import SqliteStore

__all__ = ["KEEP_ROWS", "KEEP_S", "OutboxItem", "SqliteStore", "Store"]
