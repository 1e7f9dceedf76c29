"""The log formatter (SPEC 3.3): what a device or a client sends is data in a log line,
never a raw control character that a terminal would act on."""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections.abc import Iterator

import pytest

from monitor import logs

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# every character a terminal or a log viewer would act on rather than show
HOSTILE = (
    "".join(map(chr, range(0x20)))
    + "\x7f"
    + "".join(map(chr, range(0x80, 0xA0)))
    + "\u2028\u2029"
    + "".join(sorted(BIDI))
    + "\ud800\udfff"
)


def raw_controls(text: str) -> list[str]:
    return [
        f"U+{ord(c):04X}"
        for c in text
        if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") or c in BIDI
    ]


def unescape(quoted: str) -> str:
    """A logfmt reader's view of a quoted value."""
    assert quoted[0] == quoted[-1] == '"'
    named = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        return named[e] if e in named else chr(int(e[1:], 16))

    return re.sub(r'\\(x[0-9a-f]{2}|u[0-9a-f]{4}|[nrt"\\])', one, quoted[1:-1])


class StrictHandler(logging.StreamHandler[io.TextIOWrapper]):
    """A record the stream cannot take (a lone surrogate in UTF-8) would go to stderr as
    "--- Logging error ---" and its line be lost: here it fails the test."""

    def handleError(self, record: logging.LogRecord) -> None:
        pytest.fail(f"the handler could not write {record.msg!r}")


class Captured:
    def __init__(self) -> None:
        self.stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
        self.handler = StrictHandler(self.stream)
        self.handler.setFormatter(logs.LogfmtFormatter())

    def lines(self) -> list[str]:
        buffer = self.stream.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue().decode().splitlines()


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Loggers of our own, formatted as `monitor run` formats every logger's records."""
    c = Captured()
    names = ("tests.logs", "aiohttp.server.tests")
    for name in names:
        logger = logging.getLogger(name)
        logger.addHandler(c.handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    yield c
    for name in names:
        logging.getLogger(name).removeHandler(c.handler)


def field(line: str, key: str) -> str:
    m = re.search(rf'(?:^| ){re.escape(key)}=("(?:[^"\\]|\\.)*"|\S*)', line)
    assert m is not None, f"{key} not in {line!r}"
    return m.group(1)


def test_every_control_character_is_escaped_and_reads_back(captured: Captured) -> None:
    logs.get("tests.logs").warning(
        "alert.firing" + HOSTILE, summary=f"xs-01 reports a fault (code {HOSTILE})", n=3
    )
    [line] = captured.lines()
    assert raw_controls(line) == []
    assert unescape(field(line, "summary")) == f"xs-01 reports a fault (code {HOSTILE})"
    assert unescape(field(line, "event")) == "alert.firing" + HOSTILE
    assert field(line, "n") == "3"


def test_escapes_are_readable(captured: Captured) -> None:
    logs.get("tests.logs").info("alert.firing", code="E1\r\x1b[2J\x07\u009b31m\u202egnp.exe")
    [line] = captured.lines()
    assert field(line, "code") == r'"E1\r\x1b[2J\x07\u009b31m\u202egnp.exe"'


def test_plain_values_stay_unquoted_and_a_backslash_is_never_ambiguous(
    captured: Captured,
) -> None:
    log = logs.get("tests.logs")
    log.info("mqtt.connected", host="127.0.0.1", text="Ақтау")
    log.info("x", path=r"C:\x1b", empty="", quote='a "b" c')
    first, second = captured.lines()
    assert field(first, "host") == "127.0.0.1" and field(first, "text") == "Ақтау"
    # the four characters \x1b as text are not an ESC: quoted, the backslash doubled
    assert field(second, "path") == r'"C:\\x1b"' and unescape(field(second, "path")) == r"C:\x1b"
    assert field(second, "empty") == '""'
    assert unescape(field(second, "quote")) == 'a "b" c'


def test_a_librarys_records_and_tracebacks_are_escaped_the_same(captured: Captured) -> None:
    """aiohttp's loggers format their own messages (%-style args) and attach tracebacks."""
    library = logging.getLogger("aiohttp.server.tests")
    try:
        raise ValueError("bad request line 'GET /\x1b]0;owned\x07 HTTP/1.1\r\n'")
    except ValueError:
        library.exception("Error handling request from %s", "10.0.0.1\x1b[31m")
    library.warning("extra", extra={"peer\x1b": "\x9b2J"})
    first, second = captured.lines()
    assert raw_controls(first) == [] and raw_controls(second) == []
    assert unescape(field(first, "event")) == "Error handling request from 10.0.0.1\x1b[31m"
    exc = unescape(field(first, "exc"))
    assert exc.startswith("Traceback (most recent call last):\n")
    assert exc.endswith("ValueError: bad request line 'GET /\x1b]0;owned\x07 HTTP/1.1\r\n'")
    assert field(second, r"peer\x1b") == r'"\u009b2J"'
