"""The upstream registry: any CMS-compatible NPI Registry API (``GET {base}?version=2.1&number=N``).

npistack's store is its cache of the registry. When an NPI is not in the store (or its copy is
stale) and an upstream is configured, the upstream is asked; what it returns is turned back into an
NPPES row and run through the same transform as a file load (``result_to_block``), so a provider
fetched one by one is stored exactly as if it had come from the monthly file.

The HTTP transport is swappable (``httpx.MockTransport`` in unit tests); integration tests use a
real server on loopback (a second npistack serving its CMS-compatible endpoint).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

from npistack.ingest.transform import (
    ENTITY,
    IDENT,
    NPIDATA_WIDTH,
    TAXO,
    TAXO_GROUP,
    BlockResult,
    Context,
    transform_endpoint,
    transform_location,
    transform_other_name,
    transform_provider,
)
from npistack.nppes.layout import canonical_columns

DOC_AT = 6  # position of the document in a BlockResult.providers tuple
_COL = {name: i for i, name in enumerate(canonical_columns("npidata"))}
MAX_REDIRECTS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UpstreamError(Exception):
    """The upstream registry failed, timed out or answered something that is not a registry answer."""


class UpstreamBusy(UpstreamError):
    """No upstream slot or rate token came free in time: this process's upstream budget is spent."""


class TokenBucket:
    """``rate_per_s`` tokens a second, holding at most ``burst``; a taker may reserve one ahead.

    ``reserve(max_wait)`` takes a token and says how long to wait for it (0: at once), or takes
    nothing and answers None when the token would come later than ``max_wait`` seconds from now.
    """

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = max(1.0, burst)
        self.clock = clock
        self.tokens = self.burst
        self.at = clock()

    def reserve(self, max_wait: float) -> float | None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        wait = max(0.0, (1.0 - self.tokens) / self.rate)
        if wait > max_wait:
            return None
        self.tokens -= 1.0
        return wait


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


class Upstream:
    """An async client of a CMS-compatible registry API, with this process's upstream budget.

    At most ``concurrency`` requests are in flight and at most ``rate_per_s`` start per second
    (0: no rate limit); an NPI that gets neither a slot nor a token within ``queue_s`` fails at
    once with ``UpstreamBusy``, so a large bulk request ends quickly. Each request has
    ``timeout_s`` in all (connect, redirects, the whole body). Redirects are followed only to the
    same scheme, host and port (at most three); an answer larger than ``max_response_bytes`` is
    not read further and counts as a failure.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 8,
        rate_per_s: float = 10.0,
        queue_s: float = 2.0,
        max_response_bytes: int = 1 << 20,
    ):
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.queue_s = queue_s
        self.max_response_bytes = max_response_bytes
        self.client = httpx.AsyncClient(
            timeout=timeout_s,
            transport=transport,
            headers={"User-Agent": "npistack"},
            follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._bucket = TokenBucket(rate_per_s, rate_per_s) if rate_per_s > 0 else None

    async def fetch(self, npi: str) -> dict[str, Any] | None:
        """The registry's result object for ``npi``, or None when the registry has no such (active) NPI."""
        give_up = time.monotonic() + self.queue_s
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_s)
        except TimeoutError:
            raise UpstreamBusy(
                f"no upstream slot free within {self.queue_s:g} s (NPISTACK_UPSTREAM_CONCURRENCY)"
            ) from None
        try:
            if self._bucket is not None:
                wait = self._bucket.reserve(max(0.0, give_up - time.monotonic()))
                if wait is None:
                    raise UpstreamBusy(
                        f"upstream request rate spent for the next {self.queue_s:g} s "
                        "(NPISTACK_UPSTREAM_RATE_PER_S)"
                    )
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                async with asyncio.timeout(self.timeout_s):
                    body = await self._get(npi)
            except TimeoutError:
                raise UpstreamError(f"upstream took longer than {self.timeout_s:g} s") from None
        finally:
            self._slots.release()
        if not isinstance(body, dict) or "Errors" in body or not isinstance(body.get("results"), list):
            raise UpstreamError(f"upstream answered an error or an unknown shape: {str(body)[:200]}")
        for result in body["results"]:
            if isinstance(result, dict) and str(result.get("number")) == npi:
                return result
        return None

    async def _get(self, npi: str) -> Any:
        """The parsed JSON answer for ``npi``, following same-origin redirects only."""
        request = self.client.build_request("GET", self.base_url, params={"version": "2.1", "number": npi})
        origin = _origin(request.url)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                resp = await self.client.send(request, stream=True)
            except httpx.HTTPError as e:
                raise UpstreamError(f"{type(e).__name__}: {e}") from None
            try:
                if resp.is_redirect:
                    target = request.url.join(resp.headers.get("location", ""))
                    if _origin(target) != origin:
                        raise UpstreamError(
                            f"upstream redirected to another host ({target.scheme}://{target.host}); not followed"
                        )
                    request = self.client.build_request("GET", target)
                    continue
                if resp.status_code != 200:
                    raise UpstreamError(f"upstream answered HTTP {resp.status_code}")
                raw = await self._read(resp)
            finally:
                await resp.aclose()
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise UpstreamError("upstream answered something that is not JSON") from None
        raise UpstreamError(f"upstream redirected more than {MAX_REDIRECTS} times")

    async def _read(self, resp: httpx.Response) -> bytes:
        cap = self.max_response_bytes
        too_big = UpstreamError(
            f"upstream answer larger than {cap:,} bytes (NPISTACK_UPSTREAM_MAX_RESPONSE_BYTES)"
        )
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise too_big
                chunks.append(chunk)
        except httpx.HTTPError as e:
            raise UpstreamError(f"{type(e).__name__}: {e}") from None
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self.client.aclose()


def upstream_reachable(base_url: str) -> bool:
    """Whether the upstream's host name resolves (the offline-mode guess for machines without network)."""
    host = urlparse(base_url).hostname
    if not host:
        return False
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return False
    return True


# -- CMS result -> NPPES rows -------------------------------------------------------------------


def _mmddyyyy(value: Any) -> str:
    text = str(value or "")
    if len(text) == 10 and text[4] == "-":
        return f"{text[5:7]}/{text[8:10]}/{text[:4]}"
    return ""


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def _yn(value: Any) -> str:
    return {"YES": "Y", "NO": "N", "Y": "Y", "N": "N"}.get(str(value or "").upper(), "")


_UPPER = ("Prefix Text", "Suffix Text")  # the registry prints "Dr."/"Jr.", the file "DR."/"JR."


def _put(row: list[str], column: str, value: Any) -> None:
    text = "" if value is None else str(value)
    if text == "--":  # the registry's "no suffix"
        text = ""
    if column.endswith(_UPPER):
        text = text.upper()
    row[_COL[column]] = text


def _address(row: list[str], addr: dict[str, Any], kind: str) -> None:
    prefix = {"mailing": "Business Mailing Address", "practice": "Business Practice Location Address"}[kind]
    _put(row, f"Provider First Line {prefix}", addr.get("address_1"))
    _put(row, f"Provider Second Line {prefix}", addr.get("address_2"))
    _put(row, f"Provider {prefix} City Name", addr.get("city"))
    _put(row, f"Provider {prefix} State Name", addr.get("state"))
    _put(row, f"Provider {prefix} Postal Code", addr.get("postal_code"))
    _put(row, f"Provider {prefix} Country Code (If outside U.S.)", addr.get("country_code"))
    _put(row, f"Provider {prefix} Telephone Number", _digits(addr.get("telephone_number")))
    _put(row, f"Provider {prefix} Fax Number", _digits(addr.get("fax_number")))


def result_to_rows(
    result: dict[str, Any],
) -> tuple[list[str], list[list[str]], list[list[str]], list[list[str]]]:
    """A registry result as (npidata row, pl rows, othername rows, endpoint rows) in the file layout."""
    npi = str(result.get("number") or "")
    basic = result.get("basic") or {}
    row = [""] * NPIDATA_WIDTH
    row[0] = npi
    row[ENTITY] = {"NPI-1": "1", "NPI-2": "2"}.get(str(result.get("enumeration_type")), "")
    _put(row, "Provider Last Name (Legal Name)", basic.get("last_name"))
    _put(row, "Provider First Name", basic.get("first_name"))
    _put(row, "Provider Middle Name", basic.get("middle_name"))
    _put(row, "Provider Name Prefix Text", basic.get("name_prefix"))
    _put(row, "Provider Name Suffix Text", basic.get("name_suffix"))
    _put(row, "Provider Credential Text", basic.get("credential"))
    _put(row, "Provider Sex Code", basic.get("sex") or basic.get("gender"))
    _put(row, "Is Sole Proprietor", _yn(basic.get("sole_proprietor")))
    _put(row, "Provider Organization Name (Legal Business Name)", basic.get("organization_name"))
    _put(row, "Is Organization Subpart", _yn(basic.get("organizational_subpart")))
    _put(row, "Parent Organization LBN", basic.get("parent_organization_legal_business_name"))
    _put(row, "Parent Organization TIN", basic.get("parent_organization_ein"))
    for ours, theirs in (
        ("Last Name", "last_name"),
        ("First Name", "first_name"),
        ("Middle Name", "middle_name"),
        ("Title or Position", "title_or_position"),
        ("Name Prefix Text", "name_prefix"),
        ("Name Suffix Text", "name_suffix"),
        ("Credential Text", "credential"),
    ):
        _put(row, f"Authorized Official {ours}", basic.get(f"authorized_official_{theirs}"))
    _put(
        row,
        "Authorized Official Telephone Number",
        _digits(basic.get("authorized_official_telephone_number")),
    )
    _put(row, "Provider Enumeration Date", _mmddyyyy(basic.get("enumeration_date")))
    _put(row, "Last Update Date", _mmddyyyy(basic.get("last_updated")))
    _put(row, "Certification Date", _mmddyyyy(basic.get("certification_date")))
    for addr in result.get("addresses") or []:
        purpose = str(addr.get("address_purpose") or "").upper()
        if purpose == "MAILING":
            _address(row, addr, "mailing")
        elif purpose in ("LOCATION", "PRIMARY"):
            _address(row, addr, "practice")
    for i, t in enumerate((result.get("taxonomies") or [])[:15]):
        at = TAXO + 4 * i
        row[at] = str(t.get("code") or "")
        row[at + 1] = str(t.get("license") or "")
        row[at + 2] = str(t.get("state") or "")
        row[at + 3] = "Y" if t.get("primary") is True else ("N" if row[at] else "")
        # The registry prints "193400000X - Single Specialty Group"; the file "193400000X SINGLE SPECIALTY GROUP".
        code, _, text = str(t.get("taxonomy_group") or "").partition(" - ")
        row[TAXO_GROUP + i] = f"{code} {text.upper()}".strip()
    for i, ident in enumerate((result.get("identifiers") or [])[:50]):
        at = IDENT + 4 * i
        row[at] = str(ident.get("identifier") or "")
        row[at + 1] = str(ident.get("code") or "")
        row[at + 2] = str(ident.get("state") or "")
        row[at + 3] = str(ident.get("issuer") or "")
    other_names: list[list[str]] = []
    for o in result.get("other_names") or []:
        if o.get("organization_name"):
            other_names.append([npi, str(o["organization_name"]), str(o.get("code") or ""), ""])
        elif o.get("last_name") and not row[_COL["Provider Other Last Name"]]:
            _put(row, "Provider Other Last Name", o.get("last_name"))
            _put(row, "Provider Other First Name", o.get("first_name"))
            _put(row, "Provider Other Middle Name", o.get("middle_name"))
            _put(row, "Provider Other Name Prefix Text", o.get("prefix"))
            _put(row, "Provider Other Name Suffix Text", o.get("suffix"))
            _put(row, "Provider Other Credential Text", o.get("credential"))
            _put(row, "Provider Other Last Name Type Code", o.get("code"))
    locations = [
        [
            npi,
            str(a.get("address_1") or ""),
            str(a.get("address_2") or ""),
            str(a.get("city") or ""),
            str(a.get("state") or ""),
            str(a.get("postal_code") or ""),
            str(a.get("country_code") or ""),
            _digits(a.get("telephone_number")),
            "",
            _digits(a.get("fax_number")),
        ]
        for a in result.get("practiceLocations") or []
    ]
    endpoints = [
        [npi]
        + [
            str(e.get(k) or "")
            for k in (
                "endpointType",
                "endpointTypeDescription",
                "endpoint",
                "affiliation",
                "endpointDescription",
                "affiliationName",
                "use",
                "useDescription",
                "useOtherDescription",
                "contentType",
                "contentTypeDescription",
                "contentOtherDescription",
                "address_1",
                "address_2",
                "city",
                "state",
                "country_code",
                "postal_code",
            )
        ]
        for e in result.get("endpoints") or []
    ]
    return row, locations, other_names, endpoints


def result_to_block(result: dict[str, Any], fetched: date) -> BlockResult:
    """A registry result transformed exactly like a file row (raises ``BadRow`` if it is unusable)."""
    row, locations, other_names, endpoints = result_to_rows(result)
    ctx = Context(load_id=0, release_date=fetched.isoformat())
    out = BlockResult("npidata", rows_read=1)
    transform_provider(row, 0, ctx, out)
    for i, p in enumerate(out.providers):  # mark where this copy came from (docs/api.md, freshness)
        doc = orjson.loads(p[DOC_AT])
        doc["release"] = {"date": fetched.isoformat(), "source": "upstream"}
        out.providers[i] = (*p[:DOC_AT], orjson.dumps(doc).decode(), *p[DOC_AT + 1 :])
    for seq, loc in enumerate(locations, 1):
        transform_location(loc, seq, ctx, out)
    for seq, other in enumerate(other_names, 1):
        transform_other_name(other, seq, ctx, out)
    for seq, ep in enumerate(endpoints, 1):
        transform_endpoint(ep, seq, ctx, out)
    return out
