"""Sparkplug B payloads into canonical readings (SPEC 3.4), with each edge node's state.

Per edge node (group, node id), made by its NBIRTH and by nothing else: the bdSeq of its
current birth, its seq and the gaps waiting to be filled, its devices, and the metrics its
births defined, per device and name (a datatype is a device's metric's, not a name's across
the node) and by alias (aliases are unique within a node, its devices included). Births put
a node or a device online and carry current values; DATA carries values by alias or name;
DDEATH puts a device offline, an NDEATH whose bdSeq matches the current birth puts the node
and every device under it offline, when received (its own timestamp is its Will's, made at
connect); an older one is stale and ignored.

The decoder decides, it does not act: a seq gap not filled within ``reorder_timeout``
(``expire``) or data it cannot follow puts the node in ``rebirth_wanted``, which the host
application (``host.py``) drains at a bounded rate. Everything kept is bounded: nodes by
``max_nodes`` (only a birth makes one), metric definitions by ``max_metrics`` (all nodes
together), the rebirth wishes by ``max_nodes``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from monitor.clock import Clock, SystemClock
from monitor.config import SPARKPLUG_ROUTE, Sparkplug, SparkplugGroup
from monitor.model import INT64_MAX, STATES, Device, FieldValue, Reading
from monitor.normalize.devices import Devices
from monitor.normalize.plates import REDACTED_TEXT, KeyKind, Plates, key_kind
from monitor.normalize.reasons import Reject
from monitor.normalize.values import CONVERTERS, Converter, check_field_key, generic_value
from monitor.normalize.vendor import Mapping
from monitor.schemas import sparkplug_b_pb2 as pb

NAMESPACE = "spBv1.0"
STATE = "STATE"
MESSAGE_TYPES = frozenset(
    {"NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "DCMD"}
)
BD_SEQ = "bdSeq"
CONTROL_PREFIXES = ("Node Control/", "Device Control/", "Properties/")

# DataType numbers (Tahu's sparkplug_b.proto)
SIGNED = {1: 8, 2: 16, 3: 32, 4: 64}  # Int8..Int64: two's complement at the type's width
UNSIGNED = {5: 8, 6: 16, 7: 32}  # UInt8..UInt32: in int_value or long_value (Tahu: long)
UINT64, FLOAT, DOUBLE, BOOLEAN, DATETIME = 8, 9, 10, 11, 13
STRINGS = {12, 14, 15}  # String, Text, UUID
INTEGER_FIELDS = ("int_value", "long_value")
SEQ_MOD = 256
AHEAD = 128  # a seq this far past the next one expected is ahead (a gap); more: behind

DeviceHook = Callable[[Device, str, bool], None]  # (device, group, born or dead)


@dataclass(frozen=True)
class Target:
    """Where a metric of a device goes: a mapping, the state (no field), a field converted,
    the plate hash, or nowhere (control metrics, unmapped ones when dropped, unstorable
    names, anything else about a plate)."""

    skip: bool = False
    plate: bool = False  # the plate itself: hashed, or dropped without a plate key
    about: bool = False  # about a plate: its text dropped (SPEC 9)
    mapping: Mapping | None = None
    field: str | None = None
    convert: Converter = generic_value


SKIP = Target(skip=True)


@dataclass(slots=True)
class Known:
    """A metric of one device (or of the node itself) as a birth defined it: its datatype,
    and where its values go, worked out on first use. ``name`` None: a name that is not
    UTF-8, whose values are skipped."""

    device: str
    name: str | None
    datatype: int
    target: Target | None = None


@dataclass
class EdgeNode:
    group: str
    node: str
    born: bool = False
    bd_seq: int | None = None
    seq: int | None = None  # the last seq in order
    missing: set[int] = field(default_factory=set)  # seqs skipped over, within the window
    missing_since: float | None = None  # monotonic
    devices: set[str] = field(default_factory=set)
    # heard in this host session: a node restored from a previous run, or known before a
    # reconnect, may have died unheard; its devices are quiet no longer until it speaks
    heard: bool = True
    metrics: dict[tuple[str, str], Known] = field(default_factory=dict)  # (device, name)
    aliases: dict[int, Known] = field(default_factory=dict)

    def snapshot(self) -> str:
        """What survives a restart (SPEC 3.4): the birth's bdSeq and its devices."""
        return json.dumps(
            {"born": self.born, "bd_seq": self.bd_seq, "devices": sorted(self.devices)}
        )


@dataclass
class Counts:
    seq_gaps: int = 0  # gaps not filled within the reorder timeout
    reordered: int = 0  # messages that came late and filled a gap in time
    unknown_aliases: int = 0
    skipped_metrics: int = 0  # is_null, unsupported types, values out of their type's range
    invalid_names: int = 0  # metric names that are not UTF-8
    invalid_states: int = 0  # a state value that is no canonical state
    transient: int = 0  # is_transient metrics, not written
    stale_deaths: int = 0
    rebirths_wanted: int = 0
    rebirths_dropped: int = 0  # wishes beyond max_nodes waiting
    too_old: int = 0  # historical metrics beyond ingest.max_age
    too_many_metrics: int = 0  # definitions beyond max_metrics, skipped


def parse_topic(levels: list[str]) -> tuple[str, str, str, str | None] | None:
    """``spBv1.0/{group}/{type}/{node}[/{device}]`` -> (group, type, node, device)."""
    if len(levels) not in (4, 5) or levels[0] != NAMESPACE or levels[2] not in MESSAGE_TYPES:
        return None
    if not all(levels) or (levels[2][0] == "D") != (len(levels) == 5):
        return None
    return levels[1], levels[2], levels[3], levels[4] if len(levels) == 5 else None


def _nothing(device: Device, group: str, born: bool) -> None:
    pass


class SparkplugDecoder:
    def __init__(
        self,
        settings: Sparkplug,
        devices: Devices,
        plates: Plates | None = None,
        host_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._devices = devices
        self._plates = plates or Plates()
        self._clock = clock or SystemClock()
        self.host_id: str = host_id or settings.host_id or "monitor"
        self._keep_unmapped = settings.unmapped == "keep"
        self._mappings: dict[str | None, dict[str, Mapping]] = {
            None: {name: Mapping.compile(name, fm) for name, fm in settings.fields.items()}
        }
        for group, g in settings.groups.items():
            merged = {**settings.fields, **g.fields}
            self._mappings[group] = {n: Mapping.compile(n, fm) for n, fm in merged.items()}
        self.nodes: dict[tuple[str, str], EdgeNode] = {}
        self._metric_count = 0
        # node -> None, oldest first; bounded by max_nodes (host.py drains it)
        self.rebirth_wanted: dict[tuple[str, str], None] = {}
        self._reordering: dict[tuple[str, str], EdgeNode] = {}  # nodes with a gap open
        self.changed: set[tuple[str, str]] = set()  # nodes whose snapshot changed
        self.counts = Counts()
        # Our own STATE seen offline (its timestamp): host.py answers it (SPEC 3.4).
        self.own_state_offline: int | None = None
        # Told of every device born (True) or dead (False): liveness's report by exception.
        self.on_device: DeviceHook = _nothing

    @property
    def subscriptions(self) -> list[str]:
        groups = self._settings.groups
        return [f"{NAMESPACE}/{g}/#" for g in groups] if groups else [f"{NAMESPACE}/#"]

    @property
    def state_topic(self) -> str:
        return f"{NAMESPACE}/{STATE}/{self.host_id}"

    def decode(self, levels: list[str], payload: bytes) -> list[Reading]:
        """The readings of one Sparkplug message (none for commands, STATE and what only
        changes the node's state); ``Reject`` for what cannot be decoded."""
        if len(levels) == 3 and levels[1] == STATE:
            self._state(levels[2], payload)
            return []
        topic = parse_topic(levels)
        if topic is None:
            raise Reject("unknown_topic", "not a Sparkplug B topic")
        group, kind, node_id, device_id = topic
        if kind in ("NCMD", "DCMD"):
            return []
        try:
            msg = pb.Payload.FromString(payload)
        except DecodeError as e:
            raise Reject("malformed_sparkplug", f"not a Sparkplug B payload: {e}"[:200]) from None
        key = (group, node_id)
        if kind == "NBIRTH":
            return self._nbirth(key, msg)
        node = self.nodes.get(key)
        if kind == "NDEATH":
            return self._ndeath(node, msg)
        if node is None or not node.born:
            # data before (or after the death of) its birth: ask for one, keep nothing
            if kind != "DDEATH":
                self.want_rebirth(key)
            return []
        if not node.heard:  # it speaks: alive, and so are its devices until they die
            node.heard = True
            for born_id in [node.node, *node.devices]:
                self._tell(node, born_id, True)
        late = self._check_seq(node, msg)
        if kind == "DBIRTH":
            assert device_id is not None
            return self._dbirth(node, device_id, msg)
        if kind == "DDEATH":
            assert device_id is not None
            node.devices.discard(device_id)
            self.changed.add(key)
            return self._offline(
                node, [device_id], msg.timestamp if msg.HasField("timestamp") else None
            )
        if device_id is not None and device_id not in node.devices:
            self.want_rebirth(key)  # data of a device that was not born: its aliases?
        return self._data(node, device_id or node_id, msg, late)

    # -- our own STATE --

    def _state(self, host_id: str, payload: bytes) -> None:
        """Another host's STATE is nothing to us; our own offline while we run (a stale Will
        through a bridge, a clean stop of an old instance) must not stand (host.py)."""
        if host_id != self.host_id:
            return
        try:
            state = json.loads(payload)
        except ValueError:
            return
        if not isinstance(state, dict) or state.get("online") is not False:
            return
        ts = state.get("timestamp")
        self.own_state_offline = ts if isinstance(ts, int) and not isinstance(ts, bool) else 0

    # -- births and deaths --

    def _nbirth(self, key: tuple[str, str], msg: pb.Payload) -> list[Reading]:
        bd_seq = _bd_seq(msg)
        if bd_seq is None:
            raise Reject("malformed_sparkplug", "NBIRTH without a bdSeq metric")
        node = self.nodes.get(key)
        if node is None:
            node = self._new_node(key)
        else:
            self._forget_metrics(node)
        for device_id in node.devices:
            self._tell(node, device_id, False)  # a new session: they are born again after it
        node.born, node.bd_seq, node.heard = True, bd_seq, True
        node.seq = msg.seq if msg.HasField("seq") else None
        node.devices.clear()
        self._close_gap(node)
        self.rebirth_wanted.pop(key, None)
        self.changed.add(key)
        return self._birth(node, node.node, msg)

    def _new_node(self, key: tuple[str, str]) -> EdgeNode:
        """A node's state, made by its birth; beyond max_nodes, a dead one is forgotten to
        make room, or the birth is refused."""
        if len(self.nodes) >= self._settings.max_nodes:
            dead = next((k for k, n in self.nodes.items() if not n.born), None)
            if dead is None:
                raise Reject(
                    "too_many_nodes", f"{len(self.nodes)} edge nodes known (sparkplug.max_nodes)"
                )
            self._forget_node(dead)
        node = self.nodes[key] = EdgeNode(*key)
        return node

    def _forget_node(self, key: tuple[str, str]) -> None:
        node = self.nodes.pop(key)
        self._forget_metrics(node)
        self._reordering.pop(key, None)
        self.changed.add(key)  # gone: the store forgets it too

    def _forget_metrics(self, node: EdgeNode) -> None:
        self._metric_count -= len(node.metrics)
        node.metrics.clear()
        node.aliases.clear()

    def _ndeath(self, node: EdgeNode | None, msg: pb.Payload) -> list[Reading]:
        bd_seq = _bd_seq(msg)
        if node is None or not node.born or bd_seq != node.bd_seq:
            self.counts.stale_deaths += 1  # the Will of an earlier session: not this one
            return []
        node.born = False
        self._close_gap(node)
        self.rebirth_wanted.pop((node.group, node.node), None)
        self.changed.add((node.group, node.node))
        # No time of its own: the Will's timestamp is when it was made, at connect (SPEC 3.4)
        return self._offline(node, [node.node, *sorted(node.devices)], None)

    def _dbirth(self, node: EdgeNode, device_id: str, msg: pb.Payload) -> list[Reading]:
        # a device born again: what its earlier birth defined is replaced
        for k in [k for k in node.metrics if k[0] == device_id]:
            known = node.metrics.pop(k)
            self._metric_count -= 1
            for alias, a in list(node.aliases.items()):
                if a is known:
                    del node.aliases[alias]
        node.devices.add(device_id)
        self.changed.add((node.group, node.node))
        return self._birth(node, device_id, msg)

    def _birth(self, node: EdgeNode, device_id: str, msg: pb.Payload) -> list[Reading]:
        for m in msg.metrics:
            name = m.name
            if not name or not m.HasField("datatype"):
                continue
            if not isinstance(name, str):  # not UTF-8: upb hands it back as bytes
                self.counts.invalid_names += 1
                known = Known(device_id, None, m.datatype, SKIP)
                if m.HasField("alias"):  # its data by alias is skipped, not a rebirth each time
                    node.aliases[m.alias] = known
                continue
            known = self._define(node, device_id, name, m.datatype)
            if known is not None and m.HasField("alias"):
                node.aliases[m.alias] = known
        device = self._device(node, device_id)
        if device is None:
            return []
        self.on_device(device, node.group, True)
        ts = msg.timestamp if msg.HasField("timestamp") else None
        online = Reading(device, "status", ts, online=True)  # a birth: online from now
        return [online, *self._readings(node, device_id, device, msg, late=False)]

    def _define(self, node: EdgeNode, device_id: str, name: str, datatype: int) -> Known | None:
        key = (device_id, name)
        known = node.metrics.get(key)
        if known is not None:
            if known.datatype != datatype:
                known.datatype, known.target = datatype, None
            return known
        if self._metric_count >= self._settings.max_metrics:
            self.counts.too_many_metrics += 1
            return None
        known = node.metrics[key] = Known(device_id, name, datatype)
        self._metric_count += 1
        return known

    def _offline(self, node: EdgeNode, ids: list[str], ts: int | None) -> list[Reading]:
        out = []
        for device_id in ids:
            device = self._device(node, device_id)
            if device is not None:
                self.on_device(device, node.group, False)
                out.append(Reading(device, "status", ts, state="offline", online=False))
        return out

    def _tell(self, node: EdgeNode, device_id: str, born: bool) -> None:
        try:
            device = self._device(node, device_id)
        except Reject:
            return
        if device is not None:
            self.on_device(device, node.group, born)

    # -- order --

    def _check_seq(self, node: EdgeNode, msg: pb.Payload) -> bool:
        """Whether the message came late (a gap it fills). A gap opened here waits for
        ``reorder_timeout`` (``expire``) before it counts and asks for a rebirth."""
        if not msg.HasField("seq"):
            return False
        seq = msg.seq % SEQ_MOD
        last = node.seq
        if last is None:
            node.seq = seq
            return False
        expected = (last + 1) % SEQ_MOD
        if seq == expected:
            node.seq = seq
            return False
        if seq in node.missing:  # late, within the window: the gap closes
            node.missing.discard(seq)
            self.counts.reordered += 1
            if not node.missing:
                self._close_gap(node)
            return True
        ahead = (seq - expected) % SEQ_MOD
        if ahead >= AHEAD:
            return True  # behind: a duplicate or older than the window; no state from it
        node.missing.update((expected + i) % SEQ_MOD for i in range(ahead))
        node.seq = seq
        if self._settings.reorder_timeout <= 0:
            self._gap(node)
        elif node.missing_since is None:
            node.missing_since = self._clock.monotonic()
            self._reordering[(node.group, node.node)] = node
        return False

    def _close_gap(self, node: EdgeNode) -> None:
        node.missing.clear()
        node.missing_since = None
        self._reordering.pop((node.group, node.node), None)

    def _gap(self, node: EdgeNode) -> None:
        self.counts.seq_gaps += 1
        self._close_gap(node)
        self.want_rebirth((node.group, node.node))

    def expire(self, now: float) -> None:
        """Gaps open for longer than ``reorder_timeout`` are real: counted, rebirth asked."""
        timeout = self._settings.reorder_timeout
        for node in [n for n in self._reordering.values() if n.missing_since is not None]:
            assert node.missing_since is not None
            if now - node.missing_since >= timeout:
                self._gap(node)

    def want_rebirth(self, key: tuple[str, str]) -> None:
        if not self._settings.rebirth or key in self.rebirth_wanted:
            return
        if len(self.rebirth_wanted) >= self._settings.max_nodes:
            self.counts.rebirths_dropped += 1  # garbage from thousands of node ids: bounded
            return
        self.counts.rebirths_wanted += 1
        self.rebirth_wanted[key] = None

    def resync(self) -> None:
        """A new host session (or a restart): a node may have died while we did not listen,
        and its NDEATH is gone with the session. Each born node is asked to rebirth, and
        its devices are quiet no longer until they are born again (no_data applies)."""
        for key, node in self.nodes.items():
            if node.born:
                for device_id in [node.node, *node.devices]:
                    self._tell(node, device_id, False)
                node.heard = False
                node.seq = None
                self._close_gap(node)
                self.want_rebirth(key)

    # -- data --

    def _data(self, node: EdgeNode, device_id: str, msg: pb.Payload, late: bool) -> list[Reading]:
        device = self._device(node, device_id)
        if device is None:
            return []
        return self._readings(node, device_id, device, msg, late)

    def _readings(
        self, node: EdgeNode, device_id: str, device: Device, msg: pb.Payload, late: bool
    ) -> list[Reading]:
        """A device's metric values (``device_id`` its Sparkplug id, or the node's), one
        reading per timestamp (historical ones apart). A message that came late (a gap it
        filled) is written and changes no live state."""
        payload_ts = msg.timestamp if msg.HasField("timestamp") else None
        groups: dict[tuple[int | None, bool], Reading] = {}
        states: dict[tuple[int | None, bool], str] = {}
        for m in msg.metrics:
            known = self._known(node, device_id, m)
            if known is None:
                continue
            target = known.target
            if target is None:
                assert known.name is not None
                target = known.target = self._target(node, device, known.name)
            if target.skip:
                continue
            if m.is_transient:  # a historian does not store it (Sparkplug 3.0)
                self.counts.transient += 1
                continue
            datatype = m.datatype if m.HasField("datatype") else known.datatype
            value = self._value(m, datatype)
            if value is None:
                self.counts.skipped_metrics += 1
                continue
            if target.about and isinstance(value, str):
                continue  # about a plate, and text: perhaps one
            ts = m.timestamp if m.HasField("timestamp") else payload_ts
            historical = late or m.is_historical
            key = (ts, historical)
            reading = groups.get(key)
            if reading is None:
                reading = groups[key] = Reading(
                    device, "telemetry", ts, retained=historical, historical=historical
                )
            if target.plate:
                plate_hash = self._plates.first([value])
                if plate_hash is not None:
                    reading.fields["plate_hash"] = plate_hash
            elif target.mapping is not None:
                try:
                    state = target.mapping.put(device, reading.fields, value)
                except Reject:  # an unmapped code, a value of the wrong type: this one only
                    self._bad_value(target)
                    continue
                if state is not None:
                    if state in STATES:
                        states[key] = state
                    else:
                        self.counts.invalid_states += 1
            elif target.field is None:  # the metric named state
                text = str(value)
                if text in STATES:
                    states[key] = text
                else:
                    self.counts.invalid_states += 1
            else:
                reading.fields[target.field] = target.convert(target.field, value)
        for key, state in states.items():
            groups[key].state = state
        return [r for r in groups.values() if r.fields or r.state]

    def _bad_value(self, target: Target) -> None:
        if target.mapping is not None and target.mapping.to == "state":
            self.counts.invalid_states += 1
        else:
            self.counts.skipped_metrics += 1

    def _target(self, node: EdgeNode, device: Device, name: str) -> Target:
        """Where one device's metric goes, worked out once (not per message)."""
        if name == BD_SEQ or name.startswith(CONTROL_PREFIXES):
            return SKIP
        mappings = self._mappings.get(node.group) or self._mappings[None]
        mapping = mappings.get(name)
        if mapping is None and name != "state" and not self._keep_unmapped:
            return SKIP
        plate = mapping.plate if mapping is not None else key_kind(name)
        if plate is KeyKind.PLATE:  # SPEC 9: hashed or dropped, whatever the device's kind
            return Target(plate=True)
        about = plate is KeyKind.ABOUT
        if mapping is not None:
            return Target(mapping=mapping, about=about)
        if name == "state":
            return Target()
        key = _field_name(name)
        convert = CONVERTERS[device.kind].get(key)
        if convert is None:
            try:
                check_field_key(key)
            except Reject:
                self.counts.skipped_metrics += 1
                return SKIP
            convert = generic_value
        return Target(field=key, convert=convert, about=about)

    def _known(self, node: EdgeNode, device_id: str, m: pb.Payload.Metric) -> Known | None:
        """The metric's definition: by alias, else by this device's name (a name that its
        births did not define is taken with the datatype the message gives, if any)."""
        if m.HasField("alias"):
            known = node.aliases.get(m.alias)
            if known is not None:
                return known
            if not m.name:
                self.counts.unknown_aliases += 1
                self.want_rebirth((node.group, node.node))
                return None
        name = m.name
        if not name:
            return None
        if not isinstance(name, str):
            self.counts.invalid_names += 1
            return None
        known = node.metrics.get((device_id, name))
        if known is not None:
            return known
        if m.HasField("datatype"):
            return self._define(node, device_id, name, m.datatype)
        self.counts.unknown_aliases += 1  # neither its birth nor the message says its type
        self.want_rebirth((node.group, node.node))
        return None

    @staticmethod
    def _value(m: pb.Payload.Metric, datatype: int) -> FieldValue | None:
        """The metric's value as SPEC 3.4 takes it, from the field that carries it (Tahu's
        Java and JavaScript encoders put UInt32 in long_value, others in int_value); None:
        null, no value, unsupported, or outside its type's range."""
        if m.is_null:
            return None
        which = m.WhichOneof("value")
        if datatype in SIGNED or datatype in UNSIGNED:
            if which not in INTEGER_FIELDS:
                return None
            raw: int = getattr(m, which)
            if datatype in UNSIGNED:
                return raw if raw < 1 << UNSIGNED[datatype] else None
            bits = SIGNED[datatype]
            raw &= (1 << bits) - 1  # sign-extended to 32 or 64 bits, or not
            return raw - (1 << bits) if raw >> (bits - 1) else raw
        if datatype in (UINT64, DATETIME):
            if which not in INTEGER_FIELDS:
                return None
            value: int = getattr(m, which)
            return value if value <= INT64_MAX else None
        if datatype in (FLOAT, DOUBLE):
            if which == "float_value":  # a float32: its digits, not the double's noise
                number = float(f"{m.float_value:.7g}")
            elif which == "double_value":
                number = m.double_value
            else:
                return None
            return number if math.isfinite(number) else None
        if datatype == BOOLEAN:
            return m.boolean_value if which == "boolean_value" else None
        if datatype in STRINGS:
            return m.string_value if which == "string_value" else None
        return None  # DataSet, Bytes, File, Template, property sets, arrays

    def _device(self, node: EdgeNode, device_id: str) -> Device | None:
        """The canonical device: the registry's, or the group's defaults. An edge node that
        neither names is a gateway, not equipment: None. A device under it must be named:
        ``Reject`` (unknown_device), quarantined like any message nobody can place."""
        defaults = self._settings.groups.get(node.group, SparkplugGroup())
        try:  # the group's kind is only a default: the registry's kind is the device's
            return self._devices.resolve(
                device_id,
                defaults.site,
                defaults.area,
                None,
                SPARKPLUG_ROUTE,
                default_kind=defaults.kind,
            )
        except Reject:
            if device_id == node.node:
                return None
            raise

    def use_devices(self, devices: Devices) -> None:
        """The registry of a reloaded config (SPEC 10): the edge nodes, their births and
        aliases stay (no rebirth needed); where each metric goes is worked out anew (a
        device's registered kind may have changed)."""
        self._devices = devices
        for node in self.nodes.values():
            for known in node.metrics.values():
                known.target = None

    # -- what survives a restart --

    def snapshots(self) -> Iterable[tuple[str, str, str | None]]:
        """(group, node, snapshot or None: forgotten) of each node changed since asked."""
        changed, self.changed = self.changed, set()
        for key in sorted(changed):
            node = self.nodes.get(key)
            yield key[0], key[1], None if node is None else node.snapshot()

    def restore(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Edge nodes as a previous run knew them: a death that follows is honoured. Their
        aliases are not kept: their data asks for a rebirth (``resync`` asks at once)."""
        for group, node_id, text in rows:
            if len(self.nodes) >= self._settings.max_nodes:
                break
            try:
                data: Any = json.loads(text)
                node = EdgeNode(group, node_id, bool(data["born"]), data["bd_seq"], heard=False)
                node.devices = {d for d in data["devices"] if isinstance(d, str)}
            except (ValueError, KeyError, TypeError):
                continue
            if node.bd_seq is not None and not isinstance(node.bd_seq, int):
                continue
            self.nodes[(group, node_id)] = node


def _bd_seq(msg: pb.Payload) -> int | None:
    """The bdSeq metric's value: Int64 in long_value as the specification says; Tahu's
    JavaScript client makes it UInt64 (long_value too); some put it in int_value."""
    for m in msg.metrics:
        if m.name == BD_SEQ:
            which = m.WhichOneof("value")
            return getattr(m, which) if which in INTEGER_FIELDS else None
    return None


def without_text(payload: bytes) -> tuple[bytes, list[str]] | None:
    """A Sparkplug payload as the quarantine may keep it: every text value replaced by
    ``***`` and every value that may hold text (bytes, data sets, templates, properties,
    metadata, the body) dropped, since an ANPR camera's plate may come by alias, under no
    name to tell it by; and the texts replaced. None: it is no Sparkplug payload."""
    try:
        msg = pb.Payload.FromString(payload)
    except DecodeError:
        return None
    found: list[str] = []
    msg.ClearField("body")
    for m in msg.metrics:
        which = m.WhichOneof("value")
        if which == "string_value":
            found.append(m.string_value)
            m.string_value = REDACTED_TEXT
        elif which in ("bytes_value", "dataset_value", "template_value", "extension_value"):
            m.ClearField(which)
        m.ClearField("properties")
        m.ClearField("metadata")
    msg.DiscardUnknownFields()  # what the schema does not name may hold text too
    kept = msg.SerializeToString()
    return (payload, []) if kept == payload else (kept, found)


def _field_name(name: str) -> str:
    """A Sparkplug metric name as a field key: folders and spaces become underscores."""
    return name.replace("/", "_").replace(" ", "_").replace(".", "_")
