"""Runs one enrichment job: the child process ``python -m npistack.worker.jobs`` that the API
server's ``JobRunner`` (``services.jobs``) starts for each job it claims.

The child reads the job's upload, matches and enriches it (``services.enrich``, with its own
worker processes), writes its progress into the job's record and records the outcome. It stops by
itself when its server died (its parent changed) or its lease was taken. It gets the store URL from
its environment (``NPISTACK_DATABASE_URL``), never from its command line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from npistack.errors import NpistackError
from npistack.services.jobs import (
    ERRORS,
    INPUT,
    LEASE_S,
    RESULT,
    REVIEW,
    STORE_URL_ENV,
    job_dir,
)
from npistack.storage.jobs import JobsDb


def run_job(job_id: str, owner: str, *, store_url: str, jobs_dir: Path, workers: int, lease_s: float) -> int:
    """Run one claimed job to its end and record the outcome; the exit code of the child."""
    from npistack.services.enrich import EnrichCancelled, EnrichProgress, enrich_file

    db = JobsDb(store_url)
    try:
        job = db.get(job_id)
        if job is None or job.lease_owner != owner or job.status != "running":
            return 3
        folder = job_dir(jobs_dir, job_id)
        parent = os.getppid()
        lost = False
        last = 0.0

        def progress(p: EnrichProgress) -> None:
            nonlocal lost, last
            if time.monotonic() - last >= 0.5:
                last = time.monotonic()
                ok = db.progress(
                    job_id, owner, rows_done=p.rows_done, rows_per_s=p.rows_per_s, counts=p.counts
                )
                lost = lost or not ok

        def should_stop() -> bool:
            return lost or os.getppid() != parent

        options = job.options
        try:
            summary = enrich_file(
                folder / INPUT,
                folder / RESULT,
                store_url=store_url,
                review_path=folder / REVIEW,
                errors_path=folder / ERRORS,
                overrides=options.get("columns") or {},
                threshold=float(options.get("threshold") or 0.9),
                workers=workers,
                rows_total=job.rows_total,
                progress=progress,
                should_stop=should_stop,
            )
        except EnrichCancelled:
            return 3
        except NpistackError as e:
            db.finish(job_id, owner, status="failed", error=str(e))
            return 0
        except Exception as e:
            db.finish(job_id, owner, status="failed", error=f"internal error: {type(e).__name__}: {e}")
            raise
        db.finish(
            job_id,
            owner,
            status="succeeded",
            rows_done=summary.rows,
            rows_per_s=round(summary.rows_per_s, 1),
            counts=summary.counts,
        )
        return 0
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m npistack.worker.jobs", description="Run one claimed enrichment job."
    )
    p.add_argument("job_id")
    p.add_argument("--owner", required=True)
    p.add_argument(
        "--store-url",
        default=None,
        help=f"The store URL (default: ${STORE_URL_ENV}; prefer it: a command line is visible to every user).",
    )
    p.add_argument("--jobs-dir", required=True, type=Path)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--lease-s", type=float, default=LEASE_S)
    a = p.parse_args(argv)
    store_url = a.store_url or os.environ.get(STORE_URL_ENV, "")
    if not store_url:
        p.error(f"no store URL: set {STORE_URL_ENV} (or pass --store-url)")
    os.umask(0o077)  # every file the job writes (results, review, errors) is its owner's only
    # A runner stopping its server terminates us: unwind (the partial files are removed).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.suppress(KeyboardInterrupt):
        return run_job(
            a.job_id,
            a.owner,
            store_url=store_url,
            jobs_dir=a.jobs_dir,
            workers=a.workers,
            lease_s=a.lease_s,
        )
    return 130


if __name__ == "__main__":
    sys.exit(main())
