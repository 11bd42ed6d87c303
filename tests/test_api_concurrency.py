"""Quotas and rate limits stay exact with two server processes under concurrent load, with the
counters in the database and in Redis: no credit is granted twice, none is lost."""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.api_support import ABSENT_NPI, ACTIVE_NPI, bearer, make_key, process_server, sample_store, set_plan

REDIS_URL = os.environ.get("NPISTACK_TEST_REDIS_URL", "")


@pytest.fixture(params=["db", "redis"])
def counters(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("Redis counter tests skipped: NPISTACK_TEST_REDIS_URL is not set")
        return REDIS_URL
    return ""


def _hammer(bases: list[str], key: str, n: int, threads: int = 12) -> Counter[int]:
    clients = [httpx.Client(base_url=b, headers=bearer(key), timeout=30) for b in bases]

    def one(i: int) -> int:
        npi = ACTIVE_NPI if i % 3 else ABSENT_NPI  # 200s and 404s both cost a credit
        return clients[i % len(clients)].get(f"/api/v1/npi/{npi}").status_code

    try:
        with ThreadPoolExecutor(threads) as pool:
            return Counter(pool.map(one, range(n)))
    finally:
        for c in clients:
            c.close()


def _usage(base: str, admin: str) -> list[dict[str, int]]:
    data: list[dict[str, int]] = httpx.get(f"{base}/admin/v1/usage", headers=bearer(admin)).json()["data"]
    return data


def test_quota_is_exact_across_two_processes(tmp_path: Path, counters: str) -> None:
    url = sample_store(tmp_path / "store.db")
    set_plan(url, "hundred", credits=100, rpm=1_000_000)
    key = make_key(url, "hundred")
    admin = make_key(url, admin=True)
    env = {"NPISTACK_REDIS_URL": counters}
    with process_server(url, env) as a, process_server(url, env) as b:
        statuses = _hammer([a, b], key, 260)
        assert statuses[200] + statuses[404] == 100, statuses
        assert statuses[403] == 160, statuses
        usage = _usage(a, admin)
        assert sum(u["credits"] for u in usage) == 100
        assert sum(u["requests"] for u in usage) == 260
        r = httpx.get(f"{b}/api/v1/npi/{ACTIVE_NPI}", headers=bearer(key))
        assert r.status_code == 403 and r.headers["X-Quota-Remaining"] == "0"


def test_rate_limit_is_exact_across_two_processes(tmp_path: Path, counters: str) -> None:
    url = sample_store(tmp_path / "store.db")
    set_plan(url, "rpm40", credits=1_000_000, rpm=40)
    key = make_key(url, "rpm40")
    env = {"NPISTACK_REDIS_URL": counters}
    with process_server(url, env) as a, process_server(url, env) as b:
        second = datetime.now(UTC).second
        if second > 52:  # all requests must fall in one minute window (they take about a second)
            time.sleep(60.5 - second)
        statuses = _hammer([a, b], key, 120)
        assert statuses[429] == 80, statuses
        assert statuses[200] + statuses[404] == 40, statuses
