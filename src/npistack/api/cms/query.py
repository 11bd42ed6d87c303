"""A valid CMS v2.1 request answered from the store: the search (``services.search``), then the
page of provider documents rendered the registry's way."""

from __future__ import annotations

from typing import Any

from npistack.api.cms.params import CmsError, CmsRequest, errors_body
from npistack.api.cms.render import render_response
from npistack.services.providers import get_providers
from npistack.services.search import search
from npistack.storage.base import SqlStore


def answer(store: SqlStore, req: CmsRequest) -> dict[str, Any]:
    """The response body: the results, or an error 22 for a query the parameters let through but
    the engine cannot answer (the registry's way: HTTP 200, ``{"Errors": [...]}``)."""
    try:
        page = search(store, req.query, limit=req.limit, skip=req.skip)
    except ValueError as e:
        return errors_body([CmsError(str(e), "query", "22")])
    return render_response(get_providers(store, [h.npi for h in page.hits]))
