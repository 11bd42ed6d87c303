"""The webhook delivery worker: claims due deliveries, sends them signed, records the outcome.

The worker keeps up to ``concurrency`` attempts in flight (one thread each; the database is only
used from the calling thread). Whenever one ends, its outcome is recorded at once and the freed slot
is filled with the next due delivery, so a slow receiver holds one slot, not the others:

- claims take turns between subscriptions and never give one subscription more than
  ``webhook_per_subscription`` deliveries in flight (by all workers together);
- every attempt has a **total** deadline of ``webhook_timeout_s`` (DNS, connect, TLS, send, the
  answer's headers however slowly they come; ``npistack.outbound``), after which its connection is
  closed;
- the leases of deliveries in flight are renewed while they last, so no other worker takes them over;
- each subscription has a **circuit breaker**: after ``webhook_breaker_failures`` consecutive failed
  attempts its deliveries wait ``webhook_breaker_cooldown_s``, then one probe is sent (a success
  closes the breaker, a failure opens it again).

Before every attempt the receiver's host is resolved and checked by the outbound guard (no loopback,
private, link-local or metadata address unless ``webhook_allow_hosts`` allows it) and the connection
is **pinned** to the checked addresses (no DNS rebinding between check and send). Redirects are not
followed. The receiver's answer is not read beyond its status line and headers: an attempt records
only its status and a short reason of npistack's own (``HTTP 500``, ``timeout after 10 s``).

Outcomes:

- a 2xx answer: ``delivered``;
- anything else (another status, a redirect, a timeout, a refused address, a refused or broken
  connection): the attempt failed; the delivery is due again after ``backoff`` (exponential from
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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType

import httpx

from npistack import outbound
from npistack.services.webhooks import (
    Delivery,
    Outgoing,
    backoff,
    claim_due,
    ensure_breakers,
    guard_policy,
    mark_delivered,
    mark_failed,
    prepare,
    record_attempt,
    release_claim,
    renew_claims,
    request_headers,
)
from npistack.settings import Settings
from npistack.storage import open_store
from npistack.storage.base import SqlStore

log = logging.getLogger("npistack.worker")


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

    ``transport`` replaces the network transport (``httpx.MockTransport`` in tests; the default is
    ``outbound.GuardedTransport``, which pins and bounds every connection); ``resolver`` replaces DNS
    for the outbound guard (``(host, port) -> addresses``); ``clock`` gives the time claims, leases,
    retries and breakers are computed with.
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
        resolver: outbound.Resolver | None = None,
    ) -> None:
        self.store_url = store_url
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.rng = random.Random()
        self.policy = guard_policy(settings, resolver=resolver)
        self.store: SqlStore = open_store(store_url)
        ensure_breakers(self.store)
        self.http = httpx.Client(
            transport=transport or outbound.GuardedTransport(self.policy, max_connections=self.concurrency),
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            trust_env=False,
        )
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-send")
        self._leases: dict[int, float] = {}  # delivery id -> lease end, of the deliveries in flight

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
        """Deliver until ``stop`` is set: slots refilled as attempts end, a look every ``poll_s``
        when nothing is due. The attempts in flight finish (each bounded by the timeout)."""
        log.info("worker %s started on %s", self.worker_id, _redacted(self.store_url))
        while not stop.is_set():
            try:
                self._pump(stop, poll_s=poll_s)
            except Exception as e:  # a lost database connection, a locked file: try again later
                log.error("worker %s: round failed: %s: %s", self.worker_id, type(e).__name__, e)
                self._reopen()
                stop.wait(poll_s)
        log.info("worker %s stopped", self.worker_id)

    def drain(self, poll_s: float = 0.2) -> int:
        """Send what is due until nothing is due or in flight (``worker --once``); how many attempts."""
        return self._pump(None, poll_s=poll_s)

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):  # the connection may be gone already
            self.store.close()
        try:
            self.store = open_store(self.store_url)
        except Exception as e:  # retried on the next round
            log.error("worker %s: cannot reopen the store: %s", self.worker_id, e)

    # -- sending ----------------------------------------------------------------------------------
    def run_once(self, limit: int | None = None) -> int:
        """Claim up to ``limit`` (default: ``concurrency``) due deliveries, send them at once and
        record each outcome as it comes; returns how many were claimed."""
        claimed = self._claim(min(limit or self.concurrency, self.concurrency))
        if not claimed:
            return 0
        in_flight = {self.pool.submit(self._send, o): o for o in prepare(self.store, claimed)}
        while in_flight:
            done, _ = wait(in_flight, timeout=self._tick(1.0), return_when=FIRST_COMPLETED)
            for f in done:
                del in_flight[f]
                self._finish(f.result())
            self._renew()
        return len(claimed)

    def _pump(self, stop: threading.Event | None, *, poll_s: float) -> int:
        """Keep ``concurrency`` attempts in flight until ``stop`` is set (None: until idle)."""
        in_flight: dict[Future[Attempt], Outgoing] = {}
        total = 0
        try:
            while True:
                stopping = stop is not None and stop.is_set()
                if not stopping and len(in_flight) < self.concurrency:
                    claimed = self._claim(self.concurrency - len(in_flight))
                    for o in prepare(self.store, claimed) if claimed else []:
                        in_flight[self.pool.submit(self._send, o)] = o
                    total += len(claimed)
                if not in_flight:
                    if stop is None or stopping:
                        return total
                    stop.wait(poll_s)
                    continue
                done, _ = wait(in_flight, timeout=self._tick(poll_s), return_when=FIRST_COMPLETED)
                for f in done:
                    del in_flight[f]
                    self._finish(f.result())
                self._renew()
        finally:
            for f in list(in_flight):  # an error above: let the attempts end, record what we can
                with contextlib.suppress(Exception):
                    self._finish(f.result())

    def _claim(self, n: int) -> list[Delivery]:
        s = self.settings
        claimed = claim_due(
            self.store,
            self.worker_id,
            limit=n,
            lease_s=s.webhook_lease_s,
            now=self.clock(),
            per_subscription=s.webhook_per_subscription,
        )
        for d in claimed:
            self._leases[d.id] = d.locked_until or 0.0
        return claimed

    def _tick(self, poll_s: float) -> float:
        """How long to wait for an attempt to end before looking again (for due work, for leases)."""
        return max(0.05, min(poll_s, self.settings.webhook_lease_s / 4))

    def _renew(self) -> None:
        """Extend the leases of deliveries in flight that have less than half of one left."""
        now, lease_s = self.clock(), self.settings.webhook_lease_s
        due = [i for i, end in self._leases.items() if end - now < lease_s / 2]
        if due:
            renew_claims(self.store, due, self.worker_id, until=now + lease_s)
            for i in due:
                self._leases[i] = now + lease_s

    def _finish(self, a: Attempt) -> None:
        self._leases.pop(a.outgoing.delivery.id, None)
        self._record(a)

    def _send(self, o: Outgoing) -> Attempt:
        if o.problem is not None:
            return Attempt(o, None, o.problem, 0.0)
        lease_end = o.delivery.locked_until or 0.0
        if self.clock() >= lease_end:
            return Attempt(o, None, "lease ran out before sending", 0.0, sent=False)
        timeout_s = self.settings.webhook_timeout_s
        t0 = time.perf_counter()
        with outbound.attempt(timeout_s) as budget:
            try:
                target, addresses = outbound.check(o.url, self.policy, timeout_s=budget.left())
            except outbound.Unresolved as e:
                return Attempt(o, None, f"not sent: {e}"[:500], _ms(t0))
            except outbound.OutboundError as e:
                return Attempt(o, None, f"not sent, address refused: {e}"[:500], _ms(t0))
            budget.pin(target, addresses)
            headers = request_headers(o.delivery, o.secret, o.body, int(time.time()))
            try:
                with self.http.stream("POST", o.url, content=o.body, headers=headers) as r:
                    status = r.status_code  # the answer's body is never read
            except httpx.TimeoutException:
                return Attempt(o, None, f"timeout after {timeout_s:g} s", _ms(t0))
            except httpx.ConnectError as e:
                return Attempt(o, None, f"cannot connect: {e}"[:300], _ms(t0))
            except httpx.HTTPError as e:  # its message may quote the answer: only the kind
                return Attempt(o, None, f"connection failed: {type(e).__name__}", _ms(t0))
        if 200 <= status < 300:
            return Attempt(o, status, None, _ms(t0))
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        return Attempt(o, status, error, _ms(t0))

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
            if a.outgoing.problem is None:
                self._breaker(d.subscription_id, ok=a.error is None, error=a.error)
        else:
            log.warning(
                "%s %s, but its claim had passed to another worker: outcome not recorded", what, outcome
            )

    def _breaker(self, sub_id: int, *, ok: bool, error: str | None) -> None:
        s = self.settings
        b = record_attempt(
            self.store,
            sub_id,
            ok=ok,
            threshold=s.webhook_breaker_failures,
            cooldown_s=s.webhook_breaker_cooldown_s,
            now=self.clock(),
        )
        if not ok and b.failures >= s.webhook_breaker_failures:
            log.warning(
                "subscription %s: circuit breaker open after %s consecutive failed attempts (last: %s);"
                " its deliveries wait %g s, then one probe",
                sub_id,
                b.failures,
                error,
                s.webhook_breaker_cooldown_s,
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
