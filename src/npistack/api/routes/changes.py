"""History per NPI and the change feed (``/api/v1``), metered like search: one credit a request."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from npistack.api.deps import Access, State
from npistack.api.errors import ApiError, json_response, request_id
from npistack.api.params import npi_message
from npistack.api.schemas import error_responses
from npistack.api.state import ApiState
from npistack.services.changes import (
    ChangeFilter,
    ChangePage,
    FilterError,
    change_page,
    decode_cursor,
    encode_cursor,
)
from npistack.services.history import provider_history
from npistack.storage.changes import change_stats, last_change_id

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
    "limit": "Changes per page: JSON 1-1000 (default 100), NDJSON 1-10000 (default 1000). A page also ends"
    " early once its events pass NPISTACK_CHANGES_PAGE_MAX_BYTES (16 MiB by default); follow the cursor.",
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
async def history(npi: str, request: Request, st: State, access: Access) -> Response:
    npi = npi.strip()
    problem = npi_message(npi)
    if problem:
        raise ApiError("invalid_npi", problem)
    adm = access.admit()
    with adm.refund_on_error():
        found = await run_in_threadpool(provider_history, st.store, npi)
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
    st: State,
    access: Access,
    since: str | None = Query(None, description=DESCRIPTIONS["since"]),
    type: str | None = Query(None, description=DESCRIPTIONS["type"]),  # noqa: A002 - the parameter's name
    npi: str | None = Query(None, description=DESCRIPTIONS["npi"]),
    state: str | None = Query(None, description=DESCRIPTIONS["state"]),
    taxonomy: str | None = Query(None, description=DESCRIPTIONS["taxonomy"]),
    entity_type: str | None = Query(None, description=DESCRIPTIONS["entity_type"]),
    limit: str | None = Query(None, description=DESCRIPTIONS["limit"]),
    format: str | None = Query(None, description=DESCRIPTIONS["format"]),  # noqa: A002
) -> Response:
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
    adm = access.admit()
    max_bytes = st.settings.changes_page_max_bytes
    with adm.refund_on_error():
        # The store's reads block, and a 10,000-event page takes seconds: built in a worker thread
        # (the event loop keeps serving), its size capped by bytes as well as by count.
        page, next_cursor, body = await run_in_threadpool(
            lambda: _page(st, request_id(request), since, after, flt, page_size, max_bytes, ndjson)
        )
    more = "true" if page.more else "false"
    headers = {**adm.headers(), "X-Next-Cursor": next_cursor, "X-Has-More": more}
    return Response(body, 200, headers=headers, media_type=NDJSON if ndjson else "application/json")


def _page(
    st: ApiState,
    rid: str,
    since: str | None,
    after: int,
    flt: ChangeFilter,
    limit: int,
    max_bytes: int,
    ndjson: bool,
) -> tuple[ChangePage, str, bytes]:
    """The page, its next cursor and its body: the store's reads block, and a 10,000-event page takes
    seconds to read and tens of ms to assemble, so all of it runs in a worker thread."""
    page = change_page(st.store, after=after, flt=flt, limit=limit, max_bytes=max_bytes)
    next_cursor = encode_cursor(page.last_id) if page.events else (since or encode_cursor(0))
    if ndjson:
        return page, next_cursor, b"".join(line + b"\n" for line in page.events)
    meta = {
        "requestId": rid,
        "returned": len(page.events),
        "hasMore": page.more,
        "nextCursor": next_cursor,
        "filters": flt.as_dict(),
    }
    # The events were serialized once, by the store; the page is assembled around them.
    return page, next_cursor, b'{"data":[' + b",".join(page.events) + b'],"meta":' + orjson.dumps(meta) + b"}"


@router.get(
    "/changes/stats",
    summary="Change counts per release and type, and the latest cursor",
    response_model=None,
    responses={200: {"description": "Counts per load"}, **error_responses(401, 403, 429, 500)},
)
async def stats(request: Request, st: State, access: Access) -> Response:
    adm = access.admit()
    with adm.refund_on_error():
        releases, latest, release = await run_in_threadpool(
            lambda: (change_stats(st.store), last_change_id(st.store), st.store.data_release())
        )
    totals: dict[str, int] = {}
    for rel in releases:
        for kind, n in rel["counts"].items():
            totals[kind] = totals.get(kind, 0) + n
    data = {
        "releases": releases,
        "totals": totals,
        "total": sum(totals.values()),
        "latestCursor": encode_cursor(latest),
        "dataRelease": release,
    }
    return json_response({"data": data, "meta": {"requestId": request_id(request)}}, 200, adm.headers())
