"""Lookups with freshness: the store is npistack's cache of the NPPES registry.

Each NPI looked up comes back with a cache status, as the Health Provider API defines it:

- ``hit``: the provider is in the store and its copy is younger than the TTL (days since the NPPES
  release it came from, or since it was fetched from the upstream);
- ``stale``: in the store but older than the TTL. It is returned at once and, when an upstream is
  configured, revalidated in the background (the fresh copy replaces it);
- ``miss``: not in the store. With an upstream, the registry is asked; a provider it returns is
  stored (so the next lookup is a ``hit``). Without one (offline), the NPI is simply not found.

When the upstream is needed and fails or times out, the NPI's outcome is ``upstream_error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from npistack.services.providers import _nucc, expand
from npistack.services.upstream import Upstream, UpstreamError, result_to_block
from npistack.storage import open_store
from npistack.storage.base import SqlStore
from npistack.storage.writes import replace_providers

log = logging.getLogger("npistack.lookup")


@dataclass
class Outcome:
    npi: str
    doc: dict[str, Any] | None  # the full provider document, or None
    cache: str  # "hit", "stale" or "miss"
    upstream_error: bool = False

    @property
    def cached(self) -> bool:
        """The collection's rule: ``meta.cached`` is true when X-Cache-Status is hit or stale."""
        return self.cache in ("hit", "stale")


class LookupService:
    def __init__(
        self,
        store: SqlStore,
        *,
        store_url: str,
        upstream: Upstream | None,
        ttl_days: int,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
        default_release: Callable[[], date | None] = lambda: None,
    ) -> None:
        self.store = store
        self.store_url = store_url
        self.upstream = upstream
        self.ttl_days = ttl_days
        self.today = today
        self.default_release = default_release  # for documents without a release date (bare CSV loads)
        self._writer: SqlStore | None = None
        self._revalidating: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def _age_days(self, doc: dict[str, Any]) -> int | None:
        released = (doc.get("release") or {}).get("date")
        try:
            day = date.fromisoformat(released) if released else self.default_release()
        except ValueError:
            day = self.default_release()
        return None if day is None else (self.today() - day).days

    def cache_status(self, doc: dict[str, Any]) -> str:
        age = self._age_days(doc)
        return "stale" if age is None or age > self.ttl_days else "hit"

    async def lookup(self, npis: Sequence[str]) -> list[Outcome]:
        """One outcome per NPI asked, in order (duplicates answered alike)."""
        nucc = _nucc()
        stored = {sp.doc["npi"]: sp for sp in self.store.get_stored(list(dict.fromkeys(npis)))}
        known: dict[str, Outcome] = {}
        missing: list[str] = []
        for npi in dict.fromkeys(npis):
            sp = stored.get(npi)
            if sp is None:
                missing.append(npi)
                continue
            doc = expand(sp, nucc)
            status = self.cache_status(doc)
            known[npi] = Outcome(npi, doc, status)
            if status == "stale" and self.upstream is not None:
                self._revalidate_later(npi)
        if missing:
            if self.upstream is None:
                for npi in missing:
                    known[npi] = Outcome(npi, None, "miss")
            else:
                fetched = await asyncio.gather(*(self._fetch(npi) for npi in missing))
                for outcome in fetched:
                    known[outcome.npi] = outcome
        return [known[npi] for npi in npis]

    async def _fetch(self, npi: str) -> Outcome:
        assert self.upstream is not None
        try:
            result = await self.upstream.fetch(npi)
        except UpstreamError as e:
            log.warning("upstream lookup of %s failed: %s", npi, e)
            return Outcome(npi, None, "miss", upstream_error=True)
        if result is None:
            return Outcome(npi, None, "miss")
        try:
            doc = self._keep(result)
        except Exception as e:  # an unusable registry answer is an upstream failure, not a 500
            log.warning("upstream answer for %s could not be stored: %s", npi, e)
            return Outcome(npi, None, "miss", upstream_error=True)
        return Outcome(npi, doc, "miss")

    def _keep(self, result: dict[str, Any]) -> dict[str, Any] | None:
        """Store a registry result like a file row; the stored provider's full document."""
        block = result_to_block(result, self.today())
        if not block.providers:
            return None
        if self._writer is None:
            self._writer = open_store(self.store_url)
        replace_providers(self._writer, block)
        found = self._writer.get_stored([block.providers[0][0]])
        return expand(found[0]) if found else None

    def _revalidate_later(self, npi: str) -> None:
        if npi in self._revalidating:
            return
        self._revalidating.add(npi)
        task = asyncio.get_running_loop().create_task(self._revalidate(npi))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _revalidate(self, npi: str) -> None:
        try:
            assert self.upstream is not None
            result = await self.upstream.fetch(npi)
            if result is not None:
                self._keep(result)
        except Exception as e:  # background work: log, never raise
            log.warning("revalidation of %s failed: %s", npi, e)
        finally:
            self._revalidating.discard(npi)

    async def drain(self) -> None:
        """Wait for background revalidations (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
