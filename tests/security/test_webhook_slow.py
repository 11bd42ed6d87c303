"""Issue 14 item 6: a receiver that trickles bytes cannot stall other subscribers' deliveries.

A real loopback receiver answers one byte at a time and never finishes; another answers at once.
Every attempt has a total deadline (the trickle is cut there, whatever it sends), attempts to other
subscriptions go on meanwhile (the fast receiver gets all of its deliveries while the first slow
attempt is still open: counted by events, not timed), leases of attempts in flight are renewed (a
second worker never takes over a delivery in flight, though the lease is shorter than the
deadline), a failing subscription's circuit breaker opens after N failures, then lets one probe
through after its cool-down, and so ``worker --once`` beside a trickling receiver ends after N
attempts to it, whatever its backlog.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from npistack.services import webhooks as wh
from npistack.settings import Settings
from npistack.storage import open_store
from npistack.worker import DeliveryWorker
from tests.api_support import bearer, client, make_key
from tests.webhook_support import add_changes, receiver, statuses, wait_for

SECRET = "whsec_slow-test-secret-0123456789"
DEADLINE_S = 1.5
LEASE_S = 0.5  # shorter than an attempt: only renewal keeps another worker off it


@pytest.fixture(autouse=True)
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPISTACK_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    open_store(url).close()
    return url


@pytest.fixture
def any_store(store_url: str) -> str:
    """A fresh store on each backend (SQLite; PostgreSQL when NPISTACK_TEST_POSTGRES_URL is set)."""
    open_store(store_url).close()
    return store_url


@dataclass
class Conn:
    delivery_id: int
    opened: float
    closed: float | None = None
    bytes_sent: int = 0
    at_close: Any = None  # what the on_close callback saw


class Trickler:
    """An HTTP receiver on 127.0.0.1 that reads the request, then sends its answer one byte every
    ``gap_s`` without ever finishing, until the client closes the connection (or 60 s)."""

    def __init__(self, gap_s: float = 0.1, on_close: Callable[[Conn], Any] | None = None) -> None:
        self.gap_s = gap_s
        self.on_close = on_close
        self.conns: list[Conn] = []
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = int(self.srv.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slow"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
            while length and len(body) < int(length.group(1)):  # the whole request, then the trickle
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            found = re.search(rb"x-npistack-delivery-id: *(\d+)", head, re.IGNORECASE)
            rec = Conn(int(found.group(1)) if found else 0, time.monotonic())
            with self.lock:
                self.conns.append(rec)
            answer = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 100_000
            limit = time.monotonic() + 60
            while time.monotonic() < limit and rec.bytes_sent < len(answer):
                readable, _, _ = select.select([conn], [], [], self.gap_s)
                if readable:
                    try:
                        if not conn.recv(1):  # the client closed: the attempt ended
                            break
                    except OSError:
                        break
                try:
                    conn.send(answer[rec.bytes_sent : rec.bytes_sent + 1])
                except OSError:
                    break
                rec.bytes_sent += 1
            rec.closed = time.monotonic()
            if self.on_close is not None:
                rec.at_close = self.on_close(rec)

    def close(self) -> None:
        self.srv.close()


@pytest.fixture
def trickler() -> Iterator[Callable[..., Trickler]]:
    made: list[Trickler] = []

    def make(**kw: Any) -> Trickler:
        t = Trickler(**kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def settings(url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "webhook_timeout_s": DEADLINE_S,
        "webhook_lease_s": LEASE_S,
        "webhook_max_attempts": 1,
        "webhook_breaker_failures": 1000,
    }
    values.update(kw)
    return Settings(**values)


def subscribe(url: str, target: str) -> int:
    store = open_store(url)
    try:
        return wh.create_subscription(store, url=target, secret=SECRET).id
    finally:
        store.close()


def test_a_trickling_receiver_delays_no_one_and_is_cut_at_the_deadline(
    any_store: str, trickler: Callable[..., Trickler]
) -> None:
    store = any_store
    fast_ids: list[int] = []

    def fast_state(_: Conn) -> dict[int, str]:
        """At the moment a slow attempt ends: the fast subscription's deliveries, as recorded."""
        every = statuses(store)
        return {i: every[i] for i in fast_ids}

    slow = trickler(gap_s=0.1, on_close=fast_state)
    with receiver([SECRET]) as fast:
        slow_sub = subscribe(store, slow.url)
        fast_sub = subscribe(store, fast.url)
        add_changes(store, 3)  # 3 deliveries each, the slow subscription's first in the queue
        s = open_store(store)
        try:
            rows = wh.list_deliveries(s, limit=100)
        finally:
            s.close()
        fast_ids.extend(d.id for d in rows if d.subscription_id == fast_sub)
        slow_ids = [d.id for d in rows if d.subscription_id == slow_sub]

        workers = [DeliveryWorker(store, settings(store), concurrency=4, worker_id=f"w{i}") for i in (1, 2)]
        stop = threading.Event()
        threads = [threading.Thread(target=w.run, args=(stop, 0.05)) for w in workers]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: set(statuses(store).values()) == {"delivered", "dead"}, 60, "every delivery")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
            for w in workers:
                w.close()

    # the fast subscriber got each delivery once, all recorded before the first slow attempt ended
    per = fast.by_delivery()
    assert sorted(per) == sorted(fast_ids) and all(len(h) == 1 for h in per.values())
    first = min(slow.conns, key=lambda c: c.opened)
    assert first.at_close == dict.fromkeys(fast_ids, "delivered"), first.at_close

    # every slow attempt was cut at the deadline (the trickle would have gone on for 100,000 bytes),
    # one attempt per delivery (max attempts 1), never two at once (one in flight per subscription,
    # across both workers; leases renewed although shorter than the attempt)
    assert sorted(c.delivery_id for c in slow.conns) == sorted(slow_ids)
    for c in slow.conns:
        assert c.closed is not None and c.closed - c.opened < DEADLINE_S + 2.0, c
        assert 0 < c.bytes_sent < 1000, c
    spans = sorted((c.opened, c.closed or 0.0) for c in slow.conns)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)), spans
    s = open_store(store)
    try:
        slow_rows = [d for d in wh.list_deliveries(s, limit=100) if d.subscription_id == slow_sub]
    finally:
        s.close()
    assert [(d.status, d.attempts, d.last_error) for d in slow_rows] == [
        ("dead", 1, f"timeout after {DEADLINE_S:g} s")
    ] * 3


def test_the_circuit_breaker_opens_after_n_failures_then_probes(store: str) -> None:
    failing = {"on": True}
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "down.example" and failing["on"]:
            return httpx.Response(503)
        return httpx.Response(200)

    down = subscribe_public(store, "https://down.example/hook")
    subscribe_public(store, "https://up.example/hook")
    add_changes(store, 5)
    now = [time.time()]
    cfg = settings(
        store,
        webhook_max_attempts=10,
        webhook_breaker_failures=3,
        webhook_breaker_cooldown_s=60.0,
        webhook_backoff_s=0.01,
    )
    with DeliveryWorker(
        store,
        cfg,
        transport=httpx.MockTransport(handler),
        clock=lambda: now[0],
        resolver=lambda host, port: ["93.184.215.14"],
    ) as w:
        w.drain()
        assert seen.count("down.example") == 3 and seen.count("up.example") == 5
        assert breaker(store, down, now[0]) == ("open", 3)
        h = bearer(make_key(store, admin=True))
        with client(store) as api:
            listed = {s["id"]: s for s in api.get("/admin/v1/webhooks", headers=h).json()["data"]}
        assert listed[down]["breaker"]["state"] == "open" and listed[down]["breaker"]["openUntil"]

        assert w.drain() == 0, "open: nothing of it is claimed"
        now[0] += 61
        assert breaker(store, down, now[0])[0] == "half-open"
        assert w.drain() == 1 and seen.count("down.example") == 4, "one probe, failed: open again"
        assert breaker(store, down, now[0]) == ("open", 4)

        now[0] += 61
        failing["on"] = False
        w.drain()
        assert breaker(store, down, now[0]) == ("closed", 0)
    assert set(statuses(store).values()) == {"delivered"}


def subscribe_public(url: str, target: str) -> int:
    from npistack import outbound

    store = open_store(url)
    try:
        policy = outbound.Policy(resolver=lambda host, port: ["93.184.215.14"])
        return wh.create_subscription(store, url=target, secret=SECRET, policy=policy).id
    finally:
        store.close()


def breaker(url: str, sub_id: int, now: float) -> tuple[str, int]:
    """The subscription's breaker state at ``now`` and its consecutive failures."""
    store = open_store(url)
    try:
        b = wh.get_breakers(store, [sub_id])[sub_id]
    finally:
        store.close()
    return b.state(now), b.failures


def test_worker_once_is_bounded_by_the_breaker_not_the_backlog(
    store: str, trickler: Callable[..., Trickler]
) -> None:
    """The issue's ``worker --once`` held by a trickling receiver: with a backlog of 6 deliveries to
    it, the run makes 2 attempts (the breaker's threshold), each cut at the deadline, and ends; the
    other subscriber's 6 are all delivered in the same run."""
    slow = trickler(gap_s=0.1)
    with receiver([SECRET]) as fast:
        slow_sub = subscribe(store, slow.url)
        subscribe(store, fast.url)
        add_changes(store, 6)
        cfg = settings(store, webhook_timeout_s=1.0, webhook_lease_s=30.0, webhook_breaker_failures=2)
        with DeliveryWorker(store, cfg, concurrency=4) as w:
            attempted = w.drain()
        assert len(fast.by_delivery()) == 6
    assert attempted == 8 and len(slow.conns) == 2
    s = open_store(store)
    try:
        b = wh.get_breakers(s, [slow_sub])[slow_sub]
        pending = [d for d in wh.list_deliveries(s, status="pending") if d.subscription_id == slow_sub]
    finally:
        s.close()
    assert b.state(time.time()) == "open" and b.failures == 2
    assert len(pending) == 4 and all(d.attempts == 0 for d in pending), "they wait, attempts not used up"
