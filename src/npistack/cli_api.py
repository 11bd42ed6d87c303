"""CLI commands of the API: ``serve``, ``keys ...`` and ``plans ...`` (registered on ``npistack.cli.app``)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.table import Table

from npistack.cli import DatabaseOpt, _settings, app, out
from npistack.errors import ConfigError

keys_app = typer.Typer(
    help="API keys: create (shown once), list, suspend, resume, revoke, usage.", no_args_is_help=True
)
plans_app = typer.Typer(help="Plans: monthly credits, requests per minute, enrichment.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(plans_app, name="plans")

KeyRef = Annotated[str, typer.Argument(help="The key's id or its prefix (as `npistack keys list` shows).")]


def _accounts(database_url: str | None) -> Any:
    from npistack.services.accounts import Accounts
    from npistack.storage.accounts import AccountsDb

    return Accounts(AccountsDb(database_url or _settings().resolved_database_url()))


def _key_table(keys: list[Any]) -> Table:
    t = Table()
    for c in ("id", "prefix", "name", "plan", "role", "status", "created"):
        t.add_column(c)
    for k in keys:
        t.add_row(str(k.id), k.prefix, k.name, k.plan, k.role, k.status, k.created_at)
    return t


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A label for the key (who or what uses it).")],
    plan: Annotated[str, typer.Option("--plan", help="Plan name (see `npistack plans list`).")] = "free",
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin key (for /admin/v1), not metered.")
    ] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    acc = _accounts(database_url)
    key, rec = acc.create_key(name=name, plan=plan, admin=admin)
    out.print(key, markup=False)
    out.print(f"[dim]id {rec.id}, {rec.role} key, plan {rec.plan}: store it now, it is not shown again[/]")


@keys_app.command("list")
def keys_list(database_url: DatabaseOpt = None) -> None:
    """List keys (prefix, plan, status; never the keys)."""
    out.print(_key_table(_accounts(database_url).db.list_keys()))


def _set_status(ref: str, status: str, database_url: str | None) -> None:
    rec = _accounts(database_url).set_status(ref, status)
    out.print(f"key {rec.id} ({rec.prefix}, {rec.name}) is now {rec.status}")


@keys_app.command("suspend")
def keys_suspend(ref: KeyRef, database_url: DatabaseOpt = None) -> None:
    """Suspend a key: its requests get 403 subscription_inactive until resumed."""
    _set_status(ref, "suspended", database_url)


@keys_app.command("resume")
def keys_resume(ref: KeyRef, database_url: DatabaseOpt = None) -> None:
    """Resume a suspended key."""
    _set_status(ref, "active", database_url)


@keys_app.command("revoke")
def keys_revoke(ref: KeyRef, database_url: DatabaseOpt = None) -> None:
    """Revoke a key for good: its requests get 401 invalid_api_key."""
    _set_status(ref, "revoked", database_url)


@keys_app.command("set-plan")
def keys_set_plan(
    ref: KeyRef, plan: Annotated[str, typer.Argument(help="The new plan.")], database_url: DatabaseOpt = None
) -> None:
    """Move a key to another plan."""
    rec = _accounts(database_url).set_plan(ref, plan)
    out.print(f"key {rec.id} ({rec.prefix}) is now on plan {rec.plan}")


@keys_app.command("usage")
def keys_usage(
    ref: Annotated[str | None, typer.Argument(help="Only this key (id or prefix).")] = None,
    days: Annotated[int, typer.Option("--days", help="Days back, today included.")] = 31,
    database_url: DatabaseOpt = None,
) -> None:
    """Requests and credits per key and day, and credits used this month."""
    from datetime import UTC, datetime

    from npistack.services.accounts import open_meter, usage_since

    acc = _accounts(database_url)
    meter = open_meter(acc.db, _settings().redis_url, timeout_s=_settings().redis_timeout_s)
    key_id = acc.find(ref).id if ref else None
    now = datetime.now(UTC)
    t = Table(title=f"usage, last {days} days")
    for c in ("key", "day", "requests", "credits"):
        t.add_column(c, justify="right" if c in ("requests", "credits") else "left")
    names = {k.id: f"{k.id} {k.prefix}" for k in acc.db.list_keys()}
    for kid, day, requests, credits in meter.usage(key_id, usage_since(days, now)):
        t.add_row(names.get(kid, str(kid)), day, f"{requests:,}", f"{credits:,}")
    out.print(t)
    for k in acc.db.list_keys():
        if key_id is None or k.id == key_id:
            plan = acc.db.plan(k.plan)
            limit = f" of {plan.monthly_credits:,}" if plan else ""
            out.print(
                f"key {k.id} ({k.prefix}, {k.plan}): {meter.used(k.id, now):,}{limit} credits used this month"
            )


@plans_app.command("list")
def plans_list(database_url: DatabaseOpt = None) -> None:
    """List plans."""
    t = Table()
    for c in ("plan", "credits/month", "requests/min", "enrichment", "description"):
        t.add_column(c)
    for p in _accounts(database_url).db.plans():
        t.add_row(
            p.name,
            f"{p.monthly_credits:,}",
            str(p.requests_per_minute),
            "yes" if p.enrichment else "no",
            p.description,
        )
    out.print(t)


@plans_app.command("set")
def plans_set(
    name: Annotated[str, typer.Argument(help="Plan name (created if new).")],
    credits: Annotated[int, typer.Option("--credits", min=0, help="Credits per calendar month (UTC).")],
    rpm: Annotated[int, typer.Option("--rpm", min=1, help="Requests per minute per key.")] = 300,
    enrichment: Annotated[
        bool, typer.Option("--enrichment/--no-enrichment", help="Whether enrichment is allowed.")
    ] = False,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    database_url: DatabaseOpt = None,
) -> None:
    """Create or change a plan."""
    from npistack.storage.accounts import Plan

    acc = _accounts(database_url)
    acc.db.upsert_plan(Plan(name, credits, rpm, enrichment, description))
    out.print(
        f"plan {name}: {credits:,} credits/month, {rpm} requests/min, enrichment {'on' if enrichment else 'off'}"
    )


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (NPISTACK_API_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (NPISTACK_API_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Server processes (NPISTACK_API_WORKERS).")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Serve the provider API (contract, CMS-compatible endpoint, admin, health, metrics, /docs)."""
    run_server(host=host, port=port, workers=workers, database_url=database_url)


def _check_can_listen(host: str, port: int) -> None:
    """Bind the address once, as uvicorn will, so a busy port fails here in one line (not after
    "serving ..." and a uvicorn log record)."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as e:
            why = {
                errno.EADDRINUSE: "the port is in use (another server?); pick another with --port",
                errno.EACCES: "permission denied (ports below 1024 need privileges)",
                errno.EADDRNOTAVAIL: "no such address on this machine (--host)",
            }.get(e.errno or 0, e.strerror or str(e))
            raise ConfigError(f"cannot listen on {host}:{port}: {why}") from None


def run_server(
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    database_url: str | None = None,
) -> None:
    import uvicorn

    from npistack.api.server import uvicorn_options
    from npistack.errors import NpistackError
    from npistack.redact import redact_text, redact_url
    from npistack.storage import open_store

    s = _settings()
    url = database_url or s.resolved_database_url()
    try:
        store = open_store(
            url, read_only=url.startswith("sqlite") or "://" not in url
        )  # fails early, one line
    except NpistackError as e:  # a driver's message may quote the URL, password and all
        raise ConfigError(redact_text(str(e))) from None
    store.close()
    if database_url:
        os.environ["NPISTACK_DATABASE_URL"] = database_url  # for the app factory, here and in workers
        from npistack.settings import get_settings

        get_settings.cache_clear()
        s = _settings()
    if "NPISTACK_API_TUNE_GC" not in os.environ:  # the collector tuned for serving (settings.md)
        from npistack.settings import get_settings

        os.environ["NPISTACK_API_TUNE_GC"] = "true"  # for the app factory, here and in workers
        get_settings.cache_clear()
    h, p, w = host or s.api_host, port or s.api_port, workers or s.api_workers
    _check_can_listen(h, p)
    out.print(
        f"serving {redact_url(url)} on http://{h}:{p} ({w} worker{'s' if w > 1 else ''}); "
        f"docs at http://{h}:{p}/docs",
        markup=False,
        soft_wrap=True,
    )
    try:
        uvicorn.run(
            "npistack.api.app:create_app", factory=True, host=h, port=p, workers=w, **uvicorn_options(s)
        )
    except OSError as e:
        raise ConfigError(f"cannot listen on {h}:{p}: {e.strerror or e}") from None
    except SystemExit as e:  # uvicorn exits 1 when it cannot bind after all (a race with another server)
        if e.code not in (None, 0):
            raise ConfigError(
                f"cannot listen on {h}:{p}: uvicorn could not start (see the line above)"
            ) from None
        raise
