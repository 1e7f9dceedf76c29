"""Plate reads in, passages out (SPEC 9). Pure: the only time is the reads' own and the
``now`` a caller passes to ``expire``; no I/O. The runtime around it (``tracker``) turns
outcomes into points and counters and keeps the state on disk.

Per site, an entry read opens a passage for the plate hash and the next exit read of that
hash closes it; reads in a stage's areas mark the stage's first time. Reads of one plate in
one area within ``debounce`` of the last are one read, and a read no later than the last
one there (a redelivered read: same hash, area and time) changes nothing; a redelivered
exit read gives the same passage again (the same point: harmless) rather than losing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

OpenKey = tuple[str, str]  # (site, plate hash)
ReadKey = tuple[str, str, str]  # (site, plate hash, area)


@dataclass(frozen=True, slots=True)
class PlateRead:
    site: str
    area: str
    device: str
    plate_hash: str
    ts_ms: int
    confidence: float | None = None


@dataclass(slots=True)
class OpenPassage:
    site: str
    plate_hash: str
    entry_area: str
    entry_device: str
    entry_ms: int
    stages: dict[str, int] = field(default_factory=dict)  # stage -> its first read (ms)


@dataclass(frozen=True, slots=True)
class Passage:
    """A closed passage: a truck released through an exit."""

    site: str
    plate_hash: str
    entry_area: str
    exit_area: str
    entry_ms: int
    exit_ms: int
    stages: dict[str, int]  # stage -> its first read (ms)
    again: bool = False  # a redelivered exit read: the same passage, not a new one

    @property
    def dwell_s(self) -> float:
        return (self.exit_ms - self.entry_ms) / 1000

    @property
    def inspected(self) -> bool:
        return bool(self.stages)


@dataclass(frozen=True, slots=True)
class Unmatched:
    """An entry that never reached an exit: after ``max_dwell``, or a new entry came."""

    passage: OpenPassage
    why: Literal["max_dwell", "new_entry"]


@dataclass(frozen=True, slots=True)
class ExitWithoutEntry:
    read: PlateRead


@dataclass(frozen=True, slots=True)
class LowConfidence:
    read: PlateRead


Outcome = Passage | Unmatched | ExitWithoutEntry | LowConfidence


@dataclass(frozen=True)
class Rules:
    entry_areas: frozenset[str]
    exit_areas: frozenset[str]
    stage_of: dict[str, str]  # area -> stage
    max_dwell_ms: int
    min_confidence: float
    debounce_ms: int
    # How long (in the reads' time) reads and closed passages are remembered, so that a
    # backlog redelivered after a crash is recognised: longer than any unacked window.
    remember_ms: int = 3_600_000

    @property
    def areas(self) -> frozenset[str]:
        return self.entry_areas | self.exit_areas | frozenset(self.stage_of)


@dataclass
class Changes:
    """What changed since the last ``Matcher.changes()``: for the store. None: deleted."""

    open: dict[OpenKey, OpenPassage | None] = field(default_factory=dict)
    reads: dict[ReadKey, int | None] = field(default_factory=dict)
    closed: dict[OpenKey, Passage | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.open or self.reads or self.closed)


class Matcher:
    def __init__(
        self,
        rules: Rules,
        open_passages: dict[OpenKey, OpenPassage] | None = None,
        last_reads: dict[ReadKey, int] | None = None,
        closed: dict[OpenKey, Passage] | None = None,
    ) -> None:
        self.rules = rules
        self.open: dict[OpenKey, OpenPassage] = open_passages or {}
        self.last_read: dict[ReadKey, int] = last_reads or {}
        self.closed: dict[OpenKey, Passage] = closed or {}  # recent, by (site, hash)
        self._changes = Changes()
        self._newest_ms = max(self.last_read.values(), default=0)

    def changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
        return changes

    def read(self, r: PlateRead) -> list[Outcome]:
        rules = self.rules
        if r.area not in rules.areas:
            return []
        if r.confidence is not None and r.confidence < rules.min_confidence:
            return [LowConfidence(r)]
        rkey = (r.site, r.plate_hash, r.area)
        last = self.last_read.get(rkey)
        self._set_read(rkey, r.ts_ms if last is None else max(last, r.ts_ms))
        self._newest_ms = max(self._newest_ms, r.ts_ms)
        okey = (r.site, r.plate_hash)
        # One camera's reads of one plate arrive in order: one no later than the last
        # read (plus debounce) is that read again, from a burst or a redelivery.
        if last is not None and r.ts_ms <= last + rules.debounce_ms:
            done = self.closed.get(okey)
            if done is not None and done.exit_ms == r.ts_ms and done.exit_area == r.area:
                return [replace(done, again=True)]
            return []  # the same read again (a camera's burst, or redelivered)

        out: list[Outcome] = []
        passage = self.open.get(okey)
        if passage is not None and r.ts_ms - passage.entry_ms > rules.max_dwell_ms:
            out.append(Unmatched(passage, "max_dwell"))
            self._set_open(okey, None)
            passage = None
        if r.area in rules.entry_areas:
            if passage is not None:
                out.append(Unmatched(passage, "new_entry"))
            self._set_open(okey, OpenPassage(r.site, r.plate_hash, r.area, r.device, r.ts_ms))
        elif r.area in rules.exit_areas:
            if passage is None or r.ts_ms < passage.entry_ms:
                out.append(ExitWithoutEntry(r))
            else:
                done = Passage(
                    r.site,
                    r.plate_hash,
                    passage.entry_area,
                    r.area,
                    passage.entry_ms,
                    r.ts_ms,
                    dict(passage.stages),
                )
                out.append(done)
                self._set_open(okey, None)
                self.closed[okey] = done
                self._changes.closed[okey] = done
        elif passage is not None and r.ts_ms >= passage.entry_ms:
            stage = rules.stage_of[r.area]
            if stage not in passage.stages:
                passage.stages[stage] = r.ts_ms
                self._changes.open[okey] = passage
        return out

    def expire(self, now_ms: int) -> list[Outcome]:
        """Entries older than ``max_dwell`` at ``now_ms`` are unmatched; memory of reads
        and closed passages older than ``remember_ms`` (in the reads' time) goes."""
        rules = self.rules
        out: list[Outcome] = []
        for okey, passage in list(self.open.items()):
            if now_ms - passage.entry_ms > rules.max_dwell_ms:
                out.append(Unmatched(passage, "max_dwell"))
                self._set_open(okey, None)
        horizon = min(now_ms, self._newest_ms) - max(rules.remember_ms, rules.debounce_ms)
        for rkey, ts in list(self.last_read.items()):
            if ts < horizon:
                self._set_read(rkey, None)
        for okey, done in list(self.closed.items()):
            if done.exit_ms < horizon:
                del self.closed[okey]
                self._changes.closed[okey] = None
        return out

    def _set_open(self, key: OpenKey, passage: OpenPassage | None) -> None:
        if passage is None:
            self.open.pop(key, None)
        else:
            self.open[key] = passage
        self._changes.open[key] = passage

    def _set_read(self, key: ReadKey, ts: int | None) -> None:
        if ts is None:
            self.last_read.pop(key, None)
        else:
            self.last_read[key] = ts
        self._changes.reads[key] = ts
