"""One type per measurement and field (SPEC 4), enforced before a line is written.

InfluxDB fixes a field's type per shard by the first value it stores and refuses every
later point that brings another type, all of that point's fields with it. So the table
here knows each field's type before InfluxDB does: fixed by the schema (a kind's metrics,
``state``, the monitor's own fields), else learned from InfluxDB at start (``SHOW FIELD
KEYS``), from the first value written, or from InfluxDB refusing a write. A value of
another type is dropped from its point, alone, and counted (``field_type_conflicts``).

A new shard would take any type first; the table keeps the type it knows, so the
monitor's own points keep one type from shard to shard. Should another writer give the
field another type in the new shard, the first refusal teaches the table InfluxDB's type.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor import logs
from monitor.clock import Clock
from monitor.model import FieldValue
from monitor.sink.lineproto import field_key, format_value
from monitor.stats import Stats

log = logs.get(__name__)

# Learned (measurement, field) types kept, at most. Devices' unknown metrics are bounded per
# message by the normalizer, not in number of names: past this, a new name is written
# unchecked (InfluxDB decides; a refusal still costs only that field) and logged once.
MAX_LEARNED = 10_000
LOG_EVERY_S = 60.0


class _Unwritable:
    """The type of a field InfluxDB holds in a type the monitor never writes (unsigned):
    every value the monitor has for it conflicts."""


# As InfluxDB names them (SHOW FIELD KEYS, its errors) and as Python has them.
TYPES: dict[str, type] = {"float": float, "integer": int, "string": str, "boolean": bool}
NAMES: dict[type, str] = {t: name for name, t in TYPES.items()}


def influx_type(name: str) -> type:
    return TYPES.get(name, _Unwritable)


def type_name(t: type) -> str:
    return NAMES.get(t, "unsigned" if t is _Unwritable else t.__name__)


def base_type(value: FieldValue) -> type:
    """float, int, bool or str, also for a subclass (bool before int: it is one)."""
    for t in (bool, float, int, str):
        if isinstance(value, t):
            return t
    return type(value)


@dataclass(frozen=True, slots=True)
class Conflict:
    """InfluxDB's reason for refusing a point: its field has another type there."""

    measurement: str
    field: str
    got: str  # the refused value's type, as InfluxDB names it
    existing: str


_CONFLICT = re.compile(
    r'field type conflict: input field "(?P<field>.+)" on measurement "(?P<measurement>.+)"'
    r" is type (?P<got>\w+), already exists as type (?P<existing>\w+)"
)


def parse_conflict(error: str) -> Conflict | None:
    """The type conflict in InfluxDB's answer to a write (``HTTP 400: {"error": ...}``; 2.x:
    ``HTTP 422: {"message": ...}``), if that is what it refused the write for. InfluxDB
    names only the first conflict of a batch."""
    text = error.split(": ", 1)[-1]
    try:
        body = json.loads(text)
    except ValueError:  # not JSON, or cut short: its escaped quotes as they are
        text = text.replace('\\"', '"')
    else:
        if isinstance(body, dict):
            text = str(body.get("error") or body.get("message") or text)
    m = _CONFLICT.search(text)
    if m is None:
        return None
    return Conflict(m["measurement"], m["field"], m["got"], m["existing"])


class FieldTypes:
    """The type of every field the monitor writes, by measurement; bounded.

    ``fixed`` is the schema's (SPEC 2 and 4): those types stay whatever InfluxDB lists.
    Points whose fields come from devices (a kind's telemetry, events) go through
    ``field_set``; the monitor's own are written in their fixed types, and need the table
    only when InfluxDB refuses one of them.
    """

    def __init__(
        self,
        fixed: Mapping[str, Mapping[str, type]],
        stats: Stats,
        clock: Clock,
        max_learned: int = MAX_LEARNED,
    ) -> None:
        self._stats = stats
        self._clock = clock
        self._max = max_learned
        self.learned = 0
        # measurement -> field -> (its key as line protocol, its type): one look-up per field
        self._tables: dict[str, dict[str, tuple[str, type]]] = {
            m: {k: (field_key(k), t) for k, t in fields.items()} for m, fields in fixed.items()
        }
        self._fixed = {m: frozenset(fields) for m, fields in fixed.items()}
        self._full_logged = False
        self._last_logged: float | None = None
        self._suppressed = 0
        self._settled = asyncio.Event()
        self._settled.set()

    # -- the hot path --

    def field_set(self, measurement: str, fields: Mapping[str, FieldValue]) -> str:
        """The fields as line protocol, each in its field's one type: a value of another
        type is left out and counted. Empty when nothing is left."""
        table = self._tables.get(measurement)
        if table is None:
            table = self._tables[measurement] = {}
        parts = []
        for k, v in fields.items():
            entry = table.get(k)
            if entry is None:
                entry = self._learn(table, k, base_type(v))
            key, known = entry
            if type(v) is known:
                # a finite float (most fields), inline; `known is float` says v is one
                if known is float and v - v == 0.0:  # type: ignore[operator]
                    parts.append(f"{key}={v!r}")
                else:
                    parts.append(f"{key}={format_value(v)}")
            elif base_type(v) is known:  # a subclass
                parts.append(f"{key}={format_value(v)}")
            else:
                self.conflict(measurement, k, type_name(base_type(v)), known, "monitor")
        return ",".join(parts)

    def _learn(self, table: dict[str, tuple[str, type]], key: str, t: type) -> tuple[str, type]:
        entry = (field_key(key), t)
        if self.learned < self._max:
            table[key] = entry
            self.learned += 1
        elif not self._full_logged:
            self._full_logged = True
            log.warning("field_types.full", learned=self.learned, field=key[:100])
        return entry

    # -- what InfluxDB says --

    def known(self, measurement: str, key: str) -> type | None:
        entry = self._tables.get(measurement, {}).get(key)
        return None if entry is None else entry[1]

    def load(self, series: Iterable[Mapping[str, Any]]) -> int:
        """Learn from ``SHOW FIELD KEYS`` (its series: name, values of [key, type]) the
        types of the fields of the measurements the monitor writes (another writer's in the
        same database are none of its business); the schema's own types stay. Returns how
        many were learned."""
        before = self.learned
        for s in series:
            name = s.get("name") if isinstance(s, Mapping) else None
            table = self._tables.get(name) if isinstance(name, str) else None
            if table is None:  # not one the monitor writes devices' fields to
                continue
            for row in s.get("values") or ():
                if not isinstance(row, list) or len(row) != 2:
                    continue
                key, type_ = row
                if not isinstance(key, str) or key in table or not isinstance(type_, str):
                    continue  # fixed, or listed twice (shards of other types): the first
                with contextlib.suppress(ValueError):  # a name the monitor would never write
                    self._learn(table, key, influx_type(type_))
        return self.learned - before

    def refused(self, conflict: Conflict) -> type:
        """InfluxDB refused a value for its type: from now on its type is InfluxDB's (this
        shard's), unless the schema fixes it. Returns the type InfluxDB holds."""
        existing = influx_type(conflict.existing)
        table = self._tables.get(conflict.measurement)
        if table is not None and conflict.field not in self._fixed.get(conflict.measurement, ()):
            entry = table.get(conflict.field)
            if entry is not None:
                table[conflict.field] = (entry[0], existing)
            else:
                with contextlib.suppress(ValueError):  # a name the monitor cannot write
                    self._learn(table, conflict.field, existing)
        return existing

    def conflict(
        self, measurement: str, key: str, got: str, known: type, source: str, n: int = 1
    ) -> None:
        """Count ``n`` values dropped for their type (``source``: who knew the field's type,
        the monitor before the write, or InfluxDB refusing it); logged at most once a
        minute."""
        self._stats.field_type_conflicts += n
        now = self._clock.monotonic()
        if self._last_logged is not None and now - self._last_logged < LOG_EVERY_S:
            self._suppressed += n
            return
        self._last_logged = now
        log.warning(
            "field.type_conflict",
            measurement=measurement[:100],
            field=key[:100],
            type=got,
            known_type=type_name(known),
            known_from=source,
            values=n,
            similar_since_last_log=self._suppressed,
        )
        self._suppressed = 0

    # -- start-up: the first message waits for what InfluxDB knows --

    def loading(self) -> None:
        self._settled.clear()

    def loaded(self) -> None:
        self._settled.set()

    async def settled(self) -> None:
        """Returns once InfluxDB's types are loaded (or the attempt is over)."""
        await self._settled.wait()
