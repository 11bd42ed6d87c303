"""``npistack demo``: synthesize, ingest, query and serve, in one command (``npistack.services.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from npistack.cli.common import current_settings, out
from npistack.cli.ingest import print_summary, run_ingest

commands = typer.Typer()


@commands.command()
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
    from npistack.cli.serve import run_server
    from npistack.services.demo import run_demo

    settings = current_settings()
    default_url = settings.resolved_database_url()
    run_demo(
        out,
        directory or (settings.data_dir / "demo"),
        rows=rows,
        seed=seed,
        ingest_fn=run_ingest,
        summary_fn=print_summary,
        serve_fn=(lambda url: run_server(database_url=url, port=port, host="127.0.0.1")) if serve else None,
        port=port,
        database_url=database_url or default_url,
        default_url=default_url,
    )
