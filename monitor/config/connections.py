"""The connections' sections: the MQTT broker (TLS, reconnects, the canary), InfluxDB,
the HTTP API."""

import ipaddress
import re
import ssl
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from monitor.config.values import (
    Duration,
    Interval,
    Section,
    TopicFilter,
    _read_secret,
    _whole_seconds,
)
from monitor.errors import MonitorError


class TLS(Section):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="skip hostname verification (test rigs only)")

    @model_validator(mode="after")
    def _files_exist(self) -> Self:
        if self.enabled:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(self, name)
                if path is not None and not path.is_file():
                    raise ValueError(f"{name} {str(path)!r} does not exist")
            if (self.cert_file is None) != (self.key_file is None):
                raise ValueError("cert_file and key_file go together")
        return self


class Backoff(Section):
    initial: Interval = 0.5
    max: Interval = 30.0


class CanarySettings(Section):
    """The monitor's own heartbeat through its subscriptions (SPEC 7: a broker that
    accepts the subscription but delivers nothing is the monitor's outage)."""

    enabled: bool = True
    interval: Interval = 5.0
    timeout: Interval = 15.0  # not heard back within this: the subscription is deaf


class MQTT(Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("monitor-aktau-1", min_length=1, max_length=128)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: TLS = TLS()
    keepalive: Annotated[Duration, _whole_seconds(65535)] = 30.0  # 0: no keepalive
    # MQTT 5 Receive Maximum: how many unacknowledged QoS 1 messages the broker may
    # send us. Throughput with ack-after-write is this window / write latency.
    receive_maximum: int = Field(20000, ge=1, le=65535)
    session_expiry: Annotated[Duration, _whole_seconds(2**32 - 1)] = 7 * 86400.0
    reconnect: Backoff = Backoff()
    canary: CanarySettings = CanarySettings()
    # Extra subscriptions beyond those the profiles imply (e.g. to narrow to some sites,
    # set `topics` and the profiles' own topics are not subscribed).
    topics: list[TopicFilter] | None = None

    @model_validator(mode="after")
    def _secret(self) -> Self:
        object.__setattr__(
            self, "password", _read_secret(self.password, self.password_file, "password")
        )
        return self


class Influx(Section):
    @property
    def compress(self) -> bool:
        """Whether to gzip request bodies (``gzip`` resolved)."""
        if self.gzip != "auto":
            return self.gzip
        host = urllib.parse.urlsplit(self.url).hostname or ""
        if host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:  # a name: another host (compose service, cluster)
            return True

    url: str = "http://127.0.0.1:8086"
    # https: the CA bundle that signed InfluxDB's certificate (default: the system's CAs)
    ca_file: Path | None = None
    api: Literal["v1", "v2"] = "v1"
    database: str = "customs"
    retention_policy: str | None = None
    org: str | None = None
    bucket: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    create_database: bool = Field(True, description="v1: CREATE DATABASE at start-up")
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: Duration = 0.1
    timeout: Interval = 10.0
    # "auto": compress unless InfluxDB is on this host. Over loopback gzip saves nothing
    # and costs both sides CPU (measured: influxd -25 % CPU at 40k points/s, bench/README).
    gzip: bool | Literal["auto"] = "auto"
    retry: Backoff = Backoff(initial=0.2, max=30.0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _api_fields(self) -> Self:
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {str(self.ca_file)!r} does not exist")
        object.__setattr__(self, "token", _read_secret(self.token, self.token_file, "token"))
        object.__setattr__(
            self, "password", _read_secret(self.password, self.password_file, "password")
        )
        if self.api == "v2" and not (self.org and self.bucket):
            raise ValueError("api v2 needs org and bucket")
        return self


def tls_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """Verification of an HTTPS server by ``ca_file``'s CAs; None: the system's."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (ssl.SSLError, OSError) as e:
        raise MonitorError(f"influx.ca_file {str(ca_file)!r}: {e}") from None


class HTTP(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token: SecretStr | None = None
    token_file: Path | None = None
    # Where people reach the status board (a TLS proxy in front, say): notifications then
    # link to the alert on it, where it can be acknowledged from a phone (SPEC 10).
    public_url: str | None = None

    @model_validator(mode="after")
    def _secret(self) -> Self:
        object.__setattr__(self, "token", _read_secret(self.token, self.token_file, "token"))
        return self

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"\s", v):
            raise ValueError("must be an http:// or https:// URL, e.g. https://monitor.example.kz")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError("the board's address only: no user, query or #fragment")
        return v.rstrip("/")

    def alert_link(self, alert_id: str) -> str | None:
        """The alert on the status board (``board.js`` opens ``#alert=<id>``)."""
        if self.public_url is None:
            return None
        return f"{self.public_url}/#alert={urllib.parse.quote(alert_id, safe='')}"


class StoreSettings(Section):
    """Where alerting's state is kept (SPEC 8.1): SQLite under state_dir (no ``url``, the
    default for a single monitor), or the PostgreSQL that the monitors of a post share,
    ``postgresql://user:password@host:5432/db?sslmode=verify-full`` (a libpq URL: its
    password may also come from ``~/.pgpass``). A secret: from ``MONITOR_STORE__URL`` or
    ``store.url_file``, never the YAML."""

    url: SecretStr | None = None
    url_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _postgresql(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            _check_store_url(url.get_secret_value())
        return url

    @model_validator(mode="after")
    def _secret(self) -> Self:
        url = _read_secret(self.url, self.url_file, "url")
        if url is not None and self.url_file is not None:
            _check_store_url(url.get_secret_value())
        object.__setattr__(self, "url", url)
        return self


def _check_store_url(url: str) -> None:
    """Its form only, never echoing it (it holds a password)."""
    if urllib.parse.urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ValueError("must be a postgresql:// URL (leave it out for SQLite under state_dir)")


def store_where(url: str) -> str:
    """The store's address for logs and errors: hosts, ports and database, never the
    user or password (a libpq URL may name several hosts: ``h1:5432,h2:5432``)."""
    parts = urllib.parse.urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    return f"postgresql://{hosts}{parts.path}"


STORE_CONNECT_TIMEOUT_S = 3


def store_session(heartbeat: float = 5.0, failover: float = 20.0) -> dict[str, Any]:
    """libpq settings of every connection of a group's monitor (SPEC 8.1; ``ha``'s
    heartbeat and failover): no statement, and no transaction left idle (a leader frozen
    inside one), outlives the lease's deadline, and a peer that vanished (power, a cable)
    is noticed by TCP within it too."""
    deadline_ms = max(1, int((failover - heartbeat) * 1000))
    return {
        "connect_timeout": STORE_CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": max(1, int(heartbeat)),
        "keepalives_interval": max(1, int(heartbeat / 2)),
        "keepalives_count": 3,
        "tcp_user_timeout": deadline_ms,
        "options": f"-c idle_in_transaction_session_timeout={deadline_ms}"
        f" -c statement_timeout={deadline_ms} -c lock_timeout={deadline_ms}",
    }
