"""Trucks through a customs post, for the simulator (SPEC 6, 9): a discrete-event model.

Trucks arrive as a Poisson process, are read by the ANPR camera at the entry gate, weighed,
pass a radiation portal; a risk-selected share queues for an X-ray scanner of their site
(the shortest queue among the scanners that work), is read in the scanner's area when its
scan starts and leaves a ``scan_completed`` behind; everybody is read again at the exit.
A scanner that is down serves nobody: its queue waits, and dwell grows. Trucks go to the
scanners in areas with an ANPR camera (the post's container scanners, whose reads mark the
inspection stage).

Pure: time is what ``advance`` is given, randomness the ``Random`` passed in; the simulator
turns the returned happenings into MQTT messages and device behaviour.
"""

from __future__ import annotations

import heapq
import random
import string
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from monitor.model import Device

MIN = 60_000
Happening = tuple[Literal["read", "scan", "weigh", "occupy"], str, int, dict[str, object]]


def kazakh_plate(rng: random.Random) -> str:
    """Kazakhstan's format since 2012: three digits, three letters, a two-digit region."""
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(3))
    return f"{rng.randrange(1000):03d}{letters}{rng.randrange(1, 21):02d}"


@dataclass
class Truck:
    plate: str
    inspected: bool
    scanner: str | None = None


@dataclass
class Scanner:
    id: str
    area: str
    queue: deque[Truck] = field(default_factory=deque)
    busy_until: int = 0


@dataclass
class Post:
    site: str
    devices: list[Device]
    rng: random.Random
    trucks_per_hour: float = 40.0
    inspect_share: float = 0.25
    entry_area: str = "gate-in"
    exit_area: str = "gate-out"
    now_ms: int = 0
    _events: list[tuple[int, int, str, Truck]] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        mine = [d for d in self.devices if d.site == self.site]
        self.cameras: dict[str, str] = {}
        for d in mine:
            if d.kind == "anpr_camera":
                self.cameras.setdefault(d.area, d.id)
        # The scanners trucks are sent to: those where a camera reads them in and out.
        self.scanners = [
            Scanner(d.id, d.area)
            for d in mine
            if d.kind == "xray_scanner" and d.area in self.cameras
        ]
        self.portals = {d.area: d.id for d in mine if d.kind == "radiation_portal"}
        self.weighbridges = {d.area: d.id for d in mine if d.kind == "weighbridge"}
        self.inside = 0  # trucks arrived and not yet out
        self._next_arrival = self.now_ms + self._gap()

    def _gap(self) -> int:
        if self.trucks_per_hour <= 0:
            return 1 << 62
        return max(1, int(self.rng.expovariate(self.trucks_per_hour) * 3_600_000))

    def advance(self, until_ms: int, down: Callable[[str], bool]) -> list[Happening]:
        """Everything that happens after the last call up to ``until_ms``, in time order;
        ``down(scanner)``: whether that scanner serves nobody now."""
        out: list[Happening] = []
        while True:
            t_event = self._events[0][0] if self._events else None
            arrival = t_event is None or self._next_arrival < t_event
            t = self._next_arrival if arrival else t_event
            assert t is not None
            if t > until_ms:
                break
            self.now_ms = t
            if arrival:
                self._arrive(t, out)
                self._next_arrival = t + self._gap()
            else:
                _, _, what, truck = heapq.heappop(self._events)
                getattr(self, f"_{what}")(t, truck, out, down)
            self._serve(t, out, down)
        self.now_ms = max(self.now_ms, until_ms)
        self._serve(self.now_ms, out, down)
        return out

    def _at(self, t: int, what: str, truck: Truck) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, what, truck))

    def _read(self, area: str, t: int, truck: Truck, out: list[Happening]) -> None:
        camera = self.cameras.get(area)
        if camera is None:
            return
        r = self.rng
        confidence = (
            round(r.uniform(40, 79), 1) if r.random() < 0.03 else round(r.uniform(85, 99.5), 1)
        )
        read: dict[str, object] = {"plate": truck.plate, "confidence": confidence}
        out.append(("read", camera, t, read))
        if r.random() < 0.5:  # cameras read a truck more than once as it rolls by
            out.append(("read", camera, t + r.randrange(500, 3000), read))

    def _arrive(self, t: int, out: list[Happening]) -> None:
        r = self.rng
        truck = Truck(kazakh_plate(r), r.random() < self.inspect_share and bool(self.scanners))
        self.inside += 1
        self._read(self.entry_area, t, truck, out)
        self._at(t + int(r.uniform(1, 3) * MIN), "weigh", truck)
        if truck.inspected:
            self._at(t + int(r.uniform(15, 30) * MIN), "queue", truck)  # after the papers
        else:
            self._at(t + int(r.uniform(20, 60) * MIN), "exit", truck)

    def _weigh(
        self, t: int, truck: Truck, out: list[Happening], down: Callable[[str], bool]
    ) -> None:
        r = self.rng
        bridge = self.weighbridges.get(self.entry_area)
        if bridge is not None:
            out.append(
                (
                    "weigh",
                    bridge,
                    t,
                    {"until": t + 60_000, "kg": round(r.uniform(14_000, 44_000), 1)},
                )
            )
        portal = self.portals.get(self.entry_area)
        if portal is not None:
            out.append(("occupy", portal, t + 90_000, {"until": t + 110_000}))

    def _queue(
        self, t: int, truck: Truck, out: list[Happening], down: Callable[[str], bool]
    ) -> None:
        working = [s for s in self.scanners if not down(s.id)] or self.scanners
        scanner = min(working, key=lambda s: (len(s.queue) + (s.busy_until > t), self.rng.random()))
        truck.scanner = scanner.id
        scanner.queue.append(truck)

    def _serve(self, t: int, out: list[Happening], down: Callable[[str], bool]) -> None:
        r = self.rng
        for s in self.scanners:
            if s.queue and s.busy_until <= t and not down(s.id):
                truck = s.queue.popleft()
                minutes = r.uniform(5, 10)  # driving in, positioning, the scan itself
                s.busy_until = t + int(minutes * MIN)
                self._read(s.area, t, truck, out)
                out.append(("occupy", s.id, t, {"until": s.busy_until}))
                self._at(s.busy_until, "scanned", truck)

    def _scanned(
        self, t: int, truck: Truck, out: list[Happening], down: Callable[[str], bool]
    ) -> None:
        assert truck.scanner is not None
        out.append(("scan", truck.scanner, t, {"duration_s": round(self.rng.uniform(25, 45), 1)}))
        # the image is read and the decision made; then the truck drives out
        self._at(t + int(self.rng.uniform(20, 60) * MIN), "exit", truck)

    def _exit(
        self, t: int, truck: Truck, out: list[Happening], down: Callable[[str], bool]
    ) -> None:
        self.inside -= 1
        self._read(self.exit_area, t, truck, out)
        portal = self.portals.get(self.exit_area)
        if portal is not None:
            out.append(("occupy", portal, t, {"until": t + 20_000}))
