"""Webhooks: signing, verification, retry delays, and the requests a worker sends.

A webhook request is a POST of one event as JSON (the change feed's event object, see
``services.changes.event_payloads``, plus ``subscriptionId`` and ``deliveryId``), signed with the
subscription's secret::

    X-Npistack-Timestamp: 1735689600
    X-Npistack-Signature: v1=<hex HMAC-SHA256(secret, "1735689600." + body)>

Receivers check the signature and the timestamp (``verify``) and deduplicate by the event id
(``X-Npistack-Event-Id``, the body's ``id``): delivery is at least once, and every attempt or replay
of a change carries the same event id and the same body.

Subscriptions and deliveries are stored by ``npistack.storage.webhooks`` and
``npistack.storage.outbox``; their functions are re-exported here for the API, the CLI and the worker.
Creating or changing a subscription's URL goes through the outbound guard (``npistack.outbound``):
a URL that is or resolves to a loopback, private, link-local or metadata address is refused
(``WebhookError``) unless ``NPISTACK_WEBHOOK_ALLOW_HOSTS`` allows it. A name that does not resolve
yet is accepted: the worker checks again, and pins what it checked, before every attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from npistack import __version__, outbound
from npistack.settings import Settings
from npistack.storage import webhooks as _subs
from npistack.storage.base import SqlStore
from npistack.storage.changes import ChangeFilter, FilterError
from npistack.storage.outbox import (
    STATUSES,
    Delivery,
    check_status,
    claim_due,
    delivery_counts,
    get_delivery,
    list_deliveries,
    mark_delivered,
    mark_failed,
    release_claim,
    renew_claims,
    replay_delivery,
    replay_range,
)
from npistack.storage.webhooks import (
    Breaker,
    Subscription,
    WebhookError,
    delete_subscription,
    ensure_breakers,
    get_breakers,
    get_subscription,
    get_subscriptions,
    list_subscriptions,
    new_secret,
    record_attempt,
    reset_breaker,
)

__all__ = [
    "STATUSES",
    "Breaker",
    "Delivery",
    "Outgoing",
    "Subscription",
    "WebhookError",
    "backoff",
    "build_body",
    "check_status",
    "claim_due",
    "create_subscription",
    "delete_subscription",
    "delivery_counts",
    "ensure_breakers",
    "get_breakers",
    "guard_policy",
    "check_receiver",
    "get_delivery",
    "get_subscription",
    "list_deliveries",
    "list_subscriptions",
    "mark_delivered",
    "mark_failed",
    "new_secret",
    "parse_filters",
    "prepare",
    "record_attempt",
    "release_claim",
    "renew_claims",
    "reset_breaker",
    "replay_delivery",
    "replay_range",
    "request_headers",
    "sign",
    "update_subscription",
    "verify",
]

USER_AGENT = f"npistack-webhooks/{__version__}"
SIGNATURE_VERSION = "v1"
MAX_BACKOFF_S = 6 * 3600.0


# -- subscriptions: the outbound guard ----------------------------------------------------------

CREATE_RESOLVE_S = 5.0  # how long creating a subscription waits for DNS


def guard_policy(
    settings: Settings | None = None, *, resolver: outbound.Resolver | None = None
) -> outbound.Policy:
    """The outbound policy of webhook URLs: ``NPISTACK_WEBHOOK_ALLOW_HOSTS``; WebhookError if it is bad."""
    allow = (settings or Settings()).webhook_allow_hosts
    try:
        return outbound.Policy.from_setting(allow, resolver=resolver)
    except outbound.OutboundError as e:
        raise WebhookError(f"NPISTACK_WEBHOOK_ALLOW_HOSTS: {e}") from None


def check_receiver(url: str, policy: outbound.Policy) -> str:
    """The URL (stripped) if the guard lets it through; WebhookError with the reason otherwise.

    A host that does not resolve (now) passes: every attempt resolves and checks it again."""
    try:
        target = outbound.check_url(url, policy)
        outbound.resolve(target, policy, timeout_s=CREATE_RESOLVE_S)
    except outbound.Unresolved:
        pass
    except outbound.OutboundError as e:
        message = str(e)
        raise WebhookError(
            message if message.startswith("url ") else f"url {url.strip()!r}: {message}"
        ) from None
    return _subs.check_url(url)


def create_subscription(
    store: SqlStore,
    *,
    url: str,
    secret: str | None = None,
    filters: ChangeFilter | None = None,
    description: str | None = None,
    active: bool = True,
    policy: outbound.Policy | None = None,
) -> Subscription:
    """``storage.webhooks.create_subscription`` once the URL passed the guard (``policy``, default
    from the settings)."""
    url = check_receiver(url, policy or guard_policy())
    return _subs.create_subscription(
        store, url=url, secret=secret, filters=filters, description=description, active=active
    )


def update_subscription(
    store: SqlStore,
    sub_id: int,
    *,
    url: str | None = None,
    policy: outbound.Policy | None = None,
    **changes: Any,
) -> Subscription | None:
    """``storage.webhooks.update_subscription``; a new URL must pass the guard first. Changing the URL
    closes the subscription's circuit breaker (a new receiver starts afresh)."""
    if url is not None:
        url = check_receiver(url, policy or guard_policy())
    sub = _subs.update_subscription(store, sub_id, url=url, **changes)
    if sub is not None and (url is not None or changes.get("active") is True):
        reset_breaker(store, sub_id)
    return sub


# -- signatures ---------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256, keyed with the secret (UTF-8), of ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(
    secret: str | Sequence[str],
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """Whether a request is authentic and fresh.

    ``signature_header`` may hold several comma-separated signatures and ``secret`` may be several
    secrets (the old and the new one while a secret is rotated): any match is enough. Timestamps
    more than ``tolerance_s`` away from ``now`` are refused (replayed requests). Comparisons are
    constant-time.
    """
    if not timestamp_header or not signature_header:
        return False
    try:
        timestamp = int(timestamp_header.strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    keys = [secret] if isinstance(secret, str) else list(secret)
    given = [s.strip() for s in signature_header.split(",") if s.strip()]
    expected = [sign(k, timestamp, body) for k in keys]
    ok = False
    for sig in given:
        for exp in expected:
            ok |= hmac.compare_digest(sig.encode(), exp.encode())
    return ok


# -- retries ------------------------------------------------------------------------------------


def backoff(
    attempt: int, base_s: float, *, cap_s: float = MAX_BACKOFF_S, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

    Exponential with *equal jitter*: the delay ``d = min(cap_s, base_s * 2 ** (attempt - 1))`` is
    halved and a random amount up to the other half is added, so the wait is in ``[d/2, d]``: it
    still grows with every attempt, while workers that failed together spread out.
    """
    exponent = min(max(attempt, 1) - 1, 64)
    delay = min(cap_s, base_s * 2.0**exponent)
    draw = (rng or random).random()
    return delay / 2 + draw * delay / 2


# -- requests -----------------------------------------------------------------------------------


def build_body(event: dict[str, Any], delivery: Delivery) -> bytes:
    """The request body: the event object plus ``subscriptionId`` and ``deliveryId`` (JSON).

    The same for every attempt and replay of a delivery, so a receiver can compare duplicates.
    """
    return orjson.dumps({**event, "subscriptionId": delivery.subscription_id, "deliveryId": delivery.id})


def request_headers(delivery: Delivery, secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers of one attempt (the timestamp and signature change per attempt, nothing else)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Npistack-Event-Id": delivery.event_id,
        "X-Npistack-Delivery-Id": str(delivery.id),
        "X-Npistack-Timestamp": str(timestamp),
        "X-Npistack-Signature": sign(secret, timestamp, body),
    }


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery ready to send, or the reason it cannot be (``problem``)."""

    delivery: Delivery
    url: str
    secret: str
    body: bytes
    problem: str | None = None


def prepare(store: SqlStore, deliveries: Sequence[Delivery]) -> list[Outgoing]:
    """The URL, secret and body of each delivery (one query per table for the whole batch)."""
    from npistack.services.changes import event_payloads

    subs = get_subscriptions(store, [d.subscription_id for d in deliveries])
    events = event_payloads(store, [d.change_id for d in deliveries])
    out: list[Outgoing] = []
    for d in deliveries:
        sub, event = subs.get(d.subscription_id), events.get(d.change_id)
        if sub is None:
            out.append(Outgoing(d, "", "", b"", f"subscription {d.subscription_id} no longer exists"))
        elif event is None:
            out.append(Outgoing(d, sub.url, sub.secret, b"", f"change {d.change_id} no longer exists"))
        else:
            out.append(Outgoing(d, sub.url, sub.secret, build_body(event, d)))
    return out


def parse_filters(raw: Any) -> ChangeFilter:
    """A subscription's filters from their JSON form; WebhookError says what is wrong."""
    if raw is not None and not isinstance(raw, dict):
        raise WebhookError(
            "filters must be an object with lists: types, npis, states, taxonomies, entity_types"
        )
    try:
        return ChangeFilter.from_dict(raw)
    except FilterError as e:
        raise WebhookError(f"filters: {e}") from None
