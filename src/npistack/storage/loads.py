"""Loads: their lifecycle (begin, write blocks, finish with stage-and-swap, fail), incremental
applies, the load lock, and the quarantine of refused lines.

A full load writes ``stage_*`` tables (``write_block``), builds the derived tables and indexes and
swaps them in with one transaction (``finish_load``), so readers see the old data until the commit
and a killed load leaves the old data untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from npistack.errors import LoadError
from npistack.records.rows import DeferredLine, PackedBlock
from npistack.storage.core import StoreCore, utcnow
from npistack.storage.schema import (
    DATA_INDEXES,
    DATA_TABLES,
    DERIVED_SQL,
    provider_columns,
    provider_doc_columns,
    provider_line,
    row_npi,
)


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


class LoadsSql(StoreCore):
    """The loads half of the store contract (mixed into ``SqlStore``)."""

    _seen: dict[int, NpiSet]  # per running load: the NPIs its blocks have had

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

    def write_block(self, load_id: int, file_name: str, block: PackedBlock) -> PackedBlock:
        """Append one transformed block to the staging tables, and its quarantined lines.

        NPIs already loaded from an earlier block are quarantined here as duplicates (the first
        occurrence wins). Returns the block as written.
        """
        if block.providers:
            seen = self._seen.setdefault(load_id, NpiSet())
            dups = {npi for npi in map(row_npi, block.providers) if seen.add(npi)}
            if dups:
                block = _drop_duplicates(block, dups)
        self._begin()
        try:
            if block.providers:
                self._bulk_insert(
                    "stage_providers", DATA_TABLES["providers"], map(provider_columns, block.providers)
                )
                self._bulk_insert(
                    "stage_provider_docs",
                    DATA_TABLES["provider_docs"],
                    map(provider_doc_columns, block.providers),
                )
            for table, rows in (
                ("provider_names", block.names),
                ("provider_taxonomies", block.taxonomies),
                ("provider_locations", block.locations),
                ("provider_extras", block.extras),
            ):
                if rows:
                    self._bulk_insert(f"stage_{table}", DATA_TABLES[table], rows)
            if block.quarantine:
                self._bulk_insert(
                    "quarantine",
                    ("load_id", "file", "line", "reason", "raw"),
                    ((load_id, file_name, q.line, q.reason, q.raw) for q in block.quarantine),
                )
            self._exec(
                "UPDATE loads SET rows_read = rows_read + ?, rows_loaded = rows_loaded + ?,"
                " rows_quarantined = rows_quarantined + ? WHERE id = ?",
                (block.rows_read, block.rows_loaded, block.rows_quarantined, load_id),
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return block

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

    def quarantine_lines(self, load_id: int, rows: Iterable[tuple[str, int, str, str]]) -> None:
        """Quarantine refused lines (file, line, reason, raw) of a load, inside the caller's
        transaction (an incremental load's)."""
        self._bulk_insert(
            "quarantine",
            ("load_id", "file", "line", "reason", "raw"),
            ((load_id, f, ln, reason, raw) for f, ln, reason, raw in rows),
        )

    def quarantined(self, load_id: int, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT file, line, reason, raw FROM quarantine WHERE load_id = ? ORDER BY file, line LIMIT ? OFFSET ?",
            (load_id, limit, offset),
        )
        return [{"file": r[0], "line": r[1], "reason": r[2], "raw": r[3]} for r in rows]

    # -- reads ---------------------------------------------------------------------------------


def _drop_duplicates(block: PackedBlock, dups: set[int]) -> PackedBlock:
    """Move rows whose NPI was loaded by an earlier block to quarantine (first occurrence wins)."""
    kept = PackedBlock(
        block.kind,
        rows_read=block.rows_read,
        quarantine=list(block.quarantine),
        deferred=list(block.deferred),
    )
    for p in block.providers:
        npi = row_npi(p)
        if npi in dups:
            kept.deferred.append(
                DeferredLine(
                    provider_line(p), f"duplicate NPI {npi:010d} (an earlier row of this file has it)"
                )
            )
        else:
            kept.providers.append(p)
    kept.names = [r for r in block.names if row_npi(r) not in dups]
    kept.taxonomies = [r for r in block.taxonomies if row_npi(r) not in dups]
    kept.locations = [r for r in block.locations if row_npi(r) not in dups]
    kept.extras = [r for r in block.extras if row_npi(r) not in dups]
    return kept
