"""Sparkplug B payloads into canonical readings (SPEC 3.4), with each edge node's state.

Per edge node (group, node id): the bdSeq of its current birth, the last seq, and the alias
table its births defined (aliases are unique within a node, its devices included). Births
put a node or a device online and carry current values; DATA carries values by alias or
name; DDEATH puts a device offline, an NDEATH whose bdSeq matches the current birth puts
the node and every device under it offline (an older one is stale and ignored).

The decoder decides, it does not act: a seq gap or an unknown alias is counted and the
node is added to ``rebirth_wanted``, which the host application (``host.py``) drains,
rate-limits and publishes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from monitor.config import SPARKPLUG_ROUTE, Sparkplug, SparkplugGroup
from monitor.model import INT64_MAX, Device, FieldValue, Reading
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

# DataType -> (the value field, the bits of a signed int, or 0)
SIGNED = {1: 8, 2: 16, 3: 32, 4: 64}  # Int8..Int64: two's complement in int/long_value
UNSIGNED = {5, 6, 7}  # UInt8..UInt32 in int_value
UINT64, FLOAT, DOUBLE, BOOLEAN, DATETIME = 8, 9, 10, 11, 13
STRINGS = {12, 14, 15}  # String, Text, UUID


@dataclass
class Known:
    """A metric as a birth defined it."""

    name: str
    datatype: int


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


@dataclass
class EdgeNode:
    group: str
    node: str
    born: bool = False
    bd_seq: int | None = None
    seq: int | None = None
    aliases: dict[int, Known] = field(default_factory=dict)
    datatypes: dict[str, int] = field(default_factory=dict)  # by name
    devices: set[str] = field(default_factory=set)
    targets: dict[tuple[str, str], Target] = field(default_factory=dict)  # (device, name)


@dataclass
class Counts:
    seq_gaps: int = 0
    unknown_aliases: int = 0
    skipped_metrics: int = 0  # is_null, unsupported types, UInt64 beyond int64
    stale_deaths: int = 0
    rebirths_wanted: int = 0
    too_old: int = 0  # historical metrics beyond ingest.max_age


def parse_topic(levels: list[str]) -> tuple[str, str, str, str | None] | None:
    """``spBv1.0/{group}/{type}/{node}[/{device}]`` -> (group, type, node, device)."""
    if len(levels) not in (4, 5) or levels[0] != NAMESPACE or levels[2] not in MESSAGE_TYPES:
        return None
    if not all(levels) or (levels[2][0] == "D") != (len(levels) == 5):
        return None
    return levels[1], levels[2], levels[3], levels[4] if len(levels) == 5 else None


class SparkplugDecoder:
    def __init__(self, settings: Sparkplug, devices: Devices, plates: Plates | None = None) -> None:
        self._settings = settings
        self._devices = devices
        self._plates = plates or Plates()
        self._keep_unmapped = settings.unmapped == "keep"
        self._mappings: dict[str | None, dict[str, Mapping]] = {
            None: {name: Mapping.compile(name, fm) for name, fm in settings.fields.items()}
        }
        for group, g in settings.groups.items():
            merged = {**settings.fields, **g.fields}
            self._mappings[group] = {n: Mapping.compile(n, fm) for n, fm in merged.items()}
        self.nodes: dict[tuple[str, str], EdgeNode] = {}
        self.rebirth_wanted: set[tuple[str, str]] = set()
        self.counts = Counts()

    @property
    def subscriptions(self) -> list[str]:
        groups = self._settings.groups
        return [f"{NAMESPACE}/{g}/#" for g in groups] if groups else [f"{NAMESPACE}/#"]

    def decode(self, levels: list[str], payload: bytes) -> list[Reading]:
        """The readings of one Sparkplug message (none for commands, STATE and what only
        changes the node's state); ``Reject`` for what cannot be decoded."""
        if len(levels) == 3 and levels[1] == STATE:
            return []  # a host application's presence (ours or another's)
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
        node = self.nodes.get((group, node_id))
        if node is None:
            node = self.nodes[(group, node_id)] = EdgeNode(group, node_id)
        if kind == "NBIRTH":
            return self._nbirth(node, msg)
        if kind == "NDEATH":
            return self._ndeath(node, msg)
        if not node.born:  # data before (or after the death of) its birth: ask for one
            self._want_rebirth(node)
            return []
        self._check_seq(node, msg)
        if kind == "DBIRTH":
            assert device_id is not None
            node.devices.add(device_id)
            return self._birth(node, device_id, msg)
        if kind == "DDEATH":
            assert device_id is not None
            node.devices.discard(device_id)
            return self._offline(node, [device_id], msg)
        if device_id is not None and device_id not in node.devices:
            self._want_rebirth(node)  # data of a device that was not born: its aliases?
        return self._data(node, device_id or node_id, msg)

    # -- births and deaths --

    def _nbirth(self, node: EdgeNode, msg: pb.Payload) -> list[Reading]:
        bd_seq = next((m.long_value for m in msg.metrics if m.name == BD_SEQ), None)
        if bd_seq is None:
            raise Reject("malformed_sparkplug", "NBIRTH without a bdSeq metric")
        node.born, node.bd_seq, node.seq = True, bd_seq, msg.seq
        node.aliases.clear()
        node.datatypes.clear()
        node.targets.clear()
        node.devices.clear()  # a new birth: its devices are born again after it
        self.rebirth_wanted.discard((node.group, node.node))
        return self._birth(node, node.node, msg)

    def _ndeath(self, node: EdgeNode, msg: pb.Payload) -> list[Reading]:
        bd_seq = next((m.long_value for m in msg.metrics if m.name == BD_SEQ), None)
        if not node.born or bd_seq != node.bd_seq:
            self.counts.stale_deaths += 1  # the Will of an earlier session: not this one
            return []
        node.born = False
        return self._offline(node, [node.node, *sorted(node.devices)], msg)

    def _birth(self, node: EdgeNode, device_id: str, msg: pb.Payload) -> list[Reading]:
        for m in msg.metrics:
            if m.name:
                node.datatypes[m.name] = m.datatype
                if m.HasField("alias"):
                    node.aliases[m.alias] = Known(m.name, m.datatype)
        device = self._device(node, device_id)
        if device is None:
            return []
        ts = msg.timestamp if msg.HasField("timestamp") else None
        online = Reading(device, "status", ts, online=True)  # a birth: online from now
        return [online, *self._readings(node, device, msg)]

    def _offline(self, node: EdgeNode, ids: list[str], msg: pb.Payload) -> list[Reading]:
        ts = msg.timestamp if msg.HasField("timestamp") else None
        out = []
        for device_id in ids:
            device = self._device(node, device_id)
            if device is not None:
                out.append(Reading(device, "status", ts, state="offline", online=False))
        return out

    # -- data --

    def _check_seq(self, node: EdgeNode, msg: pb.Payload) -> None:
        if not msg.HasField("seq"):
            return
        if node.seq is not None and msg.seq != (node.seq + 1) % 256:
            self.counts.seq_gaps += 1
            self._want_rebirth(node)
        node.seq = msg.seq

    def _want_rebirth(self, node: EdgeNode) -> None:
        if self._settings.rebirth:
            self.counts.rebirths_wanted += 1
            self.rebirth_wanted.add((node.group, node.node))

    def _data(self, node: EdgeNode, device_id: str, msg: pb.Payload) -> list[Reading]:
        device = self._device(node, device_id)
        if device is None:
            return []
        return self._readings(node, device, msg)

    def _readings(self, node: EdgeNode, device: Device, msg: pb.Payload) -> list[Reading]:
        """A device's metric values, one reading per timestamp (historical ones apart)."""
        payload_ts = msg.timestamp if msg.HasField("timestamp") else None
        groups: dict[tuple[int | None, bool], Reading] = {}
        states: dict[tuple[int | None, bool], str] = {}
        targets = node.targets
        for m in msg.metrics:
            known = self._known(node, m)
            if known is None:
                continue
            name, datatype = known
            target = targets.get((device.id, name))
            if target is None:
                target = targets[(device.id, name)] = self._target(node, device, name)
            if target.skip:
                continue
            value = self._value(m, datatype)
            if value is None:
                self.counts.skipped_metrics += 1
                continue
            if target.about and isinstance(value, str):
                continue  # about a plate, and text: perhaps one
            ts = m.timestamp if m.HasField("timestamp") else payload_ts
            key = (ts, m.is_historical)
            reading = groups.get(key)
            if reading is None:
                reading = groups[key] = Reading(device, "telemetry", ts, retained=m.is_historical)
            if target.plate:
                plate_hash = self._plates.first([value])
                if plate_hash is not None:
                    reading.fields["plate_hash"] = plate_hash
            elif target.mapping is not None:
                state = target.mapping.put(device, reading.fields, value)
                if state is not None:
                    states[key] = state
            elif target.field is None:  # the metric named state
                states[key] = str(value)
            else:
                reading.fields[target.field] = target.convert(target.field, value)
        for key, state in states.items():
            groups[key].state = state
        return [r for r in groups.values() if r.fields or r.state]

    def _target(self, node: EdgeNode, device: Device, name: str) -> Target:
        """Where one device's metric goes, worked out once (not per message)."""
        if name == BD_SEQ or name.startswith(CONTROL_PREFIXES):
            return Target(skip=True)
        mappings = self._mappings.get(node.group) or self._mappings[None]
        mapping = mappings.get(name)
        if mapping is None and name != "state" and not self._keep_unmapped:
            return Target(skip=True)
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
                return Target(skip=True)
            convert = generic_value
        return Target(field=key, convert=convert, about=about)

    def _known(self, node: EdgeNode, m: pb.Payload.Metric) -> tuple[str, int] | None:
        if m.name:
            datatype = m.datatype if m.HasField("datatype") else node.datatypes.get(m.name, 0)
            return m.name, datatype
        if m.HasField("alias"):
            known = node.aliases.get(m.alias)
            if known is not None:
                return known.name, m.datatype if m.HasField("datatype") else known.datatype
        self.counts.unknown_aliases += 1
        self._want_rebirth(node)
        return None

    @staticmethod
    def _value(m: pb.Payload.Metric, datatype: int) -> FieldValue | None:
        """The metric's value as SPEC 3.4 takes it; None: null, unsupported or unstorable."""
        if m.is_null:
            return None
        if datatype in SIGNED:
            bits = SIGNED[datatype]
            raw = m.long_value if bits == 64 else m.int_value
            raw &= (1 << bits) - 1
            return raw - (1 << bits) if raw >> (bits - 1) else raw
        if datatype in UNSIGNED:
            return m.int_value
        if datatype == UINT64:
            return m.long_value if m.long_value <= INT64_MAX else None
        if datatype == FLOAT:  # a float32: as many digits as it has, not the double's noise
            value = float(f"{m.float_value:.7g}")
            return value if math.isfinite(value) else None
        if datatype == DOUBLE:
            return m.double_value if math.isfinite(m.double_value) else None
        if datatype == BOOLEAN:
            return m.boolean_value
        if datatype in STRINGS:
            return m.string_value
        if datatype == DATETIME:
            return m.long_value if m.long_value <= INT64_MAX else None
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
