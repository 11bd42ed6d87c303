"""The derived keys that index rows are searched by. Pure functions."""

from __future__ import annotations

import math
from typing import Any

CELL_DEGREES = 0.1  # geo cell size used by radius search

# ``provider_locations.purpose`` of the row of a primary practice location that is also the mailing
# address (same city, state, postal code, country and point: most providers' are): one row instead
# of two, in the table and in each of its indexes. Search reads it as either purpose.
MAILING_AND_PRIMARY = "both"


def geo_cell(lat: float, lon: float) -> int:
    """The integer id of the CELL_DEGREES grid cell holding a point."""
    return int(math.floor((lat + 90.0) / CELL_DEGREES)) * 10000 + int(
        math.floor((lon + 180.0) / CELL_DEGREES)
    )


def postal_key(postal: str, std: Any) -> str:
    """The searchable postal code of an address: ZIP5 + ZIP+4 (5 or 9 digits) for a domestic address,
    the published code in upper case without spaces or punctuation for a foreign one."""
    if std.country == "US":
        return std.zip5 + std.zip4 if std.zip5 else ""
    return "".join(ch for ch in postal.upper() if ch.isalnum())


def license_key(value: str) -> str:
    """License numbers compared without punctuation, spaces and leading zeros (upper case)."""
    key = "".join(ch for ch in value.upper() if ch.isalnum())
    return key.lstrip("0") or key
