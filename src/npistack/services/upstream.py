"""The upstream registry: any CMS-compatible NPI Registry API (``GET {base}?version=2.1&number=N``).

npistack's store is its cache of the registry. When an NPI is not in the store (or its copy is
stale) and an upstream is configured, the upstream is asked; what it returns is stored by
``npistack.records.registry.registry_block`` with the same document builders as a file load, so a
provider fetched one by one is stored exactly as if it had come from the monthly file.

The HTTP transport is swappable (``httpx.MockTransport`` in unit tests); integration tests use a
real server on loopback (a second npistack serving its CMS-compatible endpoint).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

from npistack.errors import NpistackError

MAX_REDIRECTS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UpstreamError(NpistackError):
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
