"""The store contract and the SQL both backends share.

Two kinds of tables live in a store:

- **data tables** (``providers``, ``provider_docs``, ``provider_names``, ``provider_taxonomies``,
  ``provider_locations``, ``provider_extras``, and ``provider_name_keys`` derived from the names):
  the NPPES data. A full load writes them as ``stage_*`` tables, builds the derived table and the
  indexes, then swaps them in with one transaction, so readers see the old data until the commit
  and a killed load leaves the old data untouched.
- **app tables** (``loads``, ``quarantine``, ``meta``; later keys, usage, webhooks): npistack's own
  state. No data load ever drops or rewrites them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from npistack.errors import LoadError, StoreError
from npistack.ingest.transform import BlockResult
from npistack.normalize.geo import haversine_miles
from npistack.storage.search import PRACTICE, PRACTICE_ONLY, SearchSql, cell_ranges, row_purposes

SCHEMA_VERSION = 1

DATA_TABLES: dict[str, tuple[str, ...]] = {
    "providers": ("npi", "entity_type", "status", "last_updated", "primary_taxonomy", "practice_state"),
    "provider_docs": ("npi", "doc"),
    "provider_names": ("npi", "entity_type", "name_type", "name_key", "first_key"),
    "provider_taxonomies": ("npi", "slot", "code", "license_key", "license_state", "is_primary"),
    # purpose: mailing, primary, secondary, or "both" for a primary practice location that is also the
    # mailing address (transform.MAILING_AND_PRIMARY; search.ROW_PURPOSES reads it as either).
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


@dataclass
class StoredProvider:
    """A provider as stored: the compact document and its child rows (kind, doc) in file order."""

    doc: dict[str, Any]
    extras: list[tuple[str, dict[str, Any]]]


@dataclass
class LoadRecord:
    id: int
    kind: str
    status: str  # running, succeeded, failed, unchanged
    source: str
    release_date: str | None
    checksum: str
    started_at: str
    finished_at: str | None
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    files: list[dict[str, Any]]
    timings: dict[str, float]
    message: str | None
    is_current: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def prefix_range(prefix: str) -> tuple[str, str]:
    """[lo, hi) bounds of keys starting with ``prefix`` (keys are ASCII)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class NpiSet:
    """The NPIs a load has seen, in a fixed 25 MB bitmap (memory does not grow with the file).

    A valid NPI is determined by its first nine digits (the tenth is the check digit) and starts
    with 1 or 2, so there are 2e8 possible NPIs: one bit each.
    """

    def __init__(self) -> None:
        self.bits = bytearray(200_000_000 // 8)

    def add(self, npi: int) -> bool:
        """Mark ``npi`` seen; True if it was seen already."""
        i = npi // 10 - 100_000_000
        byte, bit = i >> 3, 1 << (i & 7)
        if self.bits[byte] & bit:
            return True
        self.bits[byte] |= bit
        return False


class SqlStore(SearchSql, ABC):
    """SQL shared by the SQLite and PostgreSQL stores. Placeholders are written as ``?``."""

    url: str
    dialect: str
    _seen: dict[int, NpiSet]

    # -- driver specifics ----------------------------------------------------------------------
    @abstractmethod
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _stream(
        self, sql: str, params: Sequence[Any] = (), batch: int = 5000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows of a query in batches, without holding the whole result in memory."""

    @abstractmethod
    def _exec_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement executed for each parameter row."""

    @abstractmethod
    def _bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _data_ddl(self, prefix: str) -> list[str]: ...

    @abstractmethod
    def _app_ddl(self) -> list[str]: ...

    @abstractmethod
    def _table_exists(self, name: str) -> bool: ...

    @abstractmethod
    def _acquire_load_lock(self, load_id: int) -> None: ...

    @abstractmethod
    def _release_load_lock(self) -> None: ...

    @abstractmethod
    def _other_load_alive(self, owner: str) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    def remove_if_unused(self) -> bool:
        """Close and delete this store if opening it created it and nothing was loaded into it since
        (a failed first ingest then leaves no empty store behind); True when it was deleted. Only a
        file can be deleted (SQLite); other backends keep their schema and return False."""
        return False

    def _insert_returning_id(self, sql: str, params: Sequence[Any]) -> int:
        return int(self._query(sql + " RETURNING id", params)[0][0])

    def _after_swap(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Hook for backend housekeeping after a swap (statistics, checkpoints)."""

    @contextlib.contextmanager
    def write_behind(self) -> Iterator[None]:
        """Around a large write transaction and its commit: a hook for backends that can start
        writing their files back to disk while the transaction goes on (see ``SqliteStore``)."""
        yield

    @contextlib.contextmanager
    def log_room(self, nbytes: int) -> Iterator[None]:
        """Around a large write transaction that holds the write lock and will write about
        ``nbytes`` of log: a hook for backends whose log is cheaper to write once room is made
        for it (see ``SqliteStore``)."""
        yield

    @contextlib.contextmanager
    def mapped_reads(self) -> Iterator[None]:
        """Around an incremental load, whose reads are scattered over the whole store: a hook for
        backends that can read their files through a memory map meanwhile (see ``SqliteStore``)."""
        yield

    # -- schema --------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        # Nothing to create: skip the DDL, whose locks would wait behind a running load's writes
        # (PostgreSQL's CREATE INDEX IF NOT EXISTS does).
        if all(
            self._table_exists(t) for t in ("meta", "providers", "provider_history", "webhook_deliveries")
        ):
            return
        self._begin()
        try:
            for stmt in self._app_ddl():
                self._exec(stmt)
            if not self._table_exists("providers"):
                for stmt in self._data_ddl(""):
                    self._exec(stmt)
            if not self._query("SELECT value FROM meta WHERE key = 'schema_version'"):
                self._exec(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            self._commit()
        except BaseException:
            self._rollback()
            raise

    # -- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value (inside the caller's transaction, if any)."""
        self._exec("DELETE FROM meta WHERE key = ?", (key,))
        self._exec("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def data_release(self) -> str | None:
        """The release (ISO date) the data is current to: the newest monthly or weekly file applied."""
        value = self.get_meta("data_release")
        if value:
            return value
        current = self.current_load()
        return current.release_date if current else None

    # -- loads ---------------------------------------------------------------------------------
    def begin_load(
        self, *, source: str, kind: str, release_date: str | None, checksum: str, files: list[dict[str, Any]]
    ) -> int:
        """Record a new load, clear debris of interrupted ones, and create empty staging tables."""
        load_id = self._start_load(
            source=source, kind=kind, release_date=release_date, checksum=checksum, files=files
        )
        self._begin()
        try:
            for table in DATA_TABLES:
                self._exec(f"DROP TABLE IF EXISTS stage_{table}")
            for stmt in self._data_ddl("stage_"):
                self._exec(stmt)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return load_id

    def begin_apply(
        self, *, source: str, kind: str, release_date: str | None, checksum: str, files: list[dict[str, Any]]
    ) -> int:
        """Record an incremental load (weekly bundle, deactivation report) and take the load lock.

        Its changes are then written by the caller in one transaction that ends with
        ``mark_applied``; a failure before that leaves the data as it was (``fail_apply``).
        """
        return self._start_load(
            source=source, kind=kind, release_date=release_date, checksum=checksum, files=files
        )

    def _start_load(
        self, *, source: str, kind: str, release_date: str | None, checksum: str, files: list[dict[str, Any]]
    ) -> int:
        """Mark loads whose process died as failed (refuse if one is alive), record this one as
        running and take the load lock."""
        for rec in self.loads(status="running"):
            owner = (rec.timings or {}).get("owner", "")
            if self._other_load_alive(str(owner)):
                raise LoadError(f"another load (#{rec.id}, {owner}) is running on this store; wait for it")
            self._exec(
                "UPDATE loads SET status = 'failed', finished_at = ?, message = ? WHERE id = ?",
                (utcnow(), "interrupted (the loading process stopped before finishing)", rec.id),
            )
        owner = f"{socket.gethostname()}:{os.getpid()}"
        load_id = self._insert_returning_id(
            "INSERT INTO loads (kind, status, source, release_date, checksum, started_at, files, timings,"
            " rows_read, rows_loaded, rows_quarantined, is_current) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, 0, 0, 0, 0)",
            (kind, source, release_date, checksum, utcnow(), json.dumps(files), json.dumps({"owner": owner})),
        )
        self._acquire_load_lock(load_id)
        return load_id

    def mark_applied(
        self,
        load_id: int,
        *,
        files: list[dict[str, Any]],
        timings: dict[str, float],
        rows_read: int,
        rows_loaded: int,
        rows_quarantined: int,
        message: str | None = None,
    ) -> None:
        """Mark an incremental load succeeded (inside the caller's transaction)."""
        self._exec(
            "UPDATE loads SET status = 'succeeded', finished_at = ?, files = ?, timings = ?, rows_read = ?,"
            " rows_loaded = ?, rows_quarantined = ?, message = ? WHERE id = ?",
            (
                utcnow(),
                json.dumps(files),
                json.dumps(timings),
                rows_read,
                rows_loaded,
                rows_quarantined,
                message,
                load_id,
            ),
        )

    def end_apply(self) -> None:
        self._release_load_lock()

    def fail_apply(self, load_id: int, message: str, files: list[dict[str, Any]] | None = None) -> None:
        """Roll back an incremental load's open transaction and mark it failed."""
        with contextlib.suppress(Exception):
            self._rollback()
        try:
            self._exec(
                "UPDATE loads SET status = 'failed', finished_at = ?, message = ?, files = ? WHERE id = ?",
                (utcnow(), message[:2000], json.dumps(files or []), load_id),
            )
        finally:
            self._release_load_lock()

    def find_load(self, checksum: str, kind: str) -> LoadRecord | None:
        """The latest succeeded load of ``kind`` with this content checksum."""
        rows = self._query(
            f"SELECT {self._LOAD_COLS} FROM loads WHERE checksum = ? AND kind = ? AND status = 'succeeded'"
            " ORDER BY id DESC LIMIT 1",
            (checksum, kind),
        )
        return self._load_from_row(rows[0]) if rows else None

    def write_block(self, load_id: int, file_name: str, result: BlockResult) -> BlockResult:
        """Append one transformed block to the staging tables, and its quarantined lines.

        NPIs already loaded from an earlier block are quarantined here as duplicates (the first
        occurrence wins). Returns the block as written.
        """
        if result.providers:
            seen = self._seen.setdefault(load_id, NpiSet())
            dups = {p[0] for p in result.providers if seen.add(p[0])}
            if dups:
                result = _drop_duplicates(result, dups)
        self._begin()
        try:
            if result.providers:
                self._bulk_insert(
                    "stage_providers", DATA_TABLES["providers"], (p[:6] for p in result.providers)
                )
                self._bulk_insert(
                    "stage_provider_docs",
                    DATA_TABLES["provider_docs"],
                    ((p[0], p[6]) for p in result.providers),
                )
            for table, rows in (
                ("provider_names", result.names),
                ("provider_taxonomies", result.taxonomies),
                ("provider_locations", result.locations),
                ("provider_extras", result.extras),
            ):
                if rows:
                    self._bulk_insert(f"stage_{table}", DATA_TABLES[table], rows)
            if result.quarantine:
                self._bulk_insert(
                    "quarantine",
                    ("load_id", "file", "line", "reason", "raw"),
                    ((load_id, file_name, ln, reason, raw) for ln, reason, raw in result.quarantine),
                )
            self._exec(
                "UPDATE loads SET rows_read = rows_read + ?, rows_loaded = rows_loaded + ?,"
                " rows_quarantined = rows_quarantined + ? WHERE id = ?",
                (result.rows_read, result.rows_loaded, result.rows_quarantined, load_id),
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return result

    def finish_load(
        self,
        load_id: int,
        files: list[dict[str, Any]],
        timings: dict[str, float],
        *,
        before_swap: Callable[[], dict[str, Any]] | None = None,
        release_date: str | None = None,
    ) -> dict[str, Any]:
        """Index the staging tables and swap them in, atomically; mark the load current.

        ``before_swap`` runs inside the swap transaction, before the swap, with the old data live and
        the new data in the staging tables (a new monthly file's reconciliation writes its changes
        there); what it returns is returned.
        """
        t0 = time.perf_counter()
        prefix = f"ix{load_id}_"
        self._begin()
        try:
            for stmt in DERIVED_SQL:
                self._exec(stmt)
            for ix in DATA_INDEXES:
                kind = "UNIQUE INDEX" if ix.unique else "INDEX"
                where = f" WHERE {ix.where}" if ix.where else ""
                self._exec(f"CREATE {kind} {prefix}{ix.name} ON stage_{ix.table} ({ix.columns}){where}")
            self._commit()
        except BaseException:
            self._rollback()
            raise
        timings = dict(timings, index_s=round(time.perf_counter() - t0, 3))
        t1 = time.perf_counter()
        outcome: dict[str, Any] = {}
        self._begin()
        try:
            if before_swap is not None:
                outcome = before_swap()
                timings["reconcile_s"] = round(time.perf_counter() - t1, 3)
                t1 = time.perf_counter()
            if release_date:
                self.set_meta("data_release", release_date)
            for table in DATA_TABLES:
                self._exec(f"DROP TABLE IF EXISTS {table}")
                self._exec(f"ALTER TABLE stage_{table} RENAME TO {table}")
            self._exec("UPDATE loads SET is_current = 0 WHERE is_current = 1")
            timings["swap_s"] = round(time.perf_counter() - t1, 3)
            self._exec(
                "UPDATE loads SET status = 'succeeded', finished_at = ?, is_current = 1, files = ?, timings = ?"
                " WHERE id = ?",
                (utcnow(), json.dumps(files), json.dumps(timings), load_id),
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        finally:
            self._release_load_lock()
            self._seen.pop(load_id, None)
        self._after_swap()
        return outcome

    def fail_load(self, load_id: int, message: str, files: list[dict[str, Any]] | None = None) -> None:
        """Mark a load failed and drop its staging tables; the live data is untouched."""
        with contextlib.suppress(Exception):  # nothing to roll back
            self._rollback()
        self._begin()
        try:
            for table in DATA_TABLES:
                self._exec(f"DROP TABLE IF EXISTS stage_{table}")
            params: tuple[Any, ...] = (utcnow(), message[:2000], load_id)
            sql = "UPDATE loads SET status = 'failed', finished_at = ?, message = ? WHERE id = ?"
            if files is not None:
                sql = (
                    "UPDATE loads SET status = 'failed', finished_at = ?, message = ?, files = ? WHERE id = ?"
                )
                params = (utcnow(), message[:2000], json.dumps(files), load_id)
            self._exec(sql, params)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        finally:
            self._release_load_lock()
            self._seen.pop(load_id, None)

    def record_unchanged(
        self, *, source: str, kind: str, release_date: str | None, checksum: str, same_as: int
    ) -> int:
        """Record a load that was skipped because the same content is already current."""
        now = utcnow()
        return self._insert_returning_id(
            "INSERT INTO loads (kind, status, source, release_date, checksum, started_at, finished_at, files,"
            " timings, rows_read, rows_loaded, rows_quarantined, is_current, message)"
            " VALUES (?, 'unchanged', ?, ?, ?, ?, ?, '[]', '{}', 0, 0, 0, 0, ?)",
            (
                kind,
                source,
                release_date,
                checksum,
                now,
                now,
                f"same content as load #{same_as}; nothing changed",
            ),
        )

    _LOAD_COLS = (
        "id, kind, status, source, release_date, checksum, started_at, finished_at, rows_read, rows_loaded,"
        " rows_quarantined, files, timings, message, is_current"
    )

    def _load_from_row(self, r: tuple[Any, ...]) -> LoadRecord:
        return LoadRecord(
            id=r[0],
            kind=r[1],
            status=r[2],
            source=r[3],
            release_date=r[4],
            checksum=r[5],
            started_at=str(r[6]),
            finished_at=str(r[7]) if r[7] else None,
            rows_read=r[8],
            rows_loaded=r[9],
            rows_quarantined=r[10],
            files=json.loads(r[11] or "[]"),
            timings=json.loads(r[12] or "{}"),
            message=r[13],
            is_current=bool(r[14]),
        )

    def loads(self, limit: int = 20, status: str | None = None) -> list[LoadRecord]:
        """Most recent loads first."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self._query(
            f"SELECT {self._LOAD_COLS} FROM loads {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [self._load_from_row(r) for r in rows]

    def get_load(self, load_id: int) -> LoadRecord | None:
        rows = self._query(f"SELECT {self._LOAD_COLS} FROM loads WHERE id = ?", (load_id,))
        return self._load_from_row(rows[0]) if rows else None

    def current_load(self) -> LoadRecord | None:
        rows = self._query(
            f"SELECT {self._LOAD_COLS} FROM loads WHERE is_current = 1 ORDER BY id DESC LIMIT 1"
        )
        return self._load_from_row(rows[0]) if rows else None

    def add_quarantine(self, load_id: int, file_name: str, rows: list[tuple[int, str, str]]) -> None:
        """Quarantine rows whose raw text was read back after the fact (counters already include them)."""
        self._begin()
        try:
            self._bulk_insert(
                "quarantine",
                ("load_id", "file", "line", "reason", "raw"),
                ((load_id, file_name, ln, reason, raw) for ln, reason, raw in rows),
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def quarantined(self, load_id: int, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT file, line, reason, raw FROM quarantine WHERE load_id = ? ORDER BY file, line LIMIT ? OFFSET ?",
            (load_id, limit, offset),
        )
        return [{"file": r[0], "line": r[1], "reason": r[2], "raw": r[3]} for r in rows]

    # -- reads ---------------------------------------------------------------------------------
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
        from npistack.ingest.transform import license_key

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


def _drop_duplicates(result: BlockResult, dups: set[int]) -> BlockResult:
    """Move rows whose NPI was loaded by an earlier block to quarantine (first occurrence wins)."""
    kept = BlockResult(
        result.kind,
        rows_read=result.rows_read,
        quarantine=list(result.quarantine),
        deferred=list(result.deferred),
    )
    for p in result.providers:
        if p[0] in dups:
            kept.deferred.append((p[7], f"duplicate NPI {p[0]:010d} (an earlier row of this file has it)"))
        else:
            kept.providers.append(p)
    kept.names = [r for r in result.names if r[0] not in dups]
    kept.taxonomies = [r for r in result.taxonomies if r[0] not in dups]
    kept.locations = [r for r in result.locations if r[0] not in dups]
    kept.extras = [r for r in result.extras if r[0] not in dups]
    return kept
