"""One error body for every /api/v1 and /admin/v1 endpoint, the contract's:
``{"error": {"code", "message"}, "meta": {"requestId"}}``.

The codes and messages of the Health Provider API are used verbatim; the codes npistack adds are
listed in docs/errors.md.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from npistack.errors import NpistackError, Unavailable

# code -> (HTTP status, the contract's message)
CONTRACT: dict[str, tuple[int, str]] = {
    "invalid_npi": (400, "NPI must be a 10-digit number."),
    "invalid_bulk_request": (400, "npis must be a non-empty array of up to 50 10-digit strings."),
    "invalid_search_params": (400, "At least one of last_name or organization_name is required."),
    "invalid_api_key": (401, "Missing or invalid API key."),
    "quota_exceeded": (403, "Monthly lookup quota has been exceeded."),
    "subscription_inactive": (403, "Your subscription is not active."),
    "npi_not_found": (404, "No provider found for the supplied NPI."),
    "rate_limited": (429, "Too many requests for this API key. Slow down and retry after the reset time."),
    "internal_error": (500, "An unexpected error occurred. Please try again later."),
    "upstream_unavailable": (502, "The upstream provider registry is temporarily unavailable."),
    # npistack's own
    "invalid_enrichment": (
        400,
        "enrichment must be one of completeness, quality_score, freshness, quality_freshness.",
    ),
    "enrichment_not_allowed": (403, "Enrichment is available on plans with enrichment (Growth and Pro)."),
    "admin_required": (403, "This endpoint needs an admin API key."),
    "invalid_request": (400, "The request is not valid."),
    "invalid_changes_request": (400, "The change feed request is not valid."),
    "invalid_webhook": (400, "The webhook subscription is not valid."),
    "invalid_match_request": (400, "The match request is not valid."),
    "invalid_verify_request": (400, "The verification request is not valid."),
    "webhook_not_found": (404, "No webhook subscription has that id."),
    "delivery_not_found": (404, "No webhook delivery has that id."),
    "not_found": (404, "No such endpoint."),
    "invalid_csv": (400, "The uploaded CSV cannot be used."),
    "job_not_found": (404, "No enrichment job has that id."),
    "job_not_ready": (409, "The enrichment job has not succeeded (yet)."),
    "upload_too_large": (413, "The upload is too large."),
    "method_not_allowed": (405, "This endpoint does not accept that HTTP method."),
    "payload_too_large": (413, "The request body is too large for this endpoint."),
    "too_many_jobs": (
        429,
        "This key has as many enrichment jobs queued as it may; wait for some to start.",
    ),
    "client_rate_limited": (429, "Too many requests from this address. Slow down and retry later."),
    "service_unavailable": (503, "A service npistack needs is unavailable right now. Retry later."),
    "deadline_exceeded": (
        503,
        "The request took longer than the server allows. Retry later or ask for less.",
    ),
}


class ApiError(NpistackError):
    """A request answered with the documented error body: ``code`` (a ``CONTRACT`` key) sets the
    status and the default message."""

    def __init__(self, code: str, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        status, default = CONTRACT[code]
        self.code = code
        self.status = status
        self.message = message or default
        self.headers = headers or {}
        super().__init__(self.message)


def request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "") or ""


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def error_response(request: Request, err: ApiError) -> Response:
    body = {"error": {"code": err.code, "message": err.message}, "meta": {"requestId": request_id(request)}}
    return json_response(body, err.status, err.headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc)


async def unavailable_handler(request: Request, exc: Exception) -> Response:
    """A dependency that is down (the meter, the job queue's database): 503 with ``Retry-After``."""
    assert isinstance(exc, Unavailable)
    headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    return error_response(request, ApiError("service_unavailable", str(exc), headers))


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(request, ApiError("not_found", f"No endpoint {request.url.path}."))
    if exc.status_code == 405:
        allow = {"Allow": allowed_methods(request) or (exc.headers or {}).get("Allow", "")}
        return error_response(
            request,
            ApiError("method_not_allowed", f"{request.method} is not allowed on {request.url.path}.", allow),
        )
    return error_response(request, ApiError("invalid_request", str(exc.detail)))


@functools.cache
def _path_regex(template: str) -> re.Pattern[str]:
    from starlette.routing import compile_path

    return compile_path(template)[0]


def allowed_methods(request: Request) -> str:
    """Every method some operation of the API accepts on this path (HTTP requires them all in a
    405's Allow). Read from the OpenAPI document, as routers nest routes in FastAPI."""
    methods: set[str] = set()
    try:
        paths = request.app.openapi().get("paths", {})
    except Exception:  # never let the 405 itself fail
        return ""
    for template, operations in paths.items():
        if _path_regex(template).match(request.url.path):
            methods.update(m.upper() for m in operations)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    msg = (
        f"{where}: {first.get('msg', 'invalid value')}" if where else str(first.get("msg", "invalid request"))
    )
    code = "invalid_bulk_request" if request.url.path.endswith("/npi/bulk") else "invalid_request"
    return error_response(request, ApiError(code, msg if code == "invalid_request" else None))


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    import logging

    rid = request_id(request)
    logging.getLogger("npistack.api").exception(
        "unhandled error in %s %s (request %s)", request.method, request.url.path, rid
    )
    # Starlette answers this from outside the middleware stack, so the request id header is set here.
    return error_response(request, ApiError("internal_error", headers={"X-Request-Id": rid}))
