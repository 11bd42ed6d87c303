"""Lookups with freshness: the store is npistack's cache of the NPPES registry.

Each NPI looked up comes back with a cache status, as the Health Provider API defines it:

- ``hit``: the provider is in the store and its copy is younger than the TTL (days since the NPPES
  release it came from, or since it was fetched from the upstream);
- ``stale``: in the store but older than the TTL. It is returned at once and, when an upstream is
  configured, revalidated in the background (the fresh copy replaces it);
- ``miss``: not in the store. With an upstream, the registry is asked; a provider it returns is
  stored (so the next lookup is a ``hit``). Without one (offline), the NPI is simply not found.

When the upstream is needed and fails or times out, the NPI's outcome is ``upstream_error``.

The upstream is asked sparingly (docs/api.md, "Upstream"): an NPI it does not have is remembered as
not found for ``not_found_ttl_s`` (a negative cache, per process), concurrent lookups of one NPI share
one upstream request, and the ``Upstream`` client bounds concurrency and rate: an NPI that gets no
upstream slot in time is answered ``upstream_error`` at once rather than queued.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from npistack.records.registry import registry_block
from npistack.services.providers import _nucc, expand
from npistack.services.upstream import Upstream, UpstreamBusy, UpstreamError
from npistack.storage import open_store
from npistack.storage.base import SqlStore

log = logging.getLogger("npistack.lookup")
NOT_FOUND_MAX = 100_000  # NPIs the negative cache remembers at most (the oldest are forgotten first)


@dataclass
class Outcome:
    npi: str
    doc: dict[str, Any] | None  # the full provider document, or None
    cache: str  # "hit", "stale" or "miss"
    upstream_error: bool = False
    error: str = ""  # why the upstream failed (logs only)

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
        not_found_ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
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
        self.not_found_ttl_s = not_found_ttl_s
        self.clock = clock
        self._not_found: OrderedDict[str, float] = OrderedDict()  # npi -> when to ask again
        self._inflight: dict[str, asyncio.Task[Outcome]] = {}

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
                ask = []
                for npi in missing:
                    if self._known_absent(npi):
                        known[npi] = Outcome(npi, None, "miss")
                    else:
                        ask.append(npi)
                fetched = await asyncio.gather(*(self._fetch_shared(npi) for npi in ask))
                failures = [o for o in fetched if o.upstream_error]
                if failures:
                    log.warning(
                        "upstream lookup of %d of %d NPIs failed (first %s: %s)",
                        len(failures),
                        len(ask),
                        failures[0].npi,
                        failures[0].error,
                    )
                for outcome in fetched:
                    known[outcome.npi] = outcome
        return [known[npi] for npi in npis]

    def _known_absent(self, npi: str) -> bool:
        """Whether the upstream said lately that it has no ``npi`` (the negative cache)."""
        until = self._not_found.get(npi)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self._not_found[npi]
        return False

    def _remember_absent(self, npi: str) -> None:
        if self.not_found_ttl_s <= 0:
            return
        self._not_found[npi] = self.clock() + self.not_found_ttl_s
        self._not_found.move_to_end(npi)
        while len(self._not_found) > NOT_FOUND_MAX:
            self._not_found.popitem(last=False)

    async def _fetch_shared(self, npi: str) -> Outcome:
        """One upstream request per NPI at a time, whoever asks for it meanwhile."""
        task = self._inflight.get(npi)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(npi))
            self._inflight[npi] = task
            task.add_done_callback(functools.partial(self._fetched, npi))
        return await asyncio.shield(task)

    def _fetched(self, npi: str, task: asyncio.Task[Outcome]) -> None:
        if self._inflight.get(npi) is task:
            del self._inflight[npi]

    async def _fetch(self, npi: str) -> Outcome:
        assert self.upstream is not None
        try:
            result = await self.upstream.fetch(npi)
        except UpstreamError as e:
            return Outcome(npi, None, "miss", upstream_error=True, error=str(e))
        if result is None:
            self._remember_absent(npi)
            return Outcome(npi, None, "miss")
        try:
            doc = self._keep(result)
        except Exception as e:  # an unusable registry answer is an upstream failure, not a 500
            log.warning("upstream answer for %s could not be stored: %s", npi, e)
            return Outcome(npi, None, "miss", upstream_error=True, error=str(e))
        return Outcome(npi, doc, "miss")

    def _keep(self, result: dict[str, Any]) -> dict[str, Any] | None:
        """Store a registry result like a file row; the stored provider's full document."""
        block = registry_block(result, self.today())
        if not block.providers:
            return None
        if self._writer is None:
            self._writer = open_store(self.store_url)
        self._writer.replace_providers(block)
        found = self._writer.get_stored([block.providers[0].npi])
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
        except UpstreamBusy as e:  # the budget is spent: the stale copy serves until the next lookup
            log.debug("revalidation of %s skipped: %s", npi, e)
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
