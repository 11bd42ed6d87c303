"""Storage: ``open_store(url)`` gives a SQLite (default) or PostgreSQL store with one contract."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from npistack.errors import ConfigError
from npistack.storage.base import LoadRecord, SqlStore

__all__ = ["LoadRecord", "SqlStore", "open_store"]


def open_store(url: str, *, read_only: bool = False) -> SqlStore:
    """Open the store at ``url``: ``sqlite:///path``, a bare path, or ``postgresql://...``."""
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
    if "://" in url:
        raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
    from npistack.storage.sqlite import SqliteStore

    return SqliteStore(url, read_only=read_only)
