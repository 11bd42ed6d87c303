"""The store's schema: its tables, their columns and indexes, and the DDL both backends share.

Two kinds of tables live in a store:

- **data tables** (``providers``, ``provider_docs``, ``provider_names``, ``provider_taxonomies``,
  ``provider_locations``, ``provider_extras``, and ``provider_name_keys`` derived from the names):
  the NPPES data. A full load writes them as ``stage_*`` tables, builds the derived table and the
  indexes, then swaps them in with one transaction, so readers see the old data until the commit
  and a killed load leaves the old data untouched (``storage.loads``). Their rows are the named
  row types of ``npistack.records.rows``, whose fields are the columns below (checked at import).
- **app tables** (``loads``, ``quarantine``, ``meta``, the history and change feed, webhooks):
  npistack's own state. No data load ever drops or rewrites them.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any, NamedTuple

from npistack.records.rows import ExtraRow, LocationRow, NameRow, ProviderRow, TaxonomyRow

# The condition of the partial radius index (practice locations only): a query must contain it word
# for word for SQLite to use the index.
PRACTICE_ONLY = "purpose <> 'mailing'"


SCHEMA_VERSION = 1

# The tables a store's row counts can be asked for (``count_rows``): the data tables below and the
# app's own.
COUNTED_TABLES = frozenset(
    {
        "providers", "provider_docs", "provider_extras", "provider_names", "provider_taxonomies",
        "provider_locations", "provider_name_keys", "provider_history", "changes",
        "webhook_subscriptions", "webhook_deliveries", "loads", "quarantine",
    }
)  # fmt: skip

DATA_TABLES: dict[str, tuple[str, ...]] = {
    "providers": ("npi", "entity_type", "status", "last_updated", "primary_taxonomy", "practice_state"),
    "provider_docs": ("npi", "doc"),
    "provider_names": ("npi", "entity_type", "name_type", "name_key", "first_key"),
    "provider_taxonomies": ("npi", "slot", "code", "license_key", "license_state", "is_primary"),
    # purpose: mailing, primary, secondary, or "both" for a primary practice location that is also the
    # mailing address (records.keys.MAILING_AND_PRIMARY; search.ROW_PURPOSES reads it as either).
    "provider_locations": (
        "npi",
        "purpose",
        "seq",
        "city_key",
        "state",
        "zip5",
        "cell",
        "lat",
        "lon",
        "postal",
        "country",
    ),
    "provider_extras": ("npi", "kind", "seq", "doc"),
    # Derived at the end of a load: every distinct name key per class (1 individuals' names,
    # 2 organizations' names, 3 authorized officials' names), the vocabulary of fuzzy search.
    "provider_name_keys": ("klass", "name_key"),
}

# Derived tables, filled from the staging tables before the indexes are built.
DERIVED_SQL: tuple[str, ...] = (
    "INSERT INTO stage_provider_name_keys (klass, name_key) SELECT DISTINCT"
    " CASE WHEN name_type = 'ao' THEN 3 ELSE entity_type END, name_key FROM stage_provider_names"
    " WHERE name_key <> ''",
)


class DataIndex(NamedTuple):
    name: str
    table: str
    columns: str
    unique: bool = False
    where: str = ""  # a partial index


# Indexes built on the staging tables at the end of a load. Staging tables are append-only (rows
# arrive in NPPES order, not NPI order): building indexes once at the end is a sort, where
# maintaining them during the load would rewrite random pages. Search reads most of them as
# covering indexes (every column it needs is in the index), see storage/search.py.
#
# Their size is what a weekly update costs: new NPIs are random keys, so their rows land on
# (nearly) every page of every index, and each dirtied page is written to the WAL and checkpointed.
# So no index carries a column no query needs from it: the per-NPI indexes (``*_npi``) hold the NPI
# only (search's per-provider filters use the ``(criterion, npi)`` indexes, which have both), and
# the radius index holds practice locations only (radius search never reads mailing addresses;
# queries repeat ``purpose <> 'mailing'`` so that SQLite and PostgreSQL pick the partial index).
DATA_INDEXES: tuple[DataIndex, ...] = (
    # Unique per NPI (loads refuse duplicate NPIs); status and entity type ride along so that
    # search's filters on them read the index only.
    DataIndex("providers_npi", "providers", "npi, status, entity_type", unique=True),
    DataIndex("docs_npi", "provider_docs", "npi", unique=True),
    DataIndex("names_key", "provider_names", "name_key, first_key, name_type, entity_type, npi"),
    DataIndex("names_first", "provider_names", "first_key, name_type, entity_type, npi"),
    DataIndex("names_npi", "provider_names", "npi"),
    DataIndex("name_keys", "provider_name_keys", "klass, name_key"),
    DataIndex("taxo_code", "provider_taxonomies", "code, npi"),
    DataIndex("taxo_license", "provider_taxonomies", "license_key, license_state"),
    DataIndex("taxo_npi", "provider_taxonomies", "npi"),
    DataIndex("loc_state", "provider_locations", "state, npi"),
    DataIndex("loc_city", "provider_locations", "city_key, state, npi"),
    DataIndex("loc_postal", "provider_locations", "postal"),
    DataIndex("loc_foreign", "provider_locations", "country, npi", where="country <> 'US'"),
    DataIndex("loc_cell", "provider_locations", "cell, purpose, lat, lon, npi", where=PRACTICE_ONLY),
    DataIndex("loc_npi", "provider_locations", "npi"),
    DataIndex("extras_npi", "provider_extras", "npi, kind, seq"),
)


def history_ddl(serial: str, bigint: str, real: str) -> list[str]:
    """App tables of updates (never touched by a data load): versions, the change feed, webhooks.

    - ``provider_history``: every version of a provider (``content`` is the stored document without
      its ``release`` plus its child rows, JSON; NULL for the current version, which is the live
      record, until a later change replaces it), the release it came from and when it was in force
      (``valid_from``/``valid_to``, release dates), and the field differences from the version before.
    - ``changes``: one row per change a load made (the feed); ``id`` is the feed order, ``event_id``
      the stable id every webhook delivery of the change carries. ``state``, ``entity_type`` and
      ``taxonomies`` (space-separated codes, padded with spaces) are there for filters.
    - ``webhook_subscriptions`` and ``webhook_deliveries``: the outbox. A delivery row is written in the
      same transaction as its change; ``npistack worker`` sends it.
    """
    return [
        f"""CREATE TABLE IF NOT EXISTS provider_history (
            id {serial}, npi {bigint} NOT NULL, version INTEGER NOT NULL, load_id {bigint},
            release_date TEXT, release_kind TEXT, valid_from TEXT, valid_to TEXT, change_type TEXT NOT NULL,
            content TEXT, diff TEXT, recorded_at TEXT NOT NULL)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS ix_history_npi ON provider_history (npi, version)",
        f"""CREATE TABLE IF NOT EXISTS changes (
            id {serial}, event_id TEXT NOT NULL, load_id {bigint} NOT NULL, release_date TEXT,
            release_kind TEXT NOT NULL, npi {bigint} NOT NULL, change_type TEXT NOT NULL,
            entity_type INTEGER, state TEXT, taxonomies TEXT NOT NULL, version INTEGER,
            fields TEXT NOT NULL, diff TEXT NOT NULL, created_at TEXT NOT NULL)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS ix_changes_event ON changes (event_id)",
        "CREATE INDEX IF NOT EXISTS ix_changes_npi ON changes (npi, id)",
        "CREATE INDEX IF NOT EXISTS ix_changes_load ON changes (load_id, change_type)",
        f"""CREATE TABLE IF NOT EXISTS webhook_subscriptions (
            id {serial}, url TEXT NOT NULL, secret TEXT NOT NULL, filters TEXT NOT NULL DEFAULT '{{}}',
            description TEXT, active INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS webhook_deliveries (
            id {serial}, subscription_id {bigint} NOT NULL, change_id {bigint} NOT NULL,
            event_id TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at {real} NOT NULL, locked_by TEXT, locked_until {real}, last_status INTEGER,
            last_error TEXT, created_at TEXT NOT NULL, delivered_at TEXT)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS ix_deliveries_sub_change ON webhook_deliveries (subscription_id, change_id)",
        "CREATE INDEX IF NOT EXISTS ix_deliveries_due ON webhook_deliveries (status, next_attempt_at)",
    ]


# Each data table's columns are its row type's fields, in order: rows are inserted as they are.
for _table, _row in (
    ("provider_names", NameRow),
    ("provider_taxonomies", TaxonomyRow),
    ("provider_locations", LocationRow),
    ("provider_extras", ExtraRow),
):
    assert DATA_TABLES[_table] == _row._fields, (_table, _row._fields)
assert DATA_TABLES["providers"] == ProviderRow._fields[: len(DATA_TABLES["providers"])]


# A provider row's (named or packed) ``providers`` columns (``DATA_TABLES["providers"]``) and its ``provider_docs``
# columns, as plain tuples: getters made from the field names, which run in C (a load calls them
# once per provider).
provider_columns: Callable[[tuple[Any, ...]], tuple[Any, ...]] = itemgetter(
    *(ProviderRow._fields.index(c) for c in DATA_TABLES["providers"])
)
provider_doc_columns: Callable[[tuple[Any, ...]], tuple[Any, ...]] = itemgetter(
    *(ProviderRow._fields.index(c) for c in DATA_TABLES["provider_docs"])
)
# The NPI of any data row and a provider row's file line, for a named row or a packed one
# (``records.rows.PackedBlock``).
row_npi: Callable[[tuple[Any, ...]], int] = itemgetter(0)
provider_line: Callable[[tuple[Any, ...]], int] = itemgetter(ProviderRow._fields.index("line"))
assert all(t._fields.index("npi") == 0 for t in (ProviderRow, NameRow, TaxonomyRow, LocationRow, ExtraRow))


assert set(DATA_TABLES) <= COUNTED_TABLES, set(DATA_TABLES) - COUNTED_TABLES
