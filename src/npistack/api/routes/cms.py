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

from npistack.api.cms import answer, errors_body, parse_params
from npistack.api.cms.params import PARAMETERS
from npistack.api.deps import Access, State
from npistack.api.errors import ApiError

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
            # version first (it is the one required), then the registry's order
            for name in ("version", *(p for p in PARAMETERS if p != "version"))
        ]
    },
)
async def registry(request: Request, st: State, access: Access) -> Response:
    params = dict(request.query_params)
    pretty = "pretty" in params
    headers: dict[str, str] = {}
    parsed = parse_params(params)
    if st.settings.cms_require_key:  # after validation: a refused request costs nothing
        try:
            adm = access.admit()
        except ApiError as e:
            err = {"description": e.message, "field": "Authorization", "number": str(e.status)}
            return _json({"Errors": [err]}, pretty, e.status, e.headers)
        headers = adm.headers()
    if isinstance(parsed, list):
        if st.settings.cms_require_key:
            adm.refund(1)
            headers = adm.headers()
        return _json(errors_body(parsed), pretty, 200, headers)
    return _json(answer(st.store, parsed), parsed.pretty, 200, headers)


@router.get("/api", include_in_schema=False, response_model=None)
async def registry_no_slash(request: Request, st: State, access: Access) -> Response:
    return await registry(request, st, access)
