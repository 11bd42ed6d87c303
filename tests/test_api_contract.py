"""Every request in the Postman collection, sent to npistack, gets the documented status codes, bodies
and headers.

The collection (tests/data/health-provider-api.postman_collection.json) is the spec of the Health
Provider API that npistack replaces. This test reads it: for every request item and every example
response, ``COVERAGE`` names the scenario that creates the example's conditions against npistack (a
plan with few credits, a suspended key, a slow plan, an absent NPI, a failing store, a failing
upstream...). The scenario sends the request as the collection builds it (method, ``url.raw`` with
``{{baseUrl}}``/``{{npi}}`` replaced, the collection's headers with ``{{apiKey}}`` replaced, its body),
and ``check_example`` compares the answer with the example:

- the status code;
- an error body equal to the example's, except ``meta.requestId``, which is ours (``req_...``, the
  same as the ``X-Request-Id`` header);
- a 200 body with every key path of the example, each with the example's JSON type (null in the
  example allows anything), plus semantic checks (the NPI echoes, ``meta.cached`` follows
  ``X-Cache-Status``, bulk counts add up, per-item request ids, pagination);
- every header the example lists; the metering headers it does not list are absent (the 400 and 401
  examples say so: "no quota or rate-limit headers"); their values make sense (quota limit and
  remaining after the documented cost, rate-limit reset a Unix time within the next minute).

An example the table does not cover fails ``test_every_example_is_covered``: the test grows with
the contract. One example is not applicable: search never calls the upstream (the local store is the
whole registry), so it cannot answer 502; its scenario proves that instead.

Most scenarios run in-process (``TestClient``); those that need no in-process hook run again
against a real uvicorn server on loopback, so the headers are shown to survive real HTTP.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient

from npistack.api import create_app
from npistack.api.state import ApiState, app_state
from npistack.services.accounts import Accounts, shown_prefix
from npistack.storage.accounts import AccountsDb, Plan
from tests.api_support import (
    ABSENT_NPI,
    ACTIVE_NPI,
    free_port,
    make_key,
    sample_store,
    set_plan,
    settings,
    thread_server,
)
from tests.nppes_files import SAMPLE

COLLECTION_PATH = Path(__file__).parent / "data" / "health-provider-api.postman_collection.json"
COLLECTION: dict[str, Any] = json.loads(COLLECTION_PATH.read_text(encoding="utf-8"))
VARIABLES: dict[str, str] = {v["key"]: v["value"] for v in COLLECTION["variable"]}
ITEMS: dict[str, dict[str, Any]] = {item["name"]: item for item in COLLECTION["item"]}

STORED_NPI = VARIABLES["npi"]  # the collection's {{npi}}: the store gets a JOHN SMITH, M.D. with it
PLACEHOLDER_KEY = VARIABLES["apiKey"]  # the collection's unedited key: not a key
CONTRACT_CREDITS, CONTRACT_RPM = 1000, 300  # the examples' X-Quota-Limit and X-RateLimit-Limit
METERING_HEADERS = (
    "x-quota-limit",
    "x-quota-remaining",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-cache-status",
)


def example_of(item: str, name: str) -> dict[str, Any]:
    return next(r for r in ITEMS[item]["response"] if r["name"] == name)


def example_error(item: str, name: str) -> dict[str, str]:
    error: dict[str, str] = json.loads(example_of(item, name)["body"])["error"]
    return error


# -- the store: the 50 real sample rows plus the collection's JOHN SMITH, M.D. ------------------------


def contract_store(tmp: Path, released: date | None = None) -> str:
    """A store of the sample rows plus the collection's provider (``STORED_NPI``, JOHN SMITH, M.D.,
    made from a real row); ``released`` (default today: every copy a cache hit) dates the file."""
    released = released or datetime.now(UTC).date()
    source = tmp / f"npidata_pfile_20050523-{released:%Y%m%d}.csv"
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    smith = list(next(r for r in body if r[0] == ACTIVE_NPI))
    for name, value in (
        ("NPI", STORED_NPI),
        ("Provider Last Name (Legal Name)", "SMITH"),
        ("Provider First Name", "JOHN"),
        ("Provider Middle Name", ""),
        ("Provider Name Prefix Text", ""),
        ("Provider Credential Text", "M.D."),
    ):
        smith[col[name]] = value
    assert all(r[0] != STORED_NPI for r in body), "the sample rows now hold the collection's NPI"
    with source.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL).writerows([header, *body, smith])
    return sample_store(tmp / "store.db", source)


# -- sending the collection's requests --------------------------------------------------------------

_VAR = re.compile(r"\{\{(\w+)\}\}")


def substitute(text: str, variables: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        assert m.group(1) in variables, (
            f"the collection uses {{{{{m.group(1)}}}}}, which this test does not set"
        )
        return variables[m.group(1)]

    return _VAR.sub(one, text)


def build_request(
    item: str,
    variables: dict[str, str],
    *,
    query: dict[str, str | None] | None = None,
    body: str | bytes | None = None,
) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, URL, headers, body) of a collection request.

    The URL is ``url.raw`` with the variables replaced. ``query`` changes the query the way a
    Postman user does, by ticking the collection's query entries: a value enables (or sets) a
    parameter, None disables it. ``body`` replaces the collection's body.
    """
    req = ITEMS[item]["request"]
    url = substitute(req["url"]["raw"], variables)
    if query is not None:
        params = {q["key"]: q["value"] for q in req["url"].get("query", []) if not q.get("disabled")}
        for name, value in query.items():
            if value is None:
                params.pop(name, None)
            else:
                params[name] = value
        base = substitute("/".join([*req["url"]["host"], *req["url"]["path"]]), variables)
        url = f"{base}?{urlencode(params)}" if params else base
    headers = {
        h["key"]: substitute(h["value"], variables) for h in req.get("header", []) if not h.get("disabled")
    }
    raw = req.get("body", {}).get("raw")
    content: bytes | None = None
    if body is not None:
        content = body.encode() if isinstance(body, str) else body
    elif raw is not None:
        content = substitute(raw, variables).encode()
    return req["method"], url, headers, content


@dataclass
class Reply:
    response: httpx.Response
    sent_at: float  # time.time() just before sending
    received_at: float  # and just after the answer

    def json(self) -> Any:
        try:
            return self.response.json()
        except ValueError:
            raise AssertionError(f"not a JSON body: {self.response.text[:300]!r}") from None

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers


@dataclass
class Server:
    base: str
    http: httpx.Client  # a TestClient (in-process) or an httpx.Client (loopback)
    state: ApiState | None  # in-process only

    def send(self, item: str, *, key: str | None = None, npi: str = STORED_NPI, **kw: Any) -> Reply:
        variables = {**VARIABLES, "baseUrl": self.base, "npi": npi}
        if key is not None:
            variables["apiKey"] = key
        method, url, headers, content = build_request(item, variables, **kw)
        t0 = time.time()
        response = self.http.request(method, url, headers=headers, content=content)
        return Reply(response, t0, time.time())


@dataclass
class Env:
    url: str
    tmp: Path
    loopback: bool
    monkeypatch: pytest.MonkeyPatch

    def key(self, credits: int = CONTRACT_CREDITS, rpm: int = CONTRACT_RPM) -> tuple[str, Plan]:
        """A new client key on a plan with ``credits`` a month and ``rpm`` requests a minute."""
        plan = Plan(f"contract-{credits}-{rpm}", credits, rpm, False)
        set_plan(self.url, plan.name, credits, rpm)
        return make_key(self.url, plan.name), plan

    def suspend(self, key: str) -> None:
        db = AccountsDb(self.url)
        try:
            Accounts(db).set_status(shown_prefix(key), "suspended")
        finally:
            db.close()

    @contextlib.contextmanager
    def server(self, upstream: str | httpx.MockTransport | None = None, **kw: Any) -> Iterator[Server]:
        """npistack over the store; ``upstream``: an upstream URL or an in-process mock registry."""
        if upstream is not None:
            kw.update(
                offline=False,
                upstream_url=upstream if isinstance(upstream, str) else "http://upstream.test/api/",
            )
        transport = upstream if isinstance(upstream, httpx.MockTransport) else None
        if self.loopback:
            assert transport is None, "a mock upstream needs the in-process app"
            with thread_server(self.url, **kw) as base, httpx.Client(timeout=30) as http:
                yield Server(base, http, None)
            return
        app = create_app(settings(self.url, **kw), upstream_transport=transport)
        with TestClient(app, raise_server_exceptions=False) as tc:
            yield Server(str(tc.base_url), tc, app_state(app))


def closed_port_url() -> str:
    """An upstream URL on a loopback port nobody listens on: connection refused at once."""
    return f"http://127.0.0.1:{free_port()}/api/"


def mock_registry(answers: dict[str, str], calls: list[str] | None = None) -> httpx.MockTransport:
    """A CMS-compatible registry: per NPI ``"absent"`` (no result) or ``"fail"`` (HTTP 503)."""

    def handle(request: httpx.Request) -> httpx.Response:
        npi = request.url.params.get("number", "")
        if calls is not None:
            calls.append(npi)
        if answers.get(npi, "fail") == "absent":
            return httpx.Response(200, json={"result_count": 0, "results": []})
        return httpx.Response(503, text="registry down")

    return httpx.MockTransport(handle)


# -- checking an answer against an example ----------------------------------------------------------


@dataclass
class Outcome:
    reply: Reply
    plan: Plan | None = None  # the key's plan: X-Quota-Limit, X-RateLimit-Limit
    remaining: int | Callable[[Any], int] | None = None  # expected X-Quota-Remaining (or from the body)
    check: Callable[[Any, Reply], None] | None = None  # the scenario's own semantic checks


def json_type(value: Any) -> str:
    for t, name in ((bool, "boolean"), (dict, "object"), (list, "array"), (str, "string"), (int, "number")):
        if isinstance(value, t):
            return name
    if isinstance(value, float):
        return "number"
    return "null" if value is None else type(value).__name__


def assert_same_shape(example: Any, ours: Any, path: str = "$") -> None:
    """Every key path of ``example`` is in ``ours`` with the same JSON type (example null: anything)."""
    if example is None:
        return
    assert json_type(ours) == json_type(example), (
        f"{path}: the example has {json_type(example)}, npistack {json_type(ours)}"
    )
    if isinstance(example, dict):
        for key, value in example.items():
            assert key in ours, f"{path}.{key} is in the example, not in npistack's body"
            assert_same_shape(value, ours[key], f"{path}.{key}")
    elif isinstance(example, list):
        assert len(ours) >= len(example), (
            f"{path}: the example has {len(example)} items, npistack {len(ours)}"
        )
        for i, value in enumerate(example):
            assert_same_shape(value, ours[i], f"{path}[{i}]")


def check_example(example: dict[str, Any], outcome: Outcome, *, shape: bool = True) -> None:
    """``shape=False``: a 200 whose items are not the example's kinds (the scenario checks them)."""
    reply = outcome.reply
    r = reply.response
    assert r.status_code == example["code"], (
        f"expected {example['code']}, got {r.status_code}: {r.text[:500]}"
    )
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers.get("content-type")
    body = reply.json()

    listed = {h["key"].lower() for h in example.get("header", [])}
    missing = sorted(name for name in listed if name not in r.headers)
    assert not missing, f"headers the example lists are missing: {missing} (got {sorted(r.headers)})"
    extra = sorted(name for name in METERING_HEADERS if name in r.headers and name not in listed)
    assert not extra, f"metering headers the example does not have: {extra}"

    rid = r.headers.get("x-request-id", "")
    assert rid.startswith("req_"), f"X-Request-Id {rid!r}"
    assert body["meta"]["requestId"] == rid

    expected = json.loads(example["body"])
    if example["code"] >= 400:
        expected["meta"]["requestId"] = rid
        assert body == expected
    elif shape:
        assert_same_shape(expected, body)
    check_metering_headers(outcome, body)
    if outcome.check is not None:
        outcome.check(body, reply)


def check_metering_headers(outcome: Outcome, body: Any) -> None:
    h, plan = outcome.reply.headers, outcome.plan
    if "x-quota-limit" in h:
        assert plan is not None
        assert int(h["x-quota-limit"]) == plan.monthly_credits
    if "x-quota-remaining" in h:
        assert outcome.remaining is not None, "the scenario must say how many credits are left"
        expected = outcome.remaining(body) if callable(outcome.remaining) else outcome.remaining
        assert int(h["x-quota-remaining"]) == expected, "X-Quota-Remaining after the documented cost"
    if "x-ratelimit-limit" in h:
        assert plan is not None
        assert int(h["x-ratelimit-limit"]) == plan.requests_per_minute
    if "x-ratelimit-remaining" in h:
        assert plan is not None
        remaining = int(h["x-ratelimit-remaining"])
        assert 0 <= remaining < plan.requests_per_minute
        if outcome.reply.response.status_code == 429:
            assert remaining == 0
    if "x-ratelimit-reset" in h:
        reset = int(h["x-ratelimit-reset"])
        sent, received = outcome.reply.sent_at, outcome.reply.received_at
        assert int(sent) < reset <= received + 60, f"X-RateLimit-Reset {reset} is not within the next minute"
    if "x-cache-status" in h:
        assert h["x-cache-status"] in ("hit", "miss", "stale")


# -- scenarios: one per example ---------------------------------------------------------------------

LOOKUP, BULK, SEARCH = "NPI Lookup", "Bulk NPI lookup", "Provider search"


def check_lookup(npi: str) -> Callable[[Any, Reply], None]:
    def check(body: Any, reply: Reply) -> None:
        assert body["data"]["npi"] == npi
        status = reply.headers["x-cache-status"]
        assert body["meta"]["cached"] is (status in ("hit", "stale")), "meta.cached vs X-Cache-Status"

    return check


def lookup_found(env: Env) -> Outcome:
    key, plan = env.key()
    with env.server() as srv:
        reply = srv.send(LOOKUP, key=key)
    assert reply.headers.get("x-cache-status") == "hit", "released today: a fresh copy"
    return Outcome(reply, plan, CONTRACT_CREDITS - 1, check_lookup(STORED_NPI))


def lookup_invalid_npi(env: Env) -> Outcome:
    # Before authentication: the collection's placeholder key is no key, yet the answer is the 400.
    with env.server() as srv:
        reply = srv.send(LOOKUP, key=PLACEHOLDER_KEY, npi="12345")
        for other in ("100300012", "10030001260", "1003-00012", "abcdefghij", "１００３０００１２６"):
            again = srv.send(LOOKUP, key=PLACEHOLDER_KEY, npi=other)
            assert again.response.status_code == 400, other
            assert again.json()["error"] == reply.json()["error"], other
    return Outcome(reply)


def invalid_key(item: str, **kw: Any) -> Callable[[Env], Outcome]:
    def scenario(env: Env) -> Outcome:
        with env.server() as srv:
            reply = srv.send(item, key=PLACEHOLDER_KEY, **kw)
            error = reply.json()["error"]
            for other in ("npk_" + "x" * 32, "not-a-key"):
                assert srv.send(item, key=other, **kw).json()["error"] == error
            method, url, _, content = build_request(item, {**VARIABLES, "baseUrl": srv.base}, **kw)
            no_header = srv.http.request(method, url, content=content)
            assert no_header.status_code == 401 and no_header.json()["error"] == error
        return Outcome(reply)

    return scenario


def quota_exceeded(item: str) -> Callable[[Env], Outcome]:
    def scenario(env: Env) -> Outcome:
        key, plan = env.key(credits=1)
        with env.server() as srv:
            assert srv.send(item, key=key).response.status_code == 200  # the one credit
            reply = srv.send(item, key=key)
        return Outcome(reply, plan, 0)

    return scenario


def subscription_inactive(item: str) -> Callable[[Env], Outcome]:
    def scenario(env: Env) -> Outcome:
        key, plan = env.key()
        env.suspend(key)
        with env.server() as srv:
            reply = srv.send(item, key=key)
        return Outcome(reply, plan)

    return scenario


def rate_limited(item: str) -> Callable[[Env], Outcome]:
    def scenario(env: Env) -> Outcome:
        key, plan = env.key(rpm=2)
        with env.server() as srv:
            for _ in range(10):  # 3 requests suffice, unless a minute boundary passes in between
                reply = srv.send(item, key=key)
                if reply.response.status_code == 429:
                    break
            retry = int(reply.headers.get("retry-after", "0"))
            assert 1 <= retry <= 60, "Retry-After: the seconds until X-RateLimit-Reset"
        return Outcome(reply, plan)

    return scenario


def lookup_not_found(env: Env) -> Outcome:
    key, plan = env.key()
    with env.server() as srv:  # offline: the store alone answers
        reply = srv.send(LOOKUP, key=key, npi=ABSENT_NPI)

    def check(body: Any, reply: Reply) -> None:
        assert reply.headers["x-cache-status"] == "miss"

    return Outcome(reply, plan, CONTRACT_CREDITS - 1, check)


SECRET = "secret detail of the failure"


def _raise(*args: Any, **kw: Any) -> Any:
    raise RuntimeError(SECRET)


def lookup_internal_error(env: Env) -> Outcome:
    key, plan = env.key()
    with env.server() as srv:
        assert srv.state is not None
        env.monkeypatch.setattr(srv.state.store, "get_stored", _raise)
        reply = srv.send(LOOKUP, key=key)

    def check(body: Any, reply: Reply) -> None:
        text = reply.response.text
        assert "Traceback" not in text and "RuntimeError" not in text and SECRET not in text

    return Outcome(reply, plan, check=check)


def lookup_upstream_unavailable(env: Env) -> Outcome:
    key, plan = env.key()
    with env.server(upstream=closed_port_url()) as srv:
        reply = srv.send(LOOKUP, key=key, npi=ABSENT_NPI)  # not in the store: the upstream is asked
        after = srv.send(LOOKUP, key=key)  # in the store: 200

    def check(body: Any, reply: Reply) -> None:
        assert after.response.status_code == 200
        assert int(after.headers["x-quota-remaining"]) == CONTRACT_CREDITS - 1, "the 502 cost nothing"

    return Outcome(reply, plan, CONTRACT_CREDITS, check)


def check_bulk(sent: list[str]) -> Callable[[Any, Reply], None]:
    upstream_error = example_error(LOOKUP, "502 Bad Gateway \u2014 Upstream Unavailable")
    quota_error = example_error(LOOKUP, "403 Forbidden \u2014 Quota Exceeded")

    def check(body: Any, reply: Reply) -> None:
        rid = body["meta"]["requestId"]
        items = body["data"]
        assert [i["npi"] for i in items] == sent, "one item per NPI sent, in order"
        assert [i["requestId"] for i in items] == [f"{rid}_{n:02d}" for n in range(len(sent))]
        tally = Counter(i["status"] for i in items)
        assert set(tally) <= {"found", "not_found", "upstream_error", "quota_exceeded"}
        assert body["meta"]["counts"] == {
            "requested": len(sent),
            "found": tally["found"],
            "notFound": tally["not_found"],
            "upstreamErrors": tally["upstream_error"],
            "quotaExceeded": tally["quota_exceeded"],
            "cacheHits": sum(1 for i in items if i["status"] == "found" and i["cached"]),
        }
        for i in items:
            if i["status"] == "found":
                assert i["provider"]["npi"] == i["npi"] and i["error"] is None
            else:
                assert i["provider"] is None and i["cached"] is False
            if i["status"] == "upstream_error":
                assert i["error"] == upstream_error
            if i["status"] == "quota_exceeded":
                assert i["error"] == quota_error

    return check


def charged_items(credits: int) -> Callable[[Any], int]:
    """X-Quota-Remaining of a bulk answer: found and not_found items cost one credit each."""
    return lambda body: credits - body["meta"]["counts"]["found"] - body["meta"]["counts"]["notFound"]


def bulk_mixed(env: Env, npis: list[str] | None = None) -> Outcome:
    """The example's conditions: its found NPI in the store (a cache hit), the registry without its
    not_found NPI, the registry failing for its upstream_error NPI."""
    example = json.loads(example_of(BULK, "200 OK \u2014 Mixed per-item outcomes")["body"])["data"]
    sent = json.loads(ITEMS[BULK]["request"]["body"]["raw"])["npis"] if npis is None else npis
    statuses = [i["status"] for i in example]
    assert [i["npi"] for i in example] == json.loads(ITEMS[BULK]["request"]["body"]["raw"])["npis"]
    assert statuses[0] == "found" and sent[0] == STORED_NPI
    answers = {npi: "absent" for npi, status in zip(sent, statuses, strict=True) if status == "not_found"}
    key, plan = env.key()
    body = None if npis is None else json.dumps({"npis": npis})
    with env.server(upstream=mock_registry(answers)) as srv:
        reply = srv.send(BULK, key=key, body=body)
    shape = check_bulk(sent)

    def check(body: Any, reply: Reply) -> None:
        shape(body, reply)
        ours = [(i["npi"], i["status"], i["error"]) for i in body["data"]]
        assert [status for _, status, _ in ours] == statuses, (
            f"per-item statuses: the example has {statuses} for the same conditions; npistack answered {ours}"
        )
        assert (
            body["meta"]["counts"]
            == json.loads(example_of(BULK, "200 OK \u2014 Mixed per-item outcomes")["body"])["meta"]["counts"]
        )

    return Outcome(reply, plan, charged_items(CONTRACT_CREDITS), check)


INVALID_BULK_BODIES = (
    '{"npis": []}',
    "{}",
    "[]",
    "null",
    "not json",
    '{"npis": "1003000126"}',
    '{"npis": [1003000126]}',
    '{"npis": ["12345"]}',
    '{"npis": [null]}',
    json.dumps({"npis": [STORED_NPI] * 51}),
)


def bulk_invalid(env: Env) -> Outcome:
    key, plan = env.key()
    with env.server() as srv:
        reply = srv.send(BULK, key=key, body=INVALID_BULK_BODIES[0])
        for body in INVALID_BULK_BODIES[1:]:
            again = srv.send(BULK, key=key, body=body)
            assert again.response.status_code == 400, body
            assert again.json()["error"] == reply.json()["error"], body
            assert not any(h in again.headers for h in METERING_HEADERS), body
        after = srv.send(LOOKUP, key=key)
        assert int(after.headers["x-quota-remaining"]) == CONTRACT_CREDITS - 1, "a 400 costs nothing"
    return Outcome(reply, plan)


def search_found(env: Env) -> Outcome:
    key, plan = env.key()
    query = {q["key"]: q["value"] for q in ITEMS[SEARCH]["request"]["url"]["query"] if not q.get("disabled")}
    with env.server() as srv:
        reply = srv.send(SEARCH, key=key)

    def check(body: Any, reply: Reply) -> None:
        assert body["data"], "the store has the collection's JOHN SMITH"
        assert all(d["name"]["last"].upper() == query["last_name"].upper() for d in body["data"])
        assert STORED_NPI in {d["npi"] for d in body["data"]}
        page = body["meta"]["pagination"]
        assert page["limit"] == int(query["limit"]) and page["skip"] == 0
        assert page["returned"] == len(body["data"]) <= page["limit"]
        assert page["hasMore"] is False

    return Outcome(reply, plan, CONTRACT_CREDITS - 1, check)


def search_invalid(env: Env) -> Outcome:
    # The collection's own advice: state "cannot be the only filter".
    key, plan = env.key()
    with env.server() as srv:
        reply = srv.send(SEARCH, key=key, query={"last_name": None, "state": "NC"})
        after = srv.send(LOOKUP, key=key)
        assert int(after.headers["x-quota-remaining"]) == CONTRACT_CREDITS - 1, "a 400 costs nothing"
    return Outcome(reply, plan)


def search_never_502(env: Env) -> Outcome:
    """Not applicable: npistack answers searches from its store, which is the whole registry. With
    an upstream configured and failing, a search is still a 200 (empty or not), charged one credit,
    and the upstream is never asked."""
    key, plan = env.key()
    calls: list[str] = []
    with env.server(upstream=mock_registry({}, calls)) as srv:
        found = srv.send(SEARCH, key=key)
        empty = srv.send(SEARCH, key=key, query={"last_name": "Nobodyhere"})
    assert found.response.status_code == 200 and found.json()["data"]
    assert empty.response.status_code == 200 and empty.json()["data"] == []
    assert int(empty.headers["x-quota-remaining"]) == CONTRACT_CREDITS - 2, "each page one credit, even empty"
    assert calls == [], "search asked the upstream"
    return Outcome(empty, plan, CONTRACT_CREDITS - 2)


@dataclass(frozen=True)
class Case:
    id: str
    scenario: Callable[[Env], Outcome]
    loopback: bool = True  # False: needs an in-process hook (a patched store, a mock upstream)
    not_applicable: str = ""


# The coverage table: every (request, example response) of the collection -> the scenario that
# produces it against npistack.
COVERAGE: dict[tuple[str, str], Case] = {
    (LOOKUP, "200 OK \u2014 Provider found"): Case("lookup-200", lookup_found),
    (LOOKUP, "400 Bad Request \u2014 Invalid NPI"): Case("lookup-400", lookup_invalid_npi),
    (LOOKUP, "401 Unauthorized \u2014 Invalid API Key"): Case("lookup-401", invalid_key(LOOKUP)),
    (LOOKUP, "403 Forbidden \u2014 Quota Exceeded"): Case("lookup-403-quota", quota_exceeded(LOOKUP)),
    (LOOKUP, "403 Forbidden \u2014 Subscription Inactive"): Case(
        "lookup-403-inactive", subscription_inactive(LOOKUP)
    ),
    (LOOKUP, "404 Not Found \u2014 NPI Not Found"): Case("lookup-404", lookup_not_found),
    (LOOKUP, "429 Too Many Requests \u2014 Rate Limited"): Case("lookup-429", rate_limited(LOOKUP)),
    (LOOKUP, "500 Internal Server Error"): Case("lookup-500", lookup_internal_error, loopback=False),
    (LOOKUP, "502 Bad Gateway \u2014 Upstream Unavailable"): Case("lookup-502", lookup_upstream_unavailable),
    (BULK, "200 OK \u2014 Mixed per-item outcomes"): Case("bulk-200-mixed", bulk_mixed, loopback=False),
    (BULK, "400 Bad Request \u2014 Invalid batch payload"): Case("bulk-400", bulk_invalid),
    (SEARCH, "200 OK \u2014 Search results"): Case("search-200", search_found),
    (SEARCH, "400 Bad Request \u2014 Invalid search params"): Case("search-400", search_invalid),
    (SEARCH, "401 Unauthorized \u2014 Invalid API Key"): Case("search-401", invalid_key(SEARCH)),
    (SEARCH, "403 Forbidden \u2014 Quota exceeded"): Case("search-403-quota", quota_exceeded(SEARCH)),
    (SEARCH, "403 Forbidden \u2014 Subscription inactive"): Case(
        "search-403-inactive", subscription_inactive(SEARCH)
    ),
    (SEARCH, "429 Too Many Requests \u2014 Rate limited"): Case("search-429", rate_limited(SEARCH)),
    (SEARCH, "502 Bad Gateway \u2014 Upstream unavailable"): Case(
        "search-502",
        search_never_502,
        loopback=False,
        not_applicable="search is answered locally (the store is the whole registry; the upstream is never asked)",
    ),
}


def test_every_example_is_covered() -> None:
    in_collection = {(item["name"], r["name"]) for item in COLLECTION["item"] for r in item["response"]}
    uncovered = sorted(in_collection - set(COVERAGE))
    assert not uncovered, f"examples of the collection without a scenario in COVERAGE: {uncovered}"
    stale = sorted(set(COVERAGE) - in_collection)
    assert not stale, f"COVERAGE rows for examples the collection no longer has: {stale}"
    for (item, name), case in COVERAGE.items():
        assert int(case.id.split("-")[1]) == example_of(item, name)["code"], case.id


def test_request_builder_follows_the_collection() -> None:
    variables = {**VARIABLES, "baseUrl": "http://x", "apiKey": "K"}
    assert build_request(LOOKUP, variables) == (
        "GET",
        f"http://x/api/v1/npi/{STORED_NPI}",
        {"Authorization": "Bearer K"},
        None,
    )
    method, url, headers, body = build_request(BULK, variables)
    assert (method, url, headers["Content-Type"]) == ("POST", "http://x/api/v1/npi/bulk", "application/json")
    assert body is not None and len(json.loads(body)["npis"]) == 3
    raw = build_request(SEARCH, variables)
    assert raw[1] == "http://x/api/v1/providers/search?last_name=Smith&limit=10"
    assert build_request(SEARCH, variables, query={}) == raw, "the enabled query entries are url.raw's"
    assert build_request(SEARCH, variables, query={"last_name": None, "state": "NC"})[1] == (
        "http://x/api/v1/providers/search?limit=10&state=NC"
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return contract_store(tmp_path)


def run_case(
    key: tuple[str, str], store_url: str, tmp_path: Path, mp: pytest.MonkeyPatch, loopback: bool
) -> None:
    case = COVERAGE[key]
    outcome = case.scenario(Env(store_url, tmp_path, loopback, mp))
    if case.not_applicable:
        pytest.skip(f"not applicable (proved instead): {case.not_applicable}")
    check_example(example_of(*key), outcome)


@pytest.mark.parametrize("key", list(COVERAGE), ids=[c.id for c in COVERAGE.values()])
def test_example(
    key: tuple[str, str], store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(key, store_url, tmp_path, monkeypatch, loopback=False)


LOOPBACK = [k for k, c in COVERAGE.items() if c.loopback]


@pytest.mark.parametrize("key", LOOPBACK, ids=[COVERAGE[k].id for k in LOOPBACK])
def test_example_over_real_http(
    key: tuple[str, str], store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(key, store_url, tmp_path, monkeypatch, loopback=True)


# -- what the collection's descriptions say besides the examples ------------------------------------


def env_for(store_url: str, tmp_path: Path, mp: pytest.MonkeyPatch) -> Env:
    return Env(store_url, tmp_path, False, mp)


def test_bulk_mixed_outcomes_with_check_digit_valid_npis(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mixed example with its third NPI replaced by one that passes the check digit: the
    statuses, counts and credits (found + not_found) are the example's."""
    sent = [STORED_NPI, "1932100864", ABSENT_NPI]
    outcome = bulk_mixed(env_for(store_url, tmp_path, monkeypatch), sent)
    check_example(example_of(BULK, "200 OK \u2014 Mixed per-item outcomes"), outcome)
    assert outcome.reply.headers["x-quota-remaining"] == "998"


def test_a_500_costs_no_credit(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a 200 and a 404 cost a credit ("502 upstream errors do not"); a server failure is no
    answer either."""
    env = env_for(store_url, tmp_path, monkeypatch)
    key, _ = env.key()
    with env.server() as srv:
        assert srv.state is not None
        with monkeypatch.context() as m:
            m.setattr(srv.state.store, "get_stored", _raise)
            assert srv.send(LOOKUP, key=key).response.status_code == 500
        after = srv.send(LOOKUP, key=key)
    assert after.response.status_code == 200
    assert int(after.headers["x-quota-remaining"]) == CONTRACT_CREDITS - 1, "the 500 was charged a credit"


@pytest.mark.parametrize(
    "released_days_ago, ttl, status", [(0, 40, "hit"), (60, 40, "stale"), (1, 0, "stale")]
)
def test_meta_cached_is_true_for_hit_and_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, released_days_ago: int, ttl: int, status: str
) -> None:
    url = contract_store(tmp_path, datetime.now(UTC).date() - timedelta(days=released_days_ago))
    env = Env(url, tmp_path, False, monkeypatch)
    key, plan = env.key()
    with env.server(cache_ttl_days=ttl) as srv:
        reply = srv.send(LOOKUP, key=key)
    assert reply.headers["x-cache-status"] == status
    check_example(
        example_of(LOOKUP, "200 OK \u2014 Provider found"),
        Outcome(reply, plan, CONTRACT_CREDITS - 1, check_lookup(STORED_NPI)),
    )


def test_meta_cached_is_false_for_a_miss(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A miss: not in the store, fetched from the registry (a CMS-format result), stored; the next
    lookup of the same NPI is a hit."""
    from npistack.api.cms import render_response
    from npistack.services.providers import get_providers
    from npistack.storage import open_store

    store = open_store(store_url, read_only=True)
    try:
        result = render_response(get_providers(store, [STORED_NPI]))["results"][0]
    finally:
        store.close()
    result["number"] = ABSENT_NPI

    def registry(request: httpx.Request) -> httpx.Response:
        found = request.url.params.get("number") == ABSENT_NPI
        return httpx.Response(200, json={"result_count": int(found), "results": [result] if found else []})

    env = env_for(store_url, tmp_path, monkeypatch)
    key, plan = env.key()
    example = example_of(LOOKUP, "200 OK \u2014 Provider found")
    with env.server(upstream=httpx.MockTransport(registry)) as srv:
        first = srv.send(LOOKUP, key=key, npi=ABSENT_NPI)
        second = srv.send(LOOKUP, key=key, npi=ABSENT_NPI)
    check_example(example, Outcome(first, plan, CONTRACT_CREDITS - 1, check_lookup(ABSENT_NPI)))
    assert first.headers["x-cache-status"] == "miss" and first.json()["meta"]["cached"] is False
    check_example(example, Outcome(second, plan, CONTRACT_CREDITS - 2, check_lookup(ABSENT_NPI)))
    assert second.headers["x-cache-status"] == "hit" and second.json()["meta"]["cached"] is True


def test_lookup_trims_whitespace(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ "Leading/trailing whitespace is trimmed automatically"."""
    env = env_for(store_url, tmp_path, monkeypatch)
    key, plan = env.key()
    with env.server() as srv:
        reply = srv.send(LOOKUP, key=key, npi=f"%20{STORED_NPI}%20")
    check_example(
        example_of(LOOKUP, "200 OK \u2014 Provider found"),
        Outcome(reply, plan, CONTRACT_CREDITS - 1, check_lookup(STORED_NPI)),
    )


def test_bulk_duplicates_are_metered_independently(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Duplicate NPIs are allowed and metered independently"; a bulk lookup stops at the quota
    with per-item ``quota_exceeded``."""
    env = env_for(store_url, tmp_path, monkeypatch)
    key, plan = env.key(credits=3)
    sent = [STORED_NPI, STORED_NPI, ABSENT_NPI, STORED_NPI]
    with env.server() as srv:
        reply = srv.send(BULK, key=key, body=json.dumps({"npis": sent}))
    outcome = Outcome(reply, plan, charged_items(3), check_bulk(sent))
    example = example_of(BULK, "200 OK \u2014 Mixed per-item outcomes")
    check_example(example, outcome, shape=False)
    items = reply.json()["data"]
    assert [i["status"] for i in items] == ["found", "found", "not_found", "quota_exceeded"]
    by_status = {i["status"]: i for i in json.loads(example["body"])["data"]}
    for item in items[:3]:
        assert_same_shape(by_status[item["status"]], item)
    assert reply.headers["x-quota-remaining"] == "0"


def test_search_pagination(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``limit`` (default 20), ``skip``, ``returned`` and ``hasMore`` (a limit+1 probe)."""
    env = env_for(store_url, tmp_path, monkeypatch)
    key, plan = env.key()
    example = example_of(SEARCH, "200 OK \u2014 Search results")
    pages = []
    with env.server() as srv:
        for asked in ({}, {"limit": "1"}, {"limit": "1", "skip": "1"}):
            pages.append(srv.send(SEARCH, key=key, query={"last_name": "RO*", "limit": None, **asked}))
    everything = [d["npi"] for d in pages[0].json()["data"]]
    assert len(everything) >= 2, "the sample has ROTH and ROTHSTEIN"
    for n, (reply, limit, skip) in enumerate(zip(pages, (20, 1, 1), (0, 0, 1), strict=True)):
        check_example(example, Outcome(reply, plan, CONTRACT_CREDITS - 1 - n))
        body = reply.json()
        page = body["meta"]["pagination"]
        assert (page["limit"], page["skip"], page["returned"]) == (limit, skip, len(body["data"]))
        assert [d["npi"] for d in body["data"]] == everything[skip : skip + limit]
        assert page["hasMore"] is (len(everything) > skip + limit)


@pytest.mark.parametrize("item", [LOOKUP, SEARCH])
def test_enrichment_costs_two_credits(
    item: str, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Enrichment requests cost 2 credits total" (a header on lookups, a parameter on searches)."""
    env = env_for(store_url, tmp_path, monkeypatch)
    set_plan(store_url, "contract-growth", CONTRACT_CREDITS, CONTRACT_RPM, enrichment=True)
    key = make_key(store_url, "contract-growth")
    plan = Plan("contract-growth", CONTRACT_CREDITS, CONTRACT_RPM, True)
    with env.server() as srv:
        if item == LOOKUP:
            method, url, headers, _ = build_request(LOOKUP, {**VARIABLES, "baseUrl": srv.base, "apiKey": key})
            t0 = time.time()
            response = srv.http.request(method, url, headers={**headers, "enrichment": "quality_freshness"})
            reply = Reply(response, t0, time.time())
        else:
            reply = srv.send(SEARCH, key=key, query={"enrichment": "completeness"})
    name = "200 OK \u2014 Provider found" if item == LOOKUP else "200 OK \u2014 Search results"
    check_example(example_of(item, name), Outcome(reply, plan, CONTRACT_CREDITS - 2))
    data = reply.json()["data"]
    assert "enrichment" in (data if item == LOOKUP else data[0])
