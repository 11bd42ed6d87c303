"""The Redis side of the meter (write-through design): minute windows and a fast copy of each key's
monthly credits.

Redis is the fast path, not the record: the accounts database holds the durable credits and the
usage history (``npistack.services.accounts.RedisMeter`` writes every admission through to it). A
month counter absent from Redis (a restart without persistence, an eviction, a new month) is seeded
from the database by the caller, inside the same Lua script that admits, so a key that used its
credits stays refused and two processes seeding at once cannot double it.

Every call is bounded: ``socket_connect_timeout`` and ``socket_timeout`` are ``timeout_s``
(``NPISTACK_REDIS_TIMEOUT_S``), with no retries. A Redis that is down, hung or answers an error
raises ``npistack.errors.Unavailable`` (never a driver exception).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from npistack.errors import NpistackError, Unavailable

# How long Redis keeps a month's credit counter after its last use (40 days: past the month's end);
# the scripts below spell it out (3456000).
CREDITS_TTL_S = 3_456_000

# KEYS: rate window, month credits. ARGV: rpm, active, limit, cost, units, partial, seed ('' = none).
# Flag 3: the month counter is absent and no seed was given (nothing was counted): seed and rerun.
_RESERVE_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  if ARGV[7] == '' then return {0, 0, 0, 3} end
  redis.call('SET', KEYS[2], ARGV[7], 'EX', 3456000)
end
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
end
redis.call('EXPIRE', KEYS[2], 3456000)
return {rl, granted, used, 0}
"""

# KEYS: month credits. ARGV: credits. Only a counter that exists is changed (an absent one is
# seeded from the database, which already has the refund).
_REFUND_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('DECRBY', KEYS[1], ARGV[1])
"""


@dataclass(frozen=True)
class RedisReservation:
    """What the admission script answered."""

    rate_count: int
    granted: int
    credits_used: int
    rate_limited: bool = False
    inactive: bool = False
    needs_seed: bool = False  # the month counter was absent: nothing counted, seed it and rerun


class RedisCounters:
    """Minute windows and month credit counters in Redis, every call bounded by ``timeout_s``."""

    def __init__(self, url: str, *, namespace: str, timeout_s: float) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:  # pragma: no cover - depends on the install
            raise NpistackError(
                "Redis counters need the redis package: pip install 'npistack[redis]'"
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.timeout_s = timeout_s
        self.r = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # one attempt: a retry storm on a hung Redis helps no one
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self.ns = namespace
        self._reserve = self.r.register_script(_RESERVE_LUA)
        self._refund = self.r.register_script(_REFUND_LUA)

    def _k(self, *parts: Any) -> str:
        return ":".join((self.ns, *map(str, parts)))

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except self._errors as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise Unavailable(f"the usage meter (Redis) is unavailable: {what}: {detail}") from None

    def ping(self) -> None:
        self._call("ping", self.r.ping)

    def reserve(
        self,
        key_id: int,
        *,
        window: int,
        month: str,
        rpm: int,
        active: bool,
        limit: int,
        cost: int,
        units: int,
        partial: bool,
        seed: int | None,
    ) -> RedisReservation:
        rl, granted, used, flag = self._call(
            "reserve",
            self._reserve,
            keys=[self._k("rl", key_id, window), self._k("credits", key_id, month)],
            args=[rpm, int(active), limit, cost, units, int(partial), "" if seed is None else str(seed)],
        )
        return RedisReservation(
            int(rl),
            int(granted),
            int(used),
            rate_limited=flag == 1,
            inactive=flag == 2,
            needs_seed=flag == 3,
        )

    def refund(self, key_id: int, *, month: str, credits: int) -> int | None:
        """Take ``credits`` off the month counter; its value after, or None if it was absent."""
        out = int(
            self._call("refund", self._refund, keys=[self._k("credits", key_id, month)], args=[credits])
        )
        return None if out == -1 else out

    def close(self) -> None:
        self.r.close()
