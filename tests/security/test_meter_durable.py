"""Issue 14 item 8: Redis is the fast path of the meter, the accounts database its durable record.

- A Redis that lost its data (restarted without persistence: here, the test's own keys deleted)
  carries on from the database: a key at 100/100 stays refused, a key at 60/100 gets exactly 40
  more, and the usage history is still there.
- A Redis that is down (a closed loopback port) or hung (a loopback server that accepts and never
  answers) makes metered requests answer 503 ``service_unavailable`` with ``Retry-After`` and the
  error envelope, quickly (bounded by ``NPISTACK_REDIS_TIMEOUT_S``, then by the breaker), with no
  traceback; ``/healthz`` never touches Redis and ``/readyz`` says the meter is not ready.

Uses the real Redis at ``NPISTACK_TEST_REDIS_URL`` (for (a)); each test has its own store, hence its
own namespace ``npistack:<instance id>``, and deletes only its keys.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import npistack.services.accounts as accounts_service
from npistack.ingest.load import ingest
from npistack.storage import open_store
from npistack.storage.accounts import AccountsDb
from tests.api_support import (
    ABSENT_NPI,
    ACTIVE_NPI,
    bearer,
    client,
    free_port,
    make_key,
    sample_store,
    set_plan,
)
from tests.nppes_files import SAMPLE

REDIS_URL = os.environ.get("NPISTACK_TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs a Redis: NPISTACK_TEST_REDIS_URL is not set")
TIMEOUT_S = 0.25  # NPISTACK_REDIS_TIMEOUT_S's default, set explicitly below


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = sample_store(tmp_path / "store.db")
    set_plan(url, "hundred", credits=100, rpm=1_000_000)
    return url


def _namespace(url: str) -> str:
    db = AccountsDb(url)
    try:
        return f"npistack:{db.instance_id}"
    finally:
        db.close()


def _forget_redis(url: str) -> int:
    """Delete this test's keys only (what a Redis restarted without persistence would have lost)."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        names = list(r.scan_iter(match=f"{_namespace(url)}:*", count=1000))
        return int(r.delete(*names)) if names else 0
    finally:
        r.close()


@pytest.fixture
def own_keys(store_url: str) -> Iterator[str]:
    """A store with the sample rows on SQLite and on PostgreSQL (accounts in the same backend); this
    test's Redis keys deleted afterwards."""
    if store_url.startswith("sqlite"):
        store = open_store(store_url)
        try:
            assert ingest(SAMPLE, store).status == "succeeded"
        finally:
            store.close()
    else:  # an empty store (every lookup a 404, which costs a credit): PostgreSQL loads take a
        open_store(store_url).close()  # database-wide lock that other tests' loads may hold
    set_plan(store_url, "hundred", credits=100, rpm=1_000_000)
    yield store_url
    if REDIS_URL:
        _forget_redis(store_url)


def _get(api: Any, key: str, i: int) -> Any:
    return api.get(f"/api/v1/npi/{ACTIVE_NPI if i % 3 else ABSENT_NPI}", headers=bearer(key))


def _usage(api: Any, admin: str) -> list[dict[str, int]]:
    r = api.get("/admin/v1/usage", headers=bearer(admin))
    assert r.status_code == 200, r.text
    data: list[dict[str, int]] = r.json()["data"]
    return data


@needs_redis
def test_a_key_at_its_quota_stays_refused_after_redis_loses_its_data(own_keys: str) -> None:
    url = own_keys
    key, admin = make_key(url, "hundred"), make_key(url, admin=True)
    with client(url, redis_url=REDIS_URL, redis_timeout_s=TIMEOUT_S) as api:
        statuses = [_get(api, key, i).status_code for i in range(101)]
        assert statuses.count(200) + statuses.count(404) == 100 and statuses[-1] == 403, statuses
        assert _forget_redis(url) > 0  # Redis "restarted" without persistence
        for i in range(5):
            r = _get(api, key, i)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "quota_exceeded"
            assert r.headers["X-Quota-Remaining"] == "0"
        usage = _usage(api, admin)
    assert sum(u["credits"] for u in usage) == 100
    assert sum(u["requests"] for u in usage) == 106  # the history survived Redis too
    # A new server process over the same emptied Redis (a restart of everything) says the same.
    _forget_redis(url)
    with client(url, redis_url=REDIS_URL, redis_timeout_s=TIMEOUT_S) as api:
        r = _get(api, key, 1)
        assert r.status_code == 403 and r.headers["X-Quota-Remaining"] == "0"
        assert sum(u["credits"] for u in _usage(api, admin)) == 100


@needs_redis
def test_a_key_part_way_gets_exactly_the_rest_after_redis_loses_its_data(own_keys: str) -> None:
    url = own_keys
    key, admin = make_key(url, "hundred"), make_key(url, admin=True)
    with client(url, redis_url=REDIS_URL, redis_timeout_s=TIMEOUT_S) as api:
        assert all(_get(api, key, i).status_code in (200, 404) for i in range(60))
        _forget_redis(url)
        after = [_get(api, key, i).status_code for i in range(50)]
        assert after.count(200) + after.count(404) == 40 and after.count(403) == 10, after
        r = _get(api, key, 1)
        assert r.status_code == 403 and r.headers["X-Quota-Remaining"] == "0"
        usage = _usage(api, admin)
    assert sum(u["credits"] for u in usage) == 100
    assert sum(u["requests"] for u in usage) == 111


def _assert_unavailable(r: Any) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    body = r.json()
    assert body["error"]["code"] == "service_unavailable"
    assert "meter" in body["error"]["message"] and body["meta"]["requestId"]


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [rec for rec in caplog.records if rec.exc_info], [rec.getMessage() for rec in caplog.records]
    assert "Traceback" not in caplog.text


def test_redis_down_is_a_503_with_retry_after_and_no_traceback(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = make_key(store, "hundred")
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    caplog.set_level(logging.DEBUG)
    with client(store, redis_url=down, redis_timeout_s=TIMEOUT_S) as api:
        for i in range(3):
            _assert_unavailable(_get(api, key, i))
        bulk = api.post("/api/v1/npi/bulk", headers=bearer(key), json={"npis": [ACTIVE_NPI]})
        _assert_unavailable(bulk)
        assert api.get("/healthz").status_code == 200
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("error")
    _no_traceback(caplog)


class HungRedis:
    """A loopback TCP server that accepts connections and never answers (a hung Redis)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for c in self._conns:
            c.close()
        self.sock.close()


@contextlib.contextmanager
def hung_redis() -> Iterator[HungRedis]:
    server = HungRedis()
    try:
        yield server
    finally:
        server.close()


def test_redis_hung_is_a_quick_503_and_healthz_never_calls_it(
    store: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_service, "REDIS_BREAKER_S", 60.0)  # no probe during the test
    key = make_key(store, "hundred")
    bound = TIMEOUT_S * 8 + 1.0  # a connect plus one command at the timeout each, generously
    caplog.set_level(logging.DEBUG)
    with (
        hung_redis() as hung,
        client(store, redis_url=f"redis://127.0.0.1:{hung.port}/0", redis_timeout_s=TIMEOUT_S) as api,
    ):
        for i in range(6):
            started = time.monotonic()
            r = _get(api, key, i)
            assert time.monotonic() - started < bound
            _assert_unavailable(r)
        assert hung.accepted == 1  # one timeout, then the breaker answered: no retry storm
        seen = hung.accepted
        for _ in range(5):
            started = time.monotonic()
            assert api.get("/healthz").status_code == 200
            assert time.monotonic() - started < bound
        assert hung.accepted == seen  # /healthz never connects to Redis
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("error")
    _no_traceback(caplog)


def test_a_hung_redis_is_probed_again_after_the_breaker_interval(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_service, "REDIS_BREAKER_S", 0.3)
    key = make_key(store, "hundred")
    with (
        hung_redis() as hung,
        client(store, redis_url=f"redis://127.0.0.1:{hung.port}/0", redis_timeout_s=TIMEOUT_S) as api,
    ):
        _assert_unavailable(_get(api, key, 1))
        assert hung.accepted == 1
        deadline = time.monotonic() + 20
        while hung.accepted < 2 and time.monotonic() < deadline:  # the breaker lets one probe through
            _assert_unavailable(_get(api, key, 1))
            time.sleep(0.05)
        assert hung.accepted == 2
