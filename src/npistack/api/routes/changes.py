"""History per NPI and the change feed (``/api/v1``), metered like search: one credit a request."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from npistack.api.app import app_state
from npistack.api.errors import ApiError, json_response, request_id
from npistack.api.metering import admit, refund
from npistack.api.routes.v1 import npi_problem
from npistack.api.schemas import error_responses
from npistack.services.changes import (
    ChangeFilter,
    FilterError,
    decode_cursor,
    encode_cursor,
    events_for,
)
from npistack.services.history import provider_history
from npistack.storage.changes import change_stats, last_change_id, read_changes

router = APIRouter(prefix="/api/v1", tags=["changes"])

JSON_LIMIT = (100, 1000)  # default, maximum
NDJSON_LIMIT = (1000, 10_000)
NDJSON = "application/x-ndjson"

DESCRIPTIONS = {
    "since": "A cursor from a previous page (`meta.nextCursor`, or `X-Next-Cursor` for NDJSON): changes"
    " after it. Omit to start at the first change; `/api/v1/changes/stats` gives the latest cursor.",
    "type": "Change types, repeated or comma-separated: created, updated, deactivated, reactivated, removed.",
    "npi": "NPIs (10 digits), repeated or comma-separated (at most 1000).",
    "state": "Two-letter states of the provider's practice locations, before or after the change.",
    "taxonomy": "NUCC taxonomy codes the provider has, before or after the change.",
    "entity_type": "1 (individuals) or 2 (organizations).",
    "limit": "Changes per page: JSON 1-1000 (default 100), NDJSON 1-10000 (default 1000).",
    "format": "`json` (default) or `ndjson`: one event per line (also chosen by `Accept: application/x-ndjson`).",
}


@router.get(
    "/npi/{npi}/history",
    summary="Every version of a provider, with field-level differences",
    response_model=None,
    responses={
        200: {"description": "The versions, oldest first"},
        **error_responses(400, 401, 403, 404, 429, 500),
    },
)
async def history(npi: str, request: Request) -> Response:
    st = app_state(request.app)
    npi = npi.strip()
    problem = npi_problem(npi)
    if problem:
        raise ApiError("invalid_npi", problem)
    adm = admit(st, request)
    try:
        found = provider_history(st.store, npi)
    except BaseException:
        refund(st, adm, 1)
        raise
    if found is None:
        raise ApiError("npi_not_found", headers=adm.headers())
    return json_response({"data": found, "meta": {"requestId": request_id(request)}}, 200, adm.headers())


def _filter(qp: Any) -> ChangeFilter:
    try:
        return ChangeFilter.parse(
            types=qp.getlist("type"),
            npis=qp.getlist("npi"),
            states=qp.getlist("state"),
            taxonomies=qp.getlist("taxonomy"),
            entity_types=qp.getlist("entity_type"),
        )
    except FilterError as e:
        raise ApiError("invalid_changes_request", str(e)) from None


def _limit(raw: str | None, bounds: tuple[int, int]) -> int:
    if raw is None or raw == "":
        return bounds[0]
    if not raw.isdigit() or not 1 <= int(raw) <= bounds[1]:
        raise ApiError("invalid_changes_request", f"limit must be a whole number from 1 to {bounds[1]}.")
    return int(raw)


@router.get(
    "/changes",
    summary="The change feed: every change, in order, after a cursor",
    response_model=None,
    responses={
        200: {
            "description": "A page of change events (JSON), or one event per line (NDJSON)",
            "content": {"application/json": {}, NDJSON: {}},
        },
        **error_responses(400, 401, 403, 429, 500),
    },
)
async def changes(
    request: Request,
    since: str | None = Query(None, description=DESCRIPTIONS["since"]),
    type: str | None = Query(None, description=DESCRIPTIONS["type"]),  # noqa: A002 - the parameter's name
    npi: str | None = Query(None, description=DESCRIPTIONS["npi"]),
    state: str | None = Query(None, description=DESCRIPTIONS["state"]),
    taxonomy: str | None = Query(None, description=DESCRIPTIONS["taxonomy"]),
    entity_type: str | None = Query(None, description=DESCRIPTIONS["entity_type"]),
    limit: str | None = Query(None, description=DESCRIPTIONS["limit"]),
    format: str | None = Query(None, description=DESCRIPTIONS["format"]),  # noqa: A002
) -> Response:
    st = app_state(request.app)
    qp = request.query_params
    fmt = (format or "").strip().lower()
    if fmt not in ("", "json", "ndjson"):
        raise ApiError("invalid_changes_request", "format must be json or ndjson.")
    ndjson = fmt == "ndjson" or (not fmt and NDJSON in request.headers.get("accept", ""))
    page_size = _limit(limit, NDJSON_LIMIT if ndjson else JSON_LIMIT)
    flt = _filter(qp)
    try:
        after = decode_cursor(since) if since else 0
    except FilterError as e:
        raise ApiError("invalid_changes_request", str(e)) from None
    adm = admit(st, request)
    try:
        rows = read_changes(st.store, after=after, flt=flt, limit=page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        events = events_for(st.store, rows)
    except BaseException:
        refund(st, adm, 1)
        raise
    next_cursor = encode_cursor(rows[-1].id) if rows else (since or encode_cursor(0))
    headers = {**adm.headers(), "X-Next-Cursor": next_cursor, "X-Has-More": "true" if more else "false"}
    if ndjson:
        body = b"".join(orjson.dumps(events[r.id]) + b"\n" for r in rows)
        return Response(body, 200, headers=headers, media_type=NDJSON)
    meta = {
        "requestId": request_id(request),
        "returned": len(rows),
        "hasMore": more,
        "nextCursor": next_cursor,
        "filters": flt.as_dict(),
    }
    return json_response({"data": [events[r.id] for r in rows], "meta": meta}, 200, headers)


@router.get(
    "/changes/stats",
    summary="Change counts per release and type, and the latest cursor",
    response_model=None,
    responses={200: {"description": "Counts per load"}, **error_responses(401, 403, 429, 500)},
)
async def stats(request: Request) -> Response:
    st = app_state(request.app)
    adm = admit(st, request)
    try:
        releases = change_stats(st.store)
        latest = last_change_id(st.store)
    except BaseException:
        refund(st, adm, 1)
        raise
    totals: dict[str, int] = {}
    for rel in releases:
        for kind, n in rel["counts"].items():
            totals[kind] = totals.get(kind, 0) + n
    data = {
        "releases": releases,
        "totals": totals,
        "total": sum(totals.values()),
        "latestCursor": encode_cursor(latest),
        "dataRelease": st.store.data_release(),
    }
    return json_response({"data": data, "meta": {"requestId": request_id(request)}}, 200, adm.headers())
