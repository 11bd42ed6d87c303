"""Offline ZIP code geodata (from the ``zipcodes`` package), indexed once per process.

``zipcodes.matching`` scans its whole list on each call (about 1 ms); ingest needs microseconds,
so the list is loaded into a dict keyed by ZIP5. Materialising the package's list costs ~150 MB
that the process never gives back, so the table is built once per ``zipcodes`` version in a
short-lived subprocess and cached as a compact pickle (~10 MB in memory) under
``$XDG_CACHE_HOME/npistack``; if the cache cannot be written, it is built in-process.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

EARTH_RADIUS_MILES = 3958.7613


@dataclass(frozen=True, slots=True)
class ZipInfo:
    zip5: str
    city: str  # USPS preferred city, upper case
    state: str
    county: str
    timezone: str
    lat: float
    lon: float
    area_codes: tuple[str, ...]
    zip_type: str  # STANDARD, PO BOX, UNIQUE, MILITARY


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "npistack" / f"zipcodes-{version('zipcodes')}.pickle"


@cache
def zip_table() -> dict[str, ZipInfo]:
    """All ZIP codes known to the ``zipcodes`` package, keyed by ZIP5."""
    path = _cache_path()
    for attempt in range(2):
        try:
            with path.open("rb") as fh:
                rows = pickle.load(fh)
            return {r[0]: ZipInfo(*r) for r in rows}
        except (OSError, pickle.UnpicklingError, EOFError, TypeError):
            if attempt == 0:
                subprocess.run(
                    [sys.executable, "-c", "from npistack.normalize.geo import write_cache; write_cache()"],
                    check=False,
                    capture_output=True,
                    timeout=120,
                )
    return build_table()


def write_cache() -> None:
    """Build the table and write the cache file atomically."""
    path = _cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [tuple(getattr(z, f) for f in ZipInfo.__slots__) for z in build_table().values()]
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(rows, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def build_table() -> dict[str, ZipInfo]:
    """The table straight from the ``zipcodes`` package (slow, memory hungry)."""
    import zipcodes

    table: dict[str, ZipInfo] = {}
    for z in zipcodes.list_all():
        try:
            lat, lon = float(z["lat"]), float(z["long"])
        except (TypeError, ValueError):
            continue
        table[z["zip_code"]] = ZipInfo(
            zip5=z["zip_code"],
            city=(z.get("city") or "").upper(),
            state=z.get("state") or "",
            county=z.get("county") or "",
            timezone=z.get("timezone") or "",
            lat=lat,
            lon=lon,
            area_codes=tuple(z.get("area_codes") or ()),
            zip_type=z.get("zip_code_type") or "",
        )
    return table


def zip_info(zip5: str) -> ZipInfo | None:
    """Geodata for a 5-digit ZIP, or ``None`` when unknown."""
    return zip_table().get(zip5)


def haversine_miles(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in statute miles."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, miles: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) of a box that contains the circle of ``miles``."""
    dlat = math.degrees(miles / EARTH_RADIUS_MILES)
    coslat = max(math.cos(math.radians(lat)), 1e-6)
    dlon = min(180.0, math.degrees(miles / (EARTH_RADIUS_MILES * coslat)))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon
