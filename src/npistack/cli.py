"""The ``npistack`` command line: a thin layer over ingest, storage and services.

Every error is one line on stderr (``error: ...``) and a non-zero exit code, never a traceback
(set ``NPISTACK_DEBUG=1`` to see one).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

if sys.argv[1:2] == ["ingest"] and "--help" not in sys.argv:
    # The worker processes' fork server takes ~0.2 s to start: under way now, it is ready when the
    # command line's own imports and the store are (``npistack.ingest.load.start_fork_server``).
    # Only a head start: where it cannot start, ingest says why when it needs it.
    from npistack.ingest.load import start_fork_server

    os.umask(os.umask(0o077) | 0o077)  # before the fork server starts (main's private_files, earlier)
    with contextlib.suppress(OSError, ValueError):
        start_fork_server()

import orjson
import typer
from pydantic import ValidationError
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

from npistack import __version__
from npistack.errors import NpistackError
from npistack.redact import redact_text
from npistack.settings import Settings, get_settings

app = typer.Typer(
    name="npistack",
    help="npistack: a self-hosted healthcare provider data platform over the CMS NPPES files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def _settings() -> Settings:
    return get_settings()


def _store(database_url: str | None, *, read_only: bool = False) -> Any:
    from npistack.storage import open_store

    return open_store(database_url or _settings().resolved_database_url(), read_only=read_only)


class RowsPerSecond(ProgressColumn):
    """Rows done and rows/s, from the task's ``rows`` field."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.elapsed or 0.0
        rate = rows / elapsed if elapsed > 0 else 0.0
        return Text(f"{rows:>11,} rows  {rate:>9,.0f} rows/s", style="cyan")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _print_version(value: bool) -> None:
    # Eager: runs while the options are parsed, before click asks for a command.
    if value:
        out.print(f"npistack {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    pass


# -- ingest ------------------------------------------------------------------------------------


def run_ingest(
    path: Path, database_url: str | None, *, workers: int, force: bool, quiet: bool = False
) -> Any:
    from npistack.ingest.load import ingest
    from npistack.nppes.deactivation import is_deactivation_report
    from npistack.nppes.reader import open_bundle

    settings = _settings()
    # The input first: a path that is not there or not a bundle creates no store.
    sizes: dict[str, int] = (
        {} if is_deactivation_report(path) else {k: f.size for k, f in open_bundle(path).files.items()}
    )
    store = _store(database_url)
    try:
        with _progress() as progress:
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


def _print_summary(summary: Any) -> None:
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


@app.command()
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
    summary = run_ingest(path, database_url, workers=workers, force=force)
    _print_summary(summary)


# -- synth -------------------------------------------------------------------------------------


@app.command()
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
    with _progress() as progress:
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
    from npistack.nppes.synth_updates import write_month

    with _progress() as progress:
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


# -- reads -------------------------------------------------------------------------------------


@app.command()
def show(
    npi: Annotated[str, typer.Argument(help="The 10-digit NPI.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Print one provider document as JSON."""
    from npistack.nppes.npi import npi_problem

    npi = npi.strip()
    problem = npi_problem(npi)
    if problem:
        raise NpistackError(problem)
    from npistack.services.providers import get_provider

    store = _store(database_url, read_only=True)
    try:
        doc = get_provider(store, npi)
    finally:
        store.close()
    if doc is None:
        raise NpistackError(f"NPI {npi} is not in the store")
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command()
def stats(
    database_url: DatabaseOpt = None,
    top: Annotated[int, typer.Option(help="How many specialties and states to list.")] = 10,
) -> None:
    """Counts by entity type and status, top specialties and states, and the last loads."""
    from npistack.nppes.taxonomy import load_nucc

    store = _store(database_url, read_only=True)
    try:
        s = store.stats(top=top)
        loads = store.loads(limit=5)
    finally:
        store.close()
    nucc = load_nucc(_settings().nucc_csv or None)
    t = Table(title="providers")
    for c in ("entity type", "status", "count"):
        t.add_column(c, justify="right" if c == "count" else "left")
    names = {1: "individual (NPI-1)", 2: "organization (NPI-2)", None: "deactivated stub"}
    total = 0
    for r in s["by_type"]:
        t.add_row(names.get(r["entity_type"], str(r["entity_type"])), r["status"], f"{r['count']:,}")
        total += r["count"]
    t.add_row("[bold]all[/]", "", f"[bold]{total:,}[/]")
    out.print(t)
    t = Table(title="top primary specialties")
    t.add_column("code")
    t.add_column("specialty")
    t.add_column("providers", justify="right")
    for r in s["top_specialties"]:
        tx = nucc.get(r["code"])
        t.add_row(r["code"], tx.display_name if tx else "(not in NUCC)", f"{r['count']:,}")
    out.print(t)
    t = Table(title="top states (primary practice location)")
    t.add_column("state")
    t.add_column("providers", justify="right")
    for r in s["top_states"]:
        t.add_row(r["state"], f"{r['count']:,}")
    out.print(t)
    _print_loads(loads)


def _print_loads(loads: list[Any]) -> None:
    t = Table(title="last loads")
    for c in ("#", "status", "release", "read", "loaded", "quarantined", "started", "source"):
        t.add_column(c, justify="right" if c in ("#", "read", "loaded", "quarantined") else "left")
    for ld in loads:
        status = ld.status + (" (current)" if ld.is_current else "")
        t.add_row(
            str(ld.id),
            status,
            ld.release_date or "",
            f"{ld.rows_read:,}",
            f"{ld.rows_loaded:,}",
            f"{ld.rows_quarantined:,}",
            ld.started_at[:16].replace("T", " "),  # to the minute: the table fits 80 columns
            Path(ld.source).name,
        )
    out.print(t)


@app.command()
def loads(
    database_url: DatabaseOpt = None,
    limit: Annotated[int, typer.Option(help="How many loads to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (files, checksums, timings).")] = False,
) -> None:
    """The load history: every load with files, checksums, counts, timings and status."""
    store = _store(database_url, read_only=True)
    try:
        records = store.loads(limit=limit)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(
            orjson.dumps([r.as_dict() for r in records], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        _print_loads(records)


@app.command()
def quarantine(
    load_id: Annotated[
        int | None, typer.Argument(help="Load number (default: the latest load that ran).")
    ] = None,
    database_url: DatabaseOpt = None,
    limit: Annotated[int, typer.Option(help="How many rows to print.")] = 50,
) -> None:
    """Rows a load could not use: file, line, reason and the raw text."""
    store = _store(database_url, read_only=True)
    try:
        if load_id is None:
            ran = [ld for ld in store.loads(limit=50) if ld.status != "unchanged"]
            if not ran:
                raise NpistackError("no loads yet")
            load_id = ran[0].id
        rows = store.quarantined(load_id, limit=limit)
    finally:
        store.close()
    if not rows:
        out.print(f"load #{load_id} quarantined nothing")
        return
    for r in rows:
        out.print(f"[bold]{r['file']}:{r['line']}[/] {r['reason']}")
        out.print(f"  {r['raw'][:300]}", markup=False)


@app.command("settings")
def show_settings() -> None:
    """Every setting with its current value and what it does."""
    s = _settings()
    t = Table(title="settings (environment variables, prefix NPISTACK_)")
    for c in ("variable", "value", "description"):
        t.add_column(c)
    for name, f in Settings.model_fields.items():
        t.add_row(f"NPISTACK_{name.upper()}", _shown_setting(name, getattr(s, name)), f.description or "")
    out.print(t)


def _shown_setting(name: str, value: Any) -> str:
    """A setting's value as ``npistack settings`` prints it: tokens and secrets masked, the password
    of any URL (store, Redis, upstream) replaced by ``***``."""
    from npistack.redact import MASK, redact_text

    text = str(value)
    if text and any(word in name for word in ("token", "secret", "password")):
        return MASK
    return redact_text(text)


# -- demo --------------------------------------------------------------------------------------


@app.command()
def demo(
    rows: Annotated[int, typer.Option("--rows", "-n", help="Synthetic providers to generate.")] = 50_000,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to put the demo bundle (default: NPISTACK_DATA_DIR/demo)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic bundle.")] = 7,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the API server at the end (Ctrl-C stops it).")
    ] = True,
    port: Annotated[int, typer.Option("--port", help="Port of the demo server.")] = 8000,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            "-d",
            help="Store to load the demo into; default: the default store (NPISTACK_DATABASE_URL or"
            " NPISTACK_DATA_DIR/npistack.db), which every other command uses. A store holding data the"
            " demo did not load is refused.",
        ),
    ] = None,
) -> None:
    """Synthesize providers, ingest them, show what the store answers, then serve the API with a key."""
    from npistack.cli_api import run_server
    from npistack.services.demo import run_demo

    settings = _settings()
    default_url = settings.resolved_database_url()
    run_demo(
        out,
        directory or (settings.data_dir / "demo"),
        rows=rows,
        seed=seed,
        ingest_fn=run_ingest,
        summary_fn=_print_summary,
        serve_fn=(lambda url: run_server(database_url=url, port=port, host="127.0.0.1")) if serve else None,
        port=port,
        database_url=database_url or default_url,
        default_url=default_url,
    )


from npistack import cli_api as _cli_api  # noqa: E402,F401  (registers serve, keys, plans)
from npistack import cli_enrich as _cli_enrich  # noqa: E402,F401  (registers enrich)
from npistack import cli_jobs as _cli_jobs  # noqa: E402,F401  (registers jobs purge)
from npistack import cli_match as _cli_match  # noqa: E402,F401  (registers match, match-eval)
from npistack import cli_sync as _cli_sync  # noqa: E402,F401  (registers sync)
from npistack import cli_updates as _cli_updates  # noqa: E402,F401  (registers history, changes)
from npistack import cli_webhooks as _cli_webhooks  # noqa: E402,F401  (registers webhooks, worker)


def private_files() -> None:
    """Every file and folder this process (and its children) creates is its user's only (umask 077,
    or stricter if the user's is): the store holds webhook secrets, the accounts database key hashes,
    enrich outputs and job folders customers' data. See docs/cli.md, "Files and permissions"."""
    os.umask(os.umask(0o077) | 0o077)


def settings_problem(e: ValidationError) -> str:
    """One line naming each bad setting by its variable: ``NPISTACK_API_PORT=0: Input should be ...``."""
    parts = []
    for item in e.errors():
        name = "_".join(str(p) for p in item.get("loc", ())).upper()
        value = redact_text(str(item.get("input", "")))
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"NPISTACK_{name}={value}: {message}" if name else message)
    return "invalid setting " + "; ".join(parts)


def main() -> None:
    """Console entry point: one clear line on error, never a traceback (unless NPISTACK_DEBUG)."""
    debug = bool(os.environ.get("NPISTACK_DEBUG"))
    started = time.perf_counter()
    private_files()
    try:
        app(standalone_mode=False, prog_name="npistack")
    except NpistackError as e:
        err.print(Text.assemble(("error: ", "red"), redact_text(str(e))), soft_wrap=True)
        if debug:
            raise
        sys.exit(1)
    except ValidationError as e:  # a setting out of range or malformed (the environment or .env)
        err.print(Text.assemble(("error: ", "red"), settings_problem(e)), soft_wrap=True)
        if debug:
            raise
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print(f"interrupted after {time.perf_counter() - started:.1f} s")
        sys.exit(130)
    except Exception as e:  # usage errors (click's, vendored or not) and the unexpected
        show = getattr(e, "show", None)
        if callable(show) and isinstance(getattr(e, "exit_code", None), int):
            show()
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        if debug:
            raise
        err.print(
            Text.assemble(
                ("internal error: ", "red"),
                redact_text(f"{type(e).__name__}: {e} (set NPISTACK_DEBUG=1 for a traceback)"),
            ),
            soft_wrap=True,
        )
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    # Run the imported module's main, not this __main__ copy's: commands registered by cli_api
    # live on npistack.cli.app.
    from npistack.cli import main as _main

    _main()
