"""A QoS 1 load generator that is not the bottleneck: one process per publisher.

    python -m bench.load --port P --topic T < newline-separated payloads

Encodes every payload as an MQTT 5 QoS 1 PUBLISH up front, prints "ready", waits for a
line on stdin, then streams the packets in large writes while a reader thread counts
PUBACKs, keeping at most the broker's Receive Maximum unacknowledged (as a client must).
Prints "done <seconds>" once every PUBLISH is acknowledged. ``mosquitto_pub -l -q 1``
tops out near 7k msg/s per process here; this sends what the broker will take.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import threading
import time

from monitor.source import wire


def publish_packet(topic: bytes, payload: bytes, mid: int) -> bytes:
    """QoS 1 PUBLISH, no properties (as mosquitto forwards a plain publish)."""
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid) + b"\x00" + payload
    return wire.packet(0x32, body)


def connect(port: int, client_id: str) -> tuple[socket.socket, int]:
    """A clean MQTT 5 session (none kept after it); returns it and the broker's window."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        wire.connect(
            client_id, keepalive=60, session_expiry=0, receive_maximum=100, clean_start=True
        )
    )
    buf = b""
    controls: list[wire.Control] = []
    while not controls:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("the broker closed the connection")
        buf += chunk
        wire.parse(buf, 0, 0, [], controls)
    connack = wire.connack(controls[0].body)
    if controls[0].type != wire.CONNACK or connack.failed:
        raise SystemExit(f"not connected: {connack.reason}")
    window = connack.properties.get(0x21, 65535)  # the broker's Receive Maximum
    return sock, int(window) if isinstance(window, int) else 65535


def prime_session(port: int, client_id: str, topics: list[str]) -> None:
    """A persistent session subscribed at QoS 1 and left: the broker queues for it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        wire.connect(
            client_id,
            keepalive=60,
            session_expiry=7 * 86400,
            receive_maximum=100,
            clean_start=True,
        )
    )
    sock.sendall(wire.subscribe(1, topics))
    buf = b""
    controls: list[wire.Control] = []
    while not any(c.type == wire.SUBACK for c in controls):
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("the broker closed the connection")
        buf += chunk
        controls.clear()
        wire.parse(buf, 0, 0, [], controls)
    sock.sendall(wire.DISCONNECT_PACKET)
    sock.close()


def forget_session(port: int, client_id: str) -> None:
    """End a stopped client's persistent session, or the broker queues every later
    message for it (gigabytes over a bench run, and a slower broker for the next stage)."""
    sock, _ = connect(port, client_id)
    sock.sendall(wire.DISCONNECT_PACKET)
    sock.close()


def send_all(sock: socket.socket, window: int, packets: list[bytes]) -> float:
    """Send the PUBLISHes in large writes, at most `window` unacknowledged; return the
    seconds until the last PUBACK."""
    acked = 0
    room = threading.Condition()

    def count_acks() -> None:
        nonlocal acked
        rest = b""
        controls: list[wire.Control] = []
        while acked < len(packets):
            data = sock.recv(1 << 16)
            if not data:
                return
            buf = rest + data
            n = len(buf) // 4
            if buf[0 : 4 * n : 4] == b"\x40" * n and buf[1 : 4 * n : 4] == b"\x02" * n:
                got, rest = n, buf[4 * n :]  # only short PUBACKs: count them at C speed
            else:
                controls.clear()
                rest = buf[wire.parse(buf, 0, 0, [], controls) :]
                got = sum(1 for c in controls if c.type == wire.PUBACK)
            with room:
                acked += got
                room.notify()

    reader = threading.Thread(target=count_acks, daemon=True)
    reader.start()
    t0 = time.perf_counter()
    step = max(1, min(window // 2, 500))
    for i in range(0, len(packets), step):
        with room:
            while i + step - acked > window:
                room.wait(1)
        sock.sendall(b"".join(packets[i : i + step]))
    reader.join()
    if acked < len(packets):
        raise SystemExit(f"only {acked} of {len(packets)} acknowledged")
    return time.perf_counter() - t0


def publish_all(port: int, messages: list[tuple[str, bytes]], client_id: str) -> float:
    """One connection publishing these (topic, payload) pairs at QoS 1, acks awaited."""
    packets = [
        publish_packet(topic.encode(), payload, i % 65535 + 1)
        for i, (topic, payload) in enumerate(messages)
    ]
    sock, window = connect(port, client_id)
    try:
        return send_all(sock, window, packets)
    finally:
        sock.sendall(wire.DISCONNECT_PACKET)
        sock.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--client-id", default="bench-load")
    args = ap.parse_args()
    payloads = sys.stdin.buffer.readline  # payloads first, then the go line
    topic = args.topic.encode()
    packets: list[bytes] = []
    while (line := payloads()) not in (b"\n", b""):
        packets.append(publish_packet(topic, line.rstrip(b"\n"), len(packets) % 65535 + 1))
    sock, window = connect(args.port, args.client_id)
    print("ready", flush=True)
    sys.stdin.buffer.readline()  # go
    elapsed = send_all(sock, window, packets)
    sock.sendall(wire.DISCONNECT_PACKET)
    sock.close()
    print(f"done {elapsed:.3f}", flush=True)


if __name__ == "__main__":
    main()
