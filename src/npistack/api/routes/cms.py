"""A drop-in replacement for the CMS NPPES NPI Registry API: ``GET /api/?version=2.1``.

Same parameters, same response shape, same behaviour (docs/cms-api.md): errors arrive with HTTP 200
as ``{"Errors": [...]}``, ``result_count`` counts the results of the page, deactivated NPIs are not
returned. No key is needed unless ``NPISTACK_CMS_REQUIRE_KEY`` is set (then each request costs one
credit, like a search page).
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from npistack.api.app import app_state
from npistack.api.errors import ApiError
from npistack.api.metering import admit, refund
from npistack.services import cms
from npistack.services.providers import get_providers
from npistack.services.search import search

router = APIRouter(tags=["cms registry"])


def _json(body: object, pretty: bool, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = orjson.dumps(body, option=orjson.OPT_INDENT_2 if pretty else 0)
    return Response(content, status_code=status, headers=headers, media_type="application/json")


@router.get(
    "/api/",
    summary="CMS NPI Registry API v2.1 (drop-in)",
    description=(
        "The CMS registry's parameters (number, enumeration_type, taxonomy_description, name_purpose, "
        "first_name, use_first_name_alias, last_name, organization_name, address_purpose, city, state, "
        "postal_code, country_code, limit, skip, pretty, version=2.1) and response shape. Errors come "
        'with HTTP 200 as {"Errors": [{"description", "field", "number"}]}.'
    ),
    response_model=None,
    openapi_extra={
        "parameters": [
            {"name": name, "in": "query", "required": name == "version", "schema": {"type": "string"}}
            for name in (
                "version",
                "number",
                "enumeration_type",
                "taxonomy_description",
                "name_purpose",
                "first_name",
                "use_first_name_alias",
                "last_name",
                "organization_name",
                "address_purpose",
                "city",
                "state",
                "postal_code",
                "country_code",
                "limit",
                "skip",
                "pretty",
            )
        ]
    },  # fmt: skip
)
async def registry(request: Request) -> Response:
    st = app_state(request.app)
    params = dict(request.query_params)
    pretty = "pretty" in params
    headers: dict[str, str] = {}
    parsed = cms.parse_params(params)
    if st.settings.cms_require_key:  # after validation: a refused request costs nothing
        try:
            adm = admit(st, request)
        except ApiError as e:
            err = {"description": e.message, "field": "Authorization", "number": str(e.status)}
            return _json({"Errors": [err]}, pretty, e.status, e.headers)
        headers = adm.headers()
    if isinstance(parsed, list):
        if st.settings.cms_require_key:
            refund(st, adm, 1)
            headers = adm.headers()
        return _json(cms.errors_body(parsed), pretty, 200, headers)
    try:
        page = search(st.store, parsed.query, limit=parsed.limit, skip=parsed.skip)
    except ValueError as e:  # a query the parameters let through but the engine cannot answer
        return _json(
            {"Errors": [{"description": str(e), "field": "query", "number": "22"}]}, pretty, 200, headers
        )
    docs = get_providers(st.store, [h.npi for h in page.hits])
    return _json(cms.render_response(docs), parsed.pretty, 200, headers)


@router.get("/api", include_in_schema=False, response_model=None)
async def registry_no_slash(request: Request) -> Response:
    return await registry(request)
