"""The canary: the monitor's own heartbeat through its own subscriptions (SPEC 7).

A broker can accept the connection and the subscription and still deliver nothing (an ACL
that denies reading, a broken bridge): a silence that would look like every device going
down at once. So for each subscription with a wildcard the monitor publishes, every
``interval``, a small message on a topic the subscription matches, and expects it back.
Its wildcard levels are ``_canary_``, which no device id, site or area can be (those begin
with a letter or a digit), so every decoder rejects it; the pipeline recognises it on that
path only, and the per-message hot path pays nothing for it.

Not heard back within ``timeout`` of being sent, and nothing else heard either, the
subscriptions are deaf: the monitor's own outage (device alerts paused, one monitor alert,
``/health`` 503); devices' messages still arriving prove they hear. Refused by the broker
(PUBACK "not authorized"), the canary stops and ``/health`` warns. Without it a connection
that hears nothing at all is still the monitor's outage (``MqttSource.outage``: nothing
since connecting is the sign); what it cannot tell is a subscription that stops delivering
later from every device falling silent (the ACL line it needs is in the README).
"""

from __future__ import annotations

LEVEL = "_canary_"
SPARKPLUG = "spBv1.0"  # nothing of ours is published under it but the host's STATE


def canary_topic(topic_filter: str) -> str | None:
    """The topic a filter's canary is published on; None for a filter without wildcards
    (its one topic is a device's)."""
    levels = topic_filter.split("/")
    if "+" not in levels and "#" not in levels:
        return None
    if levels[0] == SPARKPLUG:
        return None  # every Sparkplug host there would read our bytes (SPEC 3.4)
    return "/".join(LEVEL if level in ("+", "#") else level for level in levels)


class Canary:
    """What was sent, what came back, and since when nothing has (monotonic times)."""

    def __init__(self, subscriptions: list[str], client_id: str, timeout: float) -> None:
        self.topics = list(dict.fromkeys(t for f in subscriptions if (t := canary_topic(f))))
        self.timeout = timeout
        self._mark = f"{client_id} ".encode()
        self._seq = 0
        self._waiting_since: float | None = None  # the oldest canary not heard back
        self.refused: str | None = None  # why the broker refused our canary

    def payload(self) -> bytes:
        self._seq += 1
        return self._mark + str(self._seq).encode()

    def sent(self, now: float) -> None:
        if self._waiting_since is None:
            self._waiting_since = now

    def own(self, topic: str, payload: bytes) -> bool:
        """Whether a message is a canary (ours or another collector's) and not a device's;
        ours coming back means the subscription hears."""
        if LEVEL not in topic.split("/"):
            return False
        if payload.startswith(self._mark):
            self._waiting_since = None
        return True

    def deaf_since(self, now: float, heard_at: float | None) -> float | None:
        """Since when nothing has come back, once that is longer than ``timeout``;
        ``heard_at``: when any message last arrived."""
        since = self._waiting_since
        if since is None or self.refused is not None or now - since <= self.timeout:
            return None
        if heard_at is not None and heard_at > since:
            return None
        return since

    def reset(self) -> None:
        """A new connection: nothing is owed on it yet."""
        self._waiting_since = None
        self.refused = None
