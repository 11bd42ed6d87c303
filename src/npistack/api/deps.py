"""The routes' dependencies (``Annotated``, FastAPI's ``Depends``): the process's state, the caller's
key, and the metering of a request.

- ``State``: the server process's ``ApiState`` (store, accounts, meter, lookup, settings, clock).
- ``ClientKey``: the calling client key and its plan (401 without a valid key, 403 for a key with
  no plan), checked before the route runs and before a byte of its body is read.
- ``AdminKey``: an active admin key (401, 403 ``admin_required``), checked before the route runs.
- ``Access``: the request's metering, for the routes that must check or charge later: after their
  own validation (a bad NPI is a 400 before the key is looked at, and costs nothing) or once the
  cost is known from the body (a bulk lookup costs one credit per NPI)::

      async def history(npi: str, request: Request, access: Access) -> Response:
          ...validate npi (400)...
          adm = access.admit()                  # 401, 429, 403; reserves one credit
          with adm.refund_on_error():           # a 500 costs nothing
              found = ...
          if found is None:                     # a 404 costs its credit
              raise ApiError("npi_not_found", headers=adm.headers())

Why the eager ones only where a route declares no validated parameter, and why the refund is a
``with`` block and not a ``yield`` dependency: FastAPI calls a route's dependencies before it
validates the route's own query, path and header parameters, so a dependency that authenticates
would answer 401 where the route answers 400 today (``admin/v1/keys/0/suspend`` without a key).
And a ``yield`` dependency sees every exception of the route (the 404 ``npi_not_found`` too, which
is charged), while its exit code runs after the response was sent (scope ``"request"``, the default)
or before the exception handlers (scope ``"function"``): neither gives back exactly the credits of
the part that failed, with the refund reflected in the response's quota headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from npistack.api import metering
from npistack.api.metering import Admission, Caller
from npistack.api.state import ApiState, app_state
from npistack.storage.accounts import ApiKey


async def get_state(request: Request) -> ApiState:
    return app_state(request.app)


# The dependencies are ``async``: FastAPI would run plain functions in a worker thread, and the
# accounts' connections (SQLite) belong to the event loop's thread, as when routes called them.
State = Annotated[ApiState, Depends(get_state)]


@dataclass(frozen=True)
class Metering:
    """The metering of one request: authenticate it, reserve what it costs (``Admission``)."""

    state: ApiState
    request: Request

    def client(self, *, enrichment: bool = False) -> Caller:
        """The calling client key and its plan (401, 403; nothing reserved)."""
        return metering.authenticate_client(self.state, self.request, enrichment=enrichment)

    def admin(self) -> ApiKey:
        """An active admin key (401, 403 ``admin_required``)."""
        return metering.require_admin(self.state, self.request)

    def admit(
        self, *, cost: int = 1, units: int = 1, partial: bool = False, enrichment: bool = False
    ) -> Admission:
        """Authenticate, then reserve ``units`` × ``cost`` credits (401, 403, 429)."""
        return metering.admit(
            self.state, self.request, cost=cost, units=units, partial=partial, enrichment=enrichment
        )

    def reserve(self, caller: Caller, *, cost: int = 1, units: int = 1, partial: bool = False) -> Admission:
        """Reserve ``units`` × ``cost`` credits for a caller already authenticated (429, 403)."""
        return metering.reserve(self.state, caller, cost=cost, units=units, partial=partial)


async def get_metering(request: Request) -> Metering:
    # Not built on ``State``: every dependency FastAPI resolves costs a request ~25 us, and the
    # lookup routes take only this one (``access.state`` is the state).
    return Metering(app_state(request.app), request)


Access = Annotated[Metering, Depends(get_metering)]


async def client_key(access: Access) -> Caller:
    return access.client()


async def admin_key(access: Access) -> ApiKey:
    return access.admin()


ClientKey = Annotated[Caller, Depends(client_key)]
AdminKey = Annotated[ApiKey, Depends(admin_key)]
