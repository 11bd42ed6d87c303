"""The ``npistack`` Typer app and its console entry point, ``main``.

The commands live in one module per group (``npistack.cli.ingest``, ``.sync``, ``.webhooks``, ...),
which share ``npistack.cli.common`` and never import this module; this module registers them, in the
order ``npistack --help`` lists them.

Every error is one line on stderr (``error: ...``) and a non-zero exit code, never a traceback
(set ``NPISTACK_DEBUG=1`` to see one).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.text import Text

from npistack import __version__
from npistack.cli import (
    demo,
    enrich,
    ingest,
    jobs,
    keys,
    match,
    reads,
    serve,
    sync,
    synth,
    updates,
    webhooks,
)
from npistack.cli.common import err, out
from npistack.errors import NpistackError
from npistack.redact import redact_text

app = typer.Typer(
    name="npistack",
    help="npistack: a self-hosted healthcare provider data platform over the CMS NPPES files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The top-level commands, in this order (ingest, synth, show, stats, loads, quarantine, settings, demo,
# enrich, match, match-eval, sync, history, changes, worker, serve), then the command groups.
for _group in (ingest, synth, reads, demo, enrich, match, sync, updates, webhooks, serve):
    app.add_typer(_group.commands)
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(webhooks.webhooks_app, name="webhooks")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(keys.plans_app, name="plans")


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
