"""Response and request shapes, for the OpenAPI document (``/openapi.json``, ``/docs``).

Handlers serialize with orjson themselves (fast path); these models describe what they send, and the
schemathesis test checks every response against them. Provider documents are open objects: the
contract's fields are required, npistack's richer fields (docs/provider-document.md) come on top.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorMeta(BaseModel):
    requestId: str


class ErrorBody(BaseModel):
    error: ErrorDetail
    meta: ErrorMeta


class Name(BaseModel):
    model_config = ConfigDict(extra="allow")
    full: str | None
    first: str | None
    middle: str | None
    last: str | None
    prefix: str | None
    credential: str | None


class PrimaryTaxonomy(BaseModel):
    code: str | None
    description: str | None
    state: str | None
    license: str | None


class Source(BaseModel):
    name: str
    version: str


class Provider(BaseModel):
    model_config = ConfigDict(extra="allow")
    npi: str
    entityType: str | None = Field(description="NPI-1, NPI-2, or null for a deactivated NPI's stub")
    status: str = Field(description="active or deactivated")
    name: Name
    primaryTaxonomy: PrimaryTaxonomy | None
    taxonomies: list[dict[str, Any]]
    mailingAddress: dict[str, Any] | None
    practiceLocations: list[dict[str, Any]]
    enumerationDate: str | None
    lastUpdated: str | None
    source: Source
    enrichment: dict[str, Any] | None = Field(default=None, description="Only when enrichment was asked for")


class LookupMeta(BaseModel):
    requestId: str
    cached: bool


class LookupResponse(BaseModel):
    data: Provider
    meta: LookupMeta


class BulkRequest(BaseModel):
    npis: list[Annotated[str, Field(pattern="^[0-9]{10}$")]] = Field(
        min_length=1, max_length=50, description="1 to 50 NPIs (10-digit strings)"
    )


class BulkItem(BaseModel):
    npi: str
    status: str = Field(description="found, not_found, upstream_error or quota_exceeded")
    provider: Provider | None
    cached: bool
    requestId: str
    error: ErrorDetail | None


class BulkCounts(BaseModel):
    requested: int
    found: int
    notFound: int
    upstreamErrors: int
    quotaExceeded: int
    cacheHits: int


class BulkMeta(BaseModel):
    requestId: str
    counts: BulkCounts


class BulkResponse(BaseModel):
    data: list[BulkItem]
    meta: BulkMeta


class Pagination(BaseModel):
    limit: int
    skip: int
    returned: int
    hasMore: bool
    nextCursor: str | None = None


class SearchMeta(BaseModel):
    requestId: str
    pagination: Pagination


class SearchResponse(BaseModel):
    data: list[Provider]
    meta: SearchMeta


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS.get(s, "Error")} for s in statuses}


_DESCRIPTIONS = {
    400: "Invalid request (invalid_npi, invalid_bulk_request, invalid_search_params, invalid_enrichment)",
    401: "invalid_api_key",
    403: "quota_exceeded, subscription_inactive, enrichment_not_allowed or admin_required",
    404: "npi_not_found",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_unavailable",
    503: "deadline_exceeded or service_unavailable",
}


# -- provider verification (POST /api/v1/verify, /api/v1/verify/bulk) ---------------------------


class VerifyCheck(BaseModel):
    status: str = Field(description="pass, close, warning, fail, not_checked or not_supplied")
    reason: str
    claimed: Any = Field(description="The value compared, normalized (E.164 phone, standardized address)")
    registry: Any = Field(description="What the registry holds for this field")
    matched: str | None = Field(description="Which registry value agreed: primary, mailing, legal, dba ...")


class VerifyChecks(BaseModel):
    npiFormat: VerifyCheck
    npiExists: VerifyCheck
    npiActive: VerifyCheck
    name: VerifyCheck
    credential: VerifyCheck
    address: VerifyCheck
    phone: VerifyCheck
    phoneValid: VerifyCheck
    fax: VerifyCheck
    email: VerifyCheck


class VerifyProvider(BaseModel):
    entityType: str | None
    name: str | None
    status: str | None
    lastUpdated: str | None
    releaseDate: str | None


class VerifyResult(BaseModel):
    ref: str | None
    npi: str
    status: str = Field(description="verified or needs_review")
    reasons: list[str]
    checks: VerifyChecks
    provider: VerifyProvider | None


class VerifyMeta(BaseModel):
    requestId: str


class VerifyResponse(BaseModel):
    data: VerifyResult
    meta: VerifyMeta


class VerifyBulkItem(BaseModel):
    ref: str | None
    npi: str
    status: str = Field(description="verified, needs_review, upstream_error or quota_exceeded")
    reasons: list[str]
    checks: VerifyChecks | None
    provider: VerifyProvider | None
    requestId: str
    error: ErrorDetail | None


class VerifyBulkCounts(BaseModel):
    requested: int
    verified: int
    needsReview: int
    upstreamErrors: int
    quotaExceeded: int


class VerifyBulkMeta(BaseModel):
    requestId: str
    counts: VerifyBulkCounts


class VerifyBulkResponse(BaseModel):
    data: list[VerifyBulkItem]
    meta: VerifyBulkMeta
