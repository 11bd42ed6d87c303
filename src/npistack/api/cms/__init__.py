"""The CMS NPI Registry API v2.1 (``GET /api/?version=2.1``) as a drop-in replacement.

Clients written for ``https://npiregistry.cms.hhs.gov/api/`` work unchanged against npistack. The
adapter, by concept: ``params`` (the registry's parameter rules: a ``CmsRequest`` or its errors),
``render`` (a provider document as a registry result) and ``query`` (a request answered from the
store). The route (``api.routes.cms``) adds only HTTP::

    parsed = parse_params(request.query_params)      # CmsRequest, or a list of CmsError
    if not isinstance(parsed, CmsRequest):
        return 200, errors_body(parsed)              # CMS sends its errors with HTTP 200
    return 200, answer(store, parsed)                # search, then render_response
"""

from __future__ import annotations

from npistack.api.cms.params import (
    API_VERSION,
    ERRORS,
    PARAMETERS,
    CmsError,
    CmsRequest,
    errors_body,
    parse_params,
)
from npistack.api.cms.query import answer
from npistack.api.cms.render import (
    cms_phone,
    epoch_ms,
    render_address,
    render_endpoint,
    render_identifier,
    render_other_name,
    render_response,
    render_result,
    render_taxonomy,
)

__all__ = [
    "API_VERSION",
    "ERRORS",
    "PARAMETERS",
    "CmsError",
    "CmsRequest",
    "answer",
    "cms_phone",
    "epoch_ms",
    "errors_body",
    "parse_params",
    "render_address",
    "render_endpoint",
    "render_identifier",
    "render_other_name",
    "render_response",
    "render_result",
    "render_taxonomy",
]
