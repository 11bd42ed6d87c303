"""``npistack ingest``: load a monthly file, a weekly bundle or a deactivation report, with progress
bars and a summary table. ``run_ingest`` and ``print_summary`` also serve ``sync`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from npistack.cli.common import DatabaseOpt, current_settings, open_store_for, out, row_progress

commands = typer.Typer()


def run_ingest(
    path: Path, database_url: str | None, *, workers: int, force: bool, quiet: bool = False
) -> Any:
    from npistack.ingest.load import ingest
    from npistack.nppes.deactivation import is_deactivation_report
    from npistack.nppes.reader import open_bundle

    settings = current_settings()
    # The input first: a path that is not there or not a bundle creates no store.
    sizes: dict[str, int] = (
        {} if is_deactivation_report(path) else {k: f.size for k, f in open_bundle(path).files.items()}
    )
    store = open_store_for(database_url)
    try:
        with row_progress() as progress:
            if quiet:
                progress.disable = True
            tasks: dict[str, Any] = {}

            def on_progress(kind: str, rows: int, nbytes: int) -> None:
                if kind not in tasks:
                    tasks[kind] = progress.add_task(kind, total=sizes.get(kind) or None, rows=0)
                task = tasks[kind]
                done_rows = progress.tasks[task].fields["rows"] + rows
                progress.update(task, advance=nbytes, rows=done_rows)

            try:
                summary = ingest(
                    path,
                    store,
                    workers=workers or settings.ingest_workers,
                    nucc_csv=settings.nucc_csv or None,
                    block_bytes=settings.ingest_block_bytes,
                    force=force,
                    progress=on_progress,
                )
            except BaseException:
                progress.live.transient = True  # a refused load: its error line alone, no bar
                raise
            for task in tasks.values():
                progress.update(task, completed=progress.tasks[task].total)
    except BaseException:
        store.remove_if_unused()  # a store this failed first attempt created: not left behind empty
        raise
    finally:
        store.close()
    return summary


def print_summary(summary: Any) -> None:
    if summary.status == "unchanged":
        out.print(f"[yellow]{summary.message}[/] (load #{summary.load_id})")
        return
    table = Table(title=f"load #{summary.load_id} · release {summary.release_date or 'unknown'}")
    for col in ("file", "layout", "read", "loaded", "quarantined", "seconds", "rows/s"):
        table.add_column(col, justify="left" if col in ("file", "layout") else "right")
    for f in summary.files:
        rate = f.rows_read / f.seconds if f.seconds else 0
        table.add_row(
            f.name,
            f.layout,
            f"{f.rows_read:,}",
            f"{f.rows_loaded:,}",
            f"{f.rows_quarantined:,}",
            f"{f.seconds:.1f}",
            f"{rate:,.0f}",
        )
    out.print(table)
    out.print(
        f"[green]loaded[/] {summary.rows_loaded:,} of {summary.rows_read:,} rows "
        f"({summary.rows_quarantined:,} quarantined) in {summary.seconds:.1f} s"
    )
    if summary.message:
        out.print(f"changes: {summary.message}")
    if summary.rows_quarantined:
        out.print(f"see them with: npistack quarantine {summary.load_id}")


@commands.command()
def ingest(
    path: Annotated[
        Path,
        typer.Argument(
            help="A CMS bundle (monthly or weekly: the zip, its extracted folder, or one data CSV)"
            " or a deactivation report (the zip or the .xlsx)."
        ),
    ],
    database_url: DatabaseOpt = None,
    workers: Annotated[int, typer.Option(help="Transform processes (0: one per core).")] = 0,
    force: Annotated[
        bool,
        typer.Option(
            help="Load even if the same content is already current, a monthly file older than the data,"
            " a weekly bundle after missing weeks, or a monthly file that would remove or quarantine"
            " more than NPISTACK_LOAD_MAX_REMOVED_SHARE / NPISTACK_LOAD_MAX_QUARANTINE_SHARE allow."
        ),
    ] = False,
) -> None:
    """Load a monthly full file, apply a weekly update bundle or a deactivation report, atomically.

    A weekly bundle or deactivation report is applied on top of the data (in release order); a new
    monthly file replaces it and records what changed (see `npistack changes`).
    """
    from npistack.ingest.pool import head_start

    head_start()  # the workers' fork server starts while the bundle and the store are opened
    summary = run_ingest(path, database_url, workers=workers, force=force)
    print_summary(summary)
