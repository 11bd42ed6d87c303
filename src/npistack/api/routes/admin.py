"""Administration (``/admin/v1``, admin keys only): API keys, plans, usage per key and day."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from npistack.api.body import ADMIN_MAX_BYTES, read_body
from npistack.api.deps import Access, AdminKey, State
from npistack.api.errors import ApiError, json_response, request_id
from npistack.api.schemas import error_responses
from npistack.api.state import ApiState
from npistack.services.accounts import AccountError, usage_since
from npistack.storage.accounts import Plan

router = APIRouter(prefix="/admin/v1", tags=["admin"])
ERRORS = error_responses(400, 401, 403, 404, 500)
MAX_INT = 2**63 - 1  # the databases' BIGINT


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError("invalid_request", "The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_request", "The body must be a JSON object.")
    return body


def _str(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ApiError("invalid_request", f"{name} must be a non-empty string of at most 200 characters.")
    return value.strip()


def _ok(request: Request, data: Any, status: int = 200) -> Response:
    return json_response({"data": data, "meta": {"requestId": request_id(request)}}, status)


def _key_or_404(st: ApiState, key_id: int) -> Any:
    try:
        return st.accounts.find(key_id)
    except AccountError:
        raise ApiError("not_found", f"No API key with id {key_id}.") from None


@router.get(
    "/keys", summary="List API keys (never the keys themselves)", responses=ERRORS, response_model=None
)
async def list_keys(request: Request, st: State, admin: AdminKey) -> Response:
    return _ok(request, [k.as_dict() for k in st.accounts.db.list_keys()])


@router.post(
    "/keys",
    summary="Create an API key (the key is in this response only)",
    status_code=201,
    responses=ERRORS,
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "plan": {"type": "string", "default": "free"},
                        },
                    }
                }
            },
        }
    },
)
async def create_key(request: Request, st: State, admin: AdminKey) -> Response:
    body = _body(await read_body(request, ADMIN_MAX_BYTES))
    try:
        key, rec = st.accounts.create_key(name=_str(body, "name"), plan=_str(body, "plan", "free"))
    except AccountError as e:
        raise ApiError("invalid_request", str(e)) from None
    return _ok(request, {**rec.as_dict(), "key": key}, 201)


@router.post(
    "/keys/{key_id}/{action}",
    summary="Suspend, resume or revoke a key",
    responses=ERRORS,
    response_model=None,
)
async def key_action(
    request: Request,
    st: State,
    access: Access,
    action: str,
    key_id: int = Path(ge=1, le=MAX_INT, description="The key's id"),
) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    status = {"suspend": "suspended", "resume": "active", "revoke": "revoked"}.get(action)
    if status is None:
        raise ApiError("not_found", f"No action {action!r}; use suspend, resume or revoke.")
    rec = _key_or_404(st, key_id)
    try:
        rec = st.accounts.set_status(rec.id, status)
    except AccountError as e:
        raise ApiError("invalid_request", str(e)) from None
    return _ok(request, rec.as_dict())


@router.get("/plans", summary="List plans", responses=ERRORS, response_model=None)
async def list_plans(request: Request, st: State, admin: AdminKey) -> Response:
    return _ok(request, [p.as_dict() for p in st.accounts.db.plans()])


@router.put(
    "/plans/{name}",
    summary="Create or change a plan",
    responses=ERRORS,
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["monthlyCredits", "requestsPerMinute", "enrichment"],
                        "properties": {
                            "monthlyCredits": {"type": "integer", "minimum": 0},
                            "requestsPerMinute": {"type": "integer", "minimum": 1},
                            "enrichment": {"type": "boolean"},
                            "description": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def put_plan(name: str, request: Request, st: State, admin: AdminKey) -> Response:
    body = _body(await read_body(request, ADMIN_MAX_BYTES))
    credits, rpm, enrichment = (
        body.get("monthlyCredits"),
        body.get("requestsPerMinute"),
        body.get("enrichment"),
    )
    if not isinstance(credits, int) or isinstance(credits, bool) or not 0 <= credits <= MAX_INT:
        raise ApiError("invalid_request", f"monthlyCredits must be an integer from 0 to {MAX_INT}.")
    if not isinstance(rpm, int) or isinstance(rpm, bool) or not 1 <= rpm <= 2**31 - 1:
        raise ApiError("invalid_request", f"requestsPerMinute must be an integer from 1 to {2**31 - 1}.")
    if not isinstance(enrichment, bool):
        raise ApiError("invalid_request", "enrichment must be true or false.")
    if not name.strip() or len(name) > 64:
        raise ApiError("invalid_request", "A plan name is 1 to 64 characters.")
    description = body.get("description") or ""
    st.accounts.db.upsert_plan(Plan(name.strip(), credits, rpm, enrichment, str(description)[:500]))
    plan = st.accounts.db.plan(name.strip())
    return _ok(request, plan.as_dict() if plan else None)


@router.get("/usage", summary="Usage per key and day", responses=ERRORS, response_model=None)
async def usage(
    request: Request,
    st: State,
    access: Access,
    key_id: int | None = Query(None, ge=1, le=MAX_INT, description="Only this key"),
    days: int = Query(31, ge=1, le=400, description="How many days back, today included"),
) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    rows = st.meter.usage(key_id, usage_since(days, st.now()))
    data = [{"keyId": k, "day": d, "requests": r, "credits": c} for k, d, r, c in rows]
    return _ok(request, data)
