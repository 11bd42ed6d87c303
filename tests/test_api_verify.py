"""POST /api/v1/verify and /api/v1/verify/bulk over HTTP: response shapes, 400s for bad bodies, keys,
metering (one credit per record answered with a report), the upstream and the DNS setting."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from npistack.api.routes.verify import MAX_RECORDS
from npistack.services.verify import CHECKS
from npistack.services.verify import contact as verify_contact
from tests.api_support import (
    ABSENT_NPI,
    ACTIVE_NPI,
    ORG_NPI,
    bearer,
    client,
    free_port,
    make_key,
    sample_store,
    set_plan,
)
from tests.test_verify import FakeResolver

STUB_NPI = "1306849450"
RIGHT = {
    "ref": "crm-7",
    "npi": ACTIVE_NPI,
    "first_name": "Jon",
    "last_name": "Dubose",
    "address_1": "111 Hospital Dr",
    "city": "Tarboro",
    "state": "NC",
    "postal_code": "27886",
    "phone": "252-641-7700",
    "email": "jdubose@gmail.com",
}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sample_store(tmp_path / "store.db")


@pytest.fixture
def api(url: str) -> Iterator[TestClient]:
    with client(url) as c:
        yield c


@pytest.fixture
def key(url: str) -> dict[str, str]:
    return bearer(make_key(url, "growth"))


def remaining(r: httpx.Response) -> int:
    return int(r.headers["X-Quota-Remaining"])


def assert_error(r: httpx.Response, status: int, code: str, words: str = "") -> None:
    body = r.json()
    assert (r.status_code, body["error"]["code"]) == (status, code), r.text
    assert set(body) == {"error", "meta"} and body["meta"]["requestId"] == r.headers["X-Request-Id"]
    assert words in body["error"]["message"], body["error"]["message"]


# -- one record ----------------------------------------------------------------------------------


def test_one_record_verified(api: TestClient, key: dict[str, str]) -> None:
    r = api.post("/api/v1/verify", headers=key, json=RIGHT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"data", "meta"} and body["meta"] == {"requestId": r.headers["X-Request-Id"]}
    data = body["data"]
    assert list(data) == ["ref", "npi", "status", "reasons", "checks", "provider"]
    assert (data["ref"], data["npi"], data["status"], data["reasons"]) == (
        "crm-7",
        ACTIVE_NPI,
        "verified",
        [],
    )
    assert list(data["checks"]) == list(CHECKS)
    for name, chk in data["checks"].items():
        assert list(chk) == ["status", "reason", "claimed", "registry", "matched"], name
    assert data["checks"]["address"]["matched"] == "primary"
    assert data["checks"]["phone"]["claimed"] == "+12526417700"
    assert data["provider"]["name"] == "JON DUBOSE, MD"
    assert r.headers["X-Quota-Limit"] == "50000" and remaining(r) == 49_999
    assert "X-RateLimit-Remaining" in r.headers


def test_one_record_needing_review(api: TestClient, key: dict[str, str]) -> None:
    claim = {**RIGHT, "last_name": "Duboise", "phone": "2526417313", "email": "jdubose@gmial.com"}
    data = api.post("/api/v1/verify", headers=key, json=claim).json()["data"]
    assert data["status"] == "needs_review"
    assert [r.split(":")[0] for r in data["reasons"]] == ["name", "phone", "email"]
    assert data["checks"]["phone"]["status"] == "warning" and "this is a fax line" in data["reasons"][1]


@pytest.mark.parametrize(
    "npi, failing, words",
    [
        ("1234567890", "npiFormat", "check digit"),
        ("12345", "npiFormat", "not 10 digits"),
        (ABSENT_NPI, "npiExists", "no provider"),
        (STUB_NPI, "npiActive", "deactivated on 2021-03-03"),
    ],
)
def test_npi_problems_are_reported_not_refused_and_cost_one_credit(
    api: TestClient, key: dict[str, str], npi: str, failing: str, words: str
) -> None:
    r = api.post("/api/v1/verify", headers=key, json={"npi": npi, "last_name": "Dubose"})
    assert r.status_code == 200 and remaining(r) == 49_999
    data = r.json()["data"]
    assert data["status"] == "needs_review" and data["checks"][failing]["status"] == "fail"
    assert words in data["checks"][failing]["reason"]


BAD_ONE = [
    (b"{", "must be JSON"),
    (b"", "must be JSON"),
    (b"[]", "must be a JSON object"),
    (b'"npi"', "must be a JSON object"),
    (b"null", "must be a JSON object"),
    (b"{}", "npi is required"),
    (b'{"npi": null}', "npi must be a string"),
    (b'{"npi": 1114920162}', "npi must be a string"),
    (b'{"npi": "   "}', "npi must not be empty"),
    (b'{"npi": "1114920162", "phone": 2526417700}', "phone must be a string (or null)"),
    (b'{"npi": "1114920162", "zip": "27886"}', "zip is not a field of a verification record"),
    (b'{"npi": "1114920162", "last_name": "' + b"A" * 101 + b'"}', "last_name"),
    (b'{"records": [{"npi": "1114920162"}]}', "/api/v1/verify/bulk"),
    (b"\xff\xfe", "must be JSON"),
]


@pytest.mark.parametrize("body, words", BAD_ONE)
def test_bad_bodies_are_400_once_the_key_is_checked(
    api: TestClient, key: dict[str, str], body: bytes, words: str
) -> None:
    # The key first (issue 14 item 1): without one the body is never read, so it is a 401.
    ctype = {"Content-Type": "application/json"}
    assert_error(api.post("/api/v1/verify", headers=ctype, content=body), 401, "invalid_api_key")
    r = api.post("/api/v1/verify", headers={**key, **ctype}, content=body)
    assert_error(r, 400, "invalid_verify_request", words)
    assert "X-Quota-Remaining" not in r.headers
    r = api.post("/api/v1/verify", headers=key, json={"npi": ACTIVE_NPI})
    assert remaining(r) == 49_999  # the 400s cost nothing


def test_keys(api: TestClient, url: str) -> None:
    assert_error(api.post("/api/v1/verify", json=RIGHT), 401, "invalid_api_key")
    assert_error(api.post("/api/v1/verify", headers=bearer("npk_nope"), json=RIGHT), 401, "invalid_api_key")
    admin = bearer(make_key(url, admin=True))
    assert_error(api.post("/api/v1/verify", headers=admin, json=RIGHT), 403, "subscription_inactive")


def test_quota_exceeded_is_403(api: TestClient, url: str) -> None:
    set_plan(url, "one", credits=1)
    h = bearer(make_key(url, "one"))
    assert remaining(api.post("/api/v1/verify", headers=h, json=RIGHT)) == 0
    assert_error(api.post("/api/v1/verify", headers=h, json=RIGHT), 403, "quota_exceeded")


# -- bulk ----------------------------------------------------------------------------------------


def test_bulk_answers_every_record_in_order(api: TestClient, key: dict[str, str]) -> None:
    records = [RIGHT, {"npi": ORG_NPI, "organization_name": "Cumberland County Hospital System"},
               {"npi": STUB_NPI, "ref": "x"}, {"npi": "1234567890"}, RIGHT]  # fmt: skip
    r = api.post("/api/v1/verify/bulk", headers=key, json={"records": records})
    assert r.status_code == 200, r.text
    body = r.json()
    rid = r.headers["X-Request-Id"]
    assert body["meta"] == {"requestId": rid, "counts": {"requested": 5, "verified": 3, "needsReview": 2,
                                                         "upstreamErrors": 0, "quotaExceeded": 0}}  # fmt: skip
    data = body["data"]
    assert [(i["npi"], i["ref"], i["status"]) for i in data] == [
        (ACTIVE_NPI, "crm-7", "verified"),
        (ORG_NPI, None, "verified"),
        (STUB_NPI, "x", "needs_review"),
        ("1234567890", None, "needs_review"),
        (ACTIVE_NPI, "crm-7", "verified"),
    ]
    assert [i["requestId"] for i in data] == [f"{rid}_{n:03d}" for n in range(5)]
    assert all(i["error"] is None and list(i["checks"]) == list(CHECKS) for i in data)
    assert list(data[0]) == ["ref", "npi", "status", "reasons", "checks", "provider", "requestId", "error"]
    assert remaining(r) == 50_000 - 5  # one credit per record


def test_bulk_stops_at_the_quota_like_bulk_lookups(api: TestClient, url: str) -> None:
    set_plan(url, "tiny", credits=3)
    h = bearer(make_key(url, "tiny"))
    r = api.post("/api/v1/verify/bulk", headers=h, json={"records": [RIGHT] * 5})
    body = r.json()
    assert r.status_code == 200 and remaining(r) == 0
    assert [i["status"] for i in body["data"]] == ["verified"] * 3 + ["quota_exceeded"] * 2
    assert body["data"][4]["error"]["code"] == "quota_exceeded" and body["data"][4]["checks"] is None
    assert body["meta"]["counts"]["quotaExceeded"] == 2
    assert_error(api.post("/api/v1/verify/bulk", headers=h, json={"records": [RIGHT]}), 403, "quota_exceeded")


def test_bulk_takes_a_thousand_records(api: TestClient, key: dict[str, str]) -> None:
    r = api.post("/api/v1/verify/bulk", headers=key, json={"records": [RIGHT] * MAX_RECORDS})
    assert r.status_code == 200 and len(r.json()["data"]) == 1000
    assert r.json()["data"][999]["requestId"].endswith("_999") and remaining(r) == 49_000
    r = api.post("/api/v1/verify/bulk", headers=key, json={"records": [RIGHT] * (MAX_RECORDS + 1)})
    assert_error(r, 400, "invalid_verify_request", "1 to 1000 records")


BAD_BULK = [
    (b"{", "must be JSON"),
    (b"[]", '{"records": [...]}'),
    (b"{}", '{"records": [...]}'),
    (b'{"records": []}', "1 to 1000 records"),
    (b'{"records": {"npi": "1114920162"}}', "1 to 1000 records"),
    (b'{"records": [{"npi": "1114920162"}], "npis": []}', "npis is not a field of the body"),
    (b'{"records": [{"npi": "1114920162"}, "1114920162"]}', "records[1] must be a JSON object"),
    (b'{"records": [{"npi": "1114920162"}, {"npi": 5}]}', "records[1].npi must be a string"),
    (b'{"records": [{"npi": "1114920162", "fax ": "1"}]}', "records[0].fax  is not a field"),
    (b'{"records": [{}]}', "records[0].npi is required"),
]


@pytest.mark.parametrize("body, words", BAD_BULK)
def test_bad_bulk_bodies_are_400(api: TestClient, key: dict[str, str], body: bytes, words: str) -> None:
    ctype = {"Content-Type": "application/json"}
    # Without a key the body is never read (issue 14 item 1): 401, whatever it holds.
    assert_error(api.post("/api/v1/verify/bulk", headers=ctype, content=body), 401, "invalid_api_key")
    r = api.post("/api/v1/verify/bulk", headers={**key, **ctype}, content=body)
    assert_error(r, 400, "invalid_verify_request", words)


# -- the upstream, DNS, OpenAPI ------------------------------------------------------------------


def test_a_failing_upstream_is_a_502_for_one_record_and_free_per_item_in_bulk(
    url: str, key: dict[str, str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api/"  # nobody listens: connection refused
    with client(url, upstream_url=dead, offline=False, upstream_timeout_s=2) as c:
        r = c.post("/api/v1/verify", headers=key, json={"npi": ACTIVE_NPI})  # in the store: no upstream
        assert r.status_code == 200 and remaining(r) == 49_999
        r = c.post("/api/v1/verify", headers=key, json={"npi": ABSENT_NPI})
        assert_error(r, 502, "upstream_unavailable")
        assert remaining(r) == 49_999
        r = c.post("/api/v1/verify", headers=key, json={"npi": "1234567890"})  # never looked up
        assert r.status_code == 200 and remaining(r) == 49_998
        r = c.post("/api/v1/verify/bulk", headers=key, json={"records": [{"npi": ABSENT_NPI}, RIGHT]})
        body = r.json()
        assert [i["status"] for i in body["data"]] == ["upstream_error", "verified"]
        assert body["data"][0]["error"]["code"] == "upstream_unavailable"
        assert body["meta"]["counts"]["upstreamErrors"] == 1 and remaining(r) == 49_997


def test_email_dns_follows_the_setting(
    url: str, key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_contact, "_dns_resolver", lambda: FakeResolver())
    claim = {"npi": ACTIVE_NPI, "email": "jon@no-such-clinic.org"}
    with client(url, verify_email_dns=True) as c:
        email = c.post("/api/v1/verify", headers=key, json=claim).json()["data"]["checks"]["email"]
        assert email["status"] == "fail" and "does not accept email" in email["reason"]
        r = c.post(
            "/api/v1/verify/bulk",
            headers=key,
            json={"records": [claim, {**claim, "email": "a@ecuhealth.org"}]},
        )
        assert [i["checks"]["email"]["status"] for i in r.json()["data"]] == ["fail", "pass"]
    with client(url) as c:  # off by default
        email = c.post("/api/v1/verify", headers=key, json=claim).json()["data"]["checks"]["email"]
        assert email["status"] == "pass" and "DNS not checked" in email["reason"]


def test_openapi_documents_both_operations(api: TestClient) -> None:
    doc: dict[str, Any] = api.get("/openapi.json").json()
    one = doc["paths"]["/api/v1/verify"]["post"]
    bulk = doc["paths"]["/api/v1/verify/bulk"]["post"]
    for op in (one, bulk):
        assert {"200", "400", "401", "403", "429", "500", "502"} <= set(op["responses"])
        assert op["security"] == [{"bearerAuth": []}]
        assert "invalid_verify_request" in op["responses"]["400"]["description"]
    schema = one["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["npi"] and schema["additionalProperties"] is False
    items = bulk["requestBody"]["content"]["application/json"]["schema"]["properties"]["records"]
    assert (items["minItems"], items["maxItems"]) == (1, MAX_RECORDS)


def test_the_docs_show_what_the_server_answers(api: TestClient, key: dict[str, str]) -> None:
    text = (Path(__file__).parent.parent / "docs" / "verify.md").read_text()
    request = json.loads(re.search(r"/api/v1/verify -d '(\{.*?\})'", text).group(1))  # type: ignore[union-attr]
    shown = json.loads(re.search(r"```json\n(\{\n.*?\n\})\n```", text, re.S).group(1))  # type: ignore[union-attr]
    r = api.post("/api/v1/verify", headers=key, json=request)
    answer = r.json()
    answer["meta"]["requestId"] = shown["meta"]["requestId"]
    assert answer == shown
