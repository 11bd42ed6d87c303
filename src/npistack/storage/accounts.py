"""The API's own state: plans, API keys and usage counters.

It lives apart from the provider data so that no data load ever touches it, and so that metering
writes never wait behind a load: for SQLite in a sibling file (``npistack.db`` ->
``npistack.accounts.db``), for PostgreSQL in tables of the same database (row locks make waiting
moot there).

Counters are exact with any number of server processes: a request's rate-limit hit, quota check
and credit reservation happen in one transaction (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR
UPDATE`` on PostgreSQL). With Redis configured the minute windows and a fast copy of the month
credits live in Redis (``npistack.storage.meter_fastpath``), but this database stays the durable record:
every admission is written through here (``record_usage``), the usage history is read from here, and
a Redis counter that is absent is seeded from here. Keys and plans always live here.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from npistack.errors import ConfigError, StoreError

ACCOUNTS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Plan:
    name: str
    monthly_credits: int
    requests_per_minute: int
    enrichment: bool
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "monthlyCredits": self.monthly_credits,
            "requestsPerMinute": self.requests_per_minute,
            "enrichment": self.enrichment,
            "description": self.description,
        }


@dataclass(frozen=True)
class ApiKey:
    id: int
    prefix: str  # the first characters of the key, shown in listings (never the key itself)
    name: str
    plan: str
    role: str  # "client" or "admin"
    status: str  # "active", "suspended" or "revoked"
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "plan": self.plan,
            "role": self.role,
            "status": self.status,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True)
class Reservation:
    """The outcome of one metered request's admission."""

    rate_count: int  # requests in the current minute window, this one included
    granted: int  # units admitted (0 when rate limited, inactive or out of credits)
    credits_used: int  # credits used this month after the reservation
    rate_limited: bool = False
    inactive: bool = False


_KEY_COLS = "id, prefix, name, plan, role, status, created_at, updated_at"


class AccountsDb:
    """Plans, keys and (without Redis) counters, over SQLite or PostgreSQL."""

    def __init__(self, store_url: str) -> None:
        self.dialect, target = accounts_target(store_url)
        if self.dialect == "sqlite":
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.location = str(path)
            try:
                self._sq = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
                self._sq.execute("PRAGMA journal_mode=WAL")
                self._sq.execute("PRAGMA synchronous=NORMAL")
                self._sq.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as e:
                raise StoreError(f"cannot open the accounts database {path}: {e}") from None
        else:
            try:
                import psycopg
            except ImportError:  # pragma: no cover - depends on the install
                raise StoreError(
                    "PostgreSQL support needs psycopg: pip install 'npistack[postgres]'"
                ) from None
            self._psycopg = psycopg
            self.location = target
            try:
                self._pgc = psycopg.connect(target, autocommit=True)
            except psycopg.Error as e:
                raise StoreError(f"cannot connect to PostgreSQL: {str(e).strip().splitlines()[0]}") from None
        self._ensure_schema()

    # -- driver ------------------------------------------------------------------------------------
    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            if self.dialect == "sqlite":
                return self._sq.execute(sql, params).fetchall()
            cur = self._pgc.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []
        except (sqlite3.Error, getattr(self, "_psycopg", sqlite3).Error) as e:  # type: ignore[attr-defined]
            raise StoreError(f"accounts database error: {str(e).strip().splitlines()[0]}") from e

    def _tx(self) -> Any:
        """A write transaction (a context manager)."""
        if self.dialect == "sqlite":
            return _SqliteTx(self._sq)
        return self._pgc.transaction()

    def close(self) -> None:
        if self.dialect == "sqlite":
            self._sq.close()
        else:
            self._pgc.close()

    def _ensure_schema(self) -> None:
        serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
        ddl = [
            "CREATE TABLE IF NOT EXISTS accounts_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE IF NOT EXISTS plans (name TEXT PRIMARY KEY, monthly_credits BIGINT NOT NULL,
                requests_per_minute INTEGER NOT NULL, enrichment INTEGER NOT NULL, description TEXT NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS api_keys (id {serial}, key_hash TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL, name TEXT NOT NULL, plan TEXT NOT NULL, role TEXT NOT NULL,
                status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS usage_monthly (key_id BIGINT NOT NULL, month TEXT NOT NULL,
                credits BIGINT NOT NULL, PRIMARY KEY (key_id, month))""",
            """CREATE TABLE IF NOT EXISTS usage_daily (key_id BIGINT NOT NULL, day TEXT NOT NULL,
                requests BIGINT NOT NULL, credits BIGINT NOT NULL, PRIMARY KEY (key_id, day))""",
            """CREATE TABLE IF NOT EXISTS rate_windows (key_id BIGINT NOT NULL, window_start BIGINT NOT NULL,
                count BIGINT NOT NULL, PRIMARY KEY (key_id, window_start))""",
        ]
        with self._tx():
            for stmt in ddl:
                self._q(stmt)
            self._q(
                "INSERT INTO accounts_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                (str(ACCOUNTS_SCHEMA_VERSION),),
            )
            self._q(
                "INSERT INTO accounts_meta (key, value) VALUES ('instance_id', ?) ON CONFLICT (key) DO NOTHING",
                (secrets.token_hex(8),),
            )
        # Counters kept elsewhere (Redis) are namespaced by this id, so two installations (or two
        # test stores) sharing a Redis never mix their counters.
        self.instance_id = str(self._q("SELECT value FROM accounts_meta WHERE key = 'instance_id'")[0][0])

    # -- plans -------------------------------------------------------------------------------------
    def seed_plans(self, plans: Sequence[Plan]) -> None:
        """Insert the default plans that do not exist yet (edited plans are kept)."""
        with self._tx():
            for p in plans:
                self._q(
                    "INSERT INTO plans (name, monthly_credits, requests_per_minute, enrichment, description)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                    (p.name, p.monthly_credits, p.requests_per_minute, int(p.enrichment), p.description),
                )

    def upsert_plan(self, p: Plan) -> None:
        with self._tx():
            self._q(
                "INSERT INTO plans (name, monthly_credits, requests_per_minute, enrichment, description)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET monthly_credits = excluded.monthly_credits,"
                " requests_per_minute = excluded.requests_per_minute, enrichment = excluded.enrichment,"
                " description = excluded.description",
                (p.name, p.monthly_credits, p.requests_per_minute, int(p.enrichment), p.description),
            )

    def plans(self) -> list[Plan]:
        rows = self._q(
            "SELECT name, monthly_credits, requests_per_minute, enrichment, description FROM plans"
            " ORDER BY monthly_credits, name"
        )
        return [Plan(r[0], int(r[1]), int(r[2]), bool(r[3]), r[4]) for r in rows]

    def plan(self, name: str) -> Plan | None:
        return next((p for p in self.plans() if p.name == name), None)

    # -- keys --------------------------------------------------------------------------------------
    def create_key(self, *, key_hash: str, prefix: str, name: str, plan: str, role: str, now: str) -> ApiKey:
        with self._tx():
            rows = self._q(
                "INSERT INTO api_keys (key_hash, prefix, name, plan, role, status, created_at, updated_at)"
                f" VALUES (?, ?, ?, ?, ?, 'active', ?, ?) RETURNING {_KEY_COLS}",
                (key_hash, prefix, name, plan, role, now, now),
            )
        return ApiKey(*rows[0])

    def list_keys(self) -> list[ApiKey]:
        return [ApiKey(*r) for r in self._q(f"SELECT {_KEY_COLS} FROM api_keys ORDER BY id")]

    def key(self, ref: str | int) -> ApiKey | None:
        """A key by id or by its shown prefix."""
        if isinstance(ref, int) or str(ref).isdigit():
            rows = self._q(f"SELECT {_KEY_COLS} FROM api_keys WHERE id = ?", (int(ref),))
        else:
            rows = self._q(f"SELECT {_KEY_COLS} FROM api_keys WHERE prefix = ?", (str(ref),))
        return ApiKey(*rows[0]) if rows else None

    def key_by_hash(self, key_hash: str) -> tuple[ApiKey, Plan | None] | None:
        """The key with this hash and its plan, in one query (the hot path of every request)."""
        rows = self._q(
            "SELECT k.id, k.prefix, k.name, k.plan, k.role, k.status, k.created_at, k.updated_at,"
            " p.name, p.monthly_credits, p.requests_per_minute, p.enrichment, p.description"
            " FROM api_keys k LEFT JOIN plans p ON p.name = k.plan WHERE k.key_hash = ?",
            (key_hash,),
        )
        if not rows:
            return None
        r = rows[0]
        plan = Plan(r[8], int(r[9]), int(r[10]), bool(r[11]), r[12]) if r[8] is not None else None
        return ApiKey(*r[:8]), plan

    def set_key(self, key_id: int, *, now: str, status: str | None = None, plan: str | None = None) -> None:
        with self._tx():
            if status is not None:
                self._q("UPDATE api_keys SET status = ?, updated_at = ? WHERE id = ?", (status, now, key_id))
            if plan is not None:
                self._q("UPDATE api_keys SET plan = ?, updated_at = ? WHERE id = ?", (plan, now, key_id))

    # -- counters (the durable record; the whole meter without Redis) ------------------------------
    def reserve(
        self,
        key_id: int,
        *,
        window: int,
        rpm: int,
        active: bool,
        month: str,
        day: str,
        limit: int,
        cost: int,
        units: int,
        partial: bool,
    ) -> Reservation:
        """Count one request against the minute window, then reserve ``units`` × ``cost`` credits.

        All or nothing unless ``partial`` (bulk lookups: as many units as the credits left allow).
        """
        with self._tx():
            count = int(
                self._q(
                    "INSERT INTO rate_windows (key_id, window_start, count) VALUES (?, ?, 1)"
                    " ON CONFLICT (key_id, window_start) DO UPDATE SET count = rate_windows.count + 1"
                    " RETURNING count",
                    (key_id, window),
                )[0][0]
            )
            if count > rpm:
                return Reservation(count, 0, self._used(key_id, month), rate_limited=True)
            if not active:
                return Reservation(count, 0, self._used(key_id, month), inactive=True)
            self._q(
                "INSERT INTO usage_monthly (key_id, month, credits) VALUES (?, ?, 0)"
                " ON CONFLICT (key_id, month) DO NOTHING",
                (key_id, month),
            )
            lock = "" if self.dialect == "sqlite" else " FOR UPDATE"
            used = int(
                self._q(
                    f"SELECT credits FROM usage_monthly WHERE key_id = ? AND month = ?{lock}", (key_id, month)
                )[0][0]
            )
            affordable = max(0, (limit - used) // cost) if cost else units
            granted = units if affordable >= units else (affordable if partial else 0)
            if granted:
                used += granted * cost
                self._q(
                    "UPDATE usage_monthly SET credits = ? WHERE key_id = ? AND month = ?",
                    (used, key_id, month),
                )
            self._q(
                "INSERT INTO usage_daily (key_id, day, requests, credits) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (key_id, day) DO UPDATE SET requests = usage_daily.requests + 1,"
                " credits = usage_daily.credits + excluded.credits",
                (key_id, day, granted * cost),
            )
            if window % 10 == 0:  # now and then, forget old windows
                self._q(
                    "DELETE FROM rate_windows WHERE key_id = ? AND window_start < ?", (key_id, window - 5)
                )
        return Reservation(count, granted, used)

    def refund(self, key_id: int, *, month: str, day: str, credits: int) -> int:
        """Give back credits of a reservation that was not used (upstream failures); credits used after."""
        with self._tx():
            self._q(
                "UPDATE usage_daily SET credits = credits - ? WHERE key_id = ? AND day = ?",
                (credits, key_id, day),
            )
            rows = self._q(
                "UPDATE usage_monthly SET credits = credits - ? WHERE key_id = ? AND month = ? RETURNING credits",
                (credits, key_id, month),
            )
        return int(rows[0][0]) if rows else 0

    def record_usage(self, key_id: int, *, month: str, day: str, requests: int, credits: int) -> None:
        """Add a request admitted elsewhere (Redis) to the durable counters: ``credits`` to the month,
        ``requests`` and ``credits`` to the day (one short transaction, no lock held across requests)."""
        with self._tx():
            if credits:
                self._q(
                    "INSERT INTO usage_monthly (key_id, month, credits) VALUES (?, ?, ?)"
                    " ON CONFLICT (key_id, month) DO UPDATE SET credits = usage_monthly.credits + excluded.credits",
                    (key_id, month, credits),
                )
            self._q(
                "INSERT INTO usage_daily (key_id, day, requests, credits) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key_id, day) DO UPDATE SET requests = usage_daily.requests + excluded.requests,"
                " credits = usage_daily.credits + excluded.credits",
                (key_id, day, requests, credits),
            )

    def _used(self, key_id: int, month: str) -> int:
        rows = self._q("SELECT credits FROM usage_monthly WHERE key_id = ? AND month = ?", (key_id, month))
        return int(rows[0][0]) if rows else 0

    def used(self, key_id: int, month: str) -> int:
        return self._used(key_id, month)

    def usage(self, key_id: int | None = None, since: str = "") -> list[tuple[int, str, int, int]]:
        """(key_id, day, requests, credits) rows, newest day first."""
        sql = "SELECT key_id, day, requests, credits FROM usage_daily WHERE day >= ?"
        params: list[Any] = [since]
        if key_id is not None:
            sql += " AND key_id = ?"
            params.append(key_id)
        return [
            (int(r[0]), r[1], int(r[2]), int(r[3]))
            for r in self._q(sql + " ORDER BY day DESC, key_id", params)
        ]


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _looks_like_a_file(text: str) -> bool:
    from npistack.storage import _looks_like_a_file as looks  # the store's rule, one place

    return looks(text)


def accounts_target(store_url: str) -> tuple[str, str]:
    """("sqlite", path) or ("postgresql", url) of the accounts database of a store URL."""
    if store_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "postgresql", store_url.replace("postgresql+psycopg://", "postgresql://", 1)
    if store_url.startswith("sqlite:///"):
        path = Path(unquote(urlparse(store_url).path)[1:])
    elif "://" in store_url or not _looks_like_a_file(store_url):
        # The same line as open_store's for NPISTACK_DATABASE_URL=garbage and -d foo://bar.
        raise ConfigError(
            f"unsupported database URL {store_url!r}: use sqlite:///PATH or postgresql://user@host:port/db"
        )
    else:
        path = Path(store_url)
    return "sqlite", str(path.with_name(f"{path.stem}.accounts{path.suffix or '.db'}"))
