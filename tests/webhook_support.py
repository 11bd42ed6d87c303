"""Helpers for webhook tests: changes recorded with the real ``record_changes`` (so the outbox rows
are the ones a load writes), and a real HTTP receiver on loopback that verifies signatures, counts
hits per delivery, answers as told, and can be stopped and restarted on the same port."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from npistack.nppes.npi import make_npi
from npistack.services.webhooks import verify
from npistack.storage import open_store
from npistack.storage.changes import ChangeFacts, NewChange, NewVersion, record_changes
from tests.storage_sql import sql_rows

STATES = ("CA", "NY", "TX", "NC")
TAXONOMIES = ("207RC0000X", "207X00000X", "208D00000X")
LOOPBACK_ALLOWED = "127.0.0.1"


@pytest.fixture(autouse=True)
def allow_loopback_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receivers of these tests listen on 127.0.0.1, which the outbound guard refuses unless
    allowed: allow it (and only it) for the test, in this process and the workers it starts.
    Import it into a test module to make it apply there."""
    monkeypatch.setenv("NPISTACK_WEBHOOK_ALLOW_HOSTS", LOOPBACK_ALLOWED)


def npi(i: int) -> int:
    """A valid NPI (check digit included), distinct for each ``i``."""
    return int(make_npi(f"1{i:08d}"))


def compact_doc(n: int, state: str, taxonomy: str, entity_type: int) -> dict[str, Any]:
    """A stored document as a load keeps it (without ``release``)."""
    doc: dict[str, Any] = {
        "npi": f"{n:010d}",
        "entityType": f"NPI-{entity_type}",
        "status": "active",
        "taxonomies": [{"slot": 1, "code": taxonomy, "licenseState": state, "primary": True}],
        "practiceLocation": {"line1": "1 MAIN ST", "city": "TOWN", "state": state, "postalCode": "12345"},
        "enumerationDate": "2010-01-01",
        "lastUpdated": "2025-01-02",
    }
    if entity_type == 1:
        doc["name"] = {"first": "ANA", "last": f"TEST{n % 1000}"}
    else:
        doc["organizationName"] = f"CLINIC {n % 1000}"
    return doc


def add_changes(
    url: str,
    count: int,
    *,
    start: int = 0,
    change_type: str = "updated",
    state: Callable[[int], str] = lambda i: STATES[i % len(STATES)],
    load_id: int = 7,
) -> list[int]:
    """Record ``count`` changes (one NPI each, version 2 of a provider) in one transaction, as a load
    does; the outbox rows for matching active subscriptions come with them. Returns the NPIs."""
    store = open_store(url)
    npis: list[int] = []
    versions: list[NewVersion] = []
    changes: list[NewChange] = []
    for i in range(start, start + count):
        n = npi(i)
        npis.append(n)
        st, taxo, et = state(i), TAXONOMIES[i % len(TAXONOMIES)], 1 + i % 2
        content = orjson.dumps({"doc": compact_doc(n, st, taxo, et), "extras": []}).decode()
        diff = [{"field": "practiceLocation.line1", "old": "2 OLD RD", "new": "1 MAIN ST"}]
        versions.append(
            NewVersion(
                npi=n,
                version=2,
                change_type=change_type,
                content=content,
                diff=diff,
                valid_from="2025-01-06",
                load_id=load_id,
                release_date="2025-01-06",
                release_kind="weekly",
            )
        )
        facts = ChangeFacts(n, change_type, et, frozenset({st}), frozenset({taxo}))
        changes.append(NewChange(facts, 2, ["practiceLocation.line1"], diff))
    try:
        store.begin()
        record_changes(
            store,
            load_id=load_id,
            release_date="2025-01-06",
            release_kind="weekly",
            versions=versions,
            changes=changes,
        )
        store.commit()
    except BaseException:
        store.rollback()
        raise
    finally:
        store.close()
    return npis


def statuses(url: str) -> dict[int, str]:
    """Every delivery's status, by id."""
    store = open_store(url)
    try:
        return {int(r[0]): str(r[1]) for r in sql_rows(store, "SELECT id, status FROM webhook_deliveries")}
    finally:
        store.close()


@dataclass
class Hit:
    delivery_id: int
    event_id: str
    body: bytes
    headers: dict[str, str]
    verified: bool
    answered: int  # the status the receiver answered (0: it stalled past the sender's timeout)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: ``behave(delivery_id, nth_hit) -> (status, delay_s)``."""

    secrets: list[str]
    behave: Callable[[int, int], tuple[int, float]] = lambda d, n: (200, 0.0)
    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = verify(
                    receiver.secrets,
                    headers.get("x-npistack-timestamp"),
                    headers.get("x-npistack-signature"),
                    body,
                )
                delivery_id = int(headers.get("x-npistack-delivery-id", "0"))
                with receiver.lock:
                    nth = sum(1 for h in receiver.hits if h.delivery_id == delivery_id) + 1
                    status, delay = receiver.behave(delivery_id, nth) if ok else (401, 0.0)
                    hit = Hit(delivery_id, headers.get("x-npistack-event-id", ""), body, headers, ok, status)
                    receiver.hits.append(hit)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up (timeout) and closed the connection
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def by_delivery(self) -> dict[int, list[Hit]]:
        out: dict[int, list[Hit]] = {}
        with self.lock:
            for h in self.hits:
                out.setdefault(h.delivery_id, []).append(h)
        return out


@contextlib.contextmanager
def receiver(
    secrets: list[str], behave: Callable[[int, int], tuple[int, float]] | None = None
) -> Iterator[Receiver]:
    r = Receiver(secrets, behave or (lambda d, n: (200, 0.0)))
    r.start()
    try:
        yield r
    finally:
        r.stop()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
