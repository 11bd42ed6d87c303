"""Authentication and metering of a request: who is calling, may they, and what it costs.

The order of checks follows the collection's examples: the request's own validation first (a bad
NPI is a 400 before authentication, without quota headers), then the key (401), then the minute
window (429, with the rate headers), then the subscription (403 ``subscription_inactive``, with the
rate headers), then the credits (403 ``quota_exceeded``, with both). A metered response carries
``X-Quota-Limit``/``X-Quota-Remaining`` and the ``X-RateLimit-*`` headers.

Routes with a body validate nothing before the key: they call ``authenticate_client`` (401, and 403
for a key without a plan or a plan without enrichment) before reading a byte of the body
(``api.body``), then parse and validate it (400), then ``reserve`` the credits (429/403). ``admit``
is the two steps at once, for routes whose whole request is in its line and headers.

What is reserved and not served is given back with ``Admission.refund(units)``; the part of a
route that must cost nothing if it fails (a 500) runs inside ``with adm.refund_on_error():``.
Routes reach all of this through ``api.deps`` (``Access``, ``ClientKey``, ``AdminKey``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi import Request

from npistack.api.errors import ApiError
from npistack.api.state import ApiState
from npistack.services.accounts import Limits, limits_of
from npistack.storage.accounts import ApiKey, Plan, Reservation


@dataclass
class Admission:
    """What a request reserved: ``granted`` units of ``cost`` credits each."""

    key: ApiKey
    plan: Plan
    reservation: Reservation
    limits: Limits
    cost: int  # credits per unit
    state: ApiState = field(repr=False)  # whose meter gives the credits back

    @property
    def granted(self) -> int:
        return self.reservation.granted

    def headers(self) -> dict[str, str]:
        return {**self.limits.quota_headers(), **self.limits.rate_headers()}

    def refund(self, units: int) -> None:
        """Give back the credits of ``units`` that were not served (upstream failures)."""
        refund(self.state, self, units)

    @contextmanager
    def refund_on_error(self, *, except_for: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """Whatever the block raises (a cancellation too), but ``except_for``, gives back every unit
        granted and propagates: a request that fails costs nothing."""
        try:
            yield
        except except_for:
            raise
        except BaseException:
            self.refund(self.granted)
            raise


def bearer_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("invalid_api_key")
    return token.strip()


def authenticate(st: ApiState, request: Request) -> tuple[ApiKey, Plan | None]:
    found = st.accounts.authenticate(bearer_key(request))
    if found is None:
        raise ApiError("invalid_api_key")
    request.state.key_id = found[0].id
    return found


def require_admin(st: ApiState, request: Request) -> ApiKey:
    key, _ = authenticate(st, request)
    if key.role != "admin" or key.status != "active":
        raise ApiError("admin_required")
    return key


@dataclass(frozen=True)
class Caller:
    """A client key that authenticated, with its plan (nothing reserved yet)."""

    key: ApiKey
    plan: Plan


def authenticate_client(st: ApiState, request: Request, *, enrichment: bool = False) -> Caller:
    """The calling client key and its plan: 401 without a valid key, 403 for a key without a plan
    (an admin key) or, with ``enrichment``, a plan that does not include enrichment."""
    key, plan = authenticate(st, request)
    if plan is None:  # an admin key, or a plan that was deleted
        raise ApiError(
            "subscription_inactive", "This key has no plan; data endpoints need a client key with a plan."
        )
    if enrichment and not plan.enrichment:
        raise ApiError(
            "enrichment_not_allowed",
            f"Enrichment is not included in the {plan.name!r} plan; it needs a plan with enrichment (Growth or Pro).",
        )
    return Caller(key, plan)


def admit(
    st: ApiState,
    request: Request,
    *,
    cost: int = 1,
    units: int = 1,
    partial: bool = False,
    enrichment: bool = False,
) -> Admission:
    """Authenticate and reserve ``units`` × ``cost`` credits, or raise the contract's error."""
    caller = authenticate_client(st, request, enrichment=enrichment)
    return reserve(st, caller, cost=cost, units=units, partial=partial)


def reserve(
    st: ApiState, caller: Caller, *, cost: int = 1, units: int = 1, partial: bool = False
) -> Admission:
    """Count the request against the minute window and reserve ``units`` × ``cost`` credits (all or
    nothing unless ``partial``), or raise the contract's error (429, 403)."""
    key, plan = caller.key, caller.plan
    now = st.now()
    res = st.meter.reserve(key, plan, cost=cost, units=units, partial=partial, now=now)
    limits = limits_of(plan, res, now)
    if res.rate_limited:
        retry = max(1, limits.rate_reset - int(now.timestamp()))
        raise ApiError("rate_limited", headers={**limits.rate_headers(), "Retry-After": str(retry)})
    if res.inactive:
        raise ApiError("subscription_inactive", headers=limits.rate_headers())
    if res.granted == 0:
        raise ApiError("quota_exceeded", headers={**limits.quota_headers(), **limits.rate_headers()})
    return Admission(key, plan, res, limits, cost, st)


def refund(st: ApiState, adm: Admission, units: int) -> None:
    """Give back the credits of ``units`` that were not served (upstream failures)."""
    if units <= 0:
        return
    now = st.now()
    used = st.meter.refund(adm.key, credits=units * adm.cost, now=now)
    adm.limits = limits_of(adm.plan, adm.reservation, now, used=used)
