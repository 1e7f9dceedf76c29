"""The config's value types: durations, names, kinds, topic filters, languages, and
the base of every section; secrets read from files."""

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
)

from monitor import durations
from monitor.model import (
    KINDS,
    NAME_RE,
)

DEFAULT_CONFIG_PATH = Path("config/monitor.yaml")

Duration = Annotated[float, BeforeValidator(durations.parse)]
# A period or a timeout: zero would make a timer spin or a condition hold at once.
Interval = Annotated[Duration, Field(gt=0)]


def _whole_seconds(maximum: int) -> AfterValidator:
    """Durations that go on the MQTT wire as an integer of seconds (0: off / at once)."""

    def check(seconds: float) -> float:
        if seconds != int(seconds) or not 0 <= seconds <= maximum:
            raise ValueError(
                f"MQTT carries this as whole seconds from 0 to {maximum}; got {seconds:g} s"
            )
        return seconds

    return AfterValidator(check)


MAX_MQTT_PACKET = 268_435_455  # MQTT's largest remaining length (256 MiB - 1)


def _topic_filter(text: str) -> str:
    """An MQTT topic filter the broker will accept (MQTT 5, section 4.7)."""
    levels = text.split("/")
    if not text or "\x00" in text:
        raise ValueError("a topic filter is non-empty text without NUL")
    if levels[0] == "$share":
        # the broker would split one device's messages among the collectors sharing it:
        # each device's liveness and alerts must live in one (SPEC 8)
        raise ValueError(
            f"{text!r}: a shared subscription splits a device's messages among collectors;"
            " give each collector its own sites instead (SPEC 8)"
        )
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{text!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"{text!r}: '+' must be a whole level")
    return text


TopicFilter = Annotated[str, AfterValidator(_topic_filter)]


def _known_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return kind


def _name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    return value


Language = Literal["en", "ru", "kk"]  # as monitor.i18n.Language: texts people read
SPARKPLUG_ID_RE = re.compile(r"^[^+#/\x00-\x1f]{1,64}\Z")  # a group, node or host id
Kind = Annotated[str, AfterValidator(_known_kind)]  # a canonical device kind (SPEC 2)
Name = Annotated[str, AfterValidator(_name)]  # a site or an area: it becomes a tag


class Section(BaseModel):
    # Typos in the YAML are errors, not silently ignored settings.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(value: SecretStr | None, file: Path | None, what: str) -> SecretStr | None:
    if file is None:
        return value
    try:
        return SecretStr(file.read_text().strip())
    except OSError as e:
        raise ValueError(f"cannot read {what} file {str(file)!r}: {e.strerror}") from None
