"""Licence plates are personal data (SPEC 9): a plate read is keyed-hashed as soon as it is
decoded, and no clear plate goes further than this module.

The hash is HMAC-SHA256 with the secret plate key over the plate as a person would compare
it (letters upper-cased, spaces and dashes dropped), its first 16 hex digits: the same truck
read by two cameras gets one hash; without the key nobody can tell which plate it was.
"""

from __future__ import annotations

import hashlib
import hmac

from monitor.normalize.reasons import Reject

PLATE_READ = "plate_read"  # the event type of an ANPR camera's read (SPEC 9)
MAX_PLATE_CHARS = 16
_DROPPED = str.maketrans("", "", " -\t")


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


def may_carry_plate(topic: str) -> bool:
    """Whether a message on this topic may hold a clear plate (an ANPR camera's event):
    what the quarantine keeps of it is not its payload."""
    levels = topic.split("/")
    return len(levels) == 6 and levels[3] == "anpr_camera" and levels[5] == "event"
