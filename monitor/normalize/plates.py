"""Licence plates are personal data (SPEC 9): whichever topic, channel or kind carries one,
it is keyed-hashed or dropped as it is decoded, and no clear plate goes further than this
module: not to InfluxDB, the state, the API, a log, nor the quarantine (``redact``).

The hash is HMAC-SHA256 with the secret plate key over the plate as a person would compare
it (letters upper-cased, spaces and dashes dropped), its first 16 hex digits: the same truck
read by two cameras gets one hash; without the key nobody can tell which plate it was.

What is a plate: a value under a key that names one (``PLATE_KEYS``, ``PLATE_WORDS``), at
the top of a JSON payload, a vendor mapping's path or target, a Sparkplug metric's name, a
plain payload's topic segment. A nested one is never stored (a nested value is rejected as
``wrong_type``), and the quarantine replaces plate-like values at any depth. A plate under a
name nobody can tell from another (``"text"``) is not recognised as one in a stored payload;
in the quarantine, a plate read's texts are all replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import Iterable
from enum import IntEnum
from typing import Any

import orjson

from monitor.normalize.reasons import Reject

PLATE_READ = "plate_read"  # the event type of an ANPR camera's read (SPEC 9)
ANPR_CAMERA = "anpr_camera"  # the only kind whose plate reads feed passages
MAX_PLATE_CHARS = 16
REDACTED_TEXT = "***"
_DROPPED = str.maketrans("", "", " -\t")

# Keys whose value is the plate itself, compared lower-cased with letters and digits only
# ("licensePlate", "license_plate" and "LICENSE-PLATE" alike): the canonical ``plate`` and
# what ANPR cameras and engines publish (Hikvision ``licensePlate``/``plateNumber``, Dahua
# ``PlateNumber``, Axis and OpenALPR ``plate``, OpenALPR ``best_plate_number``, Frigate
# ``recognized_license_plate``, LILIN ``LPR``, UK systems' VRM/VRN). With a plate key they
# are hashed into ``plate_hash``; without one, dropped.
PLATE_KEYS: frozenset[str] = frozenset(
    {
        "plate",
        "platenumber",
        "plateno",
        "platetext",
        "licenseplate",
        "licenceplate",
        "licenseplatenumber",
        "licenceplatenumber",
        "numberplate",
        "registrationplate",
        "registrationnumber",
        "bestplatenumber",
        "recognizedlicenseplate",
        "lp",
        "lpr",
        "lpn",
        "vrn",
        "vrm",
    }
)
# A key with one of these words (split at separators and case changes) is about a plate:
# ``plate_color``, ``originalLicensePlate``, ``plates``, a device's own ``plate_hash``
# (never trusted: only ours). Its text (or nested) value is dropped; a number or a bool is
# no plate and is kept (a weighbridge's ``plate_temp_c``, ``LPR_COUNT``). Not "lp" alone:
# ``lp_bar`` is a low pressure as often as a licence plate.
PLATE_WORDS: frozenset[str] = frozenset({"plate", "plates", "lpr", "lpn", "vrn", "vrm"})
# ... and so is a key that runs these together: "recognizedlicenseplate".
_RUN_TOGETHER = ("licenseplate", "licenceplate", "numberplate", "platenumber")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_LEAF = re.compile(r"[/.]")
# A payload that is no JSON object or array is redacted whole if it mentions one of these
# (as a word of its own, or of a camelCase name: "vehiclePlate" but not "template").
_MENTIONS = re.compile(
    rb"(?<![a-z])[Pp]late|Plate|PLATE|(?i:licen[cs]e|numberplate|platenumber|registration)"
    rb"|(?<![A-Za-z])(?i:lp[rn]?|vr[nm])(?![a-z])"
)
# What a plate read keeps in the quarantine besides its numbers: none of these is a plate.
_READ_KEEPS = frozenset({"ts", "type", "state", "lane"})


class KeyKind(IntEnum):
    NONE = 0
    ABOUT = 1  # about a plate: its text dropped
    PLATE = 2  # the plate itself: hashed with a plate key, dropped without


def harmless(value: object) -> bool:
    """A value under a key about a plate that cannot be one: a number, a bool, nothing."""
    return value is None or isinstance(value, int | float)  # bool is an int


_kinds: dict[str, KeyKind] = {}
_clean: set[str] = set()  # keys known to name no plate: the hot path's one C-level check
_MAX_CACHED = 4096  # keys are device text: a cache, not a record of every key ever sent


def key_kind(key: str) -> KeyKind:
    """Whether a payload key, metric name or topic segment names a plate."""
    kind = _kinds.get(key)
    if kind is None:
        kind = _kind_of(key)
        if len(_kinds) >= _MAX_CACHED:
            _kinds.clear()
            _clean.clear()
        _kinds[key] = kind
        if not kind:
            _clean.add(key)
    return kind


def _kind_of(key: str) -> KeyKind:
    compact = _NOT_ALNUM.sub("", key.lower())
    leaf = _NOT_ALNUM.sub("", _LEAF.split(key)[-1].lower())  # "ANPR/Plate", "anpr.plate"
    if compact in PLATE_KEYS or leaf in PLATE_KEYS:
        return KeyKind.PLATE
    if any(w.lower() in PLATE_WORDS for w in _WORD.findall(key)) or any(
        r in compact for r in _RUN_TOGETHER
    ):
        return KeyKind.ABOUT
    return KeyKind.NONE


class PlateHasher:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def __call__(self, plate: object) -> str:
        """The plate's keyed hash; ``Reject`` (which never echoes it) if it is no plate."""
        if not isinstance(plate, str):
            raise Reject("invalid_event", "plate_read: plate must be text")
        canonical = plate.translate(_DROPPED).upper()
        if not 2 <= len(canonical) <= MAX_PLATE_CHARS or not canonical.isalnum():
            raise Reject("invalid_event", "plate_read: plate must be 2-16 letters or digits")
        digest = hmac.new(self._key, canonical.encode(), hashlib.sha256).hexdigest()
        return digest[:16]


class Plates:
    """What every decoder does with the plates of a payload: hashed into ``plate_hash``
    with the plate key, dropped without one; everything else about a plate dropped."""

    def __init__(self, key: str | None = None) -> None:
        self._hash = PlateHasher(key) if key else None

    def take(self, obj: dict[str, Any], required: bool = False) -> None:
        """Pop every plate-like key of a JSON object; the plate's hash, if any, becomes
        ``plate_hash``. ``required`` (an ANPR camera's plate read): ``Reject`` without one."""
        if _clean.issuperset(obj) and not required:  # most payloads: no plate, no call
            return
        plate_hash = self.first(self.strip(obj), required)
        if plate_hash is not None:
            obj["plate_hash"] = plate_hash

    @staticmethod
    def strip(obj: dict[str, Any]) -> list[Any]:
        """Pop every plate-like key of a JSON object (about a plate: unless ``harmless``);
        the values that are the plate itself, the one of ``plate`` first."""
        if _clean.issuperset(obj):
            return []
        plates: list[Any] = []
        for k in [k for k in obj if k not in _clean]:
            kind = key_kind(k)
            if kind is KeyKind.PLATE:
                value = obj.pop(k)
                if k.lower() == "plate":
                    plates.insert(0, value)
                else:
                    plates.append(value)
            elif kind and not harmless(obj[k]):
                del obj[k]
        return plates

    def first(self, plates: Iterable[Any], required: bool = False) -> str | None:
        """The hash of the first of these that is a plate (of the first, if ``required``);
        None without a plate key."""
        plates = list(plates)
        if not plates:
            if required:
                raise Reject("invalid_event", "plate_read without a plate")
            return None
        if self._hash is None:
            return None
        if required:
            return self._hash(plates[0])
        for plate in plates:
            with contextlib.suppress(Reject):
                return self._hash(plate)
        return None


def redact(topic: str, payload: bytes) -> tuple[bytes | None, list[str]]:
    """What the quarantine may keep of a rejected message, whatever its topic says:

    - the payload as it is, when nothing in it may be a plate;
    - a JSON object or array with every plate-like key's value replaced by ``***``, at any
      depth (in a plate read, by its type or an ANPR camera's topic, every text but its
      ts, type, state and lane too: a camera may name its plate as nobody expects);
    - None, nothing of it, when it may carry one and cannot be read safely: not JSON and it
      mentions a plate, it is an ANPR camera's, or its topic names a plate.

    Also the texts replaced, so that the rejection's detail cannot echo one.
    """
    levels = topic.split("/")
    if any(key_kind(level) for level in levels):  # "lpr/cam-1/plate": the payload is one
        return None, []
    camera = len(levels) == 6 and levels[3] == ANPR_CAMERA
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict | list):
        found: list[str] = []
        try:
            read = camera or (isinstance(doc, dict) and doc.get("type") == PLATE_READ)
            clean = _scrub(doc, found, read, top=True)
        except RecursionError:  # deeper than Python recurses: keep none of it
            return None, []
        if not found:
            return payload, []
        return orjson.dumps(clean), found
    if camera or _MENTIONS.search(payload):
        return None, []
    return payload, []


def _scrub(value: Any, found: list[str], read: bool, top: bool = False) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            kind = key_kind(k)
            if kind is KeyKind.PLATE or (kind and not harmless(v)):
                _texts(v, found)
                out[k] = REDACTED_TEXT
            elif top and read and k in _READ_KEEPS:
                out[k] = v
            else:
                out[k] = _scrub(v, found, read)
        return out
    if isinstance(value, list):
        return [_scrub(v, found, read) for v in value]
    if read and isinstance(value, str):
        found.append(value)
        return REDACTED_TEXT
    return value


def _texts(value: Any, found: list[str]) -> None:
    """Every text and number in a plate-like key's value (a plate may come as a number)."""
    if isinstance(value, dict):
        for v in value.values():
            _texts(v, found)
    elif isinstance(value, list):
        for v in value:
            _texts(v, found)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        found.append(str(value))
