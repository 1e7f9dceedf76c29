"""A Sparkplug B edge node in the simulator (SPEC 3.4, 6): a PLC gateway publishing some
devices' telemetry as births and data by alias, with its death certificate as its Will.

The devices behave as any simulated device (``SimDevice``); their canonical telemetry is
turned into Sparkplug metrics here. ``drop`` ends the connection without DISCONNECT, so
the broker publishes the NDEATH; a rebirth request (NCMD) is answered with new births.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from monitor.schemas import sparkplug_b_pb2 as pb
from monitor.sim.equipment import SimDevice

NAMESPACE = "spBv1.0"
# Sparkplug DataType numbers
UINT32, INT64, FLOAT, DOUBLE, BOOLEAN, STRING = 7, 4, 9, 10, 11, 12
# A gate barrier's PLC tags: canonical metric -> (Sparkplug metric name, datatype)
BARRIER_TAGS = {
    "position": ("Barrier/Position", STRING),
    "cycles_total": ("Barrier/Cycles", UINT32),
    "motor_current_a": ("Motor/Current", FLOAT),
    "state": ("Barrier/Fault", BOOLEAN),
}
SPEC = re.compile(r"([^/+#]+)/([^/+#]+)=([A-Za-z0-9_.,-]+)")


def parse(text: str) -> tuple[str, str, list[str]]:
    """``GROUP/NODE=DEV[,DEV...]``, e.g. ``rail-gate-plc/plc-01=gb-05``."""
    m = SPEC.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r}: expected GROUP/NODE=DEVICE[,DEVICE...]")
    return m.group(1), m.group(2), m.group(3).split(",")


def _tag(kind: str, key: str, value: object) -> tuple[str, int, object]:
    """A canonical metric as the gateway's tag: (name, datatype, value)."""
    if kind == "gate_barrier" and key in BARRIER_TAGS:
        name, datatype = BARRIER_TAGS[key]
        return name, datatype, value == "fault" if key == "state" else value
    if isinstance(value, bool):
        return key, BOOLEAN, value
    if isinstance(value, int):
        return key, INT64, value
    if isinstance(value, float):
        return key, DOUBLE, value
    return key, STRING, str(value)


def _metric(name: str | None, alias: int, datatype: int, value: object) -> pb.Payload.Metric:
    m = pb.Payload.Metric(alias=alias, datatype=datatype)
    if name is not None:
        m.name = name
    if datatype == BOOLEAN:
        m.boolean_value = bool(value)
    elif datatype == STRING:
        m.string_value = str(value)
    elif datatype == FLOAT:
        m.float_value = float(cast(float, value))
    elif datatype == DOUBLE:
        m.double_value = float(cast(float, value))
    elif datatype == UINT32:
        m.int_value = int(cast(int, value))
    else:
        m.long_value = int(cast(int, value)) % (1 << 64)
    return m


@dataclass
class SparkplugNode:
    group: str
    node: str
    sims: list[SimDevice]
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client: paho.Client | None = None
    bd_seq: int = -1
    seq: int = 0
    aliases: dict[tuple[str, str], int] = field(default_factory=dict)  # (device, name)
    _rebirth: threading.Event = field(default_factory=threading.Event)

    def topic(self, kind: str, device: str | None = None) -> str:
        return "/".join([NAMESPACE, self.group, kind, self.node, *([device] if device else [])])

    def _payload(self, metrics: list[pb.Payload.Metric], now_ms: int, seq: bool = True) -> bytes:
        body = pb.Payload(timestamp=now_ms, metrics=metrics)
        if seq:
            body.seq = self.seq
            self.seq = (self.seq + 1) % 256
        return body.SerializeToString()

    def _death(self) -> bytes:
        bd = pb.Payload.Metric(name="bdSeq", datatype=INT64, long_value=self.bd_seq)
        return pb.Payload(timestamp=int(time.time() * 1000), metrics=[bd]).SerializeToString()

    def open(self) -> None:
        self.bd_seq = (self.bd_seq + 1) % 256
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"sim-{self.node}"
        )
        client.will_set(self.topic("NDEATH"), self._death(), qos=1)
        if self.username:
            client.username_pw_set(self.username, self.password)
        client.on_message = lambda c, u, msg: self._rebirth.set()
        client.connect(self.host, self.port, keepalive=10)
        client.subscribe(self.topic("NCMD"), qos=1)
        client.loop_start()
        self.client = client
        self.births(int(time.time() * 1000))

    def births(self, now_ms: int) -> None:
        assert self.client is not None
        self.seq = 0
        self.aliases.clear()
        bd = pb.Payload.Metric(name="bdSeq", datatype=INT64, long_value=self.bd_seq)
        rebirth = pb.Payload.Metric(name="Node Control/Rebirth", datatype=BOOLEAN)
        rebirth.boolean_value = False
        self.client.publish(self.topic("NBIRTH"), self._payload([bd, rebirth], now_ms), qos=1)
        for sim in self.sims:
            metrics = []
            for key, value in self._telemetry(sim, now_ms).items():
                name, datatype, v = _tag(sim.device.kind, key, value)
                alias = self.aliases.setdefault((sim.device.id, name), len(self.aliases) + 1)
                metrics.append(_metric(name, alias, datatype, v))
            topic = self.topic("DBIRTH", sim.device.id)
            self.client.publish(topic, self._payload(metrics, now_ms), qos=1)

    @staticmethod
    def _telemetry(sim: SimDevice, now_ms: int) -> dict[str, object]:
        """The device's canonical telemetry of this tick (its events are not sent)."""
        out: dict[str, object] = {}
        for topic, body, _ in sim.tick(now_ms):
            if topic.endswith("/telemetry"):
                values = json.loads(body)
                values.pop("ts", None)
                out.update(values)
        return out

    def publish(self, now_ms: int) -> int:
        """One tick of data by alias; births again first if a host asked for them."""
        if self.client is None:
            return 0
        if self._rebirth.is_set():
            self._rebirth.clear()
            self.births(now_ms)
        sent = 0
        for sim in self.sims:
            if sim.mode in ("silent", "offline"):
                continue
            metrics = []
            for key, value in self._telemetry(sim, now_ms).items():
                name, datatype, v = _tag(sim.device.kind, key, value)
                alias = self.aliases.get((sim.device.id, name))
                if alias is not None:
                    metrics.append(_metric(None, alias, datatype, v))
            topic = self.topic("DDATA", sim.device.id)
            self.client.publish(topic, self._payload(metrics, now_ms), qos=1)
            sent += 1
        return sent

    def drop(self) -> None:
        """Vanish without DISCONNECT: the broker publishes our NDEATH."""
        if self.client is None:
            return
        client, self.client = self.client, None
        sock = cast(socket.socket | None, client.socket())
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        client.loop_stop()

    def close(self) -> None:
        """A clean stop: the NDEATH ourselves (a normal DISCONNECT sends no Will)."""
        if self.client is None:
            return
        self.client.publish(self.topic("NDEATH"), self._death(), qos=1).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()
        self.client = None


class Member:
    """A device of an edge node, in the simulator's place of its own connection: opening
    or dropping it opens or drops the node's (all its devices go together, as they do
    behind a real gateway); its data goes out with the node's tick."""

    def __init__(self, sim: SimDevice, node: SparkplugNode) -> None:
        self.sim = sim
        self.node = node

    @property
    def client(self) -> paho.Client | None:
        return self.node.client

    def open(self) -> None:
        if self.node.client is None:
            self.node.open()

    def drop(self) -> None:
        self.node.drop()

    def close(self) -> None:
        self.node.close()

    def publish(self, messages: list[tuple[str, str, bool]]) -> int:
        return 0  # the node publishes its devices' data itself (``SparkplugNode.publish``)
