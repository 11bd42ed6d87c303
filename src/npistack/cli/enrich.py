"""``npistack enrich``: match a CSV of providers to NPIs and write it back with NPPES data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from npistack.cli.common import DatabaseOpt, current_settings, out, row_progress
from npistack.errors import NpistackError

commands = typer.Typer()


@commands.command()
def enrich(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT.csv", help="The CSV to enrich (a header line first).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write every input row with the nppes_* columns.")
    ],
    review: Annotated[
        Path | None,
        typer.Option(help="Ambiguous rows with their candidates (default: out.csv -> out.review.csv)."),
    ] = None,
    errors: Annotated[
        Path | None,
        typer.Option(help="Rows that could not be read, with line and reason (default: out.errors.csv)."),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            "-c",
            metavar="FIELD=HEADER",
            help="FIELD=HEADER: read FIELD from that column instead of the detected one; FIELD= leaves it out"
            " (repeatable). Fields: npi, license_number, license_state, first_name, middle_name, last_name,"
            " name, organization_name, credential, specialty, address_1, address_2, city, state, postal_code,"
            " phone.",
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(help="Confidence a match needs (0 to 1]; below it a row is ambiguous or no_match."),
    ] = 0.9,
    workers: Annotated[int, typer.Option(help="Matching processes (0: in this process).", min=0)] = 2,
    batch_size: Annotated[int, typer.Option(help="Rows per matching batch.", min=1)] = 500,
    database_url: DatabaseOpt = None,
) -> None:
    """Match each row of a CSV (a CRM export, a roster) to an NPI and add NPPES data.

    Columns are found by their header names (NPI, First Name, Surname, Provider Name, Practice Name,
    License #, Address, Zip, Phone...). Every input row is written back, in order, followed by
    nppes_match_status (matched, ambiguous, no_match, error), nppes_match_confidence, nppes_npi and
    the enriched fields. Ambiguous rows also go to the review file, unreadable rows (with their line
    number) to the errors file. See docs/enrich.md.
    """
    from npistack.services.enrich import (
        EnrichProgress,
        default_side_paths,
        enrich_file,
        inspect_csv,
        parse_overrides,
    )

    if not 0 < threshold <= 1:
        raise NpistackError(f"--threshold {threshold}: use a number above 0 and at most 1")
    overrides = parse_overrides(column or [])
    if not input_path.is_file():
        raise NpistackError(f"{input_path}: no such file")
    default_review, default_errors = default_side_paths(output)
    review = review or default_review
    errors = errors or default_errors
    for path in (output, review, errors):
        if not path.parent.is_dir():
            raise NpistackError(f"{path}: the folder {path.parent} does not exist (create it first)")
    store_url = database_url or current_settings().resolved_database_url()
    _check_store(store_url)
    info = inspect_csv(input_path, overrides)
    paths = [p.resolve() for p in (input_path, output, review, errors)]
    if len(set(paths)) < 4:
        raise NpistackError(f"{output}: the output would overwrite the input (or the review/errors file)")
    _print_columns(input_path, info)
    with row_progress() as progress:
        task = progress.add_task("enrich", total=info.rows or None, rows=0)

        def tick(p: EnrichProgress) -> None:
            progress.update(task, completed=p.rows_done, rows=p.rows_done)

        summary = enrich_file(
            input_path,
            output,
            store_url=store_url,
            review_path=review,
            errors_path=errors,
            overrides=overrides,
            threshold=threshold,
            workers=workers,
            batch_size=batch_size,
            rows_total=info.rows,
            progress=tick,
        )
    c = summary.counts
    out.print(
        f"[green]enriched[/] {summary.rows:,} rows in {summary.seconds:.1f} s "
        f"({summary.rows_per_s:,.0f} rows/s): {c['matched']:,} matched, {c['ambiguous']:,} ambiguous, "
        f"{c['no_match']:,} no match, {c['error']:,} unreadable",
        soft_wrap=True,
    )
    out.print(f"wrote {output}", soft_wrap=True)
    out.print(f"review: {review} ({c['ambiguous']:,} ambiguous rows with their candidates)", soft_wrap=True)
    out.print(f"errors: {errors} ({c['error']:,} rows)", soft_wrap=True)


def _check_store(url: str) -> None:
    """A clear error for a store that is not there, before any worker starts."""
    from npistack.storage import open_store

    store = open_store(url, read_only=True)
    try:
        if store.count_providers() == 0:
            raise NpistackError("the store has no providers: load NPPES data first (npistack ingest)")
    finally:
        store.close()


def _print_columns(path: Path, info: Any) -> None:
    out.print(f"{path}: {info.format.label}, {info.rows:,} rows", markup=False)
    t = Table("field", "column", box=None, padding=(0, 2))
    overridden = info.columns.overridden
    for f, header in info.columns.as_dict().items():
        t.add_row(f, header + (" (--column)" if f in overridden else ""))
    out.print(t)
    unused = info.columns.unused()
    if unused:
        shown = ", ".join(unused[:20]) + (f" and {len(unused) - 20} more" if len(unused) > 20 else "")
        out.print(f"not used: {shown}", markup=False, soft_wrap=True)
