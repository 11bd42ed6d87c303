"""Request bodies read with a cap: 413 ``payload_too_large`` before reading when ``Content-Length``
says the body is larger than the route accepts, else as soon as the bytes read pass the cap (a
chunked body, or one without a length). Reading stops there: the rest of the body is never read, and
the answer asks the client to close the connection.

Routes read their body only after the key was checked (``metering.authenticate_client``), so a caller
without a valid key never makes the server read a byte of it.

The caps are sized to each route's largest legitimate body with generous headroom: a bulk lookup
holds at most 50 NPIs (~1 KB), an admin request (a key, a plan, a subscription) a few hundred bytes, a verification record at most ~2.5 KB of field values (up to six times
that with every character JSON-escaped), a match or verify-bulk request at most 1,000 records.
"""

from __future__ import annotations

from fastapi import Request

from npistack.api.errors import ApiError

KIB = 1024
MIB = 1024 * KIB

BULK_MAX_BYTES = 64 * KIB  # POST /api/v1/npi/bulk: 50 NPIs
VERIFY_MAX_BYTES = 64 * KIB  # POST /api/v1/verify: one record
VERIFY_BULK_MAX_BYTES = 16 * MIB  # POST /api/v1/verify/bulk: 1,000 records
MATCH_MAX_BYTES = 16 * MIB  # POST /api/v1/match: 1,000 records
ADMIN_MAX_BYTES = 256 * KIB  # admin bodies: a key, a plan, a webhook subscription and its filters


def too_large(limit: int, what: str = "The request body") -> ApiError:
    return ApiError(
        "payload_too_large",
        f"{what} is larger than this endpoint accepts ({limit:,} bytes).",
        headers={"Connection": "close"},
    )


def declared_length(request: Request) -> int | None:
    """The body's ``Content-Length`` as a number, None when absent or not a number."""
    raw = request.headers.get("content-length", "").strip()
    return int(raw) if raw.isdigit() else None


def check_declared(request: Request, limit: int, what: str = "The request body") -> None:
    """413 at once when ``Content-Length`` announces more than ``limit`` bytes."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise too_large(limit, what)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes (413 ``payload_too_large`` past it, early when told)."""
    check_declared(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
