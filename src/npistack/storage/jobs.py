"""Enrichment jobs (``POST /api/v1/jobs/enrich``): their records, in the API's own state database.

The table ``enrich_jobs`` lives next to the keys and counters (``storage.accounts``: for SQLite the
``*.accounts.db`` file beside the store, for PostgreSQL the same database), so a data load never
touches it and jobs outlive server restarts. The CSV files live under ``NPISTACK_JOBS_DIR``.

A job is ``queued``, then ``running`` while a runner holds its lease (renewed every few seconds),
then ``succeeded`` or ``failed``. A runner claims a queued job, or a running one whose lease ran out
(its runner died), in one statement, so two server processes never run the same job.

Claims are fair between keys: the job claimed is the oldest free job of the key with the fewest
jobs running, among those, of the key served longest ago (``claimed_ns``: a key never served goes
first), so one key's thousand queued jobs never hold another key's job back by more than one job per
runner. A key already running ``max_running`` jobs is passed over.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from npistack.errors import StoreError
from npistack.storage.accounts import accounts_target
from npistack.storage.core import utcnow

JOB_STATUSES = ("queued", "running", "succeeded", "failed")
_QUEUE_LOCK = 0x6A6F6273  # PostgreSQL advisory lock class of the per-key queue cap ('jobs')
_COLS = (
    "id, key_id, status, options, columns, rows_total, rows_done, rows_per_s, counts, error, credits,"
    " attempts, lease_owner, lease_until, created_at, started_at, finished_at, updated_at"
)


@dataclass(frozen=True)
class Job:
    id: str
    key_id: int
    status: str
    options: dict[str, Any]  # {"columns": {field: header}, "threshold": float | None}
    columns: dict[str, str]  # the detected columns, field -> header
    rows_total: int
    rows_done: int
    rows_per_s: float
    counts: dict[str, int]
    error: str | None
    credits: int
    attempts: int
    lease_owner: str | None
    lease_until: int  # Unix milliseconds
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed")


class KeyJobs(NamedTuple):
    """How many jobs of one key wait and run."""

    queued: int
    running: int


def _job(r: Sequence[Any]) -> Job:
    return Job(
        id=r[0],
        key_id=int(r[1]),
        status=r[2],
        options=orjson.loads(r[3] or "{}"),
        columns=orjson.loads(r[4] or "{}"),
        rows_total=int(r[5] or 0),
        rows_done=int(r[6] or 0),
        rows_per_s=float(r[7] or 0.0),
        counts=orjson.loads(r[8] or "{}"),
        error=r[9],
        credits=int(r[10] or 0),
        attempts=int(r[11] or 0),
        lease_owner=r[12],
        lease_until=int(r[13] or 0),
        created_at=str(r[14]),
        started_at=r[15],
        finished_at=r[16],
        updated_at=str(r[17]),
    )


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def now_ms() -> int:
    return int(time.time() * 1000)


class JobsDb:
    """The ``enrich_jobs`` table over SQLite or PostgreSQL (thread-safe: one lock per connection)."""

    def __init__(self, store_url: str) -> None:
        self.dialect, target = accounts_target(store_url)
        self._lock = threading.Lock()
        if self.dialect == "sqlite":
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._sq = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
                self._sq.execute("PRAGMA journal_mode=WAL")
                self._sq.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as e:
                raise StoreError(f"cannot open the jobs database {path}: {e}") from None
        else:
            try:
                import psycopg
            except ImportError:  # pragma: no cover - depends on the install
                raise StoreError(
                    "PostgreSQL support needs psycopg: pip install 'npistack[postgres]'"
                ) from None
            self._psycopg = psycopg
            try:
                self._pgc = psycopg.connect(target, autocommit=True)
            except psycopg.Error as e:
                raise StoreError(f"cannot connect to PostgreSQL: {str(e).strip().splitlines()[0]}") from None
        self._q(
            """CREATE TABLE IF NOT EXISTS enrich_jobs (id TEXT PRIMARY KEY, key_id BIGINT NOT NULL,
                status TEXT NOT NULL, options TEXT NOT NULL, columns TEXT NOT NULL,
                rows_total BIGINT NOT NULL, rows_done BIGINT NOT NULL, rows_per_s REAL NOT NULL,
                counts TEXT NOT NULL, error TEXT, credits BIGINT NOT NULL, attempts INTEGER NOT NULL,
                lease_owner TEXT, lease_until BIGINT NOT NULL, created_at TEXT NOT NULL, started_at TEXT,
                finished_at TEXT, updated_at TEXT NOT NULL, queued_ns BIGINT NOT NULL,
                claimed_ns BIGINT NOT NULL DEFAULT 0)"""
        )
        if not self._has_column("claimed_ns"):  # a table made before fair claims
            self._q("ALTER TABLE enrich_jobs ADD COLUMN claimed_ns BIGINT NOT NULL DEFAULT 0")
        self._q("CREATE INDEX IF NOT EXISTS enrich_jobs_status ON enrich_jobs (status, queued_ns)")
        self._q("CREATE INDEX IF NOT EXISTS enrich_jobs_key ON enrich_jobs (key_id, status)")

    def _has_column(self, name: str) -> bool:
        if self.dialect == "sqlite":
            return any(r[1] == name for r in self._q("PRAGMA table_info(enrich_jobs)"))
        return bool(
            self._q(
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'enrich_jobs'"
                " AND column_name = ? AND table_schema = current_schema()",
                (name,),
            )
        )

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self.dialect == "sqlite":
                    return self._sq.execute(sql, params).fetchall()
                cur = self._pgc.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
                return cur.fetchall() if cur.description else []
            except (sqlite3.Error, getattr(self, "_psycopg", sqlite3).Error) as e:  # type: ignore[attr-defined]
                raise StoreError(f"jobs database error: {str(e).strip().splitlines()[0]}") from e

    def close(self) -> None:
        with self._lock:
            if self.dialect == "sqlite":
                self._sq.close()
            else:
                self._pgc.close()

    # -- records -----------------------------------------------------------------------------------
    def create(
        self,
        *,
        key_id: int,
        options: dict[str, Any],
        columns: dict[str, str],
        rows_total: int,
        credits: int,
        job_id: str | None = None,
        max_queued: int = 0,
    ) -> Job | None:
        """Queue a job; None when the key already has ``max_queued`` jobs queued (0: no cap)."""
        now = utcnow()
        cap = ""
        params: list[Any] = [
            job_id or new_job_id(),
            key_id,
            orjson.dumps(options).decode(),
            orjson.dumps(columns).decode(),
            rows_total,
            credits,
            now,
            now,
            time.time_ns(),
        ]
        if max_queued > 0:  # counted in the statement that inserts (one writer at a time in SQLite)
            cap = " WHERE (SELECT count(*) FROM enrich_jobs WHERE key_id = ? AND status = 'queued') < ?"
            params += [key_id, max_queued]
        sql = (
            f"INSERT INTO enrich_jobs ({_COLS}, queued_ns) SELECT ?, ?, 'queued', ?, ?, ?, 0, 0, '{{}}', NULL,"
            f" ?, 0, NULL, 0, ?, NULL, NULL, ?, ?{cap} RETURNING {_COLS}"
        )
        if max_queued > 0 and self.dialect != "sqlite":
            rows = self._locked_for_key(key_id, sql, params)
        else:
            rows = self._q(sql, params)
        return _job(rows[0]) if rows else None

    def _locked_for_key(self, key_id: int, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """PostgreSQL: ``sql`` in a transaction holding the key's advisory lock, so that two uploads
        of one key at once cannot both count the same free place."""
        with self._lock:
            try:
                with self._pgc.transaction():
                    self._pgc.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_QUEUE_LOCK, key_id))
                    cur = self._pgc.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
                    return cur.fetchall()
            except self._psycopg.Error as e:
                raise StoreError(f"jobs database error: {str(e).strip().splitlines()[0]}") from e

    def counts_of(self, key_id: int) -> KeyJobs:
        """How many jobs the key has queued and running."""
        rows = self._q(
            "SELECT status, count(*) FROM enrich_jobs WHERE key_id = ? AND status IN ('queued', 'running')"
            " GROUP BY status",
            (key_id,),
        )
        got = {str(r[0]): int(r[1]) for r in rows}
        return KeyJobs(queued=got.get("queued", 0), running=got.get("running", 0))

    def get(self, job_id: str, key_id: int | None = None) -> Job | None:
        sql = f"SELECT {_COLS} FROM enrich_jobs WHERE id = ?"
        params: list[Any] = [job_id]
        if key_id is not None:
            sql += " AND key_id = ?"
            params.append(key_id)
        rows = self._q(sql, params)
        return _job(rows[0]) if rows else None

    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        sql = f"SELECT {_COLS} FROM enrich_jobs"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        rows = self._q(sql + " ORDER BY queued_ns, id LIMIT ?", [*params, limit])
        return [_job(r) for r in rows]

    # -- running -----------------------------------------------------------------------------------
    def claim(self, owner: str, lease_s: float, max_running: int = 0) -> Job | None:
        """A queued job (or a running one whose lease ran out), now leased to ``owner``: the oldest
        free job of the key with the fewest live running jobs, then of the key served longest ago;
        keys already running ``max_running`` jobs are passed over (0: no cap)."""
        now = now_ms()
        free = "(status = 'queued' OR (status = 'running' AND lease_until <= ?))"
        jfree = "(j.status = 'queued' OR (j.status = 'running' AND j.lease_until <= ?))"
        # Per key with free jobs: its live running jobs and when it was last served.
        pick = (
            "SELECT j.id FROM enrich_jobs j JOIN ("
            f"  SELECT f.key_id, coalesce(r.n, 0) AS running, coalesce(c.last_ns, 0) AS last_ns"
            f"  FROM (SELECT DISTINCT key_id FROM enrich_jobs WHERE {free}) f"
            "   LEFT JOIN (SELECT key_id, count(*) AS n FROM enrich_jobs"
            "              WHERE status = 'running' AND lease_until > ? GROUP BY key_id) r ON r.key_id = f.key_id"
            "   LEFT JOIN (SELECT key_id, max(claimed_ns) AS last_ns FROM enrich_jobs GROUP BY key_id) c"
            "              ON c.key_id = f.key_id"
            f" ) k ON k.key_id = j.key_id WHERE {jfree}"
            + (" AND k.running < ?" if max_running > 0 else "")
            + " ORDER BY k.running, k.last_ns, j.queued_ns, j.id LIMIT 1"
        )
        params: list[Any] = [
            owner,
            now + int(lease_s * 1000),
            time.time_ns(),
            utcnow(),
            utcnow(),
            now,
            now,
            now,
        ]
        if max_running > 0:
            params.append(max_running)
        rows = self._q(
            f"UPDATE enrich_jobs SET status = 'running', lease_owner = ?, lease_until = ?, claimed_ns = ?,"
            f" attempts = attempts + 1, started_at = ?, updated_at = ?, rows_done = 0, rows_per_s = 0,"
            f" counts = '{{}}', error = NULL"
            f" WHERE id = ({pick}) AND {free} RETURNING {_COLS}",
            [*params, now],
        )
        return _job(rows[0]) if rows else None

    def renew(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Extend the lease; False when the job is no longer ours (another runner took it over)."""
        rows = self._q(
            "UPDATE enrich_jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'running'"
            " RETURNING id",
            (now_ms() + int(lease_s * 1000), job_id, owner),
        )
        return bool(rows)

    def progress(
        self, job_id: str, owner: str, *, rows_done: int, rows_per_s: float, counts: dict[str, int]
    ) -> bool:
        rows = self._q(
            "UPDATE enrich_jobs SET rows_done = ?, rows_per_s = ?, counts = ?, updated_at = ?"
            " WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
            (rows_done, round(rows_per_s, 1), orjson.dumps(counts).decode(), utcnow(), job_id, owner),
        )
        return bool(rows)

    def finish(
        self,
        job_id: str,
        owner: str,
        *,
        status: str,
        error: str | None = None,
        rows_done: int | None = None,
        rows_per_s: float | None = None,
        counts: dict[str, int] | None = None,
    ) -> bool:
        """Mark the job succeeded or failed, if it is still ours."""
        assert status in ("succeeded", "failed")
        sets = ["status = ?", "error = ?", "finished_at = ?", "updated_at = ?", "lease_owner = NULL"]
        now = utcnow()
        params: list[Any] = [status, error, now, now]
        for col, value in (("rows_done", rows_done), ("rows_per_s", rows_per_s)):
            if value is not None:
                sets.append(f"{col} = ?")
                params.append(value)
        if counts is not None:
            sets.append("counts = ?")
            params.append(orjson.dumps(counts).decode())
        rows = self._q(
            f"UPDATE enrich_jobs SET {', '.join(sets)} WHERE id = ? AND lease_owner = ?"
            " AND status = 'running' RETURNING id",
            [*params, job_id, owner],
        )
        return bool(rows)

    def finished_before(self, cutoff: str, limit: int = 1000) -> list[Job]:
        """Succeeded or failed jobs that finished before ``cutoff`` (an ISO time, as ``utcnow``)."""
        rows = self._q(
            f"SELECT {_COLS} FROM enrich_jobs WHERE status IN ('succeeded', 'failed') AND finished_at < ?"
            " ORDER BY finished_at, id LIMIT ?",
            (cutoff, limit),
        )
        return [_job(r) for r in rows]

    def delete(self, job_id: str) -> bool:
        """Forget a finished job (its files are the caller's to delete first)."""
        rows = self._q(
            "DELETE FROM enrich_jobs WHERE id = ? AND status IN ('succeeded', 'failed') RETURNING id",
            (job_id,),
        )
        return bool(rows)

    def requeue(self, job_id: str, owner: str) -> bool:
        """Give a running job back (a server shutting down): the next runner starts it again, and
        this attempt does not count."""
        rows = self._q(
            "UPDATE enrich_jobs SET status = 'queued', lease_owner = NULL, lease_until = 0,"
            " attempts = attempts - 1, rows_done = 0, updated_at = ?"
            " WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
            (utcnow(), job_id, owner),
        )
        return bool(rows)
