"""The PostgreSQL store (production path). Bulk loads use COPY; one load at a time is enforced with
an advisory lock, which PostgreSQL releases by itself if the loading process dies.

Text keys use the "C" collation so that prefix searches are plain byte ranges on a btree.
A URL may carry ``?options=-csearch_path%3Dmyschema`` to keep the tables in their own schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from npistack.errors import StoreError
from npistack.storage.base import SqlStore
from npistack.storage.schema import history_ddl

LOAD_LOCK_KEY = 0x4E50495354  # "NPIST"


class PostgresStore(SqlStore):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on the install
            raise StoreError("PostgreSQL support needs psycopg: pip install 'npistack[postgres]'") from None
        self._psycopg = psycopg
        self.url = url
        try:
            self.conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StoreError(f"cannot connect to PostgreSQL: {msg}") from None
        self._in_tx = False
        self._lock_conn: Any = None
        self._seen = {}
        self.ensure_schema()

    def close(self) -> None:
        self._release_load_lock()
        self.conn.close()

    @staticmethod
    def _pg(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self.conn.execute(self._pg(sql), params)  # type: ignore[arg-type]
        except self._psycopg.Error as e:
            raise StoreError(f"PostgreSQL error: {str(e).strip().splitlines()[0]}") from e

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(self._pg(sql), params).fetchall()  # type: ignore[arg-type]
        except self._psycopg.errors.UndefinedTable:
            if self._in_tx:
                raise
            raise StoreError("the PostgreSQL database has no npistack schema yet") from None
        except self._psycopg.Error as e:
            raise StoreError(f"PostgreSQL error: {str(e).strip().splitlines()[0]}") from e

    def _stream(
        self, sql: str, params: Sequence[Any] = (), batch: int = 5000
    ) -> Iterator[list[tuple[Any, ...]]]:
        self._cursors = getattr(self, "_cursors", 0) + 1
        # A server-side cursor; outside a transaction it must be WITH HOLD.
        with self.conn.cursor(name=f"npistack_stream_{self._cursors}", withhold=not self._in_tx) as cur:
            cur.execute(self._pg(sql), params)  # type: ignore[arg-type]
            while rows := cur.fetchmany(batch):
                yield rows

    def _exec_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.executemany(self._pg(sql), list(rows))  # type: ignore[arg-type]
        except self._psycopg.Error as e:
            raise StoreError(f"PostgreSQL error: {str(e).strip().splitlines()[0]}") from e

    def _bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _begin(self) -> None:
        if not self._in_tx:
            self.conn.execute("BEGIN")
            self._in_tx = True

    def _commit(self) -> None:
        if self._in_tx:
            self.conn.execute("COMMIT")
            self._in_tx = False

    def _rollback(self) -> None:
        if self._in_tx:
            self.conn.execute("ROLLBACK")
            self._in_tx = False

    def _table_exists(self, name: str) -> bool:
        return bool(self._query("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0])

    def _acquire_load_lock(self, load_id: int) -> None:
        # A session-level advisory lock on a dedicated connection: held for the whole load,
        # released by PostgreSQL if this process dies.
        self._lock_conn = self._psycopg.connect(self.url, autocommit=True)
        got = self._lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (LOAD_LOCK_KEY,)).fetchone()[0]
        if not got:
            self._lock_conn.close()
            self._lock_conn = None
            raise StoreError("another load is running on this PostgreSQL store; wait for it")

    def _release_load_lock(self) -> None:
        if self._lock_conn is not None:
            try:
                self._lock_conn.close()
            finally:
                self._lock_conn = None

    def _other_load_alive(self, owner: str) -> bool:
        rows = self._query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = ?",
            (LOAD_LOCK_KEY,),
        )
        return bool(rows[0][0])

    def _after_swap(self) -> None:
        # VACUUM sets the visibility map of the new tables, without which search's covering
        # indexes are not read as index-only scans (every row would be fetched from the heap).
        for table in (
            "providers",
            "provider_names",
            "provider_taxonomies",
            "provider_locations",
            "provider_name_keys",
        ):
            self._exec(f"VACUUM ANALYZE {table}")

    def _app_ddl(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE IF NOT EXISTS loads (
                id BIGSERIAL PRIMARY KEY,
                kind TEXT NOT NULL, status TEXT NOT NULL, source TEXT NOT NULL, release_date TEXT,
                checksum TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
                rows_read BIGINT NOT NULL DEFAULT 0, rows_loaded BIGINT NOT NULL DEFAULT 0,
                rows_quarantined BIGINT NOT NULL DEFAULT 0, files TEXT NOT NULL DEFAULT '[]',
                timings TEXT NOT NULL DEFAULT '{}', message TEXT, is_current INTEGER NOT NULL DEFAULT 0)""",
            """CREATE TABLE IF NOT EXISTS quarantine (
                load_id BIGINT NOT NULL REFERENCES loads(id), file TEXT NOT NULL, line BIGINT NOT NULL,
                reason TEXT NOT NULL, raw TEXT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS ix_quarantine_load ON quarantine (load_id, file, line)",
            *history_ddl("BIGSERIAL PRIMARY KEY", "BIGINT", "DOUBLE PRECISION"),
        ]

    def _data_ddl(self, prefix: str) -> list[str]:
        p = prefix
        c = 'COLLATE "C"'
        return [
            f"""CREATE TABLE {p}providers (npi BIGINT NOT NULL, entity_type SMALLINT, status TEXT NOT NULL,
                last_updated TEXT, primary_taxonomy TEXT, practice_state TEXT)""",
            f"CREATE TABLE {p}provider_docs (npi BIGINT NOT NULL, doc TEXT NOT NULL)",
            f"""CREATE TABLE {p}provider_names (npi BIGINT NOT NULL, entity_type SMALLINT NOT NULL,
                name_type TEXT NOT NULL, name_key TEXT {c} NOT NULL, first_key TEXT {c} NOT NULL)""",
            f"""CREATE TABLE {p}provider_taxonomies (npi BIGINT NOT NULL, slot SMALLINT NOT NULL,
                code TEXT {c} NOT NULL, license_key TEXT {c} NOT NULL, license_state TEXT {c} NOT NULL,
                is_primary SMALLINT NOT NULL)""",
            f"""CREATE TABLE {p}provider_locations (npi BIGINT NOT NULL, purpose TEXT NOT NULL, seq BIGINT NOT NULL,
                city_key TEXT {c} NOT NULL, state TEXT {c} NOT NULL, zip5 TEXT {c} NOT NULL, cell BIGINT,
                lat DOUBLE PRECISION, lon DOUBLE PRECISION, postal TEXT {c} NOT NULL, country TEXT {c} NOT NULL)""",
            f"""CREATE TABLE {p}provider_extras (npi BIGINT NOT NULL, kind TEXT NOT NULL, seq BIGINT NOT NULL,
                doc TEXT NOT NULL)""",
            f"CREATE TABLE {p}provider_name_keys (klass SMALLINT NOT NULL, name_key TEXT {c} NOT NULL)",
        ]
