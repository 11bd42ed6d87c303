"""Writes to the live data tables outside a full load: providers fetched from the upstream registry
(and, later, weekly updates). Each call replaces whole providers (every row of every data table for
their NPIs) in one transaction, so a reader sees a provider either before or after, never half.
"""

from __future__ import annotations

from npistack.ingest.transform import BlockResult
from npistack.storage.base import DATA_TABLES, SqlStore


def replace_providers(store: SqlStore, result: BlockResult) -> list[int]:
    """Replace (or add) the providers of ``result`` in the live tables; the NPIs written."""
    npis = sorted({int(p[0]) for p in result.providers})
    if not npis:
        return []
    marks = ",".join("?" * len(npis))
    store._begin()
    try:
        for table, columns in DATA_TABLES.items():
            if "npi" in columns:  # provider_name_keys is a vocabulary, not per provider
                store._exec(f"DELETE FROM {table} WHERE npi IN ({marks})", npis)
        width = len(DATA_TABLES["providers"])
        store._bulk_insert("providers", DATA_TABLES["providers"], (p[:width] for p in result.providers))
        store._bulk_insert(
            "provider_docs", DATA_TABLES["provider_docs"], ((p[0], p[width]) for p in result.providers)
        )
        for table, rows in (
            ("provider_names", result.names),
            ("provider_taxonomies", result.taxonomies),
            ("provider_locations", result.locations),
            ("provider_extras", result.extras),
        ):
            if rows:
                store._bulk_insert(table, DATA_TABLES[table], rows)
        # New name keys join the fuzzy-search vocabulary (keys no longer used stay until the next load).
        for klass, key in {(3 if n[2] == "ao" else n[1], n[3]) for n in result.names if n[3]}:
            store._exec(
                "INSERT INTO provider_name_keys (klass, name_key) SELECT ?, ? WHERE NOT EXISTS"
                " (SELECT 1 FROM provider_name_keys WHERE klass = ? AND name_key = ?)",
                (klass, key, klass, key),
            )
        store._commit()
    except BaseException:
        store._rollback()
        raise
    return npis
