"""``npistack sync``: bring a store up to date from the CMS download page.

See docs/sync.md. The decisions live in ``npistack.ingest.source`` (plan, download) and
``npistack.ingest.sync`` (the round); this module draws progress, prints lines and applies each file
with ``npistack.cli.ingest.run_ingest``.
"""

from __future__ import annotations

import signal
import threading
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote, urlparse

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from npistack.cli.common import DatabaseOpt, current_settings, err, open_store_for, out
from npistack.cli.ingest import print_summary, run_ingest
from npistack.errors import NpistackError

if TYPE_CHECKING:
    from npistack.ingest.source import RemoteFile
    from npistack.ingest.sync import SyncReport

commands = typer.Typer()


class _Bars:
    """Byte progress bars for downloads; closed before each apply, which draws its own bars."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def update(self, remote: RemoteFile, done: int, total: int | None) -> None:
        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err,
            )
            self.progress.start()
        if remote.name not in self.tasks:
            self.tasks[remote.name] = self.progress.add_task(remote.name, total=total)
        self.progress.update(self.tasks[remote.name], completed=done, total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress = None
        self.tasks.clear()


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        return Path(unquote(urlparse(url).path)[1:])
    return None if "://" in url else Path(url)


class _StoreState:
    """The store's dates, read with a short-lived read-only connection each time (never held open
    while a load runs). A SQLite store that does not exist yet has no data."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _read(self, what: str, *args: str) -> str | None:
        path = _sqlite_path(self.url)
        if path is not None and not path.exists():
            return None
        store = open_store_for(self.url, read_only=True)
        try:
            value: str | None = getattr(store, what)(*args)
            return value
        finally:
            store.close()

    def data_release(self) -> str | None:
        return self._read("data_release")

    def get_meta(self, key: str) -> str | None:
        return self._read("get_meta", key)


def _log(line: str) -> None:
    out.print(line, markup=False)


def _error_line(e: BaseException) -> None:
    text = str(e) if isinstance(e, NpistackError) else f"{type(e).__name__}: {e}"
    err.print(Text.assemble(("error: ", "red"), text), soft_wrap=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@commands.command()
def sync(
    database_url: DatabaseOpt = None,
    page_url: Annotated[
        str | None,
        typer.Option("--page-url", help="The CMS download page to read (default: NPISTACK_CMS_FILES_URL)."),
    ] = None,
    download_dir: Annotated[
        Path | None,
        typer.Option(
            "--download-dir",
            help="Where bundles are downloaded and kept (default: NPISTACK_DOWNLOAD_DIR or DATA_DIR/downloads).",
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--every",
            metavar="INTERVAL",
            help="Keep running: sync now, then every INTERVAL (45s, 30m, 12h, 7d); Ctrl-C stops.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what would be downloaded and applied, and why; change nothing."
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", help="Transform processes when applying (0: one per core).")
    ] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help=(
                "Load even when the ingest guard refuses (a monthly file that removes many providers); "
                "as `ingest --force`."
            ),
        ),
    ] = False,
) -> None:
    """Download the CMS files the store lacks (monthly, weekly, deactivation report) and apply them in order."""
    # Here, not at the top: HTTP client imports cost every other command ~50 ms of start-up.
    from npistack.ingest.sync import FetchLimits, parse_interval, run_every, sync_once

    settings = current_settings()
    url = database_url or settings.resolved_database_url()
    page = page_url or settings.cms_files_url
    folder = download_dir or settings.resolved_download_dir()
    interval = None
    if every is not None:
        try:
            interval = parse_interval(every)
        except ValueError as e:
            raise NpistackError(f"--every: {e}") from None
        if dry_run:
            raise NpistackError("--dry-run and --every do not go together (a dry run changes nothing)")
    if not dry_run:
        open_store_for(url).close()  # create the store (and fail early, in one line, if it cannot be opened)
    state = _StoreState(url)

    def one_round() -> SyncReport:
        bars = _Bars()

        def apply(path: Path) -> Any:
            bars.close()
            summary = run_ingest(path, url, workers=workers, force=force)
            print_summary(summary)
            return summary

        try:
            report = sync_once(
                state,
                page_url=page,
                download_dir=folder,
                apply=apply,
                progress=bars.update,
                log=_log,
                dry_run=dry_run,
                timeout_s=settings.download_timeout_s,
                limits=FetchLimits(settings.sync_max_page_bytes, settings.sync_max_file_bytes),
            )
        finally:
            bars.close()
        if report.applied:
            out.print(
                f"[green]synced[/]: applied {len(report.applied)} file{'s' if len(report.applied) > 1 else ''}; "
                f"data through {state.data_release() or 'unknown'}"
            )
        report.raise_for_error()
        return report

    if interval is None:
        one_round()
        return

    def next_line() -> None:
        at = datetime.now() + timedelta(seconds=interval)
        out.print(f"[dim]next sync at {at:%Y-%m-%d %H:%M:%S}[/]")

    def scheduled() -> None:
        one_round()
        next_line()

    def on_error(e: BaseException) -> None:
        _error_line(e)
        next_line()

    stop = threading.Event()
    # Ctrl-C and a service stop end the loop, installed before the first line says so. SIGINT
    # explicitly: a process started with SIGINT ignored (a background job of a non-interactive
    # shell, some service managers and CI runners) inherits SIG_IGN, and Python then installs no
    # KeyboardInterrupt handler: "Ctrl-C stops" would be false (issue 14, item 18).
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        out.print(f"syncing every {every}; Ctrl-C stops")
        run_every(interval, scheduled, stop=stop, on_error=on_error)
    except KeyboardInterrupt:
        # The loop has ended: nothing waits on ``stop`` any more. Not ``stop.set()``: the interrupt
        # may have come inside ``stop.wait()`` with the event's lock still held (see cli/webhooks.py).
        err.print("sync stopped (a download in progress resumes on the next run)")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
