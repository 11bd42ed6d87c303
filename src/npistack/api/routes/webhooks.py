"""Webhook subscriptions and deliveries (``/admin/v1/webhooks``, admin keys only).

The server's own store is read-only for SQLite, so each request opens a writable store of its own
(admin traffic is light) in a worker thread, and closes it after.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from npistack import outbound
from npistack.api.body import ADMIN_MAX_BYTES, read_body
from npistack.api.deps import Access, AdminKey, State
from npistack.api.errors import ApiError, json_response, request_id
from npistack.api.schemas import error_responses
from npistack.api.state import ApiState
from npistack.services import webhooks as wh
from npistack.storage import open_store
from npistack.storage.base import SqlStore

router = APIRouter(prefix="/admin/v1/webhooks", tags=["webhooks"])
MAX_INT = 2**63 - 1  # the databases' BIGINT
T = TypeVar("T")

# -- shapes (OpenAPI) ---------------------------------------------------------------------------


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    types: list[str] = Field(default=[], description="created, updated, deactivated, reactivated, removed")
    npis: list[str] = Field(default=[], description="10-digit NPIs")
    states: list[str] = Field(default=[], description="Two-letter state codes (before or after the change)")
    taxonomies: list[str] = Field(default=[], description="NUCC taxonomy codes (before or after)")
    entity_types: list[int | str] = Field(default=[], description="1/NPI-1 (individuals), 2/NPI-2")


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http:// or https:// URL the events are POSTed to")
    secret: str | None = Field(None, description="Signing secret (16-200 characters); default: generated")
    filters: Filters | None = Field(None, description="Which changes; empty or absent: every change")
    description: str | None = Field(None, max_length=500)
    active: bool = Field(True, description="false: created paused")


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    filters: Filters | None = Field(None, description="Replaces the filters")
    description: str | None = Field(None, max_length=500, description="null clears it")
    active: bool | None = Field(None, description="false pauses deliveries, true resumes them")
    rotateSecret: bool = Field(False, description="Draw a new secret (in this response only)")


class ReplayRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str = Field(description="Deliveries created from (ISO date or date-time, UTC by default)")
    until: str = Field(description="... until (excluded)")
    status: str | None = Field(None, description="Only this status: pending, delivered, dead, cancelled")


class BreakerOut(BaseModel):
    state: Literal["closed", "open", "half-open"] = Field(
        description="closed: deliveries flow; open: they wait until openUntil; half-open: one probe"
    )
    failures: int = Field(description="Consecutive failed attempts")
    openUntil: str | None = Field(description="When an open breaker lets a probe through (UTC)")


class WebhookOut(BaseModel):
    id: int
    url: str
    filters: Filters
    description: str | None
    active: bool
    createdAt: str
    updatedAt: str
    secret: str | None = Field(None, description="Only when created or rotated")
    deliveries: dict[str, int] = Field(description="Deliveries by status")
    breaker: BreakerOut = Field(description="The subscription's circuit breaker")


class DeliveryOut(BaseModel):
    id: int
    subscriptionId: int
    changeId: int
    eventId: str
    status: str
    attempts: int
    nextAttemptAt: str | None
    lastStatus: int | None
    lastError: str | None
    createdAt: str
    deliveredAt: str | None


class Meta(BaseModel):
    requestId: str


class PageMeta(BaseModel):
    requestId: str
    next: int | None = Field(description="Pass as `after` for the next page; null on the last page")


class WebhookResponse(BaseModel):
    data: WebhookOut
    meta: Meta


class WebhookList(BaseModel):
    data: list[WebhookOut]
    meta: Meta


class DeliveryResponse(BaseModel):
    data: DeliveryOut
    meta: Meta


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    meta: PageMeta


class Deleted(BaseModel):
    id: int
    deleted: bool
    cancelledDeliveries: int


class DeletedResponse(BaseModel):
    data: Deleted
    meta: Meta


class Replayed(BaseModel):
    replayed: int


class ReplayedResponse(BaseModel):
    data: Replayed
    meta: Meta


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined (for ``openapi_extra``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"application/json": {"schema": _inline(model)}}
    return {"requestBody": {"required": True, "content": schema}}


def _responses(model: type[BaseModel], status: int = 200, *errors: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": "OK"}, **error_responses(400, 401, 403, *errors, 500)}


# -- helpers ------------------------------------------------------------------------------------


def _ok(request: Request, data: Any, status: int = 200, **meta: Any) -> Response:
    return json_response({"data": data, "meta": {"requestId": request_id(request), **meta}}, status)


def _body(raw: bytes) -> dict[str, Any]:
    """The JSON object a request carries (an empty body is not one)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise ApiError("invalid_request", "The body must be a JSON object.")
    return body


def _fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            "invalid_webhook",
            f"Unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}.",
        )


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError("invalid_webhook", f"{name} must be a string.")
    return value


def _opt_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise ApiError("invalid_webhook", f"{name} must be true or false.")
    return value


async def _with_store(st: ApiState, fn: Callable[[SqlStore], T]) -> T:
    """Run ``fn`` on a writable store, in a worker thread; WebhookError is a 400 invalid_webhook."""

    def call() -> T:
        store = open_store(st.settings.resolved_database_url())
        try:
            return fn(store)
        finally:
            store.close()

    try:
        return await run_in_threadpool(call)
    except wh.WebhookError as e:
        raise ApiError("invalid_webhook", str(e)) from None


def _policy(st: ApiState) -> outbound.Policy:
    try:
        return wh.guard_policy(st.settings)
    except wh.WebhookError as e:  # a bad NPISTACK_WEBHOOK_ALLOW_HOSTS: the server's fault
        raise ApiError("internal_error", str(e)) from None


def _sub_out(store: SqlStore, sub: wh.Subscription, *, secret: bool = False) -> dict[str, Any]:
    counts = wh.delivery_counts(store, [sub.id]).get(sub.id, dict.fromkeys(wh.STATUSES, 0))
    breaker = wh.get_breakers(store, [sub.id])[sub.id].as_dict(time.time())
    return {**sub.as_dict(secret=secret), "deliveries": counts, "breaker": breaker}


def _sub_or_404(store: SqlStore, sub_id: int) -> wh.Subscription:
    sub = wh.get_subscription(store, sub_id)
    if sub is None:
        raise ApiError("webhook_not_found", f"No webhook subscription has id {sub_id}.")
    return sub


SubId = Annotated[int, Path(ge=1, le=MAX_INT, description="The subscription's id")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_INT, description="The delivery's id")]

# -- deliveries (before /{webhook_id}, so that "deliveries" is never read as an id) ---------------


@router.get(
    "/deliveries/{delivery_id}",
    summary="One webhook delivery",
    response_model=None,
    responses=_responses(DeliveryResponse, 200, 404),
)
async def get_delivery(request: Request, st: State, access: Access, delivery_id: DeliveryId) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    d = await _with_store(st, lambda s: wh.get_delivery(s, delivery_id))
    if d is None:
        raise ApiError("delivery_not_found", f"No webhook delivery has id {delivery_id}.")
    return _ok(request, d.as_dict())


@router.post(
    "/deliveries/{delivery_id}/replay",
    summary="Send a delivery again (any status becomes pending, attempts 0, due now)",
    response_model=None,
    responses=_responses(DeliveryResponse, 200, 404),
)
async def replay_delivery(request: Request, st: State, access: Access, delivery_id: DeliveryId) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    d = await _with_store(st, lambda s: wh.replay_delivery(s, delivery_id))
    if d is None:
        raise ApiError("delivery_not_found", f"No webhook delivery has id {delivery_id}.")
    return _ok(request, d.as_dict())


# -- subscriptions ------------------------------------------------------------------------------


@router.post(
    "",
    summary="Create a webhook subscription (the secret is in this response only)",
    status_code=201,
    response_model=None,
    responses=_responses(WebhookResponse, 201),
    openapi_extra=_body_doc(WebhookCreate),
)
async def create_webhook(request: Request, st: State, admin: AdminKey) -> Response:
    body = _body(await read_body(request, ADMIN_MAX_BYTES))
    _fields(body, {"url", "secret", "filters", "description", "active"})
    url = _opt_str(body, "url")
    if not url:
        raise ApiError("invalid_webhook", "url is required: the http:// or https:// URL to POST events to.")
    secret, description = _opt_str(body, "secret"), _opt_str(body, "description")
    active = _opt_bool(body, "active")
    policy = _policy(st)

    def create(store: SqlStore) -> dict[str, Any]:
        sub = wh.create_subscription(
            store,
            policy=policy,
            url=url,
            secret=secret,
            filters=wh.parse_filters(body.get("filters")),
            description=description,
            active=True if active is None else active,
        )
        return _sub_out(store, sub, secret=True)

    return _ok(request, await _with_store(st, create), 201)


@router.get(
    "", summary="List webhook subscriptions (never their secrets)", response_model=None,
    responses=_responses(WebhookList),
)  # fmt: skip
async def list_webhooks(request: Request, st: State, admin: AdminKey) -> Response:

    def listing(store: SqlStore) -> list[dict[str, Any]]:
        subs = wh.list_subscriptions(store)
        counts = wh.delivery_counts(store, [s.id for s in subs])
        breakers, now = wh.get_breakers(store, [s.id for s in subs]), time.time()
        return [
            {**s.as_dict(), "deliveries": counts[s.id], "breaker": breakers[s.id].as_dict(now)} for s in subs
        ]

    return _ok(request, await _with_store(st, listing))


@router.get(
    "/{webhook_id}",
    summary="One webhook subscription (not its secret)",
    response_model=None,
    responses=_responses(WebhookResponse, 200, 404),
)
async def get_webhook(request: Request, st: State, access: Access, webhook_id: SubId) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    return _ok(request, await _with_store(st, lambda s: _sub_out(s, _sub_or_404(s, webhook_id))))


@router.patch(
    "/{webhook_id}",
    summary="Change a subscription: url, filters, description, active; rotate its secret",
    response_model=None,
    responses=_responses(WebhookResponse, 200, 404),
    openapi_extra=_body_doc(WebhookUpdate),
)
async def update_webhook(request: Request, st: State, access: Access, webhook_id: SubId) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    body = _body(await read_body(request, ADMIN_MAX_BYTES))
    _fields(body, {"url", "filters", "description", "active", "rotateSecret"})
    kw: dict[str, Any] = {
        "url": _opt_str(body, "url"),
        "active": _opt_bool(body, "active"),
        "rotate_secret": bool(_opt_bool(body, "rotateSecret")),
    }
    if "description" in body:
        kw["description"] = _opt_str(body, "description")
    raw_filters = body.get("filters")
    policy = _policy(st)

    def update(store: SqlStore) -> dict[str, Any]:
        _sub_or_404(store, webhook_id)
        filters = wh.parse_filters(raw_filters) if raw_filters is not None else None
        sub = wh.update_subscription(store, webhook_id, filters=filters, policy=policy, **kw)
        return _sub_out(store, sub or _sub_or_404(store, webhook_id), secret=kw["rotate_secret"])

    return _ok(request, await _with_store(st, update))


@router.delete(
    "/{webhook_id}",
    summary="Delete a subscription; its pending deliveries are cancelled",
    response_model=None,
    responses=_responses(DeletedResponse, 200, 404),
)
async def delete_webhook(request: Request, st: State, access: Access, webhook_id: SubId) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    cancelled = await _with_store(st, lambda s: wh.delete_subscription(s, webhook_id))
    if cancelled is None:
        raise ApiError("webhook_not_found", f"No webhook subscription has id {webhook_id}.")
    return _ok(request, {"id": webhook_id, "deleted": True, "cancelledDeliveries": cancelled})


@router.get(
    "/{webhook_id}/deliveries",
    summary="A subscription's deliveries, oldest first (page with `after`)",
    response_model=None,
    responses=_responses(DeliveryList, 200, 404),
)
async def list_webhook_deliveries(
    request: Request,
    st: State,
    access: Access,
    webhook_id: SubId,
    status: str | None = Query(None, description="pending, delivered, dead or cancelled"),
    limit: int = Query(50, ge=1, le=1000, description="At most this many"),
    after: int = Query(0, ge=0, le=MAX_INT, description="Only deliveries with a greater id (`meta.next`)"),
) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    if status is not None and status not in wh.STATUSES:
        raise ApiError("invalid_request", f"status must be one of {', '.join(wh.STATUSES)}.")

    def listing(store: SqlStore) -> list[wh.Delivery]:
        _sub_or_404(store, webhook_id)
        return wh.list_deliveries(store, subscription_id=webhook_id, status=status, limit=limit, after=after)

    rows = await _with_store(st, listing)
    nxt = rows[-1].id if len(rows) == limit else None
    return _ok(request, [d.as_dict() for d in rows], next=nxt)


@router.post(
    "/{webhook_id}/replay",
    summary="Replay a subscription's deliveries created in [since, until)",
    response_model=None,
    responses=_responses(ReplayedResponse, 200, 404),
    openapi_extra=_body_doc(ReplayRange),
)
async def replay_range(request: Request, st: State, access: Access, webhook_id: SubId) -> Response:
    access.admin()  # after the parameters' validation (a 400 needs no key)
    body = _body(await read_body(request, ADMIN_MAX_BYTES))
    _fields(body, {"since", "until", "status"})
    since, until, status = _opt_str(body, "since"), _opt_str(body, "until"), _opt_str(body, "status")
    if not since or not until:
        raise ApiError("invalid_request", "since and until are required (ISO dates or date-times).")

    def replay(store: SqlStore) -> int:
        _sub_or_404(store, webhook_id)
        return wh.replay_range(store, since=since, until=until, subscription_id=webhook_id, status=status)

    return _ok(request, {"replayed": await _with_store(st, replay)})
