"""API keys, plans and metering (credits per month, requests per minute).

- A key is ``npk_`` + 32 random URL-safe characters. It is shown once, at creation; the store keeps
  its SHA-256 (keys are long random secrets, so a fast hash is enough) and a short prefix for
  listings.
- Plans set monthly credits, requests per minute and whether enrichment is allowed. The defaults
  mirror the Health Provider API: ``free`` (1,000 credits, no enrichment), ``growth`` and ``pro``
  (with enrichment), all at 300 requests per minute. Edit them with ``npistack plans set``.
- Metering follows the collection: a 200 or a 404 costs one credit, a 502 none; bulk lookups meter
  per item; a search page costs one credit; an enrichment request costs 2 in total. Credits reset on
  the first of each month (UTC). Rate limits use fixed one-minute windows (UTC): ``X-RateLimit-Reset``
  is the end of the current window.
- Counters are exact with any number of server processes: in Redis (one Lua script per request)
  when ``NPISTACK_REDIS_URL`` is set, otherwise in the accounts database (one transaction). Either
  way the accounts database is the durable record of credits and usage: Redis is the fast path,
  written through to it and seeded from it (``RedisMeter``). A Redis that is down or hung makes the
  meter raise ``Unavailable`` (503 with ``Retry-After``), bounded by ``NPISTACK_REDIS_TIMEOUT_S``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from npistack.errors import NpistackError, StoreError, Unavailable
from npistack.settings import get_settings
from npistack.storage.accounts import AccountsDb, ApiKey, Plan, Reservation
from npistack.storage.meter_fastpath import RedisCounters, RedisReservation

log = logging.getLogger("npistack.meter")

KEY_PREFIX = "npk_"

DEFAULT_PLANS = (
    Plan("free", 1_000, 300, False, "Free: 1,000 credits a month, no enrichment"),
    Plan("growth", 50_000, 300, True, "Growth: 50,000 credits a month, enrichment"),
    Plan("pro", 250_000, 300, True, "Pro: 250,000 credits a month, enrichment"),
)


class AccountError(NpistackError):
    """A key or plan operation that cannot be done (unknown key, unknown plan...)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def shown_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 8]


def month_of(now: datetime) -> str:
    return now.strftime("%Y-%m")


def day_of(now: datetime) -> str:
    return now.strftime("%Y-%m-%d")


def minute_window(now: datetime) -> int:
    return int(now.timestamp()) // 60


class Accounts:
    """Keys and plans, over the accounts database."""

    def __init__(self, db: AccountsDb) -> None:
        self.db = db
        db.seed_plans(DEFAULT_PLANS)

    def create_key(self, *, name: str, plan: str = "free", admin: bool = False) -> tuple[str, ApiKey]:
        """A new key (returned once, in clear) and its record."""
        if not admin and self.db.plan(plan) is None:
            known = ", ".join(p.name for p in self.db.plans())
            raise AccountError(f"unknown plan {plan!r}; plans: {known}")
        key = new_key()
        record = self.db.create_key(
            key_hash=hash_key(key),
            prefix=shown_prefix(key),
            name=name,
            plan=plan if not admin else "admin",
            role="admin" if admin else "client",
            now=_now_iso(),
        )
        return key, record

    def find(self, ref: str | int) -> ApiKey:
        rec = self.db.key(ref)
        if rec is None:
            raise AccountError(f"no API key {ref!r} (use the id or the prefix `npistack keys list` shows)")
        return rec

    def set_status(self, ref: str | int, status: str) -> ApiKey:
        rec = self.find(ref)
        if rec.status == "revoked":
            raise AccountError(f"key {rec.prefix} is revoked; a revoked key cannot change")
        self.db.set_key(rec.id, now=_now_iso(), status=status)
        return self.find(rec.id)

    def set_plan(self, ref: str | int, plan: str) -> ApiKey:
        if self.db.plan(plan) is None:
            raise AccountError(f"unknown plan {plan!r}")
        rec = self.find(ref)
        self.db.set_key(rec.id, now=_now_iso(), plan=plan)
        return self.find(rec.id)

    def authenticate(self, key: str) -> tuple[ApiKey, Plan | None] | None:
        """The key's record and plan, or None if no such key (revoked keys are unknown keys)."""
        if not key.startswith(KEY_PREFIX):
            return None
        found = self.db.key_by_hash(hash_key(key))
        if found is None or found[0].status == "revoked":
            return None
        return found


class Meter(Protocol):
    def reserve(
        self, key: ApiKey, plan: Plan, *, cost: int, units: int, partial: bool, now: datetime
    ) -> Reservation: ...

    def refund(self, key: ApiKey, *, credits: int, now: datetime) -> int: ...

    def used(self, key_id: int, now: datetime) -> int: ...

    def usage(self, key_id: int | None, since: str) -> list[tuple[int, str, int, int]]: ...


class DbMeter:
    """Counters in the accounts database (one transaction per request)."""

    def __init__(self, db: AccountsDb) -> None:
        self.db = db

    def reserve(
        self, key: ApiKey, plan: Plan, *, cost: int, units: int, partial: bool, now: datetime
    ) -> Reservation:
        return self.db.reserve(
            key.id,
            window=minute_window(now),
            rpm=plan.requests_per_minute,
            active=key.status == "active",
            month=month_of(now),
            day=day_of(now),
            limit=plan.monthly_credits,
            cost=cost,
            units=units,
            partial=partial,
        )

    def refund(self, key: ApiKey, *, credits: int, now: datetime) -> int:
        return self.db.refund(key.id, month=month_of(now), day=day_of(now), credits=credits)

    def used(self, key_id: int, now: datetime) -> int:
        return self.db.used(key_id, month_of(now))

    def usage(self, key_id: int | None, since: str) -> list[tuple[int, str, int, int]]:
        return self.db.usage(key_id, since)


# Seconds a failing Redis is left alone before one request probes it again (the others answer 503
# at once meanwhile): a hung Redis costs one timeout per interval, not one per request.
REDIS_BREAKER_S = 2.0


class _Breaker:
    """Closed (calls go through), open (calls fail at once), then one probe after ``interval_s``."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._failing = False
        self._open_until = 0.0

    def check(self) -> None:
        """Raise ``Unavailable`` while open; past the interval let exactly one caller probe."""
        with self._lock:
            now = time.monotonic()
            if now < self._open_until:
                raise Unavailable(
                    "the usage meter (Redis) is unavailable; retry shortly", self._open_until - now
                )
            if self._failing:  # half open: this caller probes, the others wait out another interval
                self._open_until = now + self.interval_s

    def succeeded(self) -> None:
        with self._lock:
            if self._failing:
                log.warning("the usage meter (Redis) answers again")
            self._failing = False
            self._open_until = 0.0

    def failed(self, why: str) -> None:
        with self._lock:
            if not self._failing:
                log.warning("%s; metered requests answer 503 until it answers again", why)
            self._failing = True
            self._open_until = time.monotonic() + self.interval_s


class RedisMeter:
    """Redis as the fast path, the accounts database as the durable record.

    One Lua script per request counts the minute window and reserves the credits in Redis, so
    admission stays exact across processes. Each request that passes the window and is active is
    then written through to the database (``record_usage``: its credits to the month, the request
    and its credits to the day). A month counter absent from Redis is seeded from the database
    first (in the same script, so concurrent seeders cannot double it): a Redis restarted without
    persistence keeps a key at 100/100 refused. Usage history and ``used`` are read from the database.

    Every Redis call is bounded (``timeout_s``, no retries) and goes through a circuit breaker; a
    Redis that is down or hung raises ``Unavailable`` (the API's 503 with ``Retry-After``).
    """

    def __init__(
        self, db: AccountsDb, url: str, *, namespace: str, timeout_s: float, breaker_s: float | None = None
    ) -> None:
        self.db = db
        self.counters = RedisCounters(url, namespace=namespace, timeout_s=timeout_s)
        self._breaker = _Breaker(REDIS_BREAKER_S if breaker_s is None else breaker_s)

    def _redis(self, fn: Any, *args: Any, **kw: Any) -> Any:
        self._breaker.check()
        try:
            out = fn(*args, **kw)
        except Unavailable as e:
            self._breaker.failed(str(e))
            raise Unavailable(str(e), self._breaker.interval_s) from None
        self._breaker.succeeded()
        return out

    def ping(self) -> None:
        self._redis(self.counters.ping)

    def reserve(
        self, key: ApiKey, plan: Plan, *, cost: int, units: int, partial: bool, now: datetime
    ) -> Reservation:
        month, day = month_of(now), day_of(now)

        def admit(seed: int | None) -> RedisReservation:
            return self.counters.reserve(
                key.id,
                window=minute_window(now),
                month=month,
                rpm=plan.requests_per_minute,
                active=key.status == "active",
                limit=plan.monthly_credits,
                cost=cost,
                units=units,
                partial=partial,
                seed=seed,
            )

        res: RedisReservation = self._redis(admit, None)
        if res.needs_seed:  # Redis lost (or never had) this month's counter: the database has it
            try:
                seed = self.db.used(key.id, month)
            except StoreError as e:
                raise Unavailable(f"the usage meter cannot read the durable counters: {e}", 5.0) from None
            res = self._redis(admit, seed)
        if not (res.rate_limited or res.inactive):
            credits = res.granted * cost
            try:
                self.db.record_usage(key.id, month=month, day=day, requests=1, credits=credits)
            except StoreError as e:
                if credits:  # not recorded, so not admitted: give the credits back to Redis
                    with contextlib.suppress(Unavailable):
                        self._redis(self.counters.refund, key.id, month=month, credits=credits)
                raise Unavailable(f"the usage meter cannot record the request: {e}", 5.0) from None
        return Reservation(
            res.rate_count,
            res.granted,
            res.credits_used,
            rate_limited=res.rate_limited,
            inactive=res.inactive,
        )

    def refund(self, key: ApiKey, *, credits: int, now: datetime) -> int:
        month = month_of(now)
        used = self.db.refund(key.id, month=month, day=day_of(now), credits=credits)
        try:
            after = self._redis(self.counters.refund, key.id, month=month, credits=credits)
        except Unavailable as e:
            # The durable record has the refund; Redis's copy stays that much higher (the key is
            # refused early by at most these credits) until the counter is next seeded.
            log.warning("refund of %d credits to key %d not applied in Redis: %s", credits, key.id, e)
            return used
        return used if after is None else int(after)

    def used(self, key_id: int, now: datetime) -> int:
        return self.db.used(key_id, month_of(now))

    def usage(self, key_id: int | None, since: str) -> list[tuple[int, str, int, int]]:
        return self.db.usage(key_id, since)


@dataclass(frozen=True)
class Limits:
    """The header values of a metered response."""

    quota_limit: int
    quota_remaining: int
    rate_limit: int
    rate_remaining: int
    rate_reset: int  # Unix seconds at which the current minute window ends

    def quota_headers(self) -> dict[str, str]:
        return {"X-Quota-Limit": str(self.quota_limit), "X-Quota-Remaining": str(self.quota_remaining)}

    def rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.rate_remaining),
            "X-RateLimit-Reset": str(self.rate_reset),
        }


def limits_of(plan: Plan, res: Reservation, now: datetime, used: int | None = None) -> Limits:
    used = res.credits_used if used is None else used
    return Limits(
        quota_limit=plan.monthly_credits,
        quota_remaining=max(0, plan.monthly_credits - used),
        rate_limit=plan.requests_per_minute,
        rate_remaining=max(0, plan.requests_per_minute - res.rate_count),
        rate_reset=(minute_window(now) + 1) * 60,
    )


def open_meter(db: AccountsDb, redis_url: str, *, timeout_s: float | None = None) -> Meter:
    """Redis counters (over the database's durable ones) with ``redis_url``, else database counters.
    ``timeout_s`` bounds every Redis call (default: ``NPISTACK_REDIS_TIMEOUT_S``)."""
    if not redis_url:
        return DbMeter(db)
    if timeout_s is None:
        timeout_s = get_settings().redis_timeout_s
    return RedisMeter(db, redis_url, namespace=f"npistack:{db.instance_id}", timeout_s=timeout_s)


def usage_since(days: int, now: datetime | None = None) -> str:
    return day_of((now or datetime.now(UTC)) - timedelta(days=days - 1))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
