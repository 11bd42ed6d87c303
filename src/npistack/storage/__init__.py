"""Storage: ``open_store(url)`` gives a SQLite (default) or PostgreSQL store with one contract."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from npistack.errors import ConfigError
from npistack.storage.base import SqlStore
from npistack.storage.loads import LoadRecord

__all__ = ["LoadRecord", "SqlStore", "open_store"]


def open_store(url: str, *, read_only: bool = False) -> SqlStore:
    """Open the store at ``url``: ``sqlite:///path``, ``postgresql://...``, or a bare file path (one
    with a folder or a ``.db``/``.sqlite``/``.sqlite3`` suffix); anything else is a ConfigError."""
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from npistack.storage.postgres import PostgresStore

        return PostgresStore(url.replace("postgresql+psycopg://", "postgresql://", 1))
    if url.startswith("sqlite:"):
        # SQLAlchemy's convention: sqlite:///relative.db and sqlite:////absolute/path.db
        if not url.startswith("sqlite:///"):
            raise ConfigError(
                f"database URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path"
            )
        path = unquote(urlparse(url).path)[1:]
        if not path:
            raise ConfigError(f"database URL {url!r} has no file path")
        from npistack.storage.sqlite import SqliteStore

        return SqliteStore(path, read_only=read_only)
    if "://" in url or not _looks_like_a_file(url):
        # The same line for NPISTACK_DATABASE_URL=garbage and -d foo://bar (issue 14 item 21).
        raise ConfigError(
            f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://user@host:port/db"
        )
    from npistack.storage.sqlite import SqliteStore

    return SqliteStore(url, read_only=read_only)


def _looks_like_a_file(text: str) -> bool:
    """A bare value taken as a SQLite file's path: it names a folder (``data/npistack.db``,
    ``./x``) or has a database file's suffix (``npistack.db``); a word such as ``garbage`` is a
    mistyped URL, not a request to create a file of that name."""
    return bool(text.strip()) and (
        "/" in text or os.sep in text or text.lower().endswith((".db", ".sqlite", ".sqlite3"))
    )
