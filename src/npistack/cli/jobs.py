"""CLI commands of API enrichment jobs: ``jobs purge``."""

from __future__ import annotations

from typing import Annotated

import typer

from npistack.cli.common import DatabaseOpt, current_settings, out
from npistack.errors import NpistackError

jobs_app = typer.Typer(
    help="Enrichment jobs of the API (POST /api/v1/jobs/enrich): purge finished ones.",
    no_args_is_help=True,
)


def _size(n: int) -> str:
    """1,234 bytes, 5.6 MB, 7.8 GB."""
    if n < 1000:
        return f"{n:,} bytes"
    units, i, value = ("KB", "MB", "GB"), 0, n / 1000
    while value >= 1000 and i < len(units) - 1:
        value, i = value / 1000, i + 1
    return f"{value:,.1f} {units[i]}"


@jobs_app.command("purge")
def purge(
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            min=0,
            help="Delete jobs that finished more than DAYS ago (0: every finished job); "
            "default: NPISTACK_JOBS_RETENTION_DAYS.",
            metavar="DAYS",
        ),
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Delete finished enrichment jobs past their retention, with their files.

    A job that finished more than DAYS ago loses its upload, result, review, errors and log files.

    Queued and running jobs are kept; what a crash left behind goes once untouched for a day.

    The server also purges by itself every hour (NPISTACK_JOBS_RETENTION_DAYS > 0).
    """
    from npistack.services.jobs import jobs_dir_of, purge_jobs
    from npistack.storage.jobs import JobsDb

    settings = current_settings()
    days = older_than if older_than is not None else settings.jobs_retention_days
    if older_than is None and days <= 0:
        raise NpistackError(
            "NPISTACK_JOBS_RETENTION_DAYS is 0 (finished jobs are kept): say which to delete with --older-than DAYS"
        )
    url = database_url or settings.resolved_database_url()
    jobs_dir = jobs_dir_of(settings, url)
    db = JobsDb(url)
    try:
        done = purge_jobs(db, jobs_dir, older_than_days=days)
    finally:
        db.close()
    leftovers = f" and {done.leftovers} leftovers of interrupted uploads" if done.leftovers else ""
    out.print(
        f"deleted {done.jobs:,} enrichment jobs that finished over {days:g} days ago{leftovers}"
        f" ({_size(done.bytes)} of files in {jobs_dir})",
        markup=False,
        soft_wrap=True,
    )
    if done.failed:
        first = done.failed[0]
        raise NpistackError(
            f"{len(done.failed)} finished jobs could not be deleted (their records are kept; run the purge "
            f"again once fixed): {first}"
        )
