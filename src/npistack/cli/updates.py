"""CLI commands over provider history and the change feed: ``npistack history`` and
``npistack changes``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from npistack.cli.common import DatabaseOpt, npi_argument, open_store_for, out
from npistack.errors import NpistackError

commands = typer.Typer()


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        text = orjson.dumps(value).decode()
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


@commands.command()
def history(
    npi: Annotated[str, typer.Argument(help="The 10-digit NPI.")],
    database_url: DatabaseOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the versions as JSON (full records).")
    ] = False,
) -> None:
    """Every version of a provider: when it was in force, the release it came from, what changed."""
    from npistack.services.history import provider_history

    npi = npi_argument(npi)
    store = open_store_for(database_url, read_only=True)
    try:
        found = provider_history(store, npi)
    finally:
        store.close()
    if found is None:
        raise NpistackError(f"NPI {npi} is not in the store")
    if as_json:
        sys.stdout.write(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    for v in found["versions"]:
        rec = v["record"]
        rel = v["release"]
        title = (
            f"version {v['version']} · {v['changeType']} · in force {v['validFrom'] or '?'} → "
            f"{v['validTo'] or 'now'} · {rel.get('kind') or ''} release {rel.get('date') or '?'}"
        )
        out.print(f"[bold]{title}[/]")
        out.print(f"  {rec['name']['full'] or '(no name)'} · status {rec['status']}")
        if v["changes"]:
            t = Table(show_header=True, box=None, padding=(0, 2))
            for col in ("field", "old", "new"):
                t.add_column(col)
            for c in v["changes"]:
                t.add_row(c["field"], _cell(c["old"]), _cell(c["new"]))
            out.print(t)


@commands.command()
def changes(
    database_url: DatabaseOpt = None,
    since: Annotated[
        str | None, typer.Option(help="A cursor printed by an earlier run: changes after it.")
    ] = None,
    change_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type", "-t", help="created, updated, deactivated, reactivated, removed (repeatable)."
        ),
    ] = None,
    npi: Annotated[list[str] | None, typer.Option(help="Only these NPIs (repeatable).")] = None,
    state: Annotated[
        list[str] | None, typer.Option(help="Practice state before or after (repeatable).")
    ] = None,
    taxonomy: Annotated[
        list[str] | None, typer.Option(help="Taxonomy code before or after (repeatable).")
    ] = None,
    entity_type: Annotated[list[str] | None, typer.Option(help="1 (individual) or 2 (organization).")] = None,
    limit: Annotated[int, typer.Option(help="How many changes to print.", min=1)] = 50,
    ndjson: Annotated[
        bool, typer.Option("--ndjson", help="Print one event (with its record) per line.")
    ] = False,
    stats: Annotated[
        bool, typer.Option("--stats", help="Print counts per release and type instead.")
    ] = False,
) -> None:
    """The change feed: what each load changed, oldest first, with a cursor to continue from."""
    from npistack.services.changes import (
        ChangeFilter,
        FilterError,
        decode_cursor,
        encode_cursor,
        events_for,
    )
    from npistack.storage.changes import change_stats, last_change_id, read_changes

    try:
        flt = ChangeFilter.parse(
            types=change_type or [],
            npis=npi or [],
            states=state or [],
            taxonomies=taxonomy or [],
            entity_types=entity_type or [],
        )
        after = decode_cursor(since) if since else 0
    except FilterError as e:
        raise NpistackError(str(e)) from None
    store = open_store_for(database_url, read_only=True)
    try:
        if stats:
            _print_stats(change_stats(store), encode_cursor(last_change_id(store)))
            return
        rows = read_changes(store, after=after, flt=flt, limit=limit)
        if ndjson:
            events = events_for(store, rows)
            for r in rows:
                sys.stdout.write(orjson.dumps(events[r.id]).decode() + "\n")
            return
    finally:
        store.close()
    t = Table(title="changes")
    for col in ("#", "release", "NPI", "change", "fields"):
        t.add_column(col, justify="right" if col == "#" else "left")
    for r in rows:
        fields = ", ".join(r.fields[:6]) + (f" (+{len(r.fields) - 6})" if len(r.fields) > 6 else "")
        t.add_row(
            str(r.id), f"{r.release_kind} {r.release_date or ''}", f"{r.npi:010d}", r.change_type, fields
        )
    out.print(t)
    cursor = encode_cursor(rows[-1].id) if rows else (since or encode_cursor(0))
    out.print(f"next: npistack changes --since {cursor}")


def _print_stats(releases: list[dict[str, Any]], latest: str) -> None:
    kinds = ("created", "updated", "deactivated", "reactivated", "removed")
    t = Table(title="changes per release")
    for col in ("load", "release", *kinds, "total"):
        t.add_column(col, justify="left" if col == "release" else "right")
    for rel in releases:
        counts = rel["counts"]
        t.add_row(
            str(rel["loadId"]),
            f"{rel['release']['kind']} {rel['release']['date'] or ''}",
            *(f"{counts.get(k, 0):,}" for k in kinds),
            f"{rel['total']:,}",
        )
    out.print(t)
    out.print(f"latest cursor: {latest}")
