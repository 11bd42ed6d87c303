"""Provider search over the index tables: the SQL behind ``npistack.services.search``.

The service turns a ``SearchQuery`` into an ``IndexQuery``: name keys with their match quality,
taxonomy codes, one address rule, a circle. ``SearchSql.search_index`` answers it with one SQL
statement per page (plus, for some non-name searches, one capped count to pick a plan) and
returns sort keys ``(distance, rank, npi)``, best first. docs/search.md describes the ranking.

Plans (every criterion other than the driver becomes an ``EXISTS``, answered from the
``(criterion, npi)`` indexes, which hold both):

- **names** given: every ``provider_names`` row that matches is read from the covering
  ``(name_key, first_key, name_type, entity_type, npi)`` index, ranked, grouped by NPI (best rank
  wins), filtered, sorted and cut to the page. The cost grows with the number of matching name rows.
- **circle** given: with names, the name matches drive and their practice locations are kept when in
  the circle; otherwise the 0.1° grid cells that may hold points of the circle are read nearest first
  (by a lower bound of their distance), in growing batches, from the covering ``(cell, purpose, lat,
  lon, npi)`` index of practice locations (a partial index) with the other criteria as filters,
  until the page is full of hits nearer than any cell not read yet. Distances are computed here,
  once per distinct point (locations sit on ZIP centroids).
- otherwise, ordered by NPI: a city or postal code drives; else the smaller of the address and
  taxonomy candidates when a capped count says it is small; else a single taxonomy code, a state or
  a country is read in NPI order from its ``(..., npi)`` index, or ``providers`` is, with every
  other criterion as a filter: the scan stops when the page is full.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from npistack.errors import StoreError, StoreNotReady
from npistack.normalize.geo import EARTH_RADIUS_MILES, bounding_box, haversine_miles
from npistack.records.keys import CELL_DEGREES, MAILING_AND_PRIMARY
from npistack.storage.core import StoreCore
from npistack.storage.schema import PRACTICE_ONLY

# A candidate set at least this large is not read whole and sorted: see ``SearchSql._driver``.
DRIVER_CAP = 10_000
PRACTICE = ("primary", "secondary")
# The ``provider_locations.purpose`` values of rows that hold an address of each purpose.
ROW_PURPOSES = {
    "mailing": ("mailing", MAILING_AND_PRIMARY),
    "primary": ("primary", MAILING_AND_PRIMARY),
    "secondary": ("secondary",),
}
_LAT_CELLS, _LON_CELLS = round(180 / CELL_DEGREES), round(360 / CELL_DEGREES)

SortKey = tuple[float | None, int, int]  # (distance in miles or None, rank, npi)
_Sql = tuple[str, list[Any]]


@dataclass(frozen=True)
class KeyMatch:
    """One way a name key may match: the whole key, or keys starting with it; ``quality`` ranks it
    (0 exact, 1 prefix, 2+ typo-tolerant)."""

    key: str
    prefix: bool
    quality: int


@dataclass(frozen=True)
class NameRule:
    """Rows of ``provider_names`` to match: name types, entity type, name keys and first names."""

    name_types: tuple[str, ...]
    entity_type: int | None = None
    keys: tuple[KeyMatch, ...] = ()  # last or organization name; empty: any
    first_keys: tuple[str, ...] = ()  # exact first-name keys (a name and its nicknames)
    first_prefix: str = ""  # or first names starting with this
    first_typed: str = ""  # the first name as typed: other first names rank as aliases


@dataclass(frozen=True)
class AddressRule:
    """Criteria that one ``provider_locations`` row must meet together."""

    purposes: tuple[str, ...] = ()  # empty: any address, mailing included
    state: str = ""
    city_keys: tuple[str, ...] = ()  # any of these spellings
    postal: str = ""
    postal_prefix: bool = False
    country: str = ""

    @property
    def selective(self) -> bool:
        return bool(self.city_keys or self.postal)

    @property
    def narrows(self) -> bool:
        return bool(self.state or self.city_keys or self.postal or self.country)


@dataclass(frozen=True)
class Circle:
    lat: float
    lon: float
    miles: float


@dataclass(frozen=True)
class IndexQuery:
    """A search in index terms. ``ranked`` name rules are OR'ed and give the rank; ``required``
    name rules must each match too (unranked)."""

    npi: int | None = None
    ranked: tuple[NameRule, ...] = ()
    required: tuple[NameRule, ...] = ()
    address: AddressRule | None = None
    circle: Circle | None = None
    codes: tuple[str, ...] | None = None  # any taxonomy slot holds one of these
    entity_type: int | None = None
    status: str | None = None


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _join(parts: Sequence[_Sql], sep: str) -> _Sql:
    return sep.join(p[0] for p in parts), [v for p in parts for v in p[1]]


def _key_cond(m: KeyMatch, a: str) -> _Sql:
    if m.prefix:
        return f"({a}.name_key >= ? AND {a}.name_key < ?)", [m.key, _next(m.key)]
    return f"{a}.name_key = ?", [m.key]


def _next(prefix: str) -> str:
    """The first string after every string starting with ``prefix`` (keys are ASCII)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _rule_where(r: NameRule, a: str, keys: Sequence[KeyMatch] | None = None) -> _Sql:
    """The rule's conditions; ``keys`` (default: all the rule's) are OR'ed."""
    parts: list[_Sql] = [(f"{a}.name_type IN ({_marks(r.name_types)})", list(r.name_types))]
    if r.entity_type is not None:
        parts.append((f"{a}.entity_type = ?", [r.entity_type]))
    keys = _selecting(r.keys) if keys is None else keys
    if keys:
        conds = [_key_cond(m, a) for m in keys]
        sql, params = _join(conds, " OR ")
        parts.append((f"({sql})" if len(conds) > 1 else sql, params))
    if r.first_keys:
        parts.append((f"{a}.first_key IN ({_marks(r.first_keys)})", list(r.first_keys)))
    elif r.first_prefix:
        parts.append((f"{a}.first_key >= ? AND {a}.first_key < ?", [r.first_prefix, _next(r.first_prefix)]))
    return _join(parts, " AND ")


def _within(k: KeyMatch, m: KeyMatch) -> bool:
    """True if every key ``k`` selects is also selected by ``m``."""
    return k.key.startswith(m.key) if m.prefix else (k.key == m.key and not k.prefix)


def _selecting(keys: Sequence[KeyMatch]) -> list[KeyMatch]:
    """The matches a WHERE clause needs: a key inside a prefix range of another match is implied."""
    prefixes = sorted({m.key for m in keys if m.prefix}, key=len)
    out: list[KeyMatch] = []
    seen: set[tuple[str, bool]] = set()
    for m in keys:
        if any(m.key.startswith(p) and (p != m.key or not m.prefix) for p in prefixes):
            continue
        if (m.key, m.prefix) not in seen:
            seen.add((m.key, m.prefix))
            out.append(m)
    return out


def _rank_expr(r: NameRule, a: str, keys: Sequence[KeyMatch]) -> _Sql:
    """rank = quality * 4 + 2 for an other name + 1 for a first-name alias (smaller is better);
    ``keys`` are the matches that may select a row here (the best matching one gives the quality)."""
    parts: list[_Sql] = []
    keys = sorted(keys, key=lambda m: m.quality)
    if keys and keys[0].quality != keys[-1].quality:
        whens = [_key_cond(m, a) for m in keys[:-1]]
        sql = " ".join(f"WHEN {w} THEN {m.quality * 4}" for (w, _), m in zip(whens, keys, strict=False))
        parts.append((f"CASE {sql} ELSE {keys[-1].quality * 4} END", [v for _, p in whens for v in p]))
    elif keys and keys[0].quality:
        parts.append((str(keys[0].quality * 4), []))
    if "other" in r.name_types:
        parts.append((f"CASE WHEN {a}.name_type = 'other' THEN 2 ELSE 0 END", []))
    if r.first_typed and (r.first_prefix or len(r.first_keys) > 1):
        parts.append((f"CASE WHEN {a}.first_key = ? THEN 0 ELSE 1 END", [r.first_typed]))
    return _join(parts, " + ") if parts else ("0", [])


def _ranked_names(rules: Sequence[NameRule]) -> _Sql:
    """(npi, rank) of every provider a ranked rule matches, its best rank.

    One SELECT per disjoint key range (UNION ALL, no OR), so that each reads its own range of the
    name-key index whatever the planner thinks of ORs."""
    selects: list[_Sql] = []
    for i, r in enumerate(rules):
        a = f"n{i}"
        for keys in [[m] for m in _selecting(r.keys)] or [[]]:
            inside = [k for k in r.keys if keys and _within(k, keys[0])]
            rank_sql, rank_params = _rank_expr(r, a, inside)
            where_sql, where_params = _rule_where(r, a, keys)
            selects.append(
                (
                    f"SELECT {a}.npi AS npi, {rank_sql} AS rnk FROM provider_names {a} WHERE {where_sql}",
                    rank_params + where_params,
                )
            )
    sql, params = _join(selects, " UNION ALL ")
    return f"SELECT u.npi AS npi, min(u.rnk) AS rnk FROM ({sql}) AS u GROUP BY u.npi", params


def row_purposes(purposes: Sequence[str]) -> list[str]:
    """The ``provider_locations.purpose`` values of rows holding an address of these purposes."""
    return list(dict.fromkeys(v for p in purposes for v in ROW_PURPOSES.get(p, (p,))))


def _address_where(ad: AddressRule, a: str, *, purposes: Sequence[str] | None = None) -> list[_Sql]:
    parts: list[_Sql] = []
    purposes = row_purposes(ad.purposes if purposes is None else purposes)
    if purposes:
        parts.append((f"{a}.purpose IN ({_marks(purposes)})", purposes))
    if ad.state:
        parts.append((f"{a}.state = ?", [ad.state]))
    if ad.city_keys:
        parts.append((f"{a}.city_key IN ({_marks(ad.city_keys)})", list(ad.city_keys)))
    if ad.postal and ad.postal_prefix:
        parts.append((f"{a}.postal >= ? AND {a}.postal < ?", [ad.postal, _next(ad.postal)]))
    elif ad.postal:
        parts.append((f"{a}.postal = ?", [ad.postal]))
    if ad.country:
        parts.append((f"{a}.country = ?", [ad.country]))
        if ad.country != "US":  # lets the partial index of foreign addresses serve it
            parts.append((f"{a}.country <> 'US'", []))
    return parts


def _filters(q: IndexQuery, x: str, *, skip: set[str]) -> list[_Sql]:
    """Conditions on the NPI expression ``x`` for every criterion not in ``skip``."""
    out: list[_Sql] = []
    if q.npi is not None and "npi" not in skip:
        out.append((f"{x} = ?", [q.npi]))
    if "provider" not in skip and (q.status or q.entity_type is not None):
        conds = _provider_conds(q, "p")
        sql, params = _join(conds, " AND ")
        out.append((f"EXISTS (SELECT 1 FROM providers p WHERE p.npi = {x} AND {sql})", params))
    if q.address is not None and q.address.narrows and "address" not in skip:
        sql, params = _join(_address_where(q.address, "la"), " AND ")
        out.append((f"EXISTS (SELECT 1 FROM provider_locations la WHERE la.npi = {x} AND {sql})", params))
    if q.codes is not None and "codes" not in skip:
        out.append(
            (
                f"EXISTS (SELECT 1 FROM provider_taxonomies t WHERE t.npi = {x}"
                f" AND t.code IN ({_marks(q.codes)}))",
                list(q.codes),
            )
        )
    for i, r in enumerate(q.required):
        sql, params = _rule_where(r, f"f{i}")
        out.append((f"EXISTS (SELECT 1 FROM provider_names f{i} WHERE f{i}.npi = {x} AND {sql})", params))
    return out


def _provider_conds(q: IndexQuery, a: str) -> list[_Sql]:
    conds: list[_Sql] = []
    if q.status:
        conds.append((f"{a}.status = ?", [q.status]))
    if q.entity_type is not None:
        conds.append((f"{a}.entity_type = ?", [q.entity_type]))
    return conds


def cell_ranges(lat: float, lon: float, miles: float) -> tuple[list[tuple[int, int]], tuple[float, ...]]:
    """Cell id ranges covering the circle's bounding box (one per row of cells, split at the
    antimeridian) and the box itself (min_lat, max_lat, min_lon, max_lon); longitudes may pass ±180."""
    box = min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, miles)
    lat_lo = max(0, math.floor((min_lat + 90.0) / CELL_DEGREES))
    lat_hi = min(_LAT_CELLS - 1, math.floor((max_lat + 90.0) / CELL_DEGREES))
    lon_lo = math.floor((min_lon + 180.0) / CELL_DEGREES)
    lon_hi = math.floor((max_lon + 180.0) / CELL_DEGREES)
    if lon_hi - lon_lo + 1 >= _LON_CELLS:
        spans = [(0, _LON_CELLS - 1)]
    elif lon_lo < 0:
        spans = [(lon_lo + _LON_CELLS, _LON_CELLS - 1), (0, lon_hi)]
    elif lon_hi >= _LON_CELLS:
        spans = [(lon_lo, _LON_CELLS - 1), (0, lon_hi - _LON_CELLS)]
    else:
        spans = [(lon_lo, lon_hi)]
    ranges = [(r * 10000 + a, r * 10000 + b) for r in range(lat_lo, lat_hi + 1) for a, b in spans]
    return ranges, box


class SearchSql(StoreCore):
    """The search half of the store contract (mixed into ``SqlStore``)."""

    def _search_query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._query(sql, params)
        except StoreError as e:
            text = str(e)
            missing = ("no such column", "does not exist", "not an npistack store", "no npistack schema")
            if any(m in text for m in missing):
                raise StoreNotReady(
                    "this store's index tables predate search: reload the data with `npistack ingest --force`"
                ) from None
            raise

    def name_keys(self, klass: int, head: str, min_len: int, max_len: int, cut: int = 0) -> list[str]:
        """Distinct name keys of a class (1 individuals, 2 organizations, 3 authorized officials)
        that start with ``head`` and are ``min_len`` to ``max_len`` characters long; with ``cut``,
        their distinct first ``cut`` characters instead."""
        where = "klass = ? AND name_key >= ? AND name_key < ? AND length(name_key) BETWEEN ? AND ?"
        params = (klass, head, _next(head), min_len, max_len)
        if cut:
            sql = f"SELECT DISTINCT substr(name_key, 1, {int(cut)}) FROM provider_name_keys WHERE {where}"
        else:
            sql = f"SELECT name_key FROM provider_name_keys WHERE {where}"
        return [r[0] for r in self._search_query(sql, params)]

    def search_index(
        self, q: IndexQuery, *, after: SortKey | None, limit: int, offset: int = 0
    ) -> list[SortKey]:
        """Sort keys of the matches after ``after`` (exclusive), skipping ``offset``, at most ``limit``."""
        if q.circle is not None:
            return self._search_circle(q, q.circle, after, limit, offset)
        if q.ranked:
            return self._search_names(q, after, limit, offset)
        return self._search_by_npi(q, after, limit, offset)

    # -- plans ---------------------------------------------------------------------------------
    def _search_names(self, q: IndexQuery, after: SortKey | None, limit: int, offset: int) -> list[SortKey]:
        ranked_sql, params = _ranked_names(q.ranked)
        conds = _filters(q, "m.npi", skip=set())
        if after is not None:
            conds.append(("(m.rnk > ? OR (m.rnk = ? AND m.npi > ?))", [after[1], after[1], after[2]]))
        where_sql, where_params = _join(conds, " AND ")
        sql = f"SELECT m.npi, m.rnk FROM ({ranked_sql}) AS m"
        if conds:
            sql += f" WHERE {where_sql}"
        sql += " ORDER BY m.rnk, m.npi LIMIT ? OFFSET ?"
        rows = self._search_query(sql, [*params, *where_params, limit, offset])
        return [(None, int(rank), int(npi)) for npi, rank in rows]

    def _search_by_npi(self, q: IndexQuery, after: SortKey | None, limit: int, offset: int) -> list[SortKey]:
        driver = None if q.npi is not None else self._driver(q)
        if driver is None:
            table, x = "providers p", "p.npi"
            conds = _provider_conds(q, "p") + _filters(q, x, skip={"provider"})
        else:
            name, table, driving = driver
            x = "c.npi"
            conds = driving + _filters(q, x, skip={name})
        if after is not None:
            conds.append((f"{x} > ?", [after[2]]))
        where_sql, params = _join(conds, " AND ")
        sql = f"SELECT {x} FROM {table}" + (f" WHERE {where_sql}" if conds else "")
        if driver is not None:  # a provider may have several rows in the driving table
            sql += f" GROUP BY {x}"
        rows = self._search_query(f"{sql} ORDER BY {x} LIMIT ? OFFSET ?", [*params, limit, offset])
        return [(None, 0, int(r[0])) for r in rows]

    def _driver(self, q: IndexQuery) -> tuple[str, str, list[_Sql]] | None:
        """The table to start from and its conditions, or None to read ``providers`` in NPI order.

        A city, a postal code or a ZIP prefix of 3+ characters drives. Otherwise a candidate set
        smaller than DRIVER_CAP rows (a capped count says) is read whole and sorted; else a single
        taxonomy code, a state or a country is read in NPI order from its ``(..., npi)`` index (or
        ``providers`` is) and the scan stops when the page is full."""
        candidates: list[tuple[str, str, list[_Sql]]] = []
        ordered: list[tuple[str, str, list[_Sql]]] = []
        if q.codes is not None:
            codes = list(q.codes)
            cand = ("codes", "provider_taxonomies c", [(f"c.code IN ({_marks(codes)})", codes)])
            candidates.append(cand)
            if len(codes) == 1:
                ordered.append(cand)
        ad = q.address
        if ad is not None and ad.narrows:
            cand = ("address", "provider_locations c", _address_where(ad, "c"))
            if ad.city_keys or (ad.postal and (not ad.postal_prefix or len(ad.postal) >= 3)):
                return cand
            candidates.append(cand)
            if ad.state or ad.country:
                ordered.append(cand)
        best: tuple[int, tuple[str, str, list[_Sql]]] | None = None
        for cand in candidates:
            sql, params = _join(cand[2], " AND ")
            n = int(
                self._search_query(
                    f"SELECT count(*) FROM (SELECT 1 FROM {cand[1]} WHERE {sql} LIMIT ?) AS k",
                    [*params, DRIVER_CAP],
                )[0][0]
            )
            if n < DRIVER_CAP and (best is None or n < best[0]):
                best = (n, cand)
        if best is not None:
            return best[1]
        return ordered[0] if ordered else None

    def _search_circle(
        self, q: IndexQuery, c: Circle, after: SortKey | None, limit: int, offset: int
    ) -> list[SortKey]:
        address = q.address or AddressRule()
        purposes = [p for p in (address.purposes or PRACTICE) if p in PRACTICE]
        conds = _address_where(address, "l", purposes=purposes) + _filters(q, "l.npi", skip={"address"})
        conds.append((f"l.{PRACTICE_ONLY}", []))
        found: dict[int, tuple[float, int]] = {}  # npi -> (distance, rank) of its nearest location
        dist: dict[tuple[float, float], float] = {}

        def add(rows: list[tuple[Any, ...]]) -> None:
            for npi, lat, lon, rank in rows:
                d = dist.get((lat, lon))
                if d is None:
                    d = dist[(lat, lon)] = haversine_miles(c.lat, c.lon, lat, lon)
                if d <= c.miles:
                    prev = found.get(npi)
                    if prev is None or (d, rank) < prev:
                        found[npi] = (d, int(rank))

        def page(final_below: float) -> list[SortKey] | None:
            """The page, if the hits nearer than ``final_below`` miles fill it (None: read on)."""
            keys = sorted((d, rank, int(npi)) for npi, (d, rank) in found.items() if d < final_below)
            start = 0 if after is None else bisect_right(keys, (after[0] or 0.0, after[1], after[2]))
            if final_below != math.inf and len(keys) - start < offset + limit:
                return None
            return [(d, r, n) for d, r, n in keys[start + offset : start + offset + limit]]

        if q.ranked:
            # The name matches drive: read their practice locations and keep those in the circle.
            ranked_sql, params = _ranked_names(q.ranked)
            min_lat, max_lat, min_lon, max_lon = bounding_box(c.lat, c.lon, c.miles)
            box: list[_Sql] = [("l.lat BETWEEN ? AND ?", [min_lat, max_lat])]
            if min_lon >= -180.0 and max_lon <= 180.0:
                box.append(("l.lon BETWEEN ? AND ?", [min_lon, max_lon]))
            where_sql, where_params = _join([*box, *conds], " AND ")
            add(
                self._search_query(
                    f"SELECT l.npi, l.lat, l.lon, m.rnk FROM ({ranked_sql}) AS m"
                    f" CROSS JOIN provider_locations l WHERE l.npi = m.npi AND {where_sql}",
                    [*params, *where_params],
                )
            )
            return page(math.inf) or []
        # Otherwise grid cells are read nearest first, in growing batches, until the page is full of
        # hits nearer than any location in a cell not read yet.
        cells = circle_cells(c.lat, c.lon, c.miles)
        where_sql, where_params = _join(conds, " AND ") if conds else ("1 = 1", [])
        done, batch = 0, 4
        while done < len(cells):
            chunk = [cell for _, cell in cells[done : done + batch]]
            done += len(chunk)
            batch *= 2
            add(
                self._search_query(
                    "SELECT l.npi, l.lat, l.lon, 0 FROM provider_locations l"
                    f" WHERE l.cell IN ({_marks(chunk)}) AND {where_sql}",
                    [*chunk, *where_params],
                )
            )
            result = page(cells[done][0] if done < len(cells) else math.inf)
            if result is not None:
                return result
        return page(math.inf) or []


def circle_cells(lat: float, lon: float, miles: float) -> list[tuple[float, int]]:
    """(lower bound of the distance to any point of the cell, cell id) of the grid cells that may
    hold points within ``miles``, nearest first."""
    ranges, _ = cell_ranges(lat, lon, miles)
    out = []
    for lo, hi in ranges:
        for cell in range(lo, hi + 1):
            bound = _cell_bound(lat, lon, cell)
            if bound <= miles:
                out.append((bound, cell))
    out.sort()
    return out


def _cell_bound(lat: float, lon: float, cell: int) -> float:
    """A lower bound of the great-circle distance from (lat, lon) to any point of a grid cell:
    hav(d) = hav(dlat) + cos(lat1) cos(lat2) hav(dlon), each term at its minimum over the cell."""
    lat0 = (cell // 10000) * CELL_DEGREES - 90.0
    lon0 = (cell % 10000) * CELL_DEGREES - 180.0
    lat1 = lat0 + CELL_DEGREES
    dlat = 0.0 if lat0 <= lat <= lat1 else min(abs(lat - lat0), abs(lat - lat1))
    dlon = (lon - lon0) % 360.0  # from the cell's west edge, eastwards
    dlon = 0.0 if dlon <= CELL_DEGREES else min(dlon - CELL_DEGREES, 360.0 - dlon)
    cos_cell = min(math.cos(math.radians(lat0)), math.cos(math.radians(lat1)))
    h = (
        math.sin(math.radians(dlat) / 2) ** 2
        + math.cos(math.radians(lat)) * max(cos_cell, 0.0) * math.sin(math.radians(dlon) / 2) ** 2
    )
    return max(0.0, 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(h))) - 1e-9)  # rounding
