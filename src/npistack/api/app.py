"""The application factory: ``create_app()`` (used by ``npistack serve`` with ``--factory``).

Each server process opens its own resources at start-up (``api.state.ApiState``): the store
(read-only for SQLite), the accounts database, the meter (Redis or database counters), the upstream
client and the lookup service. Routes live in ``npistack.api.routes``, one module per resource; they
reach the state through ``api.deps`` and never import this module.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Scope

from npistack import __version__
from npistack.api import errors
from npistack.api.metrics import Metrics
from npistack.api.state import ApiState, app_state
from npistack.errors import Unavailable
from npistack.services.accounts import Accounts, open_meter
from npistack.services.lookup import LookupService
from npistack.services.upstream import Upstream, upstream_reachable
from npistack.settings import Settings, get_settings
from npistack.storage import open_store
from npistack.storage.accounts import AccountsDb
from npistack.storage.loads import LoadRecord

log = logging.getLogger("npistack.api")


_EDGE_RESPONSES = {
    "429": "rate_limited (this key) or client_rate_limited (this address, without a valid key)",
    "503": "deadline_exceeded (the request took too long) or service_unavailable (a dependency is down)",
}


def _constrain(path: str, parameters: list[dict[str, Any]]) -> None:
    """Put the validation's own constraints into the document (params.py): patterns, lengths, enums."""
    from npistack.api.params import path_constraints, search_constraints

    by_path = path_constraints()
    by_query = search_constraints() if path == "/api/v1/providers/search" else {}
    for param in parameters:
        table = by_path if param.get("in") == "path" else by_query if param.get("in") == "query" else {}
        if param.get("in") == "header" and param.get("name") == "enrichment":
            table = {"enrichment": search_constraints()["enrichment"]}
        rule = table.get(param.get("name", ""))
        if rule is not None:
            param["schema"] = {**rule, "title": param.get("schema", {}).get("title", param["name"])}


def _release_of(load: LoadRecord | None) -> date | None:
    """The release date of a load, or the day it finished for files without one."""
    if load is None:
        return None
    when = load.release_date or (load.finished_at or load.started_at)[:10]
    try:
        return date.fromisoformat(when[:10])
    except ValueError:
        return None


def _offline(settings: Settings) -> bool:
    if not settings.upstream_url:
        return True
    if settings.offline is not None:
        return settings.offline
    return not upstream_reachable(settings.upstream_url)


def create_app(
    settings: Settings | None = None,
    *,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    now: Callable[[], datetime] | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    clock = now or (lambda: datetime.now(UTC))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url()
        store = open_store(url, read_only=url.startswith("sqlite") or "://" not in url)
        db = AccountsDb(url)
        upstream = None
        if not _offline(settings):
            upstream = Upstream(
                settings.upstream_url,
                timeout_s=settings.upstream_timeout_s,
                transport=upstream_transport,
                concurrency=settings.upstream_concurrency,
                rate_per_s=settings.upstream_rate_per_s,
                queue_s=settings.upstream_queue_s,
                max_response_bytes=settings.upstream_max_response_bytes,
            )
        lookup = LookupService(
            store,
            store_url=url,
            upstream=upstream,
            ttl_days=settings.cache_ttl_days,
            today=lambda: clock().date(),
            default_release=lambda: _release_of(app.state.api.current_load()),
            not_found_ttl_s=settings.upstream_not_found_ttl_s,
        )
        app.state.api = ApiState(
            settings=settings,
            store=store,
            accounts=Accounts(db),
            meter=open_meter(db, settings.redis_url, timeout_s=settings.redis_timeout_s),
            lookup=lookup,
            upstream=upstream,
            metrics=metrics,
            now=clock,
        )
        if settings.api_tune_gc:
            from npistack.api.server import tune_gc

            tune_gc()
        try:
            yield
        finally:
            await lookup.drain()
            lookup.close()
            if upstream is not None:
                await upstream.aclose()
            db.close()
            store.close()

    metrics = Metrics()
    app = FastAPI(
        title="npistack provider API",
        version=__version__,
        description=(
            "NPPES provider data from your own store: the Health Provider API contract (`/api/v1`), "
            "a drop-in CMS NPI Registry endpoint (`/api/?version=2.1`), admin (`/admin/v1`) and "
            "operations endpoints. Authenticate with `Authorization: Bearer <key>` (`npistack keys create`)."
        ),
        lifespan=lifespan,
    )
    app.add_exception_handler(errors.ApiError, errors.api_error_handler)
    app.add_exception_handler(StarletteHTTPException, errors.http_error_handler)
    app.add_exception_handler(RequestValidationError, errors.validation_error_handler)
    app.add_exception_handler(Unavailable, errors.unavailable_handler)
    app.add_exception_handler(Exception, errors.unhandled_error_handler)

    from npistack.api.routes import admin, changes, cms, jobs, match, ops, v1, verify, webhooks

    app.include_router(v1.router)
    app.include_router(changes.router)
    app.include_router(match.router)
    app.include_router(verify.router)
    app.include_router(jobs.router)
    app.include_router(cms.router)
    app.include_router(admin.router)
    app.include_router(webhooks.router)
    app.include_router(ops.router)
    _add_edge(app, settings, metrics)
    _customize_openapi(app)
    return app


def _key_is_valid(scope: Scope, token: str) -> bool:
    """Whether ``token`` is a usable API key (the anonymous throttle lets such requests through)."""
    try:
        return app_state(scope["app"]).accounts.authenticate(token) is not None
    except Exception:  # the route itself will answer (401, 503)
        return False


def _add_edge(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """Wrap the whole middleware stack, Starlette's error middleware included, in ``Edge``."""
    from npistack.api.edge import ClientThrottle, Edge

    build = app.build_middleware_stack
    per_minute = settings.api_anonymous_per_minute

    def build_with_edge() -> ASGIApp:
        return Edge(
            build(),
            metrics=metrics,
            access_log=settings.access_log,
            deadline_s=settings.api_request_timeout_s,
            throttle=ClientThrottle(per_minute) if per_minute > 0 else None,
            cms_keyless=not settings.cms_require_key,
            key_is_valid=_key_is_valid,
        )

    app.build_middleware_stack = build_with_edge  # type: ignore[method-assign]


def _customize_openapi(app: FastAPI) -> None:
    """Bearer security on the keyed endpoints, and our 400 body instead of FastAPI's 422 (never sent)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An npistack API key: `npistack keys create`.",
        }
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                responses = op.get("responses", {})
                moved = responses.pop("422", None)
                if moved is not None and "400" not in responses:
                    responses["400"] = {
                        "description": "Invalid request",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                        },
                    }
                if path.startswith(("/api/v1", "/admin/v1")):
                    op["security"] = [{"bearerAuth": []}]
                    for status, what in _EDGE_RESPONSES.items():
                        responses.setdefault(
                            status,
                            {
                                "description": what,
                                "content": {
                                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                                },
                            },
                        )
                _constrain(path, op.get("parameters", []))
        schemas = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
