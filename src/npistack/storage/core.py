"""What every store is made of: the driver primitives a backend implements (SQLite, PostgreSQL),
transactions, the backends' optional hooks, schema creation, and the meta table.

The primitives (``_exec``, ``_query``, ``_stream``, ``_exec_many``, ``_bulk_insert``) are storage's
own: code outside ``npistack.storage`` calls the named methods of the store instead
(``tests/test_architecture.py`` checks it). Placeholders are written as ``?``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from npistack.storage.schema import COUNTED_TABLES, SCHEMA_VERSION


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def prefix_range(prefix: str) -> tuple[str, str]:
    """[lo, hi) bounds of keys starting with ``prefix`` (keys are ASCII)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class StoreCore(ABC):
    """The driver primitives, transactions, hooks, schema and meta of a store."""

    url: str
    dialect: str

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

    # -- transactions (for callers that write several things atomically) --------------------------
    def begin(self) -> None:
        """Start a write transaction (taking the store's write lock), unless one is open."""
        self._begin()

    def commit(self) -> None:
        """Commit the open transaction."""
        self._commit()

    def rollback(self) -> None:
        """Roll back the open transaction."""
        self._rollback()

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

    def count_rows(self, table: str) -> int:
        """How many rows ``table`` holds (one of ``schema.COUNTED_TABLES``; a ``ValueError`` for
        any other name, which is never put into SQL)."""
        if table not in COUNTED_TABLES:
            raise ValueError(f"no such table to count: {table!r}")
        return int(self._query(f"SELECT COUNT(*) FROM {table}")[0][0])

    # -- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value (inside the caller's transaction, if any)."""
        self._exec("DELETE FROM meta WHERE key = ?", (key,))
        self._exec("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
