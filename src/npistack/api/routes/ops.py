"""Operations: liveness (``/healthz``), readiness (``/readyz``) and Prometheus metrics (``/metrics``).

``/readyz`` checks the store for real: at most every ``NPISTACK_READYZ_CHECK_S`` seconds it opens a
fresh connection (so a file replaced or damaged under the server is seen) and reads the current load,
counts the providers and reads one, off the event loop; in between it reuses that result. It names
the upstream only as configured or offline, never its URL. ``/metrics`` needs
``Authorization: Bearer <NPISTACK_METRICS_TOKEN>`` (or an admin key) when that setting is set.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from npistack.api.deps import State
from npistack.api.errors import ApiError, json_response
from npistack.api.schemas import error_responses
from npistack.api.state import ApiState
from npistack.storage import open_store

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers", response_model=None)
async def healthz() -> Response:
    return json_response({"status": "ok"})


def _deep_store_check(url: str) -> str:
    """ "ok", or what is wrong, from a fresh read-only connection to the store."""
    try:
        store = open_store(url, read_only=url.startswith("sqlite") or "://" not in url)
    except Exception as e:
        return f"error: {e}"
    try:
        load = store.current_load()
        if load is None:
            return "no data loaded yet (run `npistack ingest`)"
        if store.count_providers() < 0:  # reads every page of an index of the providers
            return "error: the provider count cannot be read"
        store.get_stored(["0000000000"])  # the provider lookup path
        return "ok"
    except Exception as e:  # readiness reports, never raises
        return f"error: {type(e).__name__}: {e}"
    finally:
        store.close()


async def _store_status(st: ApiState) -> str:
    """The deep store check's result, redone at most every ``readyz_check_s`` seconds."""
    async with st.store_check_lock:
        at, result = st.store_check
        if not result or time.monotonic() - at >= st.settings.readyz_check_s:
            result = await asyncio.to_thread(_deep_store_check, st.settings.resolved_database_url())
            st.store_check = (time.monotonic(), result)
    return result


@router.get(
    "/readyz",
    summary="Readiness: store, accounts and counters reachable, data loaded",
    response_model=None,
    responses={503: {"description": "Not ready: the checks say which part is not"}},
)
async def readyz(st: State) -> Response:
    checks: dict[str, str] = {}
    try:
        live = st.store.current_load()  # this process's own connection
        checks["store"] = await _store_status(st) if live else "no data loaded yet (run `npistack ingest`)"
    except Exception as e:  # readiness reports, never raises
        checks["store"] = f"error: {e}"
    try:
        st.accounts.db.plans()
        checks["accounts"] = "ok"
    except Exception as e:
        checks["accounts"] = f"error: {e}"
    ping = getattr(st.meter, "ping", None)
    if ping is not None:
        try:  # bounded by NPISTACK_REDIS_TIMEOUT_S, and off the event loop (a hung Redis holds no one)
            await asyncio.to_thread(ping)
            checks["redis"] = "ok"
        except Exception as e:
            checks["redis"] = f"error: {e}"
    checks["upstream"] = "configured" if st.upstream is not None else "offline"
    ready = all(v == "ok" for k, v in checks.items() if k != "upstream")
    return json_response(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


def _may_read_metrics(st: ApiState, request: Request) -> bool:
    token = st.settings.metrics_token
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return False
    if hmac.compare_digest(given.encode(), token.encode()):
        return True
    found = st.accounts.authenticate(given)
    return found is not None and found[0].role == "admin" and found[0].status == "active"


@router.get(
    "/metrics",
    summary="Prometheus metrics of this server process",
    response_model=None,
    response_class=PlainTextResponse,
    responses=error_responses(401),
)
async def metrics(request: Request, st: State) -> Response:
    if not _may_read_metrics(st, request):
        raise ApiError(
            "invalid_api_key",
            "GET /metrics needs Authorization: Bearer <NPISTACK_METRICS_TOKEN> or an admin key.",
        )
    load = st.current_load()
    extra: dict[str, float] = {}
    if load is not None:
        extra["npistack_store_rows_loaded"] = float(load.rows_loaded)
    return PlainTextResponse(st.metrics.render(extra), media_type="text/plain; version=0.0.4")
