"""The webhook outbox: delivery rows and their states (table ``webhook_deliveries``, in ``history_ddl``).

A delivery row is written by ``storage.changes.record_changes`` in the transaction of the load that
made its change. From then on this module moves it through its states::

    pending ──send ok──▶ delivered
       │  ▲
       │  └─failed, attempts left (next_attempt_at = now + backoff)
       └────failed, no attempts left──▶ dead
    any state ──replay──▶ pending (attempts 0, due now)
    pending ──subscription deleted──▶ cancelled

A worker *claims* due deliveries (``claim_due``): it writes its id and a lease end into
``locked_by``/``locked_until``. Claims never overlap: PostgreSQL claimers skip each other's rows
(``FOR UPDATE SKIP LOCKED``), SQLite claimers are serialised by ``BEGIN IMMEDIATE``. A result is
recorded only while the worker still holds the claim (``mark_delivered``/``mark_failed`` return
False otherwise), so a worker whose lease ran out cannot overwrite the result of the worker that
took the delivery over. Deliveries of a paused (inactive) subscription wait until it is resumed, and
those of a subscription whose circuit breaker is open (``storage.webhooks``) until its cool-down ends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from npistack.storage.base import SqlStore
from npistack.storage.core import utcnow
from npistack.storage.webhooks import WebhookError, ensure_breakers, get_subscription

STATUSES = ("pending", "delivered", "dead", "cancelled")


@dataclass(frozen=True)
class Delivery:
    id: int
    subscription_id: int
    change_id: int
    event_id: str
    status: str
    attempts: int
    next_attempt_at: float
    locked_by: str | None
    locked_until: float | None
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscriptionId": self.subscription_id,
            "changeId": self.change_id,
            "eventId": self.event_id,
            "status": self.status,
            "attempts": self.attempts,
            "nextAttemptAt": _iso(self.next_attempt_at) if self.status == "pending" else None,
            "lastStatus": self.last_status,
            "lastError": self.last_error,
            "createdAt": self.created_at,
            "deliveredAt": self.delivered_at,
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def check_status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        raise WebhookError(f"unknown delivery status {status!r}; expected one of {', '.join(STATUSES)}")
    return status


def iso_bound(value: str, name: str) -> str:
    """An ISO date or date-time as stored ``created_at`` values compare (UTC, seconds)."""
    try:
        when = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise WebhookError(
            f"{name} {value!r} must be an ISO date or date-time, e.g. 2025-01-31 or 2025-01-31T12:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def delivery_counts(store: SqlStore, ids: Sequence[int] | None = None) -> dict[int, dict[str, int]]:
    """Deliveries per subscription and status (every status present, zeros included)."""
    sql = "SELECT subscription_id, status, count(*) FROM webhook_deliveries"
    params: list[Any] = []
    if ids is not None:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        sql += f" WHERE subscription_id IN ({','.join('?' * len(wanted))})"
        params = list(wanted)
    out: dict[int, dict[str, int]] = {i: dict.fromkeys(STATUSES, 0) for i in params}
    for sub_id, status, n in store._query(sql + " GROUP BY subscription_id, status", params):
        out.setdefault(int(sub_id), dict.fromkeys(STATUSES, 0))[str(status)] = int(n)
    return out


# -- deliveries ---------------------------------------------------------------------------------

_DEL_COLS = (
    "id, subscription_id, change_id, event_id, status, attempts, next_attempt_at, locked_by, locked_until,"
    " last_status, last_error, created_at, delivered_at"
)


def _delivery(r: Sequence[Any]) -> Delivery:
    return Delivery(
        id=int(r[0]),
        subscription_id=int(r[1]),
        change_id=int(r[2]),
        event_id=str(r[3]),
        status=str(r[4]),
        attempts=int(r[5]),
        next_attempt_at=float(r[6]),
        locked_by=r[7],
        locked_until=float(r[8]) if r[8] is not None else None,
        last_status=int(r[9]) if r[9] is not None else None,
        last_error=r[10],
        created_at=str(r[11]),
        delivered_at=str(r[12]) if r[12] is not None else None,
    )


def list_deliveries(
    store: SqlStore,
    *,
    subscription_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    after: int = 0,
) -> list[Delivery]:
    """Deliveries with id > ``after``, oldest first (keyset pagination: pass the last id back)."""
    clauses: list[str] = ["id > ?"]
    params: list[Any] = [after]
    if subscription_id is not None:
        clauses.append("subscription_id = ?")
        params.append(subscription_id)
    if check_status(status):
        clauses.append("status = ?")
        params.append(status)
    rows = store._query(
        f"SELECT {_DEL_COLS} FROM webhook_deliveries WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?",
        [*params, limit],
    )
    return [_delivery(r) for r in rows]


def get_delivery(store: SqlStore, delivery_id: int) -> Delivery | None:
    rows = store._query(f"SELECT {_DEL_COLS} FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    return _delivery(rows[0]) if rows else None


def claim_due(
    store: SqlStore,
    worker_id: str,
    *,
    limit: int,
    lease_s: float,
    now: float,
    per_subscription: int = 0,
) -> list[Delivery]:
    """Claim up to ``limit`` due deliveries for ``worker_id`` until ``now + lease_s``.

    Due: pending, ``next_attempt_at <= now``, not claimed or the claim's lease ended, the
    subscription active and its circuit breaker not open. With ``per_subscription`` (0: no limit),
    a subscription never has more than that many deliveries claimed at once, by all workers
    together, and a half-open breaker only one (its probe). Subscriptions take turns: the one whose
    oldest due delivery waited longest comes first, and each gets one before any gets a second.
    No two claimers ever get the same row (see the module docstring); on PostgreSQL the
    subscriptions being claimed for are locked (``FOR UPDATE SKIP LOCKED``) while their claims are
    counted and written, so concurrent workers respect ``per_subscription`` too.
    """
    ensure_breakers(store)
    pg = store.dialect == "postgresql"
    free = " AND (d.locked_until IS NULL OR d.locked_until < ?)"
    store._begin()
    try:
        rows = store._query(
            "SELECT s.id, b.open_until, (SELECT d.next_attempt_at FROM webhook_deliveries d"
            " WHERE d.subscription_id = s.id AND d.status = 'pending' AND d.next_attempt_at <= ?"
            f"{free} ORDER BY d.next_attempt_at LIMIT 1) AS due"
            " FROM webhook_subscriptions s LEFT JOIN webhook_breakers b ON b.subscription_id = s.id"
            " WHERE s.active = 1 AND (b.open_until IS NULL OR b.open_until <= ?)",
            (now, now, now),
        )
        candidates = sorted(
            ((float(r[2]), int(r[0]), r[1] is not None) for r in rows if r[2] is not None),
        )
        half_open = {sub_id for _, sub_id, probing in candidates if probing}
        order = [sub_id for _, sub_id, _ in candidates]
        if pg and order:  # claimers of the same subscription wait for each other's commit
            marks = ",".join("?" * len(order))
            locked = {
                int(r[0])
                for r in store._query(
                    f"SELECT id FROM webhook_subscriptions WHERE id IN ({marks}) FOR UPDATE SKIP LOCKED",
                    order,
                )
            }
            order = [i for i in order if i in locked]
        room: dict[int, int] = {}
        if order:
            cap = per_subscription or limit
            marks = ",".join("?" * len(order))
            held = {
                int(r[0]): int(r[1])
                for r in store._query(
                    "SELECT subscription_id, count(*) FROM webhook_deliveries"
                    f" WHERE subscription_id IN ({marks}) AND locked_until >= ? AND status = 'pending'"
                    " GROUP BY subscription_id",
                    [*order, now],
                )
            }
            for sub_id in order:
                left = (1 if sub_id in half_open else cap) - held.get(sub_id, 0)
                if left > 0:
                    room[sub_id] = left
        picked: list[int] = []
        for rnd in (1, 2):  # a first turn of one each, then the rest of each one's room
            for sub_id in [i for i in order if i in room]:
                want = min(1 if rnd == 1 else room[sub_id], limit - len(picked))
                if want <= 0:
                    break
                got = [
                    int(r[0])
                    for r in store._query(
                        "SELECT d.id FROM webhook_deliveries d WHERE d.subscription_id = ?"
                        f" AND d.status = 'pending' AND d.next_attempt_at <= ?{free}"
                        f"{' AND d.id NOT IN (' + ','.join('?' * len(picked)) + ')' if picked else ''}"
                        f" ORDER BY d.next_attempt_at, d.id LIMIT ?{' FOR UPDATE SKIP LOCKED' if pg else ''}",
                        [sub_id, now, now, *picked, want],
                    )
                ]
                picked.extend(got)
                room[sub_id] -= len(got)
                if room[sub_id] <= 0:
                    del room[sub_id]
        claimed: list[Delivery] = []
        if picked:
            marks = ",".join("?" * len(picked))
            claimed = [
                _delivery(r)
                for r in store._query(
                    f"UPDATE webhook_deliveries SET locked_by = ?, locked_until = ? WHERE id IN ({marks})"
                    f" AND status = 'pending' AND (locked_until IS NULL OR locked_until < ?) RETURNING {_DEL_COLS}",
                    [worker_id, now + lease_s, *picked, now],
                )
            ]
        store._commit()
    except BaseException:
        store._rollback()
        raise
    return sorted(claimed, key=lambda d: (d.next_attempt_at, d.id))


def renew_claims(store: SqlStore, delivery_ids: Sequence[int], worker_id: str, *, until: float) -> int:
    """Extend ``worker_id``'s claims on these deliveries to ``until`` (those it still holds); how many."""
    wanted = sorted(set(delivery_ids))
    if not wanted:
        return 0
    marks = ",".join("?" * len(wanted))
    cur = store._exec(
        f"UPDATE webhook_deliveries SET locked_until = ? WHERE id IN ({marks}) AND locked_by = ?"
        " AND status = 'pending'",
        [until, *wanted, worker_id],
    )
    return int(cur.rowcount)


def mark_delivered(
    store: SqlStore, delivery_id: int, worker_id: str, http_status: int, *, error: str | None = None
) -> bool:
    """Record a successful attempt, if ``worker_id`` still holds the claim; False otherwise."""
    cur = store._exec(
        "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status = ?,"
        " last_error = ?, delivered_at = ?, locked_by = NULL, locked_until = NULL"
        " WHERE id = ? AND locked_by = ? AND status = 'pending'",
        (http_status, error, utcnow(), delivery_id, worker_id),
    )
    return int(cur.rowcount) == 1


def mark_failed(
    store: SqlStore,
    delivery_id: int,
    worker_id: str,
    *,
    http_status: int | None,
    error: str,
    next_attempt_at: float | None,
) -> bool:
    """Record a failed attempt: due again at ``next_attempt_at``, or dead when it is None.

    Only if ``worker_id`` still holds the claim; False otherwise.
    """
    status = "pending" if next_attempt_at is not None else "dead"
    cur = store._exec(
        "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_status = ?, last_error = ?,"
        " next_attempt_at = coalesce(?, next_attempt_at), locked_by = NULL, locked_until = NULL"
        " WHERE id = ? AND locked_by = ? AND status = 'pending'",
        (status, http_status, error[:1000], next_attempt_at, delivery_id, worker_id),
    )
    return int(cur.rowcount) == 1


def release_claim(store: SqlStore, delivery_id: int, worker_id: str) -> bool:
    """Give a claimed delivery back unsent (due as before, attempts unchanged)."""
    cur = store._exec(
        "UPDATE webhook_deliveries SET locked_by = NULL, locked_until = NULL WHERE id = ? AND locked_by = ?",
        (delivery_id, worker_id),
    )
    return int(cur.rowcount) == 1


_REPLAY_SET = (
    "status = 'pending', attempts = 0, next_attempt_at = ?, locked_by = NULL, locked_until = NULL,"
    " delivered_at = NULL"
)


def replay_delivery(store: SqlStore, delivery_id: int, *, now: float | None = None) -> Delivery | None:
    """Make a delivery of any status pending again: attempts 0, due now. None if there is no such id.

    Raises WebhookError when its subscription was deleted (nothing could send it).
    """
    found = get_delivery(store, delivery_id)
    if found is None:
        return None
    if get_subscription(store, found.subscription_id) is None:
        raise WebhookError(
            f"delivery {delivery_id} belongs to subscription {found.subscription_id}, which was deleted"
        )
    store._exec(
        f"UPDATE webhook_deliveries SET {_REPLAY_SET} WHERE id = ?",
        (time.time() if now is None else now, delivery_id),
    )
    return get_delivery(store, delivery_id)


def replay_range(
    store: SqlStore,
    *,
    since: str,
    until: str,
    subscription_id: int | None = None,
    status: str | None = None,
    now: float | None = None,
) -> int:
    """Replay the deliveries created from ``since`` (included) to ``until`` (excluded), ISO dates or
    date-times (UTC unless they say otherwise), of one subscription and/or status; how many."""
    lo, hi = iso_bound(since, "since"), iso_bound(until, "until")
    if lo >= hi:
        raise WebhookError(f"since ({lo}) must be before until ({hi})")
    clauses = [
        "created_at >= ?",
        "created_at < ?",
        "subscription_id IN (SELECT id FROM webhook_subscriptions)",
    ]
    params: list[Any] = [lo, hi]
    if subscription_id is not None:
        clauses.append("subscription_id = ?")
        params.append(subscription_id)
    if check_status(status):
        clauses.append("status = ?")
        params.append(status)
    cur = store._exec(
        f"UPDATE webhook_deliveries SET {_REPLAY_SET} WHERE {' AND '.join(clauses)}",
        [time.time() if now is None else now, *params],
    )
    return int(cur.rowcount)
