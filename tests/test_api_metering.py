"""Metering exactly as the collection says, with database counters and with Redis counters:
a 200 and a 404 cost one credit, a 400/401 nothing, enrichment 2 in total, bulk per found/not_found
item, a search page one; quotas per calendar month (UTC); rate limits per minute; key states."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from npistack.services.accounts import Accounts
from npistack.storage.accounts import AccountsDb
from tests.api_support import (
    ABSENT_NPI,
    ACTIVE_NPI,
    ORG_NPI,
    bearer,
    client,
    make_key,
    sample_store,
    set_plan,
    utc,
)

REDIS_URL = os.environ.get("NPISTACK_TEST_REDIS_URL", "")
NOW = utc(2026, 11, 21, 12, 0, 5)


@pytest.fixture(params=["db", "redis"])
def counters(request: pytest.FixtureRequest) -> str:
    """'' for database counters, or the Redis URL."""
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("Redis counter tests skipped: NPISTACK_TEST_REDIS_URL is not set")
        return REDIS_URL
    return ""


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sample_store(tmp_path / "store.db")


@pytest.fixture
def api(url: str, counters: str) -> Iterator[Any]:
    with client(url, now=NOW, redis_url=counters) as c:
        yield c


def remaining(r: Any) -> int:
    return int(r.headers["X-Quota-Remaining"])


def test_lookup_costs_one_credit_for_200_and_404_and_nothing_for_400_401(url: str, api: Any) -> None:
    key = make_key(url, "free")
    h = bearer(key)
    r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=h)
    assert r.status_code == 200 and r.headers["X-Quota-Limit"] == "1000" and remaining(r) == 999
    r = api.get(f"/api/v1/npi/{ABSENT_NPI}", headers=h)
    assert r.status_code == 404 and remaining(r) == 998
    bad = api.get("/api/v1/npi/12345", headers=h)
    assert bad.status_code == 400 and "X-Quota-Remaining" not in bad.headers
    assert "X-RateLimit-Limit" not in bad.headers
    assert api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=bearer("npk_wrong")).status_code == 401
    r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=h)
    assert remaining(r) == 997  # the 400 and the 401 cost nothing


def test_enrichment_costs_two_and_needs_a_plan_with_enrichment(url: str, api: Any) -> None:
    growth = bearer(make_key(url, "growth"))
    r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers={**growth, "enrichment": "quality_freshness"})
    assert r.status_code == 200 and remaining(r) == 50_000 - 2
    assert set(r.json()["data"]["enrichment"]["factors"]) == {"completeness", "qualityScore", "freshness"}
    r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=growth)
    assert remaining(r) == 50_000 - 3 and "enrichment" not in r.json()["data"]
    free = bearer(make_key(url, "free"))
    r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers={**free, "enrichment": "completeness"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "enrichment_not_allowed"
    r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers={**growth, "enrichment": "everything"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_enrichment"
    assert remaining(api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=free)) == 999  # refusals were free


def test_bulk_meters_per_item_and_stops_at_the_quota(url: str, api: Any) -> None:
    set_plan(url, "tiny", credits=6)
    h = bearer(make_key(url, "tiny"))
    r = api.post("/api/v1/npi/bulk", headers=h, json={"npis": [ACTIVE_NPI, ABSENT_NPI, ACTIVE_NPI]})
    assert r.status_code == 200 and remaining(r) == 3
    assert [i["status"] for i in r.json()["data"]] == ["found", "not_found", "found"]
    r = api.post(
        "/api/v1/npi/bulk", headers=h, json={"npis": [ORG_NPI, ACTIVE_NPI, ORG_NPI, ABSENT_NPI, ACTIVE_NPI]}
    )
    body = r.json()
    assert r.status_code == 200 and remaining(r) == 0
    assert [i["status"] for i in body["data"]] == [
        "found",
        "found",
        "found",
        "quota_exceeded",
        "quota_exceeded",
    ]
    assert body["meta"]["counts"] == {
        "requested": 5,
        "found": 3,
        "notFound": 0,
        "upstreamErrors": 0,
        "quotaExceeded": 2,
        "cacheHits": 3,
    }
    assert body["data"][3]["error"]["code"] == "quota_exceeded"
    r = api.post("/api/v1/npi/bulk", headers=h, json={"npis": [ACTIVE_NPI]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "quota_exceeded"
    assert r.headers["X-Quota-Remaining"] == "0"


def test_search_page_costs_one_credit_even_when_empty(url: str, api: Any) -> None:
    h = bearer(make_key(url, "free"))
    r = api.get("/api/v1/providers/search", params={"last_name": "DUBOSE"}, headers=h)
    assert r.status_code == 200 and remaining(r) == 999
    assert [d["npi"] for d in r.json()["data"]] == [ACTIVE_NPI]
    r = api.get("/api/v1/providers/search", params={"last_name": "NOSUCHNAMEANYWHERE"}, headers=h)
    assert r.status_code == 200 and r.json()["data"] == [] and remaining(r) == 998
    r = api.get("/api/v1/providers/search", params={"state": "CA"}, headers=h)
    assert r.status_code == 400 and "X-Quota-Remaining" not in r.headers


def test_quota_exceeded_then_reset_on_the_first_of_the_month(url: str, counters: str) -> None:
    set_plan(url, "two", credits=2)
    h = bearer(make_key(url, "two"))
    with client(url, now=utc(2026, 11, 30, 23, 58, 0), redis_url=counters) as api:
        assert api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=h).status_code == 200
        assert api.get(f"/api/v1/npi/{ABSENT_NPI}", headers=h).status_code == 404
        r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=h)
        assert r.status_code == 403 and r.json()["error"] == {
            "code": "quota_exceeded",
            "message": "Monthly lookup quota has been exceeded.",
        }
        assert (r.headers["X-Quota-Limit"], r.headers["X-Quota-Remaining"]) == ("2", "0")
        assert "X-RateLimit-Reset" in r.headers
    with client(url, now=utc(2026, 12, 1, 0, 0, 1), redis_url=counters) as api:
        r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=h)
        assert r.status_code == 200 and remaining(r) == 1


def test_rate_limit_per_minute_with_retry_after(url: str, counters: str) -> None:
    set_plan(url, "slow", credits=1000, rpm=3)
    h = bearer(make_key(url, "slow"))
    with client(url, now=utc(2026, 11, 21, 12, 0, 50), redis_url=counters) as api:
        for i in range(3):
            r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=h)
            assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == str(2 - i)
        r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=h)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        reset = int(r.headers["X-RateLimit-Reset"])
        assert reset == int(utc(2026, 11, 21, 12, 1, 0).timestamp())
        assert r.headers["Retry-After"] == "10" and r.headers["X-RateLimit-Remaining"] == "0"
        assert "X-Quota-Remaining" not in r.headers
    with client(url, now=utc(2026, 11, 21, 12, 1, 0), redis_url=counters) as api:
        r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=h)
        assert r.status_code == 200 and remaining(r) == 996  # the 429 cost nothing


def test_suspended_resumed_and_revoked_keys(url: str, api: Any) -> None:
    key = make_key(url, "free")
    accounts = Accounts(AccountsDb(url))
    ref = key[:12]
    accounts.set_status(ref, "suspended")
    r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=bearer(key))
    assert r.status_code == 403 and r.json()["error"] == {
        "code": "subscription_inactive",
        "message": "Your subscription is not active.",
    }
    assert "X-RateLimit-Limit" in r.headers and "X-Quota-Remaining" not in r.headers
    accounts.set_status(ref, "active")
    assert api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=bearer(key)).status_code == 200
    accounts.set_status(ref, "revoked")
    r = api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=bearer(key))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    accounts.db.close()


def test_admin_endpoints_keys_plans_and_usage(url: str, api: Any) -> None:
    admin = bearer(make_key(url, admin=True, name="ops"))
    client_key = make_key(url, "free", name="crm")
    assert api.get("/admin/v1/keys", headers=bearer(client_key)).json()["error"]["code"] == "admin_required"
    r = api.put(
        "/admin/v1/plans/team",
        headers=admin,
        json={"monthlyCredits": 5, "requestsPerMinute": 60, "enrichment": True},
    )
    assert r.status_code == 200 and r.json()["data"]["monthlyCredits"] == 5
    r = api.post("/admin/v1/keys", headers=admin, json={"name": "billing", "plan": "team"})
    assert r.status_code == 201
    created = r.json()["data"]
    new_key = created["key"]
    assert new_key.startswith("npk_") and created["plan"] == "team"
    listed = api.get("/admin/v1/keys", headers=admin).json()["data"]
    assert {k["name"] for k in listed} == {"ops", "crm", "billing"}
    assert all("key" not in k and "key_hash" not in k for k in listed)
    for _ in range(2):
        api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers={**bearer(new_key), "enrichment": "completeness"})
    api.get(f"/api/v1/npi/{ABSENT_NPI}", headers=bearer(new_key))
    usage = api.get("/admin/v1/usage", headers=admin, params={"key_id": created["id"]}).json()["data"]
    assert usage == [{"keyId": created["id"], "day": "2026-11-21", "requests": 3, "credits": 5}]
    r = api.post(f"/admin/v1/keys/{created['id']}/suspend", headers=admin)
    assert r.json()["data"]["status"] == "suspended"
    assert api.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=bearer(new_key)).status_code == 403
    assert api.post("/admin/v1/keys/999/suspend", headers=admin).json()["error"]["code"] == "not_found"
    r = api.put("/admin/v1/plans/team", headers=admin, json={"monthlyCredits": -1})
    assert r.status_code == 400 and "monthlyCredits" in r.json()["error"]["message"]
