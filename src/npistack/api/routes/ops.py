"""Operations: liveness (``/healthz``), readiness (``/readyz``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from npistack.api.app import app_state
from npistack.api.errors import json_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers", response_model=None)
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz", summary="Readiness: store, accounts and counters reachable, data loaded", response_model=None
)
async def readyz(request: Request) -> Response:
    st = app_state(request.app)
    checks: dict[str, str] = {}
    try:
        load = st.store.current_load()
        checks["store"] = "ok" if load else "no data loaded yet (run `npistack ingest`)"
    except Exception as e:  # readiness reports, never raises
        checks["store"] = f"error: {e}"
    try:
        st.accounts.db.plans()
        checks["accounts"] = "ok"
    except Exception as e:
        checks["accounts"] = f"error: {e}"
    ping = getattr(st.meter, "ping", None)
    if ping is not None:
        try:
            ping()
            checks["redis"] = "ok"
        except Exception as e:
            checks["redis"] = f"error: {e}"
    checks["upstream"] = st.settings.upstream_url if st.upstream is not None else "offline"
    ready = all(v == "ok" for k, v in checks.items() if k != "upstream")
    return json_response(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics of this server process",
    response_model=None,
    response_class=PlainTextResponse,
)
async def metrics(request: Request) -> Response:
    st = app_state(request.app)
    load = st.current_load()
    extra: dict[str, float] = {}
    if load is not None:
        extra["npistack_store_rows_loaded"] = float(load.rows_loaded)
    return PlainTextResponse(st.metrics.render(extra), media_type="text/plain; version=0.0.4")
