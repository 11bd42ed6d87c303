"""Enrichment jobs (``POST /api/v1/jobs/enrich``), the side the API server runs: where their files
live, and the ``JobRunner`` thread that starts each job's child process.

Each API server process has a ``JobRunner`` thread. It claims the oldest queued job (or a running
one whose runner died: its lease ran out) and runs it in a child process,
``python -m npistack.worker.jobs`` (the worker side: ``worker.jobs``), so matching never holds the
server's GIL; the child matches with its own worker processes (``NPISTACK_JOBS_WORKERS``) and writes
its progress into the job's record. While the child runs, the thread renews the job's lease. A
server that stops gives its running job back (``queued``), and one that dies loses it when the
lease ends: either way the next runner, in this server's restart or another process, runs it again
from the start. A child whose server died stops by itself at the next batch.

Files of a job live in ``JOBS_DIR/<job id>/``: ``input.csv`` (the upload), then ``result.csv``,
``review.csv`` and ``errors.csv`` (renamed into place only when complete) and ``log.txt``. They are
customers' data: the folders are created 0700 and the files 0600 (the child runs under umask 077).

The child gets the store URL, which may hold a password, in its environment
(``NPISTACK_DATABASE_URL``), never on its command line, where ``ps`` would show it to every user.

Finished jobs are kept ``NPISTACK_JOBS_RETENTION_DAYS`` (``purge_jobs``: their folder, then their
record); the runner purges once at start and then every hour, ``npistack jobs purge`` on demand.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from npistack.errors import NpistackError
from npistack.settings import Settings
from npistack.storage.jobs import Job, JobsDb

log = logging.getLogger("npistack.jobs")

INPUT, RESULT, REVIEW, ERRORS, LOG = "input.csv", "result.csv", "review.csv", "errors.csv", "log.txt"
LEASE_S = 30.0
MAX_ATTEMPTS = 3
STORE_URL_ENV = "NPISTACK_DATABASE_URL"  # how the child learns the store URL (not argv: ps shows it)
DIR_MODE, FILE_MODE = 0o700, 0o600
UPLOADS = ".uploads"  # uploads being received, renamed into their job's folder once accepted
PURGE_EVERY_S = 3600.0
STALE_S = 86400.0  # an upload or a folder without a record this old was left by a crash
_JOB_NAME = re.compile(r"job_[0-9a-f]{16}")  # storage.jobs.new_job_id: nothing else is ever purged


@dataclass(frozen=True)
class JobsConfig:
    store_url: str
    jobs_dir: Path
    workers: int = 2
    nucc_csv: str = ""
    lease_s: float = LEASE_S
    poll_s: float = 1.0
    max_running_per_key: int = 0  # 0: no cap
    retention_days: float = 0.0  # finished jobs older than this are purged (0: kept)
    purge_every_s: float = PURGE_EVERY_S


def jobs_dir_of(settings: Settings, store_url: str) -> Path:
    """``NPISTACK_JOBS_DIR``, else a folder beside a SQLite store (``npistack.jobs``), else DATA_DIR/jobs."""
    if settings.jobs_dir:
        return Path(settings.jobs_dir)
    from npistack.storage.accounts import accounts_target

    dialect, target = accounts_target(store_url)
    if dialect == "sqlite":
        accounts = Path(target)  # npistack.accounts.db -> npistack.jobs
        return accounts.with_name(accounts.name.split(".accounts", 1)[0] + ".jobs")
    return settings.data_dir / "jobs"


def job_dir(jobs_dir: Path, job_id: str) -> Path:
    return jobs_dir / job_id


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """``path`` created if missing, with the missing folders above it, readable by their owner only
    (0700 whatever the umask). An existing ``path`` is made 0700 too with ``tighten`` (a job's own
    folders), left as it is without (the jobs folder a user named: it might be shared)."""
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):  # the top missing one first
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DIR_MODE)
    for d in [*missing, *([path] if tighten and not missing else [])]:
        if stat.S_IMODE(d.stat().st_mode) != DIR_MODE:
            d.chmod(DIR_MODE)
    return path


def open_private(path: Path, mode: str = "wb") -> IO[bytes]:
    """A file opened for writing (``wb``) or appending (``ab``), created 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, FILE_MODE), mode)


@dataclass
class PurgeSummary:
    """What ``purge_jobs`` deleted: finished jobs (folder and record), their bytes, and leftovers
    of crashes (uploads never accepted, folders without a record); what it could not delete."""

    jobs: int = 0
    bytes: int = 0
    leftovers: int = 0
    failed: list[str] = field(default_factory=list)  # "job_...: why"


def _size(path: Path) -> int:
    total = 0
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        with contextlib.suppress(OSError):
            if not p.is_symlink() and p.is_file():
                total += p.stat().st_size
    return total


def _remove(path: Path) -> int:
    """Delete a job's folder (or a file); its bytes. Already gone is fine (another purger)."""
    if not path.exists() and not path.is_symlink():
        return 0
    n = _size(path)
    if path.is_dir() and not path.is_symlink():
        try:
            shutil.rmtree(path)
        except FileNotFoundError:  # another server's purge took part of it meanwhile
            if path.exists():
                shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    return n


def purge_jobs(
    db: JobsDb, jobs_dir: Path, *, older_than_days: float, now: datetime | None = None
) -> PurgeSummary:
    """Delete the jobs that finished (succeeded or failed) more than ``older_than_days`` ago: their
    folder first, then their record, so a folder that cannot be deleted keeps its record and the
    next purge tries again. Queued and running jobs are never touched. Also deletes what crashes
    left: uploads in ``.uploads`` and job folders without a record, untouched for a day."""
    if older_than_days < 0:
        raise NpistackError(f"--older-than must be 0 or more days, not {older_than_days}")
    now = now or datetime.now(UTC)
    # finished_at has whole seconds: "before the next second" keeps a job that finished at the
    # cut-off itself in (so --older-than 0 takes every finished job, this second's too).
    cutoff = (now - timedelta(days=older_than_days) + timedelta(seconds=1)).isoformat(timespec="seconds")
    summary = PurgeSummary()
    tried: set[str] = set()
    while True:
        batch = [j for j in db.finished_before(cutoff, limit=500) if j.id not in tried]
        if not batch:
            break
        for job in batch:
            tried.add(job.id)
            try:
                nbytes = _remove(job_dir(jobs_dir, job.id))
            except OSError as e:
                summary.failed.append(f"{job.id}: {e}")
                continue
            if db.delete(job.id):
                summary.jobs += 1
                summary.bytes += nbytes
    stale = now.timestamp() - STALE_S
    uploads = jobs_dir / UPLOADS
    for path in sorted(uploads.iterdir()) if uploads.is_dir() else []:
        if path.suffix != ".csv" or not _JOB_NAME.fullmatch(path.stem):
            continue
        with contextlib.suppress(OSError):
            if path.lstat().st_mtime < stale:
                summary.bytes += _remove(path)
                summary.leftovers += 1
    for path in sorted(jobs_dir.glob("job_*")) if jobs_dir.is_dir() else []:
        if not _JOB_NAME.fullmatch(path.name):
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and path.lstat().st_mtime < stale and db.get(path.name) is None:
                summary.bytes += _remove(path)
                summary.leftovers += 1
    return summary


def child_command(job_id: str, owner: str, cfg: JobsConfig) -> tuple[list[str], dict[str, str]]:
    """The child's argv and environment: no secret in the argv."""
    env = {**os.environ, "NPISTACK_NUCC_CSV": cfg.nucc_csv, STORE_URL_ENV: cfg.store_url}
    args = [sys.executable, "-m", "npistack.worker.jobs", job_id, "--owner", owner]
    args += ["--jobs-dir", str(cfg.jobs_dir)]
    args += ["--workers", str(cfg.workers), "--lease-s", str(cfg.lease_s)]
    return args, env


class JobRunner:
    """A thread that runs queued jobs one at a time, each in a child process."""

    def __init__(self, config: JobsConfig, on_failed: Callable[[Job], None] | None = None) -> None:
        self.config = config
        self.on_failed = on_failed
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._db: JobsDb | None = None
        self._next_purge = 0.0  # monotonic time of the next purge (the first: at once)

    def start(self) -> None:
        private_dir(self.config.jobs_dir, tighten=False)
        self._db = JobsDb(self.config.store_url)
        self._thread = threading.Thread(target=self._loop, name="npistack-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._db is not None:
            self._db.close()
            self._db = None

    def _loop(self) -> None:
        assert self._db is not None
        while not self._stop.is_set():
            self._purge(self._db)
            try:
                job = self._db.claim(self.owner, self.config.lease_s, self.config.max_running_per_key)
                if job is not None:
                    self._run(self._db, job)
                    after = self._db.get(job.id)
                    if after is not None and after.status == "failed" and self.on_failed is not None:
                        self.on_failed(after)
                    continue
            except Exception:  # a database hiccup must not end the runner
                log.exception("enrichment job runner error")
            self._wake.wait(self.config.poll_s)
            self._wake.clear()

    def _purge(self, db: JobsDb) -> None:
        cfg = self.config
        if cfg.retention_days <= 0 or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + cfg.purge_every_s
        try:
            done = purge_jobs(db, cfg.jobs_dir, older_than_days=cfg.retention_days)
        except Exception:  # a purge that fails must not end the runner; it tries again later
            log.exception("enrichment job purge error")
            return
        if done.jobs or done.leftovers:
            log.info(
                "purged %d enrichment jobs finished over %g days ago and %d leftovers (%d bytes)",
                done.jobs,
                cfg.retention_days,
                done.leftovers,
                done.bytes,
            )
        for problem in done.failed[:5]:
            log.warning("cannot purge enrichment job %s", problem)

    def _run(self, db: JobsDb, job: Job) -> None:
        cfg = self.config
        if job.attempts > MAX_ATTEMPTS:
            db.finish(job.id, self.owner, status="failed", error=f"gave up after {MAX_ATTEMPTS} attempts")
            return
        folder = job_dir(cfg.jobs_dir, job.id)
        if not (folder / INPUT).is_file():
            db.finish(job.id, self.owner, status="failed", error="the uploaded file is gone")
            return
        args, env = child_command(job.id, self.owner, cfg)
        with open_private(folder / LOG, "ab") as logf:
            proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        rc: int | None = None
        while rc is None:
            try:
                rc = proc.wait(timeout=min(2.0, cfg.lease_s / 3))
            except subprocess.TimeoutExpired:
                pass
            else:
                break
            if self._stop.is_set() or not db.renew(job.id, self.owner, cfg.lease_s):
                _end(proc)
                if self._stop.is_set():
                    db.requeue(job.id, self.owner)
                return
        after = db.get(job.id)
        if after is not None and after.status == "running" and after.lease_owner == self.owner:
            # The child ended without recording an outcome (killed, out of memory...).
            tail = _tail(folder / LOG)
            db.finish(
                job.id, self.owner, status="failed", error=f"the enrichment process exited with {rc}: {tail}"
            )


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][:500] if lines else "no output"
