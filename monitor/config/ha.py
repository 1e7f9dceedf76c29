"""More than one monitor for the same sites (SPEC 8.1): ``ha`` (the leadership through
the shared store) and ``heartbeat`` (the dead man's switch)."""

import urllib.parse
from typing import Any, Self

from pydantic import field_validator, model_validator

from monitor.config.connections import store_session
from monitor.config.values import Interval, Section


class HA(Section):
    """Used when ``store.url`` is set: the monitors that share it and the same
    ``mqtt.client_id`` are one group, of which one leads."""

    heartbeat: Interval = 5.0  # the leader renews its lease this often
    failover: Interval = 20.0  # a standby takes over a lease older than this
    # How the other monitors of the group reach this one's API (their boards forward
    # acknowledgements and windows to the leader); default: http.host and http.port.
    api_url: str | None = None

    @model_validator(mode="after")
    def _times(self) -> Self:
        if self.failover < 2 * self.heartbeat:
            raise ValueError(
                "failover must be at least twice heartbeat: a leader stops acting"
                " failover - heartbeat after its last renewal, before a standby takes over"
            )
        return self

    def session(self) -> dict[str, Any]:
        """The libpq settings of this group's connections (``store_session``)."""
        return store_session(self.heartbeat, self.failover)

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, v: str | None) -> str | None:
        return None if v is None else _http_url(v).rstrip("/")


class Heartbeat(Section):
    """A URL called every ``interval`` while the leader is healthy (broker heard, writes
    flowing): a healthchecks-style service or the crew's pager learns when no monitor is."""

    url: str | None = None
    interval: Interval = 60.0
    timeout: Interval = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _http_url(v)


def _http_url(v: str) -> str:
    parts = urllib.parse.urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return v
