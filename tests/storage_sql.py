"""The one place outside ``npistack.storage`` where tests speak SQL to a store.

Tests use the store's named methods wherever one exists (``count_rows``, ``begin``/``commit``,
``stream_docs``, the finders). What is left needs the tables themselves: reading an index table to
compare it with a brute-force answer or with a fresh load, and setting up a state no public call
makes (a store from before an index existed, a change feed pruned under a delivery, a job finished
long ago). ``tests/test_architecture.py`` lets this module, and no other, call the primitives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sql_rows(store: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows of a query (``?`` placeholders, on either backend)."""
    return store._query(sql, params)  # type: ignore[no-any-return]


def sql_execute(store: Any, sql: str, params: Sequence[Any] = ()) -> None:
    """Run a statement (outside any open transaction it commits on its own)."""
    store._exec(sql, params)


def jobs_execute(db: Any, sql: str, params: Sequence[Any] = ()) -> None:
    """Run a statement on a ``JobsDb`` (the enrich jobs' store)."""
    db._q(sql, params)
