"""Read-only commands: ``show``, ``stats``, ``loads``, ``quarantine`` (what the store holds) and
``settings`` (what the environment configures)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from npistack.cli.common import DatabaseOpt, current_settings, npi_argument, open_store_for, out
from npistack.errors import NpistackError
from npistack.settings import Settings

commands = typer.Typer()


@commands.command()
def show(
    npi: Annotated[str, typer.Argument(help="The 10-digit NPI.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Print one provider document as JSON."""
    from npistack.services.providers import get_provider

    npi = npi_argument(npi)

    store = open_store_for(database_url, read_only=True)
    try:
        doc = get_provider(store, npi)
    finally:
        store.close()
    if doc is None:
        raise NpistackError(f"NPI {npi} is not in the store")
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


@commands.command()
def stats(
    database_url: DatabaseOpt = None,
    top: Annotated[int, typer.Option(help="How many specialties and states to list.")] = 10,
) -> None:
    """Counts by entity type and status, top specialties and states, and the last loads."""
    from npistack.nppes.taxonomy import load_nucc

    store = open_store_for(database_url, read_only=True)
    try:
        s = store.stats(top=top)
        loads = store.loads(limit=5)
    finally:
        store.close()
    nucc = load_nucc(current_settings().nucc_csv or None)
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


@commands.command()
def loads(
    database_url: DatabaseOpt = None,
    limit: Annotated[int, typer.Option(help="How many loads to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (files, checksums, timings).")] = False,
) -> None:
    """The load history: every load with files, checksums, counts, timings and status."""
    store = open_store_for(database_url, read_only=True)
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


@commands.command()
def quarantine(
    load_id: Annotated[
        int | None, typer.Argument(help="Load number (default: the latest load that ran).")
    ] = None,
    database_url: DatabaseOpt = None,
    limit: Annotated[int, typer.Option(help="How many rows to print.")] = 50,
) -> None:
    """Rows a load could not use: file, line, reason and the raw text."""
    store = open_store_for(database_url, read_only=True)
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


@commands.command("settings")
def show_settings() -> None:
    """Every setting with its current value and what it does."""
    s = current_settings()
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
