"""What the command groups share: the consoles (tables that fit the terminal), the progress bars,
the ``--database-url`` option, the settings and the store they open.

Imported by every command module in ``npistack.cli``; it imports none of them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from npistack.settings import Settings, get_settings


class CliConsole(Console):
    """The command line's console: every table it prints fits the terminal without cutting a value.

    Rich cuts a cell that does not fit with "…" (`succeed…` at 80 columns). Here every column folds
    instead (the whole value, on several lines); a table wider than the terminal drops its outer
    border and vertical lines; and when there is room, the columns whose words are short (statuses,
    ids, counts, dates) keep their full width, the long values (file names, URLs, descriptions) fold.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for obj in objects:
            if isinstance(obj, Table):
                fit_table(obj, self)
        super().print(*objects, **kwargs)


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(cell).plain if isinstance(cell, str) else ""


def fit_table(table: Table, console: Console) -> None:
    """Make ``table`` fit ``console``'s width without an ellipsis (see ``CliConsole``)."""
    from rich import box
    from rich.measure import Measurement

    for column in table.columns:
        column.overflow = "fold"
    natural = Measurement.get(console, console.options.update(max_width=100_000), table).maximum
    if natural <= console.width:
        return
    table.box, table.show_edge = box.SIMPLE_HEAD, False
    overhead = 3 * len(table.columns) + 1  # a space each side of a cell, one between columns (+2 spare)
    mins = []
    for column in table.columns:
        longest = max((len(w) for cell in column._cells for w in _plain(cell).split()), default=0)
        mins.append(longest if longest <= 16 else 0)
    floor = 8 * mins.count(0)  # the long columns keep 8 characters each at least
    if console.width - overhead - sum(mins) < floor:
        return
    for i, column in enumerate(table.columns):  # then the headers' words, while there is room
        if not mins[i]:
            continue
        head = max((len(w) for w in _plain(column.header).split()), default=0)
        if head > mins[i] and console.width - overhead - sum(mins) - (head - mins[i]) >= floor:
            mins[i] = head
    for column, least in zip(table.columns, mins, strict=True):
        if least:
            column.min_width = max(column.min_width or 0, least)


out = CliConsole(highlight=False)
err = CliConsole(stderr=True, highlight=False)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "-d",
        help="Store URL (sqlite:///PATH or postgresql://...); "
        "default: NPISTACK_DATABASE_URL or the SQLite file in NPISTACK_DATA_DIR.",
    ),
]


def current_settings() -> Settings:
    """The settings (environment and .env), as every command reads them."""
    return get_settings()


def npi_argument(npi: str) -> str:
    """An NPI given on the command line, stripped (a ``NpistackError``, one line, when it is not one)."""
    from npistack.errors import NpistackError
    from npistack.nppes.npi import npi_problem

    npi = npi.strip()
    problem = npi_problem(npi)
    if problem:
        raise NpistackError(problem)
    return npi


def open_store_for(database_url: str | None, *, read_only: bool = False) -> Any:
    """The store at ``database_url`` (``--database-url``), or the default one of the settings."""
    from npistack.storage import open_store

    return open_store(database_url or current_settings().resolved_database_url(), read_only=read_only)


class RowsPerSecond(ProgressColumn):
    """Rows done and rows/s, from the task's ``rows`` field."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.elapsed or 0.0
        rate = rows / elapsed if elapsed > 0 else 0.0
        return Text(f"{rows:>11,} rows  {rate:>9,.0f} rows/s", style="cyan")


def row_progress() -> Progress:
    """Progress bars on stderr, one per task, with rows and rows/s (ingest, synth, enrich)."""
    return Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
