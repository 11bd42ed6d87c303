"""``npistack synth``: a synthetic NPPES bundle in CMS's format, or the month of updates after one
(``npistack.nppes.synth``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from npistack.cli.common import out, row_progress
from npistack.errors import NpistackError

commands = typer.Typer()


@commands.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the bundle into.")],
    rows: Annotated[int, typer.Option("--rows", "-n", help="npidata rows to write.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 0,
    folder: Annotated[bool, typer.Option("--folder", help="Write extracted CSVs instead of a zip.")] = False,
    variant: Annotated[str, typer.Option(help="Layout: current, pre2025 (gender) or 329.")] = "current",
    broken_rows: Annotated[int, typer.Option(help="Deliberately broken rows to include.")] = 0,
    updates_from: Annotated[
        Path | None,
        typer.Option(
            "--updates-from",
            help="Write updates instead: weekly bundles, a deactivation report and the month-end full file"
            " that follow this monthly bundle (zip or folder).",
        ),
    ] = None,
    weeks: Annotated[int, typer.Option(help="With --updates-from: weekly bundles to write.", min=1)] = 4,
    weekly_rows: Annotated[
        int, typer.Option(help="With --updates-from: npidata rows per weekly bundle.", min=1)
    ] = 1000,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="With --updates-from: write the deactivation report.")
    ] = True,
    full: Annotated[
        bool, typer.Option("--full/--no-full", help="With --updates-from: write the month-end full file.")
    ] = True,
) -> None:
    """Write a synthetic NPPES bundle in the exact CMS format, or (--updates-from) the weekly bundles,
    deactivation report and month-end full file that follow one."""
    from npistack.nppes.synth import write_bundle

    if updates_from is not None:
        _synth_updates(updates_from, out_dir, weeks, weekly_rows, seed, report, full)
        return
    if rows < 1:
        raise NpistackError("--rows must be at least 1")
    if variant not in ("current", "pre2025", "329"):
        raise NpistackError(f"unknown --variant {variant!r}: use current, pre2025 or 329")
    with row_progress() as progress:
        task = progress.add_task("synth", total=rows, rows=0)

        def tick(k: int) -> None:
            progress.update(task, advance=k, rows=progress.tasks[task].fields["rows"] + k)

        stats = write_bundle(
            out_dir, rows, seed, as_folder=folder, variant=variant, broken_rows=broken_rows, progress=tick
        )
        progress.update(task, completed=rows, rows=rows)
    out.print(
        f"wrote {stats.path} ({stats.providers:,} providers, {stats.pl_rows:,} secondary locations, "
        f"{stats.othername_rows:,} other names, {stats.endpoint_rows:,} endpoints)"
    )


def _synth_updates(
    base: Path, out_dir: Path, weeks: int, weekly_rows: int, seed: int, report: bool, full: bool
) -> None:
    from npistack.nppes.synth import write_month

    with row_progress() as progress:
        tasks: dict[str, Any] = {}

        def tick(stage: str, n: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage[:10], total=None, rows=0)
            progress.update(tasks[stage], rows=progress.tasks[tasks[stage]].fields["rows"] + n)

        try:
            month = write_month(
                base, out_dir, weeks=weeks, weekly_rows=weekly_rows, seed=seed, report=report, full=full,
                progress=tick,
            )  # fmt: skip
        except ValueError as e:
            raise NpistackError(str(e)) from None
    for w in month.weeklies:
        out.print(
            f"wrote {w.path} ({w.rows:,} rows: {w.created:,} new, {sum(w.updated.values()):,} updated, "
            f"{w.deactivated:,} deactivated, {w.reactivated:,} reactivated)"
        )
    if month.report:
        out.print(
            f"wrote {month.report} ({month.report_rows:,} deactivated NPIs, {month.report_extra:,} only in it)"
        )
    if month.full:
        out.print(f"wrote {month.full} ({month.full_rows:,} rows: the month-end full file)")
