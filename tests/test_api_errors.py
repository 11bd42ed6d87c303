"""One error body for every /api/v1 and /admin/v1 endpoint, the contract's
``{"error": {"code", "message"}, "meta": {"requestId"}}``, whatever goes wrong.

``test_every_route_answers_errors_in_one_envelope`` walks the app's routes (so a new route is walked
too): for each route and method it sends no key, the wrong kind of key, and malformed path
parameters, query parameters, headers and bodies, and checks every 4xx/5xx answer: exactly the
envelope's keys, string values, a code of ``npistack.api.errors.CONTRACT`` with its HTTP status, and
``meta.requestId`` equal to the ``X-Request-Id`` header. Malformed input is never a 500. The other
tests pin single cases: unknown paths, wrong methods, bad JSON, odd values, admin endpoints with a
client key, searches without a narrowing criterion, and a failing store.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from npistack.api.errors import CONTRACT
from npistack.api.routes import v1
from npistack.api.state import app_state
from npistack.nppes.npi import make_npi
from npistack.services.accounts import Accounts, shown_prefix
from npistack.storage.accounts import AccountsDb
from tests.api_support import ABSENT_NPI, ACTIVE_NPI, bearer, client, make_key, sample_store, set_plan

NO_NARROWING = "At least one of last_name or organization_name is required."
ADMIN_REQUIRED = "This endpoint needs an admin API key."
INVALID_KEY = "Missing or invalid API key."
BULK_MESSAGE = "npis must be a non-empty array of up to 50 10-digit strings."
HUGE = "9" * 30  # an integer no database column holds

# Well-formed values for every path parameter, query and body a route takes (a new route without
# them fails the walk: add them here).
GOOD_PATH = {
    "npi": ACTIVE_NPI,
    "key_id": "1",
    "action": "suspend",
    "name": "walk-plan",
    "webhook_id": "1",
    "delivery_id": "1",
    "job_id": "job_0123456789abcdef",
}
BAD_PATH = {
    "npi": ["12345", "abcdefghij", "1" * 300, "%00"],
    "key_id": ["abc", "1.5", "-", HUGE],
    "action": ["explode"],
    "name": ["x" * 65],
    "webhook_id": ["abc", "1.5", "-", "0", HUGE],
    "delivery_id": ["abc", "1.5", "-", "0", HUGE],
    "job_id": ["nope", "job_" + "x" * 300, "%00", "<>", HUGE],
}
GOOD_QUERY = {"/api/v1/providers/search": {"last_name": "SMITH"}}
BAD_QUERY = ["<>", "", HUGE, "-1"]
BAD_HEADER = {"enrichment": "<>"}
BODIES: dict[tuple[str, str], dict[str, Any] | bytes | None] = {
    ("POST", "/api/v1/npi/bulk"): {"npis": [ACTIVE_NPI]},
    ("POST", "/api/v1/match"): {"records": [{"npi": ACTIVE_NPI, "last_name": "DUBOSE"}]},
    ("POST", "/api/v1/verify"): {"npi": ACTIVE_NPI, "last_name": "DUBOSE"},
    ("POST", "/api/v1/verify/bulk"): {"records": [{"npi": ACTIVE_NPI}]},
    ("POST", "/api/v1/jobs/enrich"): f"NPI,Last Name\n{ACTIVE_NPI},DUBOSE\n".encode(),  # a CSV, not JSON
    ("POST", "/admin/v1/keys"): {"name": "walk", "plan": "free"},
    ("PUT", "/admin/v1/plans/{name}"): {"monthlyCredits": 10, "requestsPerMinute": 5, "enrichment": False},
    ("POST", "/admin/v1/keys/{key_id}/{action}"): None,  # reads no body
    ("POST", "/admin/v1/webhooks"): {"url": "https://example.com/hook"},
    ("PATCH", "/admin/v1/webhooks/{webhook_id}"): {"active": True},
    ("POST", "/admin/v1/webhooks/{webhook_id}/replay"): {"since": "2000-01-01", "until": "2100-01-01"},
    ("POST", "/admin/v1/webhooks/deliveries/{delivery_id}/replay"): None,  # reads no body
}
BAD_BODIES = [b"{", b"", b"[]", b"null", b'"npis"', b"\xff\xfe", b'{"npis": [', b"{}" * 10_000]
KNOWN = {
    ("GET", "/api/v1/npi/{npi}"),
    ("POST", "/api/v1/npi/bulk"),
    ("POST", "/api/v1/match"),
    ("GET", "/api/v1/providers/search"),
    ("POST", "/api/v1/verify"),
    ("POST", "/api/v1/verify/bulk"),
    ("POST", "/api/v1/jobs/enrich"),
    ("GET", "/api/v1/jobs/{job_id}"),
    ("GET", "/api/v1/jobs/{job_id}/result"),
    ("GET", "/api/v1/jobs/{job_id}/review"),
    ("GET", "/api/v1/jobs/{job_id}/errors"),
    ("GET", "/admin/v1/keys"),
    ("POST", "/admin/v1/keys"),
    ("POST", "/admin/v1/keys/{key_id}/{action}"),
    ("GET", "/admin/v1/plans"),
    ("PUT", "/admin/v1/plans/{name}"),
    ("GET", "/admin/v1/usage"),
    ("POST", "/admin/v1/webhooks"),
    ("GET", "/admin/v1/webhooks"),
    ("GET", "/admin/v1/webhooks/{webhook_id}"),
    ("PATCH", "/admin/v1/webhooks/{webhook_id}"),
    ("DELETE", "/admin/v1/webhooks/{webhook_id}"),
    ("GET", "/admin/v1/webhooks/{webhook_id}/deliveries"),
    ("POST", "/admin/v1/webhooks/{webhook_id}/replay"),
    ("GET", "/admin/v1/webhooks/deliveries/{delivery_id}"),
    ("POST", "/admin/v1/webhooks/deliveries/{delivery_id}/replay"),
}


def api_routes(app: FastAPI) -> list[APIRoute]:
    """The app's routes under /api/v1 and /admin/v1, included routers flattened."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI that copies included routes into app.routes
        routes = list(app.routes)
    else:
        routes = [rc.original_route for rc in iter_route_contexts(app.routes)]
    return [r for r in routes if isinstance(r, APIRoute) and r.path.startswith(("/api/v1/", "/admin/v1/"))]


def app_of(api: TestClient) -> FastAPI:
    app = api.app
    assert isinstance(app, FastAPI)
    return app


def envelope_problems(r: httpx.Response) -> list[str]:
    """What is wrong with an error answer (nothing for a 2xx/3xx)."""
    if r.status_code < 400:
        return []
    problems = []
    try:
        body = r.json()
    except ValueError:
        return [f"not JSON: {r.text[:200]!r}"]
    if not isinstance(body, dict) or set(body) != {"error", "meta"}:
        return [f"keys {sorted(body) if isinstance(body, dict) else body!r}, not error and meta"]
    error, meta = body["error"], body["meta"]
    if not isinstance(error, dict) or set(error) != {"code", "message"}:
        problems.append(f"error is {error!r}")
    elif not all(isinstance(v, str) and v for v in error.values()):
        problems.append(f"error values are not strings: {error!r}")
    elif error["code"] not in CONTRACT:
        problems.append(f"unknown code {error['code']!r}")
    elif CONTRACT[error["code"]][0] != r.status_code:
        problems.append(f"code {error['code']} comes with {CONTRACT[error['code']][0]}, not {r.status_code}")
    if not isinstance(meta, dict) or set(meta) != {"requestId"} or not isinstance(meta["requestId"], str):
        problems.append(f"meta is {meta!r}")
    elif meta["requestId"] != r.headers.get("x-request-id") or not meta["requestId"].startswith("req_"):
        problems.append(
            f"meta.requestId {meta['requestId']!r} vs X-Request-Id {r.headers.get('x-request-id')!r}"
        )
    if r.status_code >= 500:
        problems.append(f"a {r.status_code} for malformed input")
    return problems


def assert_error(r: httpx.Response, status: int, code: str, message: str | None = None) -> dict[str, Any]:
    problems = envelope_problems(r)
    assert not problems, problems
    body: dict[str, Any] = r.json()
    assert (r.status_code, body["error"]["code"]) == (status, code), r.text
    if message is not None:
        assert body["error"]["message"] == message
    return body


def error_of(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: quote(values[m.group(1)], safe="%"), path)


def is_int(annotation: Any) -> bool:
    return annotation is int or int in typing.get_args(annotation)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sample_store(tmp_path / "store.db")


@pytest.fixture
def keys(url: str) -> dict[str, str]:
    return {"client": make_key(url, "growth"), "admin": make_key(url, admin=True)}


@pytest.fixture
def api(url: str) -> Iterator[TestClient]:
    with client(url) as c:
        yield c


def test_every_route_answers_errors_in_one_envelope(api: TestClient, keys: dict[str, str]) -> None:
    routes = api_routes(app_of(api))
    seen = {(m, r.path) for r in routes for m in r.methods or ()}
    assert seen >= KNOWN, f"the walk misses routes: {sorted(KNOWN - seen)}"
    problems: list[str] = []
    sent = 0

    def send(method: str, path: str, who: str | None, *, query: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, body: bytes | None = None) -> httpx.Response:  # fmt: skip
        nonlocal sent
        sent += 1
        h = {**(bearer(keys[who]) if who else {}), **(headers or {})}
        target = f"{path}?{urlencode(query)}" if query else path
        r = api.request(method, target, headers=h, content=body)
        problems.extend(
            f"{method} {target} ({who or 'no key'}) -> {r.status_code}: {p}" for p in envelope_problems(r)
        )
        return r

    for route in sorted(routes, key=lambda r: r.path):
        admin = route.path.startswith("/admin/")
        right = "admin" if admin else "client"
        params = route.dependant.path_params
        query_params = route.dependant.query_params
        for method in sorted(route.methods or ()):
            missing = [p.name for p in params if p.name not in GOOD_PATH or p.name not in BAD_PATH]
            assert not missing, f"{route.path}: add good and bad values for the path parameters {missing}"
            has_body = method in ("POST", "PUT", "PATCH")
            if has_body:
                assert (method, route.path) in BODIES, (
                    f"{method} {route.path}: say in BODIES what body it takes"
                )
            good_body_obj = BODIES.get((method, route.path))
            good_body = (
                good_body_obj
                if isinstance(good_body_obj, bytes) or good_body_obj is None
                else json.dumps(good_body_obj).encode()
            )
            good_path = fill(route.path, GOOD_PATH)
            good_query = GOOD_QUERY.get(route.path, {})

            # (a) no key, every value well-formed: the contract's 401.
            r = send(method, good_path, None, query=good_query, body=good_body)
            if (r.status_code, error_of(r).get("message")) != (401, INVALID_KEY):
                problems.append(f"{method} {good_path} without a key -> {r.status_code} {r.text[:200]}")
            # The wrong kind of key: admin endpoints refuse client keys, data endpoints admin keys.
            r = send(method, good_path, "admin" if not admin else "client", query=good_query, body=good_body)
            expected = ("admin_required", ADMIN_REQUIRED) if admin else ("subscription_inactive", None)
            error = error_of(r)
            if (
                r.status_code != 403
                or error.get("code") != expected[0]
                or expected[1] not in (None, error["message"])
            ):
                problems.append(
                    f"{method} {good_path} with the wrong kind of key -> {r.status_code} {r.text[:200]}"
                )

            # (b) a malformed path parameter, query parameter, header or body; with every kind of key.
            for p in params:
                for bad in BAD_PATH[p.name]:
                    path = fill(route.path, {**GOOD_PATH, p.name: bad})
                    for who in (None, "client", "admin"):
                        r = send(method, path, who, query=good_query, body=good_body)
                        if who == right and r.status_code not in (400, 404):
                            problems.append(
                                f"{method} {path}: a bad {p.name} -> {r.status_code}, not a 400/404"
                            )
            for q in query_params:
                values = [*BAD_QUERY, str(10**12)] if is_int(q.field_info.annotation) else BAD_QUERY
                for bad in values:
                    r = send(method, good_path, right, query={**good_query, q.name: bad}, body=good_body)
                    if bad == "<>" and r.status_code != 400:
                        problems.append(f"{method} {good_path}?{q.name}=<> -> {r.status_code}, not a 400")
            for h in route.dependant.header_params:
                r = send(
                    method,
                    good_path,
                    right,
                    query=good_query,
                    headers={h.alias: BAD_HEADER[h.name]},
                    body=good_body,
                )
                if r.status_code != 400:
                    problems.append(
                        f"{method} {good_path} with header {h.alias}: <> -> {r.status_code}, not a 400"
                    )
            if good_body is not None:
                for bad_body in BAD_BODIES:
                    for who in (None, right):
                        r = send(method, good_path, who, query=good_query, body=bad_body)
                        if who == right and r.status_code != 400:
                            problems.append(
                                f"{method} {good_path} body {bad_body[:20]!r} -> {r.status_code}, not a 400"
                            )

    assert sent > 100
    assert not problems, f"{len(problems)} of {sent} answers are wrong:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/api/v1/nope",
        "/api/v1/npi",
        "/api/v1/npi/",
        f"/api/v1/npi/{ACTIVE_NPI}/extra",
        "/api/v1/providers",
        "/api/v2/npi/" + ACTIVE_NPI,
        "/admin/v1/nope",
        "/admin/v1/keys/1",
    ],  # fmt: skip
)
def test_unknown_paths_are_404_not_found(api: TestClient, keys: dict[str, str], path: str) -> None:
    for headers in ({}, bearer(keys["client"])):
        body = assert_error(api.get(path, headers=headers), 404, "not_found")
        assert path.rstrip("/") in body["error"]["message"]


def test_wrong_methods_are_405(api: TestClient, keys: dict[str, str]) -> None:
    routes = api_routes(app_of(api))
    methods_at: dict[str, set[str]] = {}
    for route in routes:
        methods_at.setdefault(route.path, set()).update(route.methods or ())
    for route in routes:
        path = fill(route.path, GOOD_PATH)
        for method in sorted({"DELETE", "PATCH"} - methods_at[route.path]):
            r = api.request(method, path, headers=bearer(keys["admin"]))
            body = assert_error(r, 405, "method_not_allowed")
            assert method in body["error"]["message"] and path in body["error"]["message"]
        for method in sorted({"GET", "POST", "PUT"} - methods_at[route.path]):
            # Another route may take the path with that method (GET /api/v1/npi/bulk is a lookup of
            # the NPI "bulk"): whatever the answer, it is an error in the envelope, never a 500.
            r = api.request(method, path, headers=bearer(keys["admin"]))
            assert r.status_code in (400, 401, 403, 404, 405), (method, path, r.status_code)
            assert not envelope_problems(r), (method, path, envelope_problems(r))


@pytest.mark.parametrize("body", BAD_BODIES + [b'{"npis": [1234567893]}', b'{"npis": "1234567893"}'])
def test_malformed_bulk_bodies_get_the_contract_400(
    api: TestClient, keys: dict[str, str], body: bytes
) -> None:
    # The key is checked before the body is read (issue 14: no work for a stranger), then the body
    # before any credit is taken.
    r = api.post("/api/v1/npi/bulk", headers={"Content-Type": "application/json"}, content=body)
    assert_error(r, 401, "invalid_api_key")
    r = api.post(
        "/api/v1/npi/bulk",
        headers={**bearer(keys["client"]), "Content-Type": "application/json"},
        content=body,
    )
    assert_error(r, 400, "invalid_bulk_request", BULK_MESSAGE)
    assert "x-quota-remaining" not in r.headers


@pytest.mark.parametrize(
    "body", BAD_BODIES + [b'{"npi": 1114920162}', b'{"npi": "1114920162", "x": 1}', b'{"records": [[]]}']
)
@pytest.mark.parametrize("path", ["/api/v1/verify", "/api/v1/verify/bulk"])
def test_malformed_verify_bodies_are_400_invalid_verify_request(
    api: TestClient, keys: dict[str, str], path: str, body: bytes
) -> None:
    # The key first (issue 14), then the body before any credit is taken.
    r = api.post(path, headers={"Content-Type": "application/json"}, content=body)
    assert_error(r, 401, "invalid_api_key")
    r = api.post(path, headers={**bearer(keys["client"]), "Content-Type": "application/json"}, content=body)
    assert_error(r, 400, "invalid_verify_request")
    assert "x-quota-remaining" not in r.headers


@pytest.mark.parametrize("body", BAD_BODIES)
@pytest.mark.parametrize("method, path", [("POST", "/admin/v1/keys"), ("PUT", "/admin/v1/plans/walk")])
def test_malformed_admin_bodies_are_400_invalid_request(
    api: TestClient, keys: dict[str, str], method: str, path: str, body: bytes
) -> None:
    assert_error(
        api.request(method, path, headers=bearer(keys["admin"]), content=body), 400, "invalid_request"
    )
    assert_error(api.request(method, path, content=body), 401, "invalid_api_key", INVALID_KEY)


SEARCH = "/api/v1/providers/search?last_name=SMITH&"


@pytest.mark.parametrize(
    "target, who, status, code, words",
    [
        (
            SEARCH + "limit=abc",
            "client",
            400,
            "invalid_search_params",
            "limit must be an integer from 1 to 50",
        ),
        (SEARCH + "limit=0", "client", 400, "invalid_search_params", "limit"),
        (SEARCH + "limit=51", "client", 400, "invalid_search_params", "limit"),
        (SEARCH + "limit=-1", "client", 400, "invalid_search_params", "limit"),
        (SEARCH + "limit=1e3", "client", 400, "invalid_search_params", "limit"),
        (SEARCH + f"limit={HUGE}", "client", 400, "invalid_search_params", "limit"),
        (
            SEARCH + "skip=5000",
            "client",
            400,
            "invalid_search_params",
            "skip must be an integer from 0 to 1000",
        ),
        (SEARCH + "skip=-1", "client", 400, "invalid_search_params", "skip"),
        (SEARCH + "foo=1", "client", 400, "invalid_search_params", "Unknown parameter 'foo'"),
        (
            SEARCH + "last_name=JONES",
            "client",
            400,
            "invalid_search_params",
            "last_name is given more than once",
        ),
        (SEARCH + "state=California", "client", 400, "invalid_search_params", "state"),
        (SEARCH + "radius_miles=5", "client", 400, "invalid_search_params", "radius_miles needs near"),
        (SEARCH + "near=27886&radius_miles=nan", "client", 400, "invalid_search_params", "radius_miles"),
        (SEARCH + "near=1e400,5", "client", 400, "invalid_search_params", "near"),
        (SEARCH + "cursor=garbage", "client", 400, "invalid_search_params", "cursor"),
        (SEARCH + "enrichment=everything", "client", 400, "invalid_enrichment", "enrichment"),
        (
            "/api/v1/providers/search?last_name=" + "A" * 101,
            "client",
            400,
            "invalid_search_params",
            "longer than 100",
        ),
        ("/api/v1/providers/search?last_name=%00", "client", 400, "invalid_search_params", "last_name"),
        ("/api/v1/providers/search?last_name=*", "client", 400, "invalid_search_params", "last_name"),
        ("/api/v1/npi/" + "1" * 5000, None, 400, "invalid_npi", "NPI must be a 10-digit number."),
        ("/api/v1/npi/%EF%BC%91003000126", None, 400, "invalid_npi", "NPI must be a 10-digit number."),
        ("/api/v1/npi/%20%20", None, 400, "invalid_npi", "NPI must be a 10-digit number."),
        ("/admin/v1/usage?days=abc", "admin", 400, "invalid_request", "days"),
        ("/admin/v1/usage?days=0", "admin", 400, "invalid_request", "days"),
        ("/admin/v1/usage?days=401", "admin", 400, "invalid_request", "days"),
        ("/admin/v1/usage?key_id=abc", "admin", 400, "invalid_request", "key_id"),
    ],
)
def test_odd_values_are_clear_4xx_never_500(
    api: TestClient, keys: dict[str, str], target: str, who: str | None, status: int, code: str, words: str
) -> None:
    r = api.get(target, headers=bearer(keys[who]) if who else {})
    body = assert_error(r, status, code)
    assert words in body["error"]["message"]


@pytest.mark.parametrize(
    "path, status, code",
    [
        ("/admin/v1/keys/abc/suspend", 400, "invalid_request"),
        ("/admin/v1/keys/1.5/suspend", 400, "invalid_request"),
        ("/admin/v1/keys/424242/suspend", 404, "not_found"),
        ("/admin/v1/keys/1/explode", 404, "not_found"),
    ],  # fmt: skip
)
def test_key_actions_with_odd_ids_never_500(
    api: TestClient, keys: dict[str, str], path: str, status: int, code: str
) -> None:
    assert_error(api.post(path, headers=bearer(keys["admin"])), status, code)


def test_ids_too_big_for_the_database_are_not_500(api: TestClient, keys: dict[str, str]) -> None:
    """An id no key can have is an absent key (404, like 424242) or a bad value (400), not a 500."""
    h = bearer(keys["admin"])
    r = api.post(f"/admin/v1/keys/{HUGE}/suspend", headers=h)
    assert r.status_code in (400, 404) and not envelope_problems(r), (r.status_code, r.text)
    r = api.get("/admin/v1/usage", params={"key_id": HUGE}, headers=h)
    assert r.status_code in (200, 400), (r.status_code, r.text)
    assert r.json()["data"] == [] if r.status_code == 200 else not envelope_problems(r)


@pytest.mark.parametrize("method, path", sorted((m, p) for m, p in KNOWN if p.startswith("/admin/")))
def test_admin_endpoints_refuse_client_keys(
    api: TestClient, url: str, keys: dict[str, str], method: str, path: str
) -> None:
    target = fill(path, {**GOOD_PATH, "key_id": "1"})
    body = json.dumps(BODIES.get((method, path)) or {}).encode()
    assert_error(
        api.request(method, target, headers=bearer(keys["client"]), content=body),
        403,
        "admin_required",
        ADMIN_REQUIRED,
    )
    suspended = make_key(url, admin=True, name="suspended admin")
    db = AccountsDb(url)
    try:
        Accounts(db).set_status(shown_prefix(suspended), "suspended")
    finally:
        db.close()
    r = api.request(method, target, headers=bearer(suspended), content=body)
    assert_error(r, 403, "admin_required", ADMIN_REQUIRED)
    assert_error(api.request(method, target, content=body), 401, "invalid_api_key", INVALID_KEY)


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"state": "NC"},
        {"entity_type": "NPI-1"},
        {"state": "NC", "entity_type": "NPI-2"},
        {"limit": "10"},
        {"status": "active"},
        {"state": "NC", "status": "any", "skip": "0", "address_purpose": "mailing"},
    ],  # fmt: skip
    ids=lambda q: "&".join(q) or "nothing",
)
def test_search_without_a_narrowing_criterion(
    api: TestClient, url: str, keys: dict[str, str], query: dict[str, str]
) -> None:
    """The contract's message exactly; state-only and entity_type-only are refused the same way,
    before the key is metered (no quota headers, no credit)."""
    set_plan(url, "narrow", 5)
    key = make_key(url, "narrow")
    r = api.get("/api/v1/providers/search", params=query, headers=bearer(key))
    assert_error(r, 400, "invalid_search_params", NO_NARROWING)
    assert not any(h.startswith(("x-quota", "x-ratelimit")) for h in r.headers)
    after = api.get("/api/v1/providers/search", params={"last_name": "SMITH"}, headers=bearer(key))
    assert after.headers["x-quota-remaining"] == "4", "the 400 cost a credit"


@pytest.mark.parametrize("request_kind", ["lookup", "bulk", "search"])
def test_a_failing_store_is_internal_error_without_traceback(
    api: TestClient, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch, request_kind: str
) -> None:
    def fail(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("disk on fire at /var/secret/path")

    monkeypatch.setattr(app_state(api.app).store, "get_stored", fail)
    monkeypatch.setattr(v1, "search", fail)
    h = bearer(keys["client"])
    r = {
        "lookup": lambda: api.get(f"/api/v1/npi/{ABSENT_NPI}", headers=h),
        "bulk": lambda: api.post("/api/v1/npi/bulk", headers=h, json={"npis": [ACTIVE_NPI]}),
        "search": lambda: api.get("/api/v1/providers/search", params={"last_name": "SMITH"}, headers=h),
    }[request_kind]()
    assert r.status_code == 500
    assert r.json()["error"] == {"code": "internal_error", "message": CONTRACT["internal_error"][1]}
    assert "Traceback" not in r.text and "secret" not in r.text and "RuntimeError" not in r.text
    assert r.headers.get("x-request-id") == r.json()["meta"]["requestId"], "X-Request-Id on a 500"


@pytest.mark.parametrize(
    "body",
    BAD_BODIES
    + [
        b'{"records": []}',
        b'{"records": [[]]}',
        b'{"records": [{"surname": "x"}]}',
        b'{"records": [{"npi": ["1"]}]}',
        b'{"records": [{"npi": "1114920162"}], "threshold": 0}',
        b'{"records": [{"npi": "1114920162"}], "extra": 1}',
        b'{"records": [' + b",".join([b'{"npi": "1114920162"}'] * 1001) + b"]}",
    ],
)
def test_malformed_match_bodies_are_400_invalid_match_request(
    api: TestClient, keys: dict[str, str], body: bytes
) -> None:
    # The key first (issue 14), then the body before any credit is taken.
    r = api.post("/api/v1/match", headers={"Content-Type": "application/json"}, content=body)
    assert_error(r, 401, "invalid_api_key")
    r = api.post(
        "/api/v1/match", headers={**bearer(keys["client"]), "Content-Type": "application/json"}, content=body
    )
    assert_error(r, 400, "invalid_match_request")
    assert "x-quota-remaining" not in r.headers


def test_ten_digits_that_cannot_be_an_npi_are_400_before_the_key(
    api: TestClient, keys: dict[str, str]
) -> None:
    """No NPI starts with 3 to 9 (nppes.npi.check_npi, the one rule), even with a valid check digit:
    a 400 invalid_npi saying so, before the key (a 404 would charge for what can never be found)."""
    npi = make_npi("323456789")
    message = f"NPI {npi} does not start with 1 or 2, so no provider can have it."
    for path in (f"/api/v1/npi/{npi}", f"/api/v1/npi/{npi}/history"):
        assert_error(api.get(path), 400, "invalid_npi", message)
    r = api.post("/api/v1/npi/bulk", headers=bearer(keys["client"]), json={"npis": [npi]})
    item = r.json()["data"][0]
    assert (r.status_code, item["status"], item["error"]) == (
        200,
        "not_found",
        {"code": "invalid_npi", "message": message},
    )
