"""Provider reads and writes on the live data tables: stored documents by NPI, the finders
(license, name, taxonomy, place, radius), counts and stats, and the writes of incremental loads
and of providers fetched from the upstream registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from npistack.errors import StoreError
from npistack.normalize.geo import haversine_miles
from npistack.records.keys import license_key
from npistack.records.rows import BlockResult, NameRow, ProviderRows, StoredProvider
from npistack.storage.core import StoreCore, prefix_range
from npistack.storage.schema import DATA_TABLES, PRACTICE_ONLY, provider_columns, provider_doc_columns
from npistack.storage.search import PRACTICE, cell_ranges, row_purposes

_CHUNK = 500

# Child tables and the ``ProviderRows`` attribute holding their rows.
CHILD_TABLES = (
    ("provider_names", "names"),
    ("provider_taxonomies", "taxonomies"),
    ("provider_locations", "locations"),
    ("provider_extras", "extras"),
)


class ProvidersSql(StoreCore):
    """The providers half of the store contract (mixed into ``SqlStore``)."""

    def get_stored(self, npis: Sequence[str | int], *, prefix: str = "") -> list[StoredProvider]:
        """Stored documents and their child rows for the NPIs that exist, in the order asked.

        ``npistack.services.providers`` turns them into full provider documents. ``prefix="stage_"``
        reads the staging tables of a running full load.
        """
        out: list[StoredProvider] = []
        for doc_json, extras in self.get_stored_json(npis, prefix=prefix).values():
            doc = orjson.loads(doc_json)
            # A deactivated record has no child rows (CMS publishes none for it).
            kept = [(k, orjson.loads(d)) for k, d in extras] if doc.get("entityType") is not None else []
            out.append(StoredProvider(doc, kept))
        return out

    def get_stored_json(
        self, npis: Sequence[str | int], *, prefix: str = ""
    ) -> dict[int, tuple[str, list[tuple[str, str]]]]:
        """NPI -> (document JSON, [(kind, child row JSON)] by kind and file order), for the NPIs that
        exist, in the order asked: ``get_stored`` unparsed."""
        keys: list[int] = []
        for n in npis:
            try:
                keys.append(int(n))
            except (TypeError, ValueError):
                continue
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        found: dict[int, tuple[str, list[tuple[str, str]]]] = {
            r[0]: (r[1], [])
            for r in self._query(f"SELECT npi, doc FROM {prefix}provider_docs WHERE npi IN ({marks})", keys)
        }
        if not found:
            return {}
        rows = self._query(
            f"SELECT npi, kind, doc FROM {prefix}provider_extras WHERE npi IN ({marks}) ORDER BY npi, kind, seq",
            keys,
        )
        for npi, kind, raw in rows:
            if npi in found:
                found[npi][1].append((kind, raw))
        return {k: found[k] for k in keys if k in found}

    def count_providers(self) -> int:
        return int(self._query("SELECT count(*) FROM providers")[0][0])

    def find_by_license(self, license_number: str, state: str | None = None, limit: int = 50) -> list[str]:
        key = license_key(license_number)
        if state:
            rows = self._query(
                "SELECT DISTINCT npi FROM provider_taxonomies WHERE license_key = ? AND license_state = ?"
                " ORDER BY npi LIMIT ?",
                (key, state.upper(), limit),
            )
        else:
            rows = self._query(
                "SELECT DISTINCT npi FROM provider_taxonomies WHERE license_key = ? ORDER BY npi LIMIT ?",
                (key, limit),
            )
        return [str(r[0]) for r in rows]

    def find_by_name(
        self,
        name_prefix: str,
        first_prefix: str | None = None,
        *,
        entity_type: int | None = None,
        name_types: Sequence[str] = ("legal", "other"),
        limit: int = 50,
    ) -> list[str]:
        """NPIs whose last/organization name (legal or other) starts with ``name_prefix``, case-insensitive."""
        from npistack.normalize.names import name_key

        key = name_key(name_prefix)
        if not key:
            return []
        lo, hi = prefix_range(key)
        sql = "SELECT npi FROM provider_names WHERE name_key >= ? AND name_key < ?"
        params: list[Any] = [lo, hi]
        if first_prefix and name_key(first_prefix):
            flo, fhi = prefix_range(name_key(first_prefix))
            sql += " AND first_key >= ? AND first_key < ?"
            params += [flo, fhi]
        if entity_type:
            sql += " AND entity_type = ?"
            params.append(entity_type)
        sql += f" AND name_type IN ({','.join('?' * len(name_types))})"
        params += list(name_types)
        sql = f"SELECT DISTINCT npi FROM ({sql}) AS m ORDER BY npi LIMIT ?"
        params.append(limit)
        return [str(r[0]) for r in self._query(sql, params)]

    def find_by_taxonomy(self, code: str, *, primary_only: bool = False, limit: int = 50) -> list[str]:
        sql = "SELECT DISTINCT npi FROM provider_taxonomies WHERE code = ?"
        if primary_only:
            sql += " AND is_primary = 1"
        return [str(r[0]) for r in self._query(sql + " ORDER BY npi LIMIT ?", (code.upper(), limit))]

    def find_by_location(
        self, *, city: str | None = None, state: str | None = None, zip5: str | None = None, limit: int = 50
    ) -> list[str]:
        """NPIs with any address (mailing, primary or secondary) in the city/state/ZIP given."""
        from npistack.normalize.names import name_key

        clauses, params = [], []
        if zip5:
            lo, hi = prefix_range(zip5[:5])
            clauses.append("postal >= ? AND postal < ? AND country = 'US'")
            params += [lo, hi]
        if state:
            clauses.append("state = ?")
            params.append(state.upper())
        if city:
            clauses.append("city_key = ?")
            params.append(name_key(city))
        if not clauses:
            raise StoreError("find_by_location needs a city, state or ZIP")
        sql = (
            f"SELECT DISTINCT npi FROM provider_locations WHERE {' AND '.join(clauses)} ORDER BY npi LIMIT ?"
        )
        return [str(r[0]) for r in self._query(sql, [*params, limit])]

    def find_near(self, lat: float, lon: float, miles: float, *, limit: int = 50) -> list[tuple[str, float]]:
        """(npi, miles) of providers with a practice location within ``miles``, nearest first."""
        ranges, (min_lat, max_lat, _, _) = cell_ranges(lat, lon, miles)
        cells = " OR ".join("cell BETWEEN ? AND ?" for _ in ranges)
        purposes = row_purposes(PRACTICE)
        rows = self._query(
            f"SELECT npi, lat, lon FROM provider_locations WHERE ({cells})"
            f" AND purpose IN ({','.join('?' * len(purposes))}) AND {PRACTICE_ONLY} AND lat BETWEEN ? AND ?",
            [*(c for r in ranges for c in r), *purposes, min_lat, max_lat],
        )
        best: dict[int, float] = {}
        for npi, plat, plon in rows:
            d = haversine_miles(lat, lon, plat, plon)
            if d <= miles and d < best.get(npi, float("inf")):
                best[npi] = d
        ranked = sorted(best.items(), key=lambda kv: (kv[1], kv[0]))[:limit]
        return [(str(n), round(d, 3)) for n, d in ranked]

    def stats(self, top: int = 10) -> dict[str, Any]:
        by_type = self._query(
            "SELECT entity_type, status, count(*) FROM providers GROUP BY entity_type, status ORDER BY 1, 2"
        )
        specialties = self._query(
            "SELECT primary_taxonomy, count(*) AS n FROM providers WHERE primary_taxonomy IS NOT NULL"
            " GROUP BY primary_taxonomy ORDER BY n DESC, primary_taxonomy LIMIT ?",
            (top,),
        )
        states = self._query(
            "SELECT practice_state, count(*) AS n FROM providers WHERE practice_state IS NOT NULL"
            " AND practice_state <> '' GROUP BY practice_state ORDER BY n DESC, practice_state LIMIT ?",
            (top,),
        )
        counts = {
            table: int(self._query(f"SELECT count(*) FROM {table}")[0][0])
            for table in ("provider_names", "provider_taxonomies", "provider_locations", "provider_extras")
        }
        return {
            "by_type": [{"entity_type": r[0], "status": r[1], "count": r[2]} for r in by_type],
            "top_specialties": [{"code": r[0], "count": r[1]} for r in specialties],
            "top_states": [{"state": r[0], "count": r[1]} for r in states],
            "rows": counts,
        }

    # -- reads for incremental loads -----------------------------------------------------------
    def active_among(self, npis: Sequence[int]) -> list[int]:
        """The NPIs among ``npis`` the store has, not deactivated."""
        out: list[int] = []
        for i in range(0, len(npis), _CHUNK):
            part = list(npis[i : i + _CHUNK])
            marks = ",".join("?" * len(part))
            out += [
                int(r[0])
                for r in self._query(
                    f"SELECT npi FROM providers WHERE npi IN ({marks}) AND status <> 'deactivated'", part
                )
            ]
        return out

    def stream_docs(self, *, prefix: str = "") -> Iterator[list[tuple[int, str]]]:
        """Every stored document (npi, JSON) of the live (or ``stage_``) tables, in batches."""
        yield from self._stream(f"SELECT npi, doc FROM {prefix}provider_docs")  # type: ignore[misc]

    def stream_extras(self, *, prefix: str = "") -> Iterator[list[tuple[int, str, str]]]:
        """Every child row (npi, kind, JSON) of the live (or ``stage_``) tables, in batches."""
        yield from self._stream(f"SELECT npi, kind, doc FROM {prefix}provider_extras")  # type: ignore[misc]

    # -- writes --------------------------------------------------------------------------------
    def replace_providers(self, result: BlockResult) -> list[int]:
        """Replace (or add) the providers of ``result`` in the live tables, in one transaction of
        its own (a reader sees a provider either before or after, never half); the NPIs written.
        Used for providers fetched from the upstream registry."""
        npis = sorted({p.npi for p in result.providers})
        if not npis:
            return []
        marks = ",".join("?" * len(npis))
        self._begin()
        try:
            for table, columns in DATA_TABLES.items():
                if "npi" in columns:  # provider_name_keys is a vocabulary, not per provider
                    self._exec(f"DELETE FROM {table} WHERE npi IN ({marks})", npis)
            self._bulk_insert("providers", DATA_TABLES["providers"], map(provider_columns, result.providers))
            self._bulk_insert(
                "provider_docs", DATA_TABLES["provider_docs"], map(provider_doc_columns, result.providers)
            )
            for table, attr in CHILD_TABLES:
                rows = getattr(result, attr)
                if rows:
                    self._bulk_insert(table, DATA_TABLES[table], rows)
            # New name keys join the fuzzy-search vocabulary (keys no longer used stay until the
            # next load).
            self.add_name_keys(result.names)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return npis

    def replace_changed(
        self,
        updated: Sequence[tuple[ProviderRows, tuple[str, ...]]],
        added: Sequence[ProviderRows],
        removed: Sequence[int],
    ) -> None:
        """Write what an incremental load changes, inside the caller's transaction: ``updated``
        stored providers (each with the child tables whose rows of it change: a phone change
        rewrites none, so index maintenance is proportional to what changed), ``added`` new ones,
        and ``removed`` NPIs (every row of theirs)."""
        if updated:
            self._exec_many(
                "UPDATE providers SET entity_type = ?, status = ?, last_updated = ?, primary_taxonomy = ?,"
                " practice_state = ? WHERE npi = ?",
                (provider_columns(new.provider)[1:] + (new.npi,) for new, _ in updated),
            )
            self._exec_many(
                "UPDATE provider_docs SET doc = ? WHERE npi = ?",
                ((new.doc_json, new.npi) for new, _ in updated),
            )
        if added:
            self._bulk_insert(
                "providers", DATA_TABLES["providers"], (provider_columns(n.provider) for n in added)
            )
            self._bulk_insert(
                "provider_docs", DATA_TABLES["provider_docs"], ((n.npi, n.doc_json) for n in added)
            )
        gone = sorted(removed)
        if gone:
            self._delete_rows(("providers", "provider_docs"), gone)
        for table, attr in CHILD_TABLES:
            rewrite = [new for new, tables in updated if table in tables]
            self._delete_rows((table,), sorted([n.npi for n in rewrite] + gone))
            rows = [r for n in rewrite for r in getattr(n, attr)] + [
                r for n in added for r in getattr(n, attr)
            ]
            if rows:
                self._bulk_insert(table, DATA_TABLES[table], rows)
        self.add_name_keys([r for n in (*(new for new, _ in updated), *added) for r in n.names])

    def _delete_rows(self, tables: Sequence[str], npis: Sequence[int]) -> None:
        for i in range(0, len(npis), _CHUNK):
            part = list(npis[i : i + _CHUNK])
            marks = ",".join("?" * len(part))
            for table in tables:
                self._exec(f"DELETE FROM {table} WHERE npi IN ({marks})", part)

    def add_name_keys(self, names: Iterable[NameRow]) -> None:
        """New name keys join the fuzzy-search vocabulary (unused keys stay until the next full
        load), inside the caller's transaction."""
        wanted = sorted(
            {(3 if n.name_type == "ao" else int(n.entity_type), n.name_key) for n in names if n.name_key}
        )
        if not wanted:
            return
        have: set[tuple[int, str]] = set()
        by_class: dict[int, list[str]] = {}
        for klass, key in wanted:
            by_class.setdefault(klass, []).append(key)
        for klass, keys in by_class.items():
            for i in range(0, len(keys), _CHUNK):
                part = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(part))
                have |= {
                    (klass, str(r[0]))
                    for r in self._query(
                        f"SELECT name_key FROM provider_name_keys WHERE klass = ? AND name_key IN ({marks})",
                        [klass, *part],
                    )
                }
        missing = [k for k in wanted if k not in have]
        if missing:
            self._bulk_insert("provider_name_keys", DATA_TABLES["provider_name_keys"], missing)
