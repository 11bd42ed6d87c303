"""API keys and plans: ``npistack keys ...`` and ``npistack plans ...`` (``npistack.services.accounts``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from npistack.cli.common import DatabaseOpt, current_settings, out

keys_app = typer.Typer(
    help="API keys: create (shown once), list, suspend, resume, revoke, usage.", no_args_is_help=True
)
plans_app = typer.Typer(help="Plans: monthly credits, requests per minute, enrichment.", no_args_is_help=True)

KeyRef = Annotated[str, typer.Argument(help="The key's id or its prefix (as `npistack keys list` shows).")]


def _accounts(database_url: str | None) -> Any:
    from npistack.services.accounts import Accounts
    from npistack.storage.accounts import AccountsDb

    return Accounts(AccountsDb(database_url or current_settings().resolved_database_url()))


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
    meter = open_meter(acc.db, current_settings().redis_url, timeout_s=current_settings().redis_timeout_s)
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
