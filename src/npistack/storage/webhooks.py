"""Webhook subscriptions: validation, rows and SQL (table ``webhook_subscriptions``, in ``history_ddl``).

A subscription is a URL, a signing secret, a change filter (``ChangeFilter``, the change feed's) and
an active flag. Its deliveries live in the outbox (``storage.outbox``).

Each subscription also has a **circuit breaker** (table ``webhook_breakers``, created on first use
by ``ensure_breakers``, one row per subscription that ever had an attempt): the count of consecutive
failed attempts and, once that reaches the threshold, ``open_until``. Until then its deliveries are
not claimed (open); after it, one probe delivery at a time is (half-open); a success closes the
breaker, a failure opens it again for another cool-down.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from npistack.errors import NpistackError
from npistack.storage.base import SqlStore
from npistack.storage.changes import ChangeFilter
from npistack.storage.core import utcnow

BREAKER_STATES = ("closed", "open", "half-open")

MAX_URL = 2000
MAX_DESCRIPTION = 500
_UNSET: Any = object()


class WebhookError(NpistackError):
    """A subscription or delivery request that cannot be done; the message says what is wrong."""


@dataclass(frozen=True)
class Subscription:
    id: int
    url: str
    secret: str
    filters: ChangeFilter
    description: str | None
    active: bool
    created_at: str
    updated_at: str

    def as_dict(self, *, secret: bool = False) -> dict[str, Any]:
        """The API's shape; the secret only when asked for (creation and rotation show it once)."""
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "filters": self.filters.as_dict(),
            "description": self.description,
            "active": self.active,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if secret:
            out["secret"] = self.secret
        return out


# -- validation ---------------------------------------------------------------------------------


def new_secret() -> str:
    """A signing secret: ``whsec_`` and 32 random URL-safe characters."""
    return "whsec_" + secrets.token_urlsafe(24)


def check_url(url: str) -> str:
    """The URL, stripped, if it is an absolute http(s) URL with a host; else WebhookError."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise WebhookError(f"url must be an http:// or https:// URL of at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise WebhookError("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError as e:
        raise WebhookError(f"url {url!r} cannot be parsed: {e}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookError(f"url {url!r} must start with http:// or https://")
    if not host:
        raise WebhookError(f"url {url!r} has no host")
    return url


def check_secret(secret: str) -> str:
    if not 16 <= len(secret) <= 200 or not secret.isascii() or not secret.isprintable() or " " in secret:
        raise WebhookError("secret must be 16 to 200 printable ASCII characters without spaces")
    return secret


def check_description(description: str | None) -> str | None:
    if description is None:
        return None
    if len(description) > MAX_DESCRIPTION:
        raise WebhookError(f"description must be at most {MAX_DESCRIPTION} characters")
    return description.strip() or None


# -- subscriptions ------------------------------------------------------------------------------

_SUB_COLS = "id, url, secret, filters, description, active, created_at, updated_at"


def _subscription(r: Sequence[Any]) -> Subscription:
    return Subscription(
        id=int(r[0]),
        url=r[1],
        secret=r[2],
        filters=ChangeFilter.from_dict(orjson.loads(r[3] or "{}")),
        description=r[4],
        active=bool(r[5]),
        created_at=str(r[6]),
        updated_at=str(r[7]),
    )


def create_subscription(
    store: SqlStore,
    *,
    url: str,
    secret: str | None = None,
    filters: ChangeFilter | None = None,
    description: str | None = None,
    active: bool = True,
) -> Subscription:
    """Add a subscription; the secret is generated unless given. Raises WebhookError on bad input."""
    url = check_url(url)
    secret = check_secret(secret) if secret is not None else new_secret()
    description = check_description(description)
    now = utcnow()
    flt = orjson.dumps((filters or ChangeFilter()).as_dict()).decode()
    new_id = store._insert_returning_id(
        "INSERT INTO webhook_subscriptions (url, secret, filters, description, active, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (url, secret, flt, description, int(active), now, now),
    )
    sub = get_subscription(store, new_id)
    assert sub is not None
    return sub


def list_subscriptions(store: SqlStore) -> list[Subscription]:
    rows = store._query(f"SELECT {_SUB_COLS} FROM webhook_subscriptions ORDER BY id")
    return [_subscription(r) for r in rows]


def get_subscription(store: SqlStore, sub_id: int) -> Subscription | None:
    rows = store._query(f"SELECT {_SUB_COLS} FROM webhook_subscriptions WHERE id = ?", (sub_id,))
    return _subscription(rows[0]) if rows else None


def get_subscriptions(store: SqlStore, ids: Sequence[int]) -> dict[int, Subscription]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = store._query(f"SELECT {_SUB_COLS} FROM webhook_subscriptions WHERE id IN ({marks})", wanted)
    return {int(r[0]): _subscription(r) for r in rows}


def update_subscription(
    store: SqlStore,
    sub_id: int,
    *,
    url: str | None = None,
    filters: ChangeFilter | None = None,
    description: str | None = _UNSET,
    active: bool | None = None,
    rotate_secret: bool = False,
    secret: str | None = None,
) -> Subscription | None:
    """Change the fields given (``description=None`` clears it); None if there is no such id.

    ``rotate_secret`` draws a new secret (or sets ``secret``); deliveries sent from then on are signed
    with it.
    """
    sets: list[str] = []
    params: list[Any] = []
    if url is not None:
        sets.append("url = ?")
        params.append(check_url(url))
    if filters is not None:
        sets.append("filters = ?")
        params.append(orjson.dumps(filters.as_dict()).decode())
    if description is not _UNSET:
        sets.append("description = ?")
        params.append(check_description(description))
    if active is not None:
        sets.append("active = ?")
        params.append(int(active))
    if secret is not None or rotate_secret:
        sets.append("secret = ?")
        params.append(check_secret(secret) if secret is not None else new_secret())
    if sets:
        sets.append("updated_at = ?")
        params.append(utcnow())
        store._exec(f"UPDATE webhook_subscriptions SET {', '.join(sets)} WHERE id = ?", [*params, sub_id])
    return get_subscription(store, sub_id)


# -- circuit breakers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Breaker:
    """A subscription's circuit breaker: consecutive failed attempts, and until when it is open."""

    subscription_id: int
    failures: int = 0
    open_until: float | None = None
    opened_at: str | None = None

    def state(self, now: float) -> str:
        """``closed``, ``open`` (deliveries wait until ``open_until``) or ``half-open`` (one probe)."""
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half-open"

    def as_dict(self, now: float) -> dict[str, Any]:
        until = None
        if self.open_until is not None:
            until = datetime.fromtimestamp(self.open_until, UTC).isoformat(timespec="seconds")
        return {"state": self.state(now), "failures": self.failures, "openUntil": until}


def ensure_breakers(store: SqlStore) -> None:
    """Create the breaker table and the outbox's per-subscription indexes if they are missing."""
    if store._table_exists("webhook_breakers"):
        return
    real = "DOUBLE PRECISION" if store.dialect == "postgresql" else "REAL"
    bigint = "BIGINT" if store.dialect == "postgresql" else "INTEGER"
    ddl = (
        f"CREATE TABLE IF NOT EXISTS webhook_breakers (subscription_id {bigint} PRIMARY KEY,"
        f" failures INTEGER NOT NULL DEFAULT 0, open_until {real}, opened_at TEXT)",
        "CREATE INDEX IF NOT EXISTS ix_deliveries_sub_due"
        " ON webhook_deliveries (subscription_id, status, next_attempt_at)",
        "CREATE INDEX IF NOT EXISTS ix_deliveries_claimed"
        " ON webhook_deliveries (subscription_id, locked_until) WHERE locked_until IS NOT NULL",
    )
    store._begin()
    try:
        for sql in ddl:
            store._exec(sql)
        store._commit()
    except BaseException:
        store._rollback()
        if not store._table_exists("webhook_breakers"):  # not another process creating it at once
            raise


def get_breakers(store: SqlStore, ids: Sequence[int]) -> dict[int, Breaker]:
    """The breakers of these subscriptions (closed, zero failures, for those without a row)."""
    wanted = sorted(set(ids))
    out = {i: Breaker(i) for i in wanted}
    if not wanted or not store._table_exists("webhook_breakers"):
        return out
    marks = ",".join("?" * len(wanted))
    for r in store._query(
        f"SELECT subscription_id, failures, open_until, opened_at FROM webhook_breakers"
        f" WHERE subscription_id IN ({marks})",
        wanted,
    ):
        sub_id = int(r[0])
        out[sub_id] = Breaker(sub_id, int(r[1]), float(r[2]) if r[2] is not None else None, r[3])
    return out


def record_attempt(
    store: SqlStore, sub_id: int, *, ok: bool, threshold: int, cooldown_s: float, now: float
) -> Breaker:
    """Count an attempt's outcome in the subscription's breaker and return the breaker.

    A success closes it (zero failures); a failure adds one, and at ``threshold`` consecutive
    failures (or a failed half-open probe) opens it until ``now + cooldown_s``."""
    if ok:
        store._exec("DELETE FROM webhook_breakers WHERE subscription_id = ?", (sub_id,))
        return Breaker(sub_id)
    until, stamp = now + cooldown_s, utcnow()
    store._exec(
        "INSERT INTO webhook_breakers (subscription_id, failures, open_until, opened_at)"
        " VALUES (?, 1, CASE WHEN 1 >= ? THEN ? END, CASE WHEN 1 >= ? THEN ? END)"
        " ON CONFLICT (subscription_id) DO UPDATE SET failures = webhook_breakers.failures + 1,"
        " open_until = CASE WHEN webhook_breakers.failures + 1 >= ? THEN ? END,"
        " opened_at = CASE WHEN webhook_breakers.failures + 1 >= ? THEN ? END",
        (sub_id, *(threshold, until, threshold, stamp) * 2),
    )
    return get_breakers(store, [sub_id])[sub_id]


def reset_breaker(store: SqlStore, sub_id: int) -> None:
    """Close a subscription's breaker (its deliveries are claimed again at once)."""
    if store._table_exists("webhook_breakers"):
        store._exec("DELETE FROM webhook_breakers WHERE subscription_id = ?", (sub_id,))


def delete_subscription(store: SqlStore, sub_id: int) -> int | None:
    """Delete a subscription and cancel its pending deliveries (their rows stay, for the record).

    Returns how many deliveries were cancelled, or None if there is no such subscription.
    """
    store._begin()
    try:
        if not store._query("SELECT 1 FROM webhook_subscriptions WHERE id = ?", (sub_id,)):
            store._rollback()
            return None
        cancelled = int(
            store._query(
                "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = ? AND status = 'pending'",
                (sub_id,),
            )[0][0]
        )
        store._exec(
            "UPDATE webhook_deliveries SET status = 'cancelled', locked_by = NULL, locked_until = NULL"
            " WHERE subscription_id = ? AND status = 'pending'",
            (sub_id,),
        )
        store._exec("DELETE FROM webhook_subscriptions WHERE id = ?", (sub_id,))
        if store._table_exists("webhook_breakers"):
            store._exec("DELETE FROM webhook_breakers WHERE subscription_id = ?", (sub_id,))
        store._commit()
    except BaseException:
        store._rollback()
        raise
    return cancelled
