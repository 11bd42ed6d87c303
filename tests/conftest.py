"""Shared fixtures. Store tests run on SQLite always and on PostgreSQL when
NPISTACK_TEST_POSTGRES_URL is set (each test in its own schema, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("NPISTACK_TEST_POSTGRES_URL", "")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    lines.append(
        f"postgres store tests: {'on (' + PG_URL + ')' if PG_URL else 'SKIPPED: NPISTACK_TEST_POSTGRES_URL not set'}"
    )
    redis = os.environ.get("NPISTACK_TEST_REDIS_URL", "")
    lines.append(
        f"redis tests: {'on (' + redis + ')' if redis else 'SKIPPED: NPISTACK_TEST_REDIS_URL not set'}"
    )
    return lines


def _pg_schema_url() -> Iterator[str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty store URL for each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL store tests skipped: NPISTACK_TEST_POSTGRES_URL is not set")
    yield from _pg_schema_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("PostgreSQL tests skipped: NPISTACK_TEST_POSTGRES_URL is not set")
    yield from _pg_schema_url()
