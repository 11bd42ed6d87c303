"""Provider verification (``/api/v1``): what a CRM holds, checked field by field (``services.verify``).

``POST /api/v1/verify`` takes one record, ``POST /api/v1/verify/bulk`` 1 to 1,000. The providers are
read like lookups (the store, and the upstream registry for NPIs it lacks when one is configured).

Metering follows the lookups: one credit per record answered with a report, whatever its verdict (an
invalid or unknown NPI included, as a lookup's 404 costs one); a bulk request with fewer credits left
than records verifies the first ones and answers the rest ``quota_exceeded``; records whose provider
could not be fetched from the upstream (``upstream_error``) cost nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from npistack.api.body import VERIFY_BULK_MAX_BYTES, VERIFY_MAX_BYTES, read_body
from npistack.api.deps import Access, ClientKey, State
from npistack.api.errors import ApiError, json_response, request_id
from npistack.api.schemas import VerifyBulkResponse, VerifyResponse, error_responses
from npistack.api.state import ApiState
from npistack.nppes.npi import npi_problem
from npistack.services.lookup import Outcome
from npistack.services.verify import Claim, Verification, verify_claim

router = APIRouter(prefix="/api/v1", tags=["verification"])

MAX_RECORDS = 1000
FIELDS = ", ".join(Claim.model_fields)
CODE = "invalid_verify_request"
_UPSTREAM_ERROR = {
    "code": "upstream_unavailable",
    "message": "The upstream provider registry is temporarily unavailable.",
}
_QUOTA_ERROR = {"code": "quota_exceeded", "message": "Monthly lookup quota has been exceeded."}
_EXAMPLE = {
    "ref": "crm-0042",
    "npi": "1114920162",
    "first_name": "Jon",
    "last_name": "Dubose",
    "credential": "MD",
    "address_1": "111 Hospital Drive",
    "city": "Tarboro",
    "state": "NC",
    "postal_code": "27886",
    "phone": "(252) 641-7700",
    "email": "jon.dubose@gmail.com",
}
_CLAIM_SCHEMA = Claim.model_json_schema()
_BULK_SCHEMA = {
    "type": "object",
    "properties": {
        "records": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_RECORDS,
            "items": _CLAIM_SCHEMA,
            "description": f"1 to {MAX_RECORDS} records",
        }
    },
    "required": ["records"],
    "additionalProperties": False,
}
_BAD_REQUEST = (
    "invalid_verify_request: the body is not JSON, not the documented shape, or a field has the wrong "
    "type or length"
)


def _responses(model: type) -> dict[int | str, dict[str, Any]]:
    out = {200: {"model": model}, **error_responses(400, 401, 403, 429, 500, 502)}
    out[400] = {**out[400], "description": _BAD_REQUEST}
    return out


def _body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "content": content}}


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(CODE, "The body must be JSON.") from None


def _problem(err: Any, where: str) -> str:
    """A pydantic error as one sentence naming the field."""
    loc = where + ".".join(str(p) for p in err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "missing":
        return f"{loc} is required: the NPI the CRM holds for this provider."
    if kind == "extra_forbidden":
        return f"{loc} is not a field of a verification record; the fields are {FIELDS}."
    if kind == "string_type":
        return f"{loc} must be a string{'' if loc.endswith('npi') else ' (or null)'}."
    if kind == "string_too_short":
        return f"{loc} must not be empty."
    return f"{loc}: {err.get('msg', 'invalid value')}."


def _claim(obj: Any, where: str = "") -> Claim:
    if not isinstance(obj, dict):
        what = where or "The body"
        raise ApiError(CODE, f"{what} must be a JSON object with npi and the fields to verify ({FIELDS}).")
    if not where and "records" in obj:
        raise ApiError(CODE, 'For several records, POST {"records": [...]} to /api/v1/verify/bulk.')
    try:
        return Claim.model_validate(obj)
    except ValidationError as e:
        raise ApiError(CODE, _problem(e.errors()[0], f"{where}." if where else "")) from None


def _claims(body: Any) -> list[Claim]:
    shape = f'The body must be {{"records": [...]}} with 1 to {MAX_RECORDS} records.'
    if not isinstance(body, dict) or "records" not in body:
        raise ApiError(CODE, shape)
    extra = sorted(set(body) - {"records"})
    if extra:
        raise ApiError(CODE, f"{extra[0]} is not a field of the body; {shape}")
    records = body["records"]
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
        raise ApiError(CODE, shape)
    return [_claim(r, f"records[{i}]") for i, r in enumerate(records)]


async def _outcomes(st: ApiState, claims: list[Claim]) -> dict[str, Outcome]:
    """The providers of the claims' well-formed NPIs (an invalid NPI is never looked up)."""
    npis = list(dict.fromkeys(c.npi for c in claims if npi_problem(c.npi) is None))
    outcomes = {o.npi: o for o in await st.lookup.lookup(npis)} if npis else {}
    for o in outcomes.values():
        st.metrics.count("lookup", "upstream_error" if o.upstream_error else o.cache)
    return outcomes


async def _verify_all(st: ApiState, pairs: list[tuple[Claim, dict[str, Any] | None]]) -> list[Verification]:
    dns = st.settings.verify_email_dns

    def run() -> list[Verification]:
        return [verify_claim(c, doc, email_dns=dns) for c, doc in pairs]

    # Off the event loop: DNS lookups block, and a thousand records take a while even without them.
    return await run_in_threadpool(run) if dns or len(pairs) > 1 else run()


@router.post(
    "/verify",
    summary="Verify what a CRM holds about one provider against the registry",
    response_model=None,
    responses=_responses(VerifyResponse),
    openapi_extra=_body(_CLAIM_SCHEMA, _EXAMPLE),
)
async def verify_one(request: Request, st: State, access: Access, caller: ClientKey) -> Response:
    # ClientKey: 401 before a byte of the body is read
    claim = _claim(_json(await read_body(request, VERIFY_MAX_BYTES)))
    adm = access.reserve(caller)
    with adm.refund_on_error(except_for=(ApiError,)):  # a 500 costs nothing
        outcome = (await _outcomes(st, [claim])).get(claim.npi)
        if outcome is not None and outcome.upstream_error:
            adm.refund(1)
            raise ApiError("upstream_unavailable", headers=adm.headers())
        (result,) = await _verify_all(st, [(claim, outcome.doc if outcome else None)])
    body = {"data": result.to_dict(), "meta": {"requestId": request_id(request)}}
    return json_response(body, 200, adm.headers())


@router.post(
    "/verify/bulk",
    summary=f"Verify 1 to {MAX_RECORDS} provider records",
    response_model=None,
    responses=_responses(VerifyBulkResponse),
    openapi_extra=_body(
        _BULK_SCHEMA, {"records": [_EXAMPLE, {**_EXAMPLE, "ref": "crm-0043", "npi": "1497758544"}]}
    ),
)
async def verify_bulk(request: Request, st: State, access: Access, caller: ClientKey) -> Response:
    # ClientKey: 401 before a byte of the body is read
    claims = await run_in_threadpool(_claims, _json(await read_body(request, VERIFY_BULK_MAX_BYTES)))
    adm = access.reserve(caller, units=len(claims), partial=True)
    served = claims[: adm.granted]
    with adm.refund_on_error():  # a 500 costs nothing
        outcomes = await _outcomes(st, served)
        ok = [c for c in served if not (c.npi in outcomes and outcomes[c.npi].upstream_error)]
        docs = [(c, outcomes[c.npi].doc if c.npi in outcomes else None) for c in ok]
        results = iter(await _verify_all(st, docs))
    rid = request_id(request)
    data: list[dict[str, Any]] = []
    counts = dict.fromkeys(("verified", "needsReview", "upstreamErrors", "quotaExceeded"), 0)
    for i, claim in enumerate(claims):
        item: dict[str, Any] = {"ref": claim.ref, "npi": claim.npi, "status": "", "reasons": [], "checks": None,
                                "provider": None, "requestId": f"{rid}_{i:03d}", "error": None}  # fmt: skip
        if i >= adm.granted:
            item.update(status="quota_exceeded", error=_QUOTA_ERROR)
            counts["quotaExceeded"] += 1
        elif claim.npi in outcomes and outcomes[claim.npi].upstream_error:
            item.update(status="upstream_error", error=_UPSTREAM_ERROR)
            counts["upstreamErrors"] += 1
        else:
            item.update(next(results).to_dict())
            counts["verified" if item["status"] == "verified" else "needsReview"] += 1
        data.append(item)
    adm.refund(counts["upstreamErrors"])
    body = {"data": data, "meta": {"requestId": rid, "counts": {"requested": len(claims), **counts}}}
    return json_response(body, 200, adm.headers())
