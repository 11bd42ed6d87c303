"""Record matching (``POST /api/v1/match``): up to 1,000 records a request, one credit each."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from npistack.api.body import MATCH_MAX_BYTES, read_body
from npistack.api.deps import Access, ClientKey, State
from npistack.api.errors import ApiError, request_id
from npistack.api.schemas import error_responses
from npistack.api.state import ApiState
from npistack.services.match import FIELDS, Matcher, MatchInput, MatchInputError

router = APIRouter(prefix="/api/v1", tags=["identity"])

MAX_RECORDS = 1000

_RECORD_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {f: {"type": ["string", "null"]} for f in FIELDS},
    "description": "Any of the fields; at least an NPI, a license number or a name.",
}
REQUEST_SCHEMA = {
    "type": "object",
    "required": ["records"],
    "additionalProperties": False,
    "properties": {
        "records": {"type": "array", "minItems": 1, "maxItems": MAX_RECORDS, "items": _RECORD_SCHEMA},
        "threshold": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "Confidence from which a record is matched (default 0.9).",
        },
    },
}

_matchers: dict[tuple[int, int | None, float], Matcher] = {}


def _matcher(st: ApiState, threshold: float) -> Matcher:
    """One matcher per store, data load and threshold (its caches hold registry frequencies)."""
    load = st.store.current_load()
    key = (id(st.store), load.id if load else None, threshold)
    m = _matchers.get(key)
    if m is None:
        for old in [k for k in _matchers if k[0] == id(st.store)]:
            del _matchers[old]
        m = _matchers[key] = Matcher(st.store, threshold=threshold)
    return m


def parse_request(raw: bytes) -> tuple[list[MatchInput], float]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError("invalid_match_request", "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_match_request", "The body must be an object with a records array.")
    unknown = sorted(set(body) - {"records", "threshold"})
    if unknown:
        raise ApiError("invalid_match_request", f"Unknown field(s): {', '.join(unknown)}.")
    records = body.get("records")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
        raise ApiError("invalid_match_request", f"records must be an array of 1 to {MAX_RECORDS} objects.")
    threshold = body.get("threshold", 0.9)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise ApiError("invalid_match_request", "threshold must be a number in (0, 1].")
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ApiError("invalid_match_request", f"records[{i}] must be an object.")
        try:
            item = MatchInput.from_mapping(rec)
        except MatchInputError as e:
            raise ApiError("invalid_match_request", f"records[{i}]: {e}.") from None
        out.append(item)
    return out, float(threshold)


@router.post(
    "/match",
    summary="Match 1 to 1,000 records (CRM rows) to NPIs with a calibrated confidence",
    response_model=None,
    responses={
        200: {"description": "One result per record, in order"},
        **error_responses(400, 401, 403, 429, 500),
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": REQUEST_SCHEMA}}}
    },
)
async def match(request: Request, st: State, access: Access, caller: ClientKey) -> Response:
    # ClientKey: 401 before a byte of the body is read
    raw = await read_body(request, MATCH_MAX_BYTES)
    records, threshold = await run_in_threadpool(parse_request, raw)  # 1,000 records: ~10 ms of parsing
    adm = access.reserve(caller, units=len(records))
    if adm.granted < len(records):
        adm.refund(adm.granted)
        raise ApiError("quota_exceeded", headers=adm.headers())
    rid = request_id(request)

    def run() -> bytes:
        # Matching reads the store and scores candidates (~1 ms a record), and the answer of 1,000
        # results takes tens of ms to build: all of it off the event loop.
        results = _matcher(st, threshold).match(records)
        counts: dict[str, int] = dict.fromkeys(("matched", "ambiguous", "no_match"), 0)
        data: list[dict[str, Any]] = []
        for r in results:
            counts[r.match_status] += 1
            data.append(r.as_dict())
        meta = {"requestId": rid, "counts": {"records": len(records), **counts}}
        return orjson.dumps({"data": data, "meta": meta})

    with adm.refund_on_error():  # a 500 costs nothing
        body = await run_in_threadpool(run)
    return Response(body, 200, headers=adm.headers(), media_type="application/json")
