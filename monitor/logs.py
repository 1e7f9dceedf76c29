"""Structured logs: one line per event, ``key=value`` pairs after the event name.

    log.info("mqtt.connected", host=..., port=...)

Secrets never reach here: callers pass masked values (config.mask_url, SecretStr).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


# What a terminal or a log viewer acts on instead of showing (SPEC 3.3: a device must not
# rewrite what an operator reads): C0, DEL and C1 controls (CR returns to the line's start,
# ESC and C1 CSI begin escape sequences), the Unicode line and paragraph separators (new
# lines to many viewers), the bidi controls (they reorder the text shown around them) and
# lone surrogates (JSON's "\ud800" makes one; the UTF-8 stream would refuse the whole line).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Quoted: a value with any of these, so that a reader can split the line on spaces and a
# backslash in a value is always an escape.
_QUOTE = re.compile('[ "=\\\\]|' + _UNSAFE.pattern)


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    code = ord(c)
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def _value(v: Any) -> str:
    text = str(v)
    if text == "" or _QUOTE.search(text):
        text = text.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + _UNSAFE.sub(_escape, text) + '"'
    return text


def _key(k: str) -> str:
    """A field's name: ours are identifiers, a library's extra= may be anything."""
    return k if k.isidentifier() else _UNSAFE.sub(_escape, k).replace(" ", "_").replace("=", "_")


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"ts={ts}.{int(record.msecs):03d}Z", f"level={record.levelname.lower()}"]
        parts.append(f"event={_value(record.getMessage())}")
        parts.extend(
            f"{_key(k)}={_value(v)}" for k, v in record.__dict__.items() if k not in _RESERVED
        )
        if record.exc_info:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class Log:
    """A thin wrapper so call sites read ``log.info("event", key=value)``."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra=fields, exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, event, exc_info, fields)


class _NoEcho(logging.Filter):
    """aiohttp logs a malformed request with the offending line quoted (an Authorization
    header is a secret) and a traceback: keep what was wrong with it, one line, no bytes.
    Anyone who reaches the port can send them: at most one line per ``QUIET_S``, which
    says how many it stands for."""

    QUIET_S = 10.0

    def __init__(self) -> None:
        super().__init__()
        self._quiet_until = 0.0
        self._unsaid = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = getattr(exc, "message", None)
        if getattr(exc, "code", None) == 400 and isinstance(message, str):
            now = time.monotonic()
            if now < self._quiet_until:
                self._unsaid += 1
                return False
            self._quiet_until = now + self.QUIET_S
            record.msg, record.args = "http.bad_request", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.__dict__["error"] = message.split(":", 1)[0].strip()[:100]
            if self._unsaid:
                record.__dict__["more_since_last"] = self._unsaid
                self._unsaid = 0
        return True


def get(name: str) -> Log:
    return Log(name)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log per-request / per-packet details at INFO; keep their warnings only.
    for noisy in ("aiohttp.access", "paho"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_NoEcho())
