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
  when ``NPISTACK_REDIS_URL`` is set, otherwise in the accounts database (one transaction).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from npistack.errors import NpistackError
from npistack.storage.accounts import AccountsDb, ApiKey, Plan, Reservation

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


# KEYS: rate window, month credits, day hash. ARGV: rpm, active, limit, cost, units, partial.
_RESERVE_LUA = """
local rl = redis.call('INCR', KEYS[1])
if rl == 1 then redis.call('EXPIRE', KEYS[1], 120) end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if rl > tonumber(ARGV[1]) then return {rl, 0, used, 1} end
if ARGV[2] ~= '1' then return {rl, 0, used, 2} end
local limit, cost, units = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local affordable = units
if cost > 0 then affordable = math.floor((limit - used) / cost) end
if affordable < 0 then affordable = 0 end
local granted = units
if affordable < units then
  if ARGV[6] == '1' then granted = affordable else granted = 0 end
end
if granted > 0 then
  used = redis.call('INCRBY', KEYS[2], granted * cost)
  redis.call('EXPIRE', KEYS[2], 3456000)
end
redis.call('HINCRBY', KEYS[3], 'requests', 1)
redis.call('HINCRBY', KEYS[3], 'credits', granted * cost)
redis.call('EXPIRE', KEYS[3], 34560000)
return {rl, granted, used, 0}
"""


class RedisMeter:
    """Counters in Redis: one Lua script per request, so they are exact across processes."""

    def __init__(self, url: str, namespace: str = "npistack") -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the install
            raise NpistackError(
                "Redis counters need the redis package: pip install 'npistack[redis]'"
            ) from None
        self.r = redis.Redis.from_url(url)
        self.ns = namespace
        self._script = self.r.register_script(_RESERVE_LUA)

    def ping(self) -> None:
        self.r.ping()

    def _k(self, *parts: Any) -> str:
        return ":".join((self.ns, *map(str, parts)))

    def reserve(
        self, key: ApiKey, plan: Plan, *, cost: int, units: int, partial: bool, now: datetime
    ) -> Reservation:
        rl, granted, used, flag = self._script(
            keys=[
                self._k("rl", key.id, minute_window(now)),
                self._k("credits", key.id, month_of(now)),
                self._k("usage", key.id, day_of(now)),
            ],
            args=[
                plan.requests_per_minute,
                int(key.status == "active"),
                plan.monthly_credits,
                cost,
                units,
                int(partial),
            ],
        )
        return Reservation(int(rl), int(granted), int(used), rate_limited=flag == 1, inactive=flag == 2)

    def refund(self, key: ApiKey, *, credits: int, now: datetime) -> int:
        pipe = self.r.pipeline()
        pipe.decrby(self._k("credits", key.id, month_of(now)), credits)
        pipe.hincrby(self._k("usage", key.id, day_of(now)), "credits", -credits)
        return int(pipe.execute()[0])

    def used(self, key_id: int, now: datetime) -> int:
        return int(self.r.get(self._k("credits", key_id, month_of(now))) or 0)

    def usage(self, key_id: int | None, since: str) -> list[tuple[int, str, int, int]]:
        pattern = self._k("usage", key_id if key_id is not None else "*", "*")
        rows = []
        for raw in self.r.scan_iter(match=pattern, count=1000):
            name = raw.decode() if isinstance(raw, bytes) else raw
            _, _, kid, day = name.rsplit(":", 3)
            if day < since:
                continue
            h = self.r.hgetall(name)
            rows.append((int(kid), day, int(h.get(b"requests", 0)), int(h.get(b"credits", 0))))
        return sorted(rows, key=lambda r: (r[1], -r[0]), reverse=True)


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


def open_meter(db: AccountsDb, redis_url: str) -> Meter:
    return RedisMeter(redis_url, namespace=f"npistack:{db.instance_id}") if redis_url else DbMeter(db)


def usage_since(days: int, now: datetime | None = None) -> str:
    return day_of((now or datetime.now(UTC)) - timedelta(days=days - 1))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
