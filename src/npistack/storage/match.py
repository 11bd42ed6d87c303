"""Candidate reads for record matching (``npistack.services.match``): NPIs by name key, by first
name in an area, by license, counts of name keys for their frequency in the registry, and the active
NPIs the match evaluation samples from.

Every function takes the store and returns plain tuples; all of them use the data indexes the
search already has (``ix_names_key``, ``ix_names_first``, ``ix_taxo_license``, ``ix_loc_*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from npistack.storage.base import SqlStore
from npistack.storage.core import prefix_range

PROVIDER_NAME_TYPES = ("legal", "other")  # not the organizations' authorized officials


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def names_by_key(
    store: SqlStore,
    entity_type: int,
    keys: Sequence[str],
    first_keys: Sequence[str] | None = None,
    limit: int = 5000,
) -> list[tuple[int, str, str]]:
    """(npi, name key, first key) of legal and other names whose key is one of ``keys`` (and whose
    first name key is one of ``first_keys`` when given)."""
    if not keys:
        return []
    sql = (
        f"SELECT npi, name_key, first_key FROM provider_names WHERE name_key IN ({_marks(keys)})"
        " AND name_type IN ('legal', 'other') AND entity_type = ?"
    )
    params: list[Any] = [*keys, entity_type]
    if first_keys is not None:
        if not first_keys:
            return []
        sql += f" AND first_key IN ({_marks(first_keys)})"
        params += list(first_keys)
    return [(int(r[0]), r[1], r[2]) for r in store._query(sql + " LIMIT ?", [*params, limit])]


def names_by_prefix(
    store: SqlStore, entity_type: int, prefix: str, limit: int = 2000
) -> list[tuple[int, str, str]]:
    """(npi, name key, first key) of legal and other names whose key starts with ``prefix``."""
    lo, hi = prefix_range(prefix)
    rows = store._query(
        "SELECT npi, name_key, first_key FROM provider_names WHERE name_key >= ? AND name_key < ?"
        " AND name_type IN ('legal', 'other') AND entity_type = ? LIMIT ?",
        (lo, hi, entity_type, limit),
    )
    return [(int(r[0]), r[1], r[2]) for r in rows]


def names_in_area(
    store: SqlStore,
    entity_type: int,
    *,
    first_keys: Sequence[str] = (),
    key_prefix: str = "",
    zip5: str = "",
    city_key: str = "",
    state: str = "",
    limit: int = 2000,
) -> list[tuple[int, str, str]]:
    """(npi, name key, first key) of legal and other names with one of ``first_keys`` (or a name
    key starting with ``key_prefix``) and an address in the ZIP (else city and state) given.

    This is how a record whose last name (or organization name) has a typo in its first letters
    still finds its candidates: by what else it holds."""
    if zip5:
        lo, hi = prefix_range(zip5)
        area, area_params = "l.postal >= ? AND l.postal < ?", [lo, hi]
    elif city_key and state:
        area, area_params = "l.city_key = ? AND l.state = ?", [city_key, state]
    else:
        return []
    if first_keys:
        who, who_params = f"n.first_key IN ({_marks(first_keys)})", list(first_keys)
    elif key_prefix:
        lo, hi = prefix_range(key_prefix)
        who, who_params = "n.name_key >= ? AND n.name_key < ?", [lo, hi]
    else:
        return []
    # The area drives (a ZIP or a city holds far fewer providers than a common first name):
    # SQLite keeps the order of a CROSS JOIN; PostgreSQL plans it from its statistics.
    rows = store._query(
        "SELECT DISTINCT n.npi, n.name_key, n.first_key FROM provider_locations l"
        " CROSS JOIN provider_names n"
        f" WHERE n.npi = l.npi AND {area} AND {who} AND n.name_type IN ('legal', 'other') AND n.entity_type = ?"
        " LIMIT ?",
        [*area_params, *who_params, entity_type, limit],
    )
    return [(int(r[0]), r[1], r[2]) for r in rows]


def npis_by_license(store: SqlStore, key: str, state: str = "", limit: int = 50) -> list[tuple[int, str]]:
    """(npi, license state) of taxonomy licenses with the normalized number ``key`` (in ``state``)."""
    if state:
        rows = store._query(
            "SELECT DISTINCT npi, license_state FROM provider_taxonomies WHERE license_key = ? AND license_state = ?"
            " LIMIT ?",
            (key, state, limit),
        )
    else:
        rows = store._query(
            "SELECT DISTINCT npi, license_state FROM provider_taxonomies WHERE license_key = ? LIMIT ?",
            (key, limit),
        )
    return [(int(r[0]), r[1]) for r in rows]


def key_count(store: SqlStore, entity_type: int, key: str) -> int:
    """How many providers of the entity type have this legal or other name key."""
    return int(
        store._query(
            "SELECT count(DISTINCT npi) FROM provider_names WHERE name_key = ? AND name_type IN ('legal', 'other')"
            " AND entity_type = ?",
            (key, entity_type),
        )[0][0]
    )


def first_key_count(store: SqlStore, key: str) -> int:
    """How many individuals have this first name key (legal names)."""
    return int(
        store._query(
            "SELECT count(*) FROM provider_names WHERE first_key = ? AND name_type = 'legal' AND entity_type = 1",
            (key,),
        )[0][0]
    )


def first_vocabulary(store: SqlStore) -> list[tuple[str, int]]:
    """Every individual's legal first name key, with how many individuals have it."""
    return [
        (r[0], int(r[1]))
        for r in store._query(
            "SELECT first_key, count(*) FROM provider_names WHERE name_type = 'legal' AND entity_type = 1"
            " GROUP BY first_key"
        )
    ]


def sample_docs(store: SqlStore, n: int) -> list[str]:
    """The stored documents (JSON) of the ``n`` lowest NPIs: NPIs are issued at random, so this
    is a sample of the registry that a query can read in NPI order."""
    return [r[0] for r in store._query("SELECT doc FROM provider_docs ORDER BY npi LIMIT ?", (n,))]


def code_count(store: SqlStore, code: str) -> int:
    """How many providers hold this taxonomy code."""
    return int(
        store._query("SELECT count(DISTINCT npi) FROM provider_taxonomies WHERE code = ?", (code,))[0][0]
    )


def entity_counts(store: SqlStore) -> dict[int, int]:
    """Active and deactivated providers per entity type (deactivated stubs have none)."""
    return {
        int(r[0]): int(r[1])
        for r in store._query(
            "SELECT entity_type, count(*) FROM providers WHERE entity_type IS NOT NULL GROUP BY entity_type"
        )
    }


def active_npis(store: SqlStore) -> list[int]:
    """The NPIs of every active provider with a full record (not a deactivated stub), in the order
    the store returns them (the match evaluation samples its labeled set from these)."""
    return [
        int(r[0])
        for r in store._query("SELECT npi FROM providers WHERE status = 'active' AND entity_type IS NOT NULL")
    ]


def name_vocabulary(store: SqlStore, klass: int) -> list[str]:
    """Every distinct name key of a class (1 individuals' last names, 2 organization names)."""
    return [r[0] for r in store._query("SELECT name_key FROM provider_name_keys WHERE klass = ?", (klass,))]


_CHUNK = 900  # NPIs per IN list


def places_of(store: SqlStore, npis: Sequence[int], state: str = "") -> list[tuple[int, str, str, str]]:
    """(npi, state, city key, ZIP5) of every address of these NPIs (practice and mailing), only
    those in ``state`` when given."""
    out: list[tuple[int, str, str, str]] = []
    where = " AND state = ?" if state else ""
    for i in range(0, len(npis), _CHUNK):
        part: list[Any] = list(npis[i : i + _CHUNK])
        out += [
            (int(r[0]), r[1], r[2], r[3])
            for r in store._query(
                f"SELECT npi, state, city_key, zip5 FROM provider_locations WHERE npi IN ({_marks(part)}){where}",
                [*part, state] if state else part,
            )
        ]
    return out


def codes_of(store: SqlStore, npis: Sequence[int]) -> list[tuple[int, str]]:
    """(npi, taxonomy code) of these NPIs."""
    out: list[tuple[int, str]] = []
    for i in range(0, len(npis), _CHUNK):
        part = list(npis[i : i + _CHUNK])
        out += [
            (int(r[0]), r[1])
            for r in store._query(
                f"SELECT npi, code FROM provider_taxonomies WHERE npi IN ({_marks(part)})", part
            )
        ]
    return out
