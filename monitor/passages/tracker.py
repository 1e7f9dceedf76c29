"""The passages runtime: plate-read readings into the matcher, its outcomes counted, its
state saved before the acks, and a summary for the status board.

Small on purpose: everything that decides is in ``matcher`` and is pure.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from monitor.clock import Clock
from monitor.config import Passages
from monitor.model import Reading
from monitor.passages.matcher import (
    Changes,
    ExitWithoutEntry,
    LowConfidence,
    Matcher,
    Outcome,
    Passage,
    PlateRead,
    Rules,
    Unmatched,
)
from monitor.passages.store import Store
from monitor.stats import Stats

KEEP_RELEASED_MS = 2 * 86_400_000  # what the board's "today" may need, at the most
CAMERA = "anpr_camera"  # the only kind whose plate reads are reads (SPEC 9)
LOCAL_UTC_OFFSET_MS = 5 * 3_600_000  # Asia/Aqtau, UTC+5 all year: the post's "today"


def rules_of(settings: Passages) -> Rules:
    return Rules(
        entry_areas=frozenset(settings.entry_areas),
        exit_areas=frozenset(settings.exit_areas),
        stage_of={area: stage for stage, areas in settings.stages.items() for area in areas},
        max_dwell_ms=int(settings.max_dwell * 1000),
        min_confidence=settings.min_confidence,
        debounce_ms=int(settings.debounce * 1000),
    )


@dataclass(frozen=True)
class Today:
    """The board's strip: since local midnight, from the monitor's own state."""

    since_ms: int  # local midnight (Asia/Aqtau), epoch ms
    passages: int
    median_s: float | None
    p90_s: float | None
    inside: int  # open passages now: trucks inside the post


class PassageTracker:
    def __init__(self, settings: Passages, store: Store, stats: Stats, clock: Clock):
        self.store = store
        self._stats = stats
        self._clock = clock
        self.matcher = Matcher(rules_of(settings), *store.load())
        self._released: list[Passage] = []

    @property
    def problem(self) -> str | None:
        return self.store.problem

    def read(self, reading: Reading, ts_ms: int) -> list[Outcome]:
        """A ``plate_read`` event (its plate already hashed by the normalizer). Only an ANPR
        camera's is a read (SPEC 9): a gate barrier's, say, is kept as its own event and
        counted, and opens or closes nothing, whatever ``plate_hash`` it carries."""
        if reading.device.kind != CAMERA:
            self._stats.plate_reads_not_camera += 1
            return []
        plate_hash = reading.fields.get("plate_hash")
        if not isinstance(plate_hash, str):
            return []
        confidence = reading.fields.get("confidence")
        device = reading.device
        read = PlateRead(
            device.site,
            device.area,
            device.id,
            plate_hash,
            ts_ms,
            confidence if isinstance(confidence, float) else None,
        )
        return self._counted(self.matcher.read(read))

    def expire(self) -> list[Outcome]:
        return self._counted(self.matcher.expire(self._now_ms()))

    def save(self) -> None:
        """What the reads since the last save changed, stored, on this thread."""
        self.store.save(*self._taken())

    async def asave(self) -> None:
        """Before the acks: what the reads since the last save changed, stored (a store
        across the network writes in a thread; this returns once it has)."""
        await self.store.asave(*self._taken())

    def _taken(self) -> tuple[Changes, list[Passage], int]:
        released, self._released = self._released, []
        return self.matcher.changes(), released, self._now_ms() - KEEP_RELEASED_MS

    def today(self) -> Today:
        now_ms = self._now_ms()
        midnight = now_ms - (now_ms + LOCAL_UTC_OFFSET_MS) % 86_400_000
        dwell = sorted(r[3] for r in self.store.released(midnight))
        return Today(
            since_ms=midnight,
            passages=len(dwell),
            median_s=statistics.median(dwell) if dwell else None,
            # nearest rank, as `monitor report release-time` takes it
            p90_s=dwell[math.ceil(0.9 * len(dwell)) - 1] if dwell else None,
            inside=len(self.matcher.open),
        )

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    def _counted(self, outcomes: list[Outcome]) -> list[Outcome]:
        stats = self._stats
        for o in outcomes:
            if isinstance(o, Passage):
                if not o.again:
                    stats.passages_closed += 1
                self._released.append(o)
            elif isinstance(o, Unmatched):
                stats.passages_unmatched += 1
            elif isinstance(o, ExitWithoutEntry):
                stats.exits_without_entry += 1
            elif isinstance(o, LowConfidence):
                stats.plate_reads_low_confidence += 1
        return outcomes
