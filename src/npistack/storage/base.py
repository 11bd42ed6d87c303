"""The store contract: ``SqlStore``, the SQL both backends (SQLite, PostgreSQL) share.

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

from abc import ABC

from npistack.storage.loads import LoadsSql
from npistack.storage.providers import ProvidersSql
from npistack.storage.search import SearchSql


class SqlStore(LoadsSql, ProvidersSql, SearchSql, ABC):
    """SQL shared by the SQLite and PostgreSQL stores, by concept:

    - ``storage.core``: the driver primitives a backend implements, transactions, hooks, schema, meta;
    - ``storage.loads``: load lifecycle, stage-and-swap, quarantine;
    - ``storage.providers``: provider reads, finders and writes;
    - ``storage.search``: provider search over the index tables.

    The rest of storage (changes and history, outbox, webhooks, match queries) are functions over a
    ``SqlStore``; accounts and jobs have their own databases (``storage.accounts``, ``storage.jobs``).
    """
