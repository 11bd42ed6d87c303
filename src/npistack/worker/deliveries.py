"""The webhook delivery worker: claims due deliveries, sends them signed, records the outcome.

One round (``run_once``) claims up to ``concurrency`` due deliveries (a lease of
``webhook_lease_s``), renders their bodies, sends them in parallel (one thread each; the database is
only used from the calling thread), and records each outcome:

- a 2xx answer: ``delivered``;
- anything else (another status, a redirect, a timeout, a refused or broken connection): the
  attempt failed; the delivery is due again after ``backoff`` (exponential from
  ``webhook_backoff_s``, with jitter), or ``dead`` after ``webhook_max_attempts`` attempts.

Any number of workers (threads, processes, machines) may run against one store: claims never
overlap, so in normal operation each delivery is sent once. A worker that dies keeps its claims
until their lease ends; then another worker (or its restart) sends them again. Delivery is
therefore at least once, and every attempt carries the same event id and body.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import httpx

from npistack.services.webhooks import (
    Outgoing,
    backoff,
    claim_due,
    mark_delivered,
    mark_failed,
    prepare,
    release_claim,
    request_headers,
)
from npistack.settings import Settings
from npistack.storage import open_store
from npistack.storage.base import SqlStore

log = logging.getLogger("npistack.worker")
_SNIPPET = 200  # characters of a failed answer's body kept in last_error


@dataclass(frozen=True)
class Attempt:
    """The outcome of sending one delivery."""

    outgoing: Outgoing
    http_status: int | None
    error: str | None  # None: delivered
    elapsed_ms: float
    sent: bool = True  # False: not sent (the lease ran out before it could be)


class DeliveryWorker:
    """Sends webhook deliveries from the store at ``store_url`` (opened writable, its own connection).

    ``transport`` replaces httpx's network transport (``httpx.MockTransport`` in tests); ``clock``
    gives the time claims, leases and retries are computed with.
    """

    def __init__(
        self,
        store_url: str,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.time,
        concurrency: int = 4,
    ) -> None:
        self.store_url = store_url
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.rng = random.Random()
        self.store: SqlStore = open_store(store_url)
        self.http = httpx.Client(
            transport=transport, timeout=settings.webhook_timeout_s, follow_redirects=False
        )
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-send")
        if settings.webhook_timeout_s >= settings.webhook_lease_s:
            log.warning(
                "webhook_timeout_s (%s) is not below webhook_lease_s (%s): a slow receiver can outlast "
                "a claim, and another worker may then send the same delivery",
                settings.webhook_timeout_s,
                settings.webhook_lease_s,
            )

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.http.close()
        self.store.close()

    def __enter__(self) -> DeliveryWorker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def run(self, stop: threading.Event, poll_s: float = 1.0) -> None:
        """Deliver until ``stop`` is set: rounds back to back while there is work, else a nap of
        ``poll_s``. A round in progress finishes (its sends are bounded by the timeout)."""
        log.info("worker %s started on %s", self.worker_id, _redacted(self.store_url))
        while not stop.is_set():
            try:
                done = self.run_once()
            except Exception as e:  # a lost database connection, a locked file: try again later
                log.error("worker %s: round failed: %s: %s", self.worker_id, type(e).__name__, e)
                self._reopen()
                done = 0
            if not done:
                stop.wait(poll_s)
        log.info("worker %s stopped", self.worker_id)

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):  # the connection may be gone already
            self.store.close()
        try:
            self.store = open_store(self.store_url)
        except Exception as e:  # retried on the next round
            log.error("worker %s: cannot reopen the store: %s", self.worker_id, e)

    # -- one round ------------------------------------------------------------------------------
    def run_once(self, limit: int | None = None) -> int:
        """Claim, send and record up to ``limit`` (default: ``concurrency``) due deliveries;
        returns how many were claimed."""
        lease_s = self.settings.webhook_lease_s
        claimed = claim_due(
            self.store, self.worker_id, limit=limit or self.concurrency, lease_s=lease_s, now=self.clock()
        )
        if not claimed:
            return 0
        outgoing = prepare(self.store, claimed)
        for attempt in self.pool.map(self._send, outgoing):
            self._record(attempt)
        return len(claimed)

    def _send(self, o: Outgoing) -> Attempt:
        if o.problem is not None:
            return Attempt(o, None, o.problem, 0.0)
        lease_end = o.delivery.locked_until or 0.0
        if self.clock() >= lease_end:
            return Attempt(o, None, "lease ran out before sending", 0.0, sent=False)
        timestamp = int(time.time())
        headers = request_headers(o.delivery, o.secret, o.body, timestamp)
        t0 = time.perf_counter()
        try:
            with self.http.stream("POST", o.url, content=o.body, headers=headers) as r:
                snippet = b""
                if not r.is_success:
                    for chunk in r.iter_bytes():
                        snippet += chunk
                        if len(snippet) >= _SNIPPET:
                            break
        except httpx.TimeoutException:
            error = f"timed out after {self.settings.webhook_timeout_s:g} s"
            return Attempt(o, None, error, _ms(t0))
        except httpx.HTTPError as e:
            return Attempt(o, None, f"{type(e).__name__}: {e}"[:500] or type(e).__name__, _ms(t0))
        if r.is_success:
            return Attempt(o, r.status_code, None, _ms(t0))
        text = snippet[:_SNIPPET].decode(errors="replace").strip()
        error = f"HTTP {r.status_code}" + (f": {text}" if text else "")
        if r.is_redirect:
            error += " (redirects are not followed)"
        return Attempt(o, r.status_code, error, _ms(t0))

    def _record(self, a: Attempt) -> None:
        d = a.outgoing.delivery
        what = f"delivery {d.id} (event {d.event_id}, subscription {d.subscription_id})"
        if not a.sent:
            release_claim(self.store, d.id, self.worker_id)
            log.warning("%s not sent: %s", what, a.error)
            return
        number = d.attempts + 1
        max_attempts = self.settings.webhook_max_attempts
        if a.error is None:
            ok = mark_delivered(self.store, d.id, self.worker_id, a.http_status or 200)
            outcome = f"delivered: HTTP {a.http_status} in {a.elapsed_ms:.0f} ms"
        elif number >= max_attempts or a.outgoing.problem is not None:
            ok = mark_failed(
                self.store,
                d.id,
                self.worker_id,
                http_status=a.http_status,
                error=a.error,
                next_attempt_at=None,
            )
            outcome = f"dead after attempt {number} of {max_attempts}: {a.error}"
        else:
            delay = backoff(number, self.settings.webhook_backoff_s, rng=self.rng)
            ok = mark_failed(
                self.store,
                d.id,
                self.worker_id,
                http_status=a.http_status,
                error=a.error,
                next_attempt_at=self.clock() + delay,
            )
            outcome = f"failed (attempt {number} of {max_attempts}): {a.error}; retry in {delay:.1f} s"
        if ok:
            log.info("%s %s", what, outcome)
        else:
            log.warning(
                "%s %s, but its claim had passed to another worker: outcome not recorded", what, outcome
            )


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _redacted(url: str) -> str:
    """A store URL without its password."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
