"""The project's error tree. Library errors are translated into these at the boundary."""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """The configuration is invalid; ``problems`` holds one ``path: message`` per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class LineProtocolError(MonitorError, ValueError):
    """A value cannot be expressed in InfluxDB line protocol."""


class WriteError(MonitorError):
    """InfluxDB refused or failed a write.

    ``retryable`` says whether the same batch may succeed later (connection errors, 5xx,
    429); a non-retryable error (400, 413) means the batch itself is bad.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class InfluxUnavailable(WriteError):
    """InfluxDB kept failing (connection, 5xx, 429) until the caller's deadline."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=True)


class StateVersionError(MonitorError):
    """A state store written by a newer monitor: this one would corrupt it, so it stops."""

    def __init__(self, path: str, version: int, known: int) -> None:
        super().__init__(
            f"{path} holds state of schema {version}, written by a newer monitor (this one"
            f" knows schema {known} at most): upgrade this monitor, or restore a backup"
        )
        self.path = path
        self.version = version
        self.known = known


class StateMigrationError(MonitorError):
    """An older state store could not be brought up to this monitor's schema (its rows
    are not what that schema's monitor wrote): nothing was changed in it."""

    def __init__(self, path: str, step: int, reason: str) -> None:
        super().__init__(
            f"{path}: cannot migrate it to schema {step} ({reason}); it is left as it was:"
            " restore a backup, or move it aside to start with an empty state"
        )
        self.path = path
        self.step = step


class QueryError(MonitorError):
    """InfluxDB answered a query (for a report) with an error."""


class BrokerError(MonitorError):
    """The MQTT broker could not be reached or refused the connection."""

    def __init__(self, message: str, *, reason_code: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class StoreUnavailable(MonitorError):
    """The shared store (``store.url``) cannot be reached: a monitor cannot lead without
    it (it would start from nothing), so it waits and tries again."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"cannot reach the store {where}: {reason}")
        self.where = where
        self.reason = reason


class Fenced(MonitorError):
    """A write or a notification by a monitor that no longer leads (SPEC 8.1): another
    holds the leadership with a newer epoch, or this one's lease ran out."""

    def __init__(self, name: str, epoch: int | None, final: bool = True) -> None:
        super().__init__(
            f"{name}: not the leader any more (epoch {epoch})"
            if final
            else f"{name}: the lease of epoch {epoch} is not renewed yet"
        )
        self.name = name
        self.epoch = epoch
        # final: the term is over (another holds the row): what its parts kept is never
        # written; else only the deadline passed (cut off), and a renewal lets it through
        self.final = final


class StoreOwnedError(MonitorError):
    """The shared store holds the state of another group of monitors (another
    ``mqtt.client_id``): one database per group, or the two would send each other's
    notifications."""

    def __init__(self, where: str, owner: str, group: str) -> None:
        super().__init__(
            f"{where} holds the state of the monitors of {owner!r}; this one is of {group!r}"
            " (mqtt.client_id): give each group a database of its own"
        )
        self.where = where
        self.owner = owner
        self.group = group
