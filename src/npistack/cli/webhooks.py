"""CLI commands of webhooks: ``webhooks ...`` and ``worker``."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.table import Table

from npistack.cli.common import DatabaseOpt, current_settings, err, open_store_for, out

commands = typer.Typer()

webhooks_app = typer.Typer(
    help="Webhook subscriptions and their deliveries: create, list, update, delete, replay.",
    no_args_is_help=True,
)

SubId = Annotated[
    int, typer.Argument(help="The subscription's id (as `npistack webhooks list` shows).", min=1)
]
TypeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--type", "-t", help="Change types: created, updated, deactivated, reactivated, removed (repeatable)."
    ),
]
NpiOpt = Annotated[list[str] | None, typer.Option("--npi", help="Only these NPIs (repeatable).")]
StateOpt = Annotated[
    list[str] | None, typer.Option("--state", help="Providers in these states, before or after (repeatable).")
]
TaxonomyOpt = Annotated[
    list[str] | None, typer.Option("--taxonomy", help="NUCC taxonomy codes, before or after (repeatable).")
]
EntityOpt = Annotated[
    list[str] | None,
    typer.Option("--entity-type", help="1 or NPI-1 (individuals), 2 or NPI-2 (organizations)."),
]
DescriptionOpt = Annotated[
    str | None, typer.Option("--description", help="A note on what the subscription is for.")
]


@contextlib.contextmanager
def _opened(database_url: str | None) -> Iterator[Any]:
    store = open_store_for(database_url)
    try:
        yield store
    finally:
        store.close()


def _filters(
    types: list[str] | None,
    npis: list[str] | None,
    states: list[str] | None,
    taxonomies: list[str] | None,
    entity_types: list[str] | None,
) -> Any:
    """A ChangeFilter from the options, or None when none was given."""
    from npistack.services.changes import ChangeFilter, FilterError
    from npistack.services.webhooks import WebhookError

    if not any((types, npis, states, taxonomies, entity_types)):
        return None
    try:
        return ChangeFilter.parse(
            types=types or (),
            npis=npis or (),
            states=states or (),
            taxonomies=taxonomies or (),
            entity_types=entity_types or (),
        )
    except FilterError as e:
        raise WebhookError(str(e)) from None


def _describe_filters(flt: Any) -> str:
    parts = [f"{k}={','.join(str(v) for v in vs)}" for k, vs in flt.as_dict().items() if vs]
    return " ".join(parts) or "every change"


def _describe_breaker(b: Any, now: float) -> str:
    """``closed``, ``closed (2 failures)``, ``open until 12:05:00Z (5 failures)``, ``half-open``."""
    state = b.state(now)
    if state == "open":
        until = b.as_dict(now)["openUntil"]
        return f"open until {until} ({b.failures} failures)"
    return state + (f" ({b.failures} failures)" if b.failures else "")


def _print_subscription(sub: Any, counts: dict[str, int] | None = None, *, secret: bool = False) -> None:
    out.print(f"subscription {sub.id}: {sub.url}", markup=False)
    out.print(f"  active:      {'yes' if sub.active else 'no (deliveries wait until resumed)'}")
    out.print(f"  filters:     {_describe_filters(sub.filters)}", markup=False)
    if sub.description:
        out.print(f"  description: {sub.description}", markup=False)
    out.print(f"  created:     {sub.created_at}, updated {sub.updated_at}")
    if counts is not None:
        out.print("  deliveries:  " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    if secret:
        out.print(f"  secret:      {sub.secret}", markup=False)
        out.print("[dim]  store the secret now: `webhooks show` does not print it again[/]")


def _not_found(what: str, ident: int) -> Exception:
    from npistack.services.webhooks import WebhookError

    return WebhookError(f"no webhook {what} has id {ident}")


@webhooks_app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="Where to POST events (http:// or https://).")],
    secret: Annotated[
        str | None, typer.Option("--secret", help="Signing secret (16+ characters); default: generated.")
    ] = None,
    types: TypeOpt = None,
    npis: NpiOpt = None,
    states: StateOpt = None,
    taxonomies: TaxonomyOpt = None,
    entity_types: EntityOpt = None,
    description: DescriptionOpt = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it paused.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Subscribe a URL to changes (every change, or those the filters match); prints the secret once."""
    from npistack.services import webhooks as wh

    flt = _filters(types, npis, states, taxonomies, entity_types)
    with _opened(database_url) as store:
        sub = wh.create_subscription(
            store,
            url=url,
            secret=secret,
            filters=flt,
            description=description,
            active=not inactive,
            policy=wh.guard_policy(current_settings()),
        )
    _print_subscription(sub, secret=True)


@webhooks_app.command("list")
def list_(database_url: DatabaseOpt = None) -> None:
    """List subscriptions with their deliveries by status."""
    from npistack.services import webhooks as wh

    with _opened(database_url) as store:
        subs = wh.list_subscriptions(store)
        counts = wh.delivery_counts(store, [s.id for s in subs])
        breakers = wh.get_breakers(store, [s.id for s in subs])
    t = Table()
    for c in ("id", "url", "active", "filters", "breaker", *wh.STATUSES):
        t.add_column(c, justify="right" if c in wh.STATUSES or c == "id" else "left")
    now = time.time()
    for s in subs:
        n = counts.get(s.id, {})
        t.add_row(
            str(s.id),
            s.url,
            "yes" if s.active else "no",
            _describe_filters(s.filters),
            _describe_breaker(breakers[s.id], now),
            *(str(n.get(status, 0)) for status in wh.STATUSES),
        )
    out.print(t)


@webhooks_app.command("show")
def show(sub_id: SubId, database_url: DatabaseOpt = None) -> None:
    """Show one subscription (not its secret) and its deliveries by status."""
    from npistack.services import webhooks as wh

    with _opened(database_url) as store:
        sub = wh.get_subscription(store, sub_id)
        if sub is None:
            raise _not_found("subscription", sub_id)
        _print_subscription(sub, wh.delivery_counts(store, [sub_id])[sub_id])
        out.print(
            f"  breaker:     {_describe_breaker(wh.get_breakers(store, [sub_id])[sub_id], time.time())}"
        )


@webhooks_app.command("update")
def update(
    sub_id: SubId,
    url: Annotated[str | None, typer.Option("--url", help="A new URL.")] = None,
    types: TypeOpt = None,
    npis: NpiOpt = None,
    states: StateOpt = None,
    taxonomies: TaxonomyOpt = None,
    entity_types: EntityOpt = None,
    every_change: Annotated[
        bool, typer.Option("--every-change", help="Drop the filters: subscribe to every change.")
    ] = False,
    description: DescriptionOpt = None,
    active: Annotated[
        bool | None,
        typer.Option("--active/--inactive", help="Resume or pause deliveries.", show_default=False),
    ] = None,
    rotate_secret: Annotated[
        bool,
        typer.Option(
            "--rotate-secret", help="Draw a new secret (printed once) and sign with it from now on."
        ),
    ] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Change a subscription. Filter options replace all of its filters."""
    from npistack.services import webhooks as wh
    from npistack.services.changes import ChangeFilter

    flt = ChangeFilter() if every_change else _filters(types, npis, states, taxonomies, entity_types)
    kw: dict[str, Any] = {"url": url, "filters": flt, "active": active, "rotate_secret": rotate_secret}
    if description is not None:
        kw["description"] = description
    with _opened(database_url) as store:
        sub = wh.update_subscription(store, sub_id, policy=wh.guard_policy(current_settings()), **kw)
        if sub is None:
            raise _not_found("subscription", sub_id)
        _print_subscription(sub, wh.delivery_counts(store, [sub_id])[sub_id], secret=rotate_secret)


@webhooks_app.command("delete")
def delete(sub_id: SubId, database_url: DatabaseOpt = None) -> None:
    """Delete a subscription; its pending deliveries are cancelled."""
    from npistack.services import webhooks as wh

    with _opened(database_url) as store:
        cancelled = wh.delete_subscription(store, sub_id)
    if cancelled is None:
        raise _not_found("subscription", sub_id)
    out.print(f"subscription {sub_id} deleted; {cancelled} pending deliveries cancelled")


@webhooks_app.command("deliveries")
def deliveries(
    subscription: Annotated[
        int | None, typer.Option("--subscription", "-s", help="Only this subscription.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered, dead or cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")] = 50,
    after: Annotated[int, typer.Option("--after", min=0, help="Only ids above this (paging).")] = 0,
    database_url: DatabaseOpt = None,
) -> None:
    """List deliveries, oldest first."""
    from npistack.services import webhooks as wh

    with _opened(database_url) as store:
        rows = wh.list_deliveries(
            store, subscription_id=subscription, status=status, limit=limit, after=after
        )
    t = Table()
    for c in ("id", "subscription", "event", "status", "attempts", "next attempt", "last", "created"):
        t.add_column(c)
    for d in rows:
        doc = d.as_dict()
        last = d.last_error or (f"HTTP {d.last_status}" if d.last_status else "")
        t.add_row(
            str(d.id),
            str(d.subscription_id),
            d.event_id,
            d.status,
            str(d.attempts),
            doc["nextAttemptAt"] or "",
            last[:60],
            d.created_at,
        )
    out.print(t)


@webhooks_app.command("replay")
def replay(
    delivery_id: Annotated[int | None, typer.Argument(help="Replay this delivery.", min=1)] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Replay deliveries created from (ISO).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="... until, excluded (ISO).")] = None,
    subscription: Annotated[
        int | None, typer.Option("--subscription", "-s", help="Only this subscription.")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only deliveries with this status.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Send deliveries again: one by id, or those created in --since/--until. They become pending,
    attempts reset, due now; a running worker sends them with their original event ids."""
    from npistack.services import webhooks as wh

    ranged = since is not None or until is not None
    if (delivery_id is None) == (not ranged) or (ranged and (since is None or until is None)):
        raise wh.WebhookError("give a DELIVERY_ID, or --since and --until (not both)")
    if delivery_id is not None and (subscription is not None or status is not None):
        raise wh.WebhookError("--subscription and --status go with --since/--until")
    with _opened(database_url) as store:
        if delivery_id is not None:
            d = wh.replay_delivery(store, delivery_id)
            if d is None:
                raise _not_found("delivery", delivery_id)
            out.print(f"delivery {d.id} (event {d.event_id}) is pending again")
            return
        assert since is not None and until is not None
        n = wh.replay_range(store, since=since, until=until, subscription_id=subscription, status=status)
    out.print(f"{n} deliveries are pending again")


@commands.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit.")] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=64, help="Deliveries sent at the same time.")
    ] = 4,
    poll: Annotated[
        float, typer.Option("--poll", min=0.01, help="Seconds between looks for due deliveries when idle.")
    ] = 1.0,
    database_url: DatabaseOpt = None,
) -> None:
    """Send webhook deliveries (run as many workers as you like); stops cleanly on Ctrl-C or SIGTERM."""
    from npistack.worker import DeliveryWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per delivery is ours
    settings = current_settings()
    url = database_url or settings.resolved_database_url()
    with DeliveryWorker(url, settings, concurrency=concurrency) as w:
        if once:
            total = w.drain()
            out.print(f"{total} deliveries attempted")
            return
        stop = threading.Event()
        previous: dict[int, Any] = {}

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        def on_signal(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            err.print(f"{name}: finishing the deliveries in flight, then stopping (again to stop at once)")
            # Not stop.set() here: the handler runs in the main thread, which may be inside
            # stop.wait() holding the event's lock (entering or leaving the wait), and set() would then
            # wait for that lock forever. A thread sets it once the main thread lets go (issue 14 item 18).
            threading.Thread(target=stop.set, name="stop", daemon=True).start()
            restore()  # a second Ctrl-C interrupts right away

        previous.update({s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)})
        try:
            w.run(stop, poll_s=poll)
        finally:
            restore()
