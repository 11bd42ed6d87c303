"""The Health Provider API contract: single lookup, bulk lookup, search (``/api/v1``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from npistack.api.body import BULK_MAX_BYTES, read_body
from npistack.api.deps import Access, ClientKey, State
from npistack.api.errors import ApiError, json_response, request_id
from npistack.api.params import PARAMS, npi_message, parse_search
from npistack.api.schemas import BulkRequest, BulkResponse, LookupResponse, SearchResponse, error_responses
from npistack.api.state import ApiState
from npistack.services.providers import get_providers
from npistack.services.search import search

router = APIRouter(prefix="/api/v1", tags=["providers"])


def _enrichment(st: ApiState, value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    from npistack.services.enrichment import parse_enrichment

    try:
        return parse_enrichment(value)
    except ValueError as e:
        raise ApiError("invalid_enrichment", str(e)) from None


def _enrich(st: ApiState, doc: dict[str, Any], factors: frozenset[str]) -> None:
    from npistack.services.enrichment import enrich

    load = st.current_load()
    released = (doc.get("release") or {}).get("date")
    doc["enrichment"] = enrich(
        doc,
        factors,
        release_date=date.fromisoformat(released) if released else None,
        loaded_at=datetime.fromisoformat(load.finished_at) if load and load.finished_at else None,
        today=st.today(),
    )


@router.get(
    "/npi/{npi}",
    summary="Look up one provider by NPI",
    response_model=None,
    responses={200: {"model": LookupResponse}, **error_responses(400, 401, 403, 404, 429, 500, 502)},
)
async def lookup(
    npi: str,
    request: Request,
    access: Access,
    enrichment: str | None = Header(None, description=PARAMS["enrichment"]),
) -> Response:
    st = access.state
    npi = npi.strip()
    problem = npi_message(npi)
    if problem:
        raise ApiError("invalid_npi", problem)
    factors = _enrichment(st, enrichment)
    adm = access.admit(cost=2 if factors else 1, enrichment=bool(factors))
    with adm.refund_on_error():  # a 500 costs nothing
        outcome = (await st.lookup.lookup([npi]))[0]
        if outcome.doc is not None and factors:
            _enrich(st, outcome.doc, factors)
    st.metrics.count("lookup", "upstream_error" if outcome.upstream_error else outcome.cache)
    if outcome.upstream_error:
        adm.refund(1)
        raise ApiError("upstream_unavailable", headers=adm.headers())
    headers = {**adm.headers(), "X-Cache-Status": outcome.cache}
    if outcome.doc is None:
        raise ApiError("npi_not_found", headers=headers)
    body = {"data": outcome.doc, "meta": {"requestId": request_id(request), "cached": outcome.cached}}
    return json_response(body, 200, headers)


_UPSTREAM_ERROR = {
    "code": "upstream_unavailable",
    "message": "The upstream provider registry is temporarily unavailable.",
}
_QUOTA_ERROR = {"code": "quota_exceeded", "message": "Monthly lookup quota has been exceeded."}


def _parse_bulk(raw: bytes) -> list[str]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError("invalid_bulk_request") from None
    npis = body.get("npis") if isinstance(body, dict) else None
    if not isinstance(npis, list) or not 1 <= len(npis) <= 50:
        raise ApiError("invalid_bulk_request")
    out = []
    for item in npis:
        if not isinstance(item, str):
            raise ApiError("invalid_bulk_request")
        item = item.strip()
        if len(item) != 10 or not item.isdigit() or not item.isascii():
            raise ApiError("invalid_bulk_request")
        out.append(item)
    return out


@router.post(
    "/npi/bulk",
    summary="Look up 1 to 50 NPIs",
    response_model=None,
    responses={200: {"model": BulkResponse}, **error_responses(400, 401, 403, 429, 500)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BulkRequest.model_json_schema()}},
        }
    },
)
async def bulk(request: Request, st: State, access: Access, caller: ClientKey) -> Response:
    # ClientKey: 401 before a byte of the body is read
    npis = _parse_bulk(await read_body(request, BULK_MAX_BYTES))
    adm = access.reserve(caller, units=len(npis), partial=True)
    served = npis[: adm.granted]
    with adm.refund_on_error():  # a 500 costs nothing
        # Every served item is looked up, as the contract does (an NPI failing the check digit is
        # not in the store, and the upstream, if any, is asked like for any other missing NPI).
        outcomes = {o.npi: o for o in await st.lookup.lookup(list(dict.fromkeys(served)))}
    rid = request_id(request)
    data, counts = [], dict.fromkeys(("found", "notFound", "upstreamErrors", "quotaExceeded", "cacheHits"), 0)
    upstream_failures = 0
    for i, npi in enumerate(npis):
        item: dict[str, Any] = {"npi": npi, "status": "", "provider": None, "cached": False,
                                "requestId": f"{rid}_{i:02d}", "error": None}  # fmt: skip
        if i >= adm.granted:
            item.update(status="quota_exceeded", error=_QUOTA_ERROR)
            counts["quotaExceeded"] += 1
            data.append(item)
            continue
        o = outcomes[npi]
        st.metrics.count("lookup", "upstream_error" if o.upstream_error else o.cache)
        if o.upstream_error:
            item.update(status="upstream_error", error=_UPSTREAM_ERROR)
            counts["upstreamErrors"] += 1
            upstream_failures += 1
        elif o.doc is None:
            item["status"] = "not_found"
            problem = npi_message(npi)
            if problem:  # say why it can never be found
                item["error"] = {"code": "invalid_npi", "message": problem}
            counts["notFound"] += 1
        else:
            item.update(status="found", provider=o.doc, cached=o.cached)
            counts["found"] += 1
            counts["cacheHits"] += int(o.cached)
        data.append(item)
    adm.refund(upstream_failures)
    body = {"data": data, "meta": {"requestId": rid, "counts": {"requested": len(npis), **counts}}}
    return json_response(body, 200, adm.headers())


@router.get(
    "/providers/search",
    summary="Search providers",
    response_model=None,
    responses={200: {"model": SearchResponse}, **error_responses(400, 401, 403, 429, 500)},
)
async def search_providers(
    request: Request,
    st: State,
    access: Access,
    last_name: str | None = Query(None, description=PARAMS["last_name"]),
    first_name: str | None = Query(None, description=PARAMS["first_name"]),
    organization_name: str | None = Query(None, description=PARAMS["organization_name"]),
    city: str | None = Query(None, description=PARAMS["city"]),
    state: str | None = Query(None, description=PARAMS["state"]),
    postal_code: str | None = Query(None, description=PARAMS["postal_code"]),
    address_purpose: str | None = Query(None, description=PARAMS["address_purpose"]),
    taxonomy: str | None = Query(None, description=PARAMS["taxonomy"]),
    taxonomy_description: str | None = Query(None, description=PARAMS["taxonomy_description"]),
    entity_type: str | None = Query(None, description=PARAMS["entity_type"]),
    status: str | None = Query(None, description=PARAMS["status"]),
    fuzzy: str | None = Query(None, description=PARAMS["fuzzy"]),
    nicknames: str | None = Query(None, description=PARAMS["nicknames"]),
    near: str | None = Query(None, description=PARAMS["near"]),
    radius_miles: str | None = Query(None, description=PARAMS["radius_miles"]),
    limit: str | None = Query(None, description=PARAMS["limit"]),
    skip: str | None = Query(None, description=PARAMS["skip"]),
    cursor: str | None = Query(None, description=PARAMS["cursor"]),
    enrichment: str | None = Query(None, description=PARAMS["enrichment"]),
) -> Response:
    qp = request.query_params
    req = parse_search(dict(qp), {k: qp.getlist(k) for k in qp})
    factors = _enrichment(st, req.enrichment)
    adm = access.admit(cost=2 if factors else 1, enrichment=bool(factors))

    def run() -> tuple[Any, list[dict[str, Any]]]:
        page = search(st.store, req.query, limit=req.limit, skip=req.skip, cursor=req.cursor)
        docs = {d["npi"]: d for d in get_providers(st.store, [h.npi for h in page.hits])}
        data = []
        for hit in page.hits:
            doc = docs.get(hit.npi)
            if doc is None:  # replaced by a load between the two reads
                continue
            if hit.distance_miles is not None:
                doc["distanceMiles"] = hit.distance_miles
            if factors:
                _enrich(st, doc, factors)
            data.append(doc)
        return page, data

    with adm.refund_on_error():  # a 500, and a 400 the engine finds, cost nothing
        try:
            # The store's reads block: off the event loop, so one search never holds up other requests.
            page, data = await run_in_threadpool(run)
        except ValueError as e:
            raise ApiError("invalid_search_params", str(e)) from None
    pagination = {"limit": req.limit, "skip": req.skip, "returned": len(data), "hasMore": page.has_more,
                  "nextCursor": page.next_cursor}  # fmt: skip
    body = {"data": data, "meta": {"requestId": request_id(request), "pagination": pagination}}
    return json_response(body, 200, adm.headers())
