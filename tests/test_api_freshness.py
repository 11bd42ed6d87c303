"""Freshness of lookups against a real upstream registry on loopback.

The upstream is a second npistack serving its CMS-compatible endpoint (``/api/?version=2.1``) over
the 50 real sample rows, one of them changed as if updated since (``CHANGED_NPI``). The primary
store holds the sample rows except ``REMOTE_ONLY``. Misbehaving upstreams (dead, slow, HTTP 500,
not JSON, failing for some NPIs) are tiny ``http.server`` servers on loopback. Shown here:

- hit: a fresh local copy is served without asking the upstream;
- stale: an old copy is served at once, then replaced in the background by the upstream's;
- miss: an NPI only the upstream has is fetched, answered, kept, and searchable afterwards;
- not found, 502 (no credit), bulk per-item statuses and credits, offline mode, deactivated NPIs;
- the round trip registry result -> NPPES row -> stored document (``services.upstream``).
"""

from __future__ import annotations

import csv
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from npistack.api.cms import render_result
from npistack.records.registry import registry_block
from npistack.records.rows import StoredProvider
from npistack.services.providers import expand, get_providers
from npistack.storage import open_store
from npistack.storage.schema import DATA_TABLES, provider_columns
from tests.api_support import (
    ABSENT_NPI,
    ACTIVE_NPI,
    ORG_NPI,
    bearer,
    client,
    free_port,
    make_key,
    sample_store,
    thread_server,
)
from tests.nppes_files import SAMPLE, individual, organization, write_bundle, write_file
from tests.storage_sql import sql_rows

# -- the two stores ------------------------------------------------------------------------------

CHANGED_NPI = ACTIVE_NPI  # JON DUBOSE, MD: in both stores; the upstream's copy is newer
CHANGED_LAST, CHANGED_UPDATED = "DUBOSE-HART", "11/02/2026"
LOCAL_NPI = "1679576722"  # DAVID A WIEBE, M.D.: in both stores, unchanged
LOCAL_DEACTIVATED = "1306849450"  # a deactivated stub in both stores
REMOTE_ORG = "1740283795"  # EASTERN STAR MASONIC HOME: authorized official, 3 taxonomies, 3 identifiers
REMOTE_PERSON = "1669475612"  # DEBRA CHARLENE TROTCHIE, APN: a former name, mailing address with fax
REMOTE_BULK = "1043213093"  # HOME I V SPECIALISTS INC: 6 taxonomies, 4 identifiers
REMOTE_FAILING = "1255334207"  # RICHARD SOUCIER, MD: the selective proxy fails for this one
REMOTE_DEACTIVATED = "1891798849"  # a deactivated stub: the upstream's CMS endpoint hides it
REMOTE_ONLY = {REMOTE_ORG, REMOTE_PERSON, REMOTE_BULK, REMOTE_FAILING, REMOTE_DEACTIVATED}

LAST_NAME = "Provider Last Name (Legal Name)"
UPDATED = "Last Update Date"
UPSTREAM_ROUTE = re.compile(r'^npistack_http_requests_total\{method="GET",route="/api/",.*\} (\d+)$', re.M)


def sample_rows() -> tuple[list[str], list[list[str]]]:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(reader)


@pytest.fixture(scope="module")
def upstream_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The 50 real sample rows, CHANGED_NPI renamed and updated on 2026-11-02."""
    header, rows = sample_rows()
    at_npi, at_last, at_updated = header.index("NPI"), header.index(LAST_NAME), header.index(UPDATED)
    for row in rows:
        if row[at_npi] == CHANGED_NPI:
            row[at_last], row[at_updated] = CHANGED_LAST, CHANGED_UPDATED
    folder = tmp_path_factory.mktemp("upstream")
    return sample_store(folder / "store.db", write_file(folder / "npidata.csv", header, rows))


@pytest.fixture(scope="module")
def upstream(upstream_store: str) -> Iterator[str]:
    """The upstream's base URL: a real npistack server (offline itself) on a loopback port."""
    with thread_server(upstream_store) as base:
        yield base


@pytest.fixture
def primary(tmp_path: Path) -> str:
    """A fresh primary store (each test writes to it): the sample rows except REMOTE_ONLY, from a
    CSV without a release date, so its copies are as old as the load (today)."""
    header, rows = sample_rows()
    local = [r for r in rows if r[header.index("NPI")] not in REMOTE_ONLY]
    return sample_store(tmp_path / "store.db", write_file(tmp_path / "npidata.csv", header, local))


@pytest.fixture
def key(primary: str) -> dict[str, str]:
    return bearer(make_key(primary, "growth"))


def upstream_calls(base: str) -> int:
    """Requests the npistack upstream has answered on its registry endpoint (from its /metrics)."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return sum(int(n) for n in UPSTREAM_ROUTE.findall(text))


def remaining(resp: httpx.Response) -> int:
    return int(resp.headers["X-Quota-Remaining"])


def provider_doc(store_url: str, number: str) -> dict[str, Any]:
    store = open_store(store_url, read_only=True)
    try:
        (doc,) = get_providers(store, [number])
    finally:
        store.close()
    return doc


def key_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What must be the same whichever way a provider reached the store."""
    return {
        "npi": doc["npi"],
        "entityType": doc["entityType"],
        "status": doc["status"],
        "name": doc["name"],
        "organizationName": doc["organizationName"],
        "authorizedOfficial": doc["authorizedOfficial"],
        "sex": doc["sex"],
        "soleProprietor": doc["soleProprietor"],
        "primaryTaxonomy": doc["primaryTaxonomy"],
        "taxonomies": [(t["code"], t["license"], t["licenseState"], t["primary"]) for t in doc["taxonomies"]],
        "identifiers": doc["identifiers"],
        "otherNames": doc["otherNames"],
        "mailingAddress": doc["mailingAddress"],  # lines, phones and fax, standardized form, geodata
        "practiceLocations": doc["practiceLocations"],
        "endpoints": doc["endpoints"],
        "enumerationDate": doc["enumerationDate"],
        "lastUpdated": doc["lastUpdated"],
        "certificationDate": doc["certificationDate"],
    }


def primary_client(primary: str, upstream_url: str, **kw: Any) -> AbstractContextManager[TestClient]:
    """An in-process client of the primary app, with ``upstream_url`` as its registry."""
    return client(primary, upstream_url=upstream_url, offline=False, **kw)


def lookups_until_hit(
    c: TestClient, number: str, auth: dict[str, str], seconds: float = 5.0
) -> list[httpx.Response]:
    """Look ``number`` up every 50 ms until the answer is a hit; every answer, the hit last."""
    answers = []
    deadline = time.monotonic() + seconds
    while True:
        answers.append(c.get(f"/api/v1/npi/{number}", headers=auth))
        if answers[-1].headers.get("X-Cache-Status") == "hit":
            return answers
        assert time.monotonic() < deadline, (
            f"still {answers[-1].headers.get('X-Cache-Status')} after {seconds} s"
        )
        time.sleep(0.05)


# -- misbehaving upstreams -----------------------------------------------------------------------

Answer = tuple[int, str, bytes]  # status, content type, body


class LoopbackUpstream:
    """A tiny HTTP server on loopback whose answers the test chooses; it records every path asked."""

    def __init__(self, answer: Callable[[str], Answer]) -> None:
        self.answer = answer
        self.paths: list[str] = []
        self.released = threading.Event()  # ends sleeps at shutdown
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                status, ctype, body = outer.answer(self.path)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout tests)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # type: ignore[misc]
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def numbers(self) -> list[str]:
        return [parse_qs(urlsplit(p).query).get("number", [""])[0] for p in self.paths]

    def __enter__(self) -> LoopbackUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def proxy(base: str, *, delay: float = 0.0, failing: frozenset[str] = frozenset()) -> Callable[[str], Answer]:
    """Forward to the real upstream at ``base`` after ``delay`` seconds; HTTP 500 for ``failing`` NPIs."""

    def answer(path: str) -> Answer:
        time.sleep(delay)
        if parse_qs(urlsplit(path).query).get("number", [""])[0] in failing:
            return 500, "application/json", b'{"message": "internal error"}'
        r = httpx.get(base + path, timeout=10)
        return r.status_code, r.headers.get("content-type", "application/json"), r.content

    return answer


def dead_upstream() -> str:
    """A loopback port nobody listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/api/"


# -- hit -----------------------------------------------------------------------------------------


def test_hit_serves_the_local_copy_without_asking_the_upstream(primary, key, upstream):
    before = upstream_calls(upstream)
    with primary_client(primary, f"{upstream}/api/") as c:
        first = c.get(f"/api/v1/npi/{CHANGED_NPI}", headers=key)
        second = c.get(f"/api/v1/npi/{ORG_NPI}", headers=key)
    assert first.status_code == 200, first.text
    assert first.headers["X-Cache-Status"] == "hit"
    body = first.json()
    assert body["meta"]["cached"] is True
    # the local copy, not the upstream's newer one, and it came from the file load
    assert body["data"]["name"]["last"] == "DUBOSE"
    assert body["data"]["release"].get("source") != "upstream"
    assert body["data"]["release"]["loadId"] == 1
    assert second.status_code == 200 and second.headers["X-Cache-Status"] == "hit"
    assert remaining(second) == remaining(first) - 1  # one credit each
    assert upstream_calls(upstream) == before  # the upstream was not called


def test_ttl_counts_days_since_the_release(tmp_path):
    """A bundle released 2026-11-08 is a hit up to cache_ttl_days (40) days later, stale after."""
    person = individual(7)
    url = sample_store(tmp_path / "store.db", write_bundle(tmp_path / "bundle", [person], end="20261108"))
    auth = bearer(make_key(url))
    day40, day41 = datetime(2026, 12, 18, 12, tzinfo=UTC), datetime(2026, 12, 19, 12, tzinfo=UTC)
    for now, status in ((day40, "hit"), (day41, "stale")):
        with client(url, now=now) as c:  # offline: a stale copy is served, nothing to revalidate with
            r = c.get(f"/api/v1/npi/{person[0]}", headers=auth)
        assert r.status_code == 200, r.text
        assert (r.headers["X-Cache-Status"], r.json()["meta"]["cached"]) == (status, True)
    with client(url, now=day40, cache_ttl_days=3) as c:
        assert c.get(f"/api/v1/npi/{person[0]}", headers=auth).headers["X-Cache-Status"] == "stale"


# -- stale ---------------------------------------------------------------------------------------


def test_stale_is_served_at_once_then_replaced_by_the_upstream_copy(primary, key, upstream):
    later = datetime.now(UTC) + timedelta(days=400)  # every local copy is past the 40-day TTL
    with (
        LoopbackUpstream(proxy(upstream, delay=1.0)) as slow,
        primary_client(primary, slow.url, now=later) as c,
    ):
        c.get("/api/", params={"version": "2.1", "number": LOCAL_NPI})  # warm up, without the upstream
        t0 = time.monotonic()
        stale = c.get(f"/api/v1/npi/{CHANGED_NPI}", headers=key)
        served_in = time.monotonic() - t0
        assert stale.status_code == 200, stale.text
        assert stale.headers["X-Cache-Status"] == "stale"
        assert stale.json()["meta"]["cached"] is True
        assert stale.json()["data"]["name"]["last"] == "DUBOSE"  # the old copy
        assert served_in < 0.8  # not waiting for the upstream, which takes 1 s

        # the background revalidation replaces the stored copy: the next lookups turn into hits
        answers = lookups_until_hit(c, CHANGED_NPI, key)
        fresh = answers[-1]
        assert fresh.json()["meta"]["cached"] is True
        doc = fresh.json()["data"]
        assert doc["release"] == {"date": later.date().isoformat(), "source": "upstream"}
        assert doc["name"]["last"] == CHANGED_LAST
        assert doc["name"]["full"] == f"JON {CHANGED_LAST}, MD"
        assert doc["lastUpdated"] == "2026-11-02"
        assert all(a.headers["X-Cache-Status"] == "stale" for a in answers[:-1])
        assert slow.numbers() == [CHANGED_NPI]  # revalidated once, however many stale answers

        # the replacement reached the search index too
        cms = c.get("/api/", params={"version": "2.1", "number": CHANGED_NPI}).json()
        assert cms["results"][0]["basic"]["last_name"] == CHANGED_LAST
        found = c.get("/api/v1/providers/search", params={"last_name": CHANGED_LAST}, headers=key)
        assert [d["npi"] for d in found.json()["data"]] == [CHANGED_NPI]


# -- miss ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [REMOTE_ORG, REMOTE_PERSON])
def test_miss_fetches_from_the_upstream_and_keeps_the_provider(
    primary, key, upstream, upstream_store, number
):
    before = upstream_calls(upstream)
    with primary_client(primary, f"{upstream}/api/") as c:
        miss = c.get(f"/api/v1/npi/{number}", headers=key)
        assert miss.status_code == 200, miss.text
        assert miss.headers["X-Cache-Status"] == "miss"
        assert miss.json()["meta"]["cached"] is False
        doc = miss.json()["data"]
        assert key_fields(doc) == key_fields(provider_doc(upstream_store, number))
        assert doc["release"] == {"date": datetime.now(UTC).date().isoformat(), "source": "upstream"}
        assert upstream_calls(upstream) == before + 1

        # kept: the next lookup is a hit, answered without the upstream
        hit = c.get(f"/api/v1/npi/{number}", headers=key)
        assert hit.status_code == 200 and hit.headers["X-Cache-Status"] == "hit"
        assert hit.json()["meta"]["cached"] is True
        assert key_fields(hit.json()["data"]) == key_fields(doc)
        assert remaining(hit) == remaining(miss) - 1
        assert upstream_calls(upstream) == before + 1

        # and searchable in the primary store, on both APIs
        cms = c.get("/api/", params={"version": "2.1", "number": number}).json()
        assert [r["number"] for r in cms["results"]] == [number]
        name = (
            {"organization_name": doc["organizationName"]}
            if doc["entityType"] == "NPI-2"
            else {"last_name": doc["name"]["last"]}
        )
        found = c.get("/api/v1/providers/search", params=name, headers=key)
        assert found.status_code == 200, found.text
        assert number in [d["npi"] for d in found.json()["data"]]
    with client(primary) as offline:  # kept on disk: an offline server has it too
        assert offline.get(f"/api/v1/npi/{number}", headers=key).status_code == 200


def test_miss_then_not_found_costs_one_credit(primary, key, upstream):
    before = upstream_calls(upstream)
    with primary_client(primary, f"{upstream}/api/") as c:
        first = c.get(f"/api/v1/npi/{LOCAL_NPI}", headers=key)
        gone = c.get(f"/api/v1/npi/{ABSENT_NPI}", headers=key)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "npi_not_found"
    assert set(gone.json()) == {"error", "meta"}
    assert gone.headers["X-Cache-Status"] == "miss"
    assert remaining(gone) == remaining(first) - 1
    assert upstream_calls(upstream) == before + 1  # the upstream was asked, and had nothing


# -- 502 -----------------------------------------------------------------------------------------


def assert_upstream_unavailable(resp: httpx.Response, credits_before: int) -> None:
    assert resp.status_code == 502, resp.text
    body = resp.json()
    assert body["error"]["code"] == "upstream_unavailable"
    assert body["meta"]["requestId"]
    assert remaining(resp) == credits_before  # no credit for a 502


def test_dead_upstream_is_a_502_without_credit(primary, key):
    with primary_client(primary, dead_upstream()) as c:
        first = c.get(f"/api/v1/npi/{LOCAL_NPI}", headers=key)
        assert first.headers["X-Cache-Status"] == "hit"  # local copies need no upstream
        assert_upstream_unavailable(c.get(f"/api/v1/npi/{REMOTE_ORG}", headers=key), remaining(first))
        after = c.get(f"/api/v1/npi/{LOCAL_NPI}", headers=key)
    assert remaining(after) == remaining(first) - 1


def test_slow_upstream_is_a_502_after_the_timeout(primary, key):
    def sleepy(path: str) -> Answer:
        slow.released.wait(3)
        return 200, "application/json", b'{"result_count": 0, "results": []}'

    with LoopbackUpstream(sleepy) as slow, primary_client(primary, slow.url, upstream_timeout_s=0.3) as c:
        first = c.get(f"/api/v1/npi/{LOCAL_NPI}", headers=key)
        t0 = time.monotonic()
        resp = c.get(f"/api/v1/npi/{REMOTE_ORG}", headers=key)
        took = time.monotonic() - t0
    assert_upstream_unavailable(resp, remaining(first))
    assert 0.25 <= took < 1.5
    assert slow.numbers() == [REMOTE_ORG]


@pytest.mark.parametrize(
    "answer",
    [
        (500, "application/json", b'{"message": "internal error"}'),
        (503, "text/html", b"<html><body>Service Unavailable</body></html>"),
        (200, "text/html", b"<html><body>NPPES is down for maintenance</body></html>"),
        (
            200,
            "application/json",
            b'{"Errors": [{"description": "boom", "field": "number", "number": "99"}]}',
        ),
        (200, "application/json", b"[1, 2, 3]"),
    ],
    ids=["http-500", "http-503-html", "not-json", "cms-errors", "unknown-shape"],
)
def test_broken_upstream_answers_are_a_502(primary, key, answer):
    with LoopbackUpstream(lambda path: answer) as broken, primary_client(primary, broken.url) as c:
        first = c.get(f"/api/v1/npi/{LOCAL_NPI}", headers=key)
        assert_upstream_unavailable(c.get(f"/api/v1/npi/{REMOTE_ORG}", headers=key), remaining(first))


def test_bulk_mixes_local_upstream_absent_and_failing(primary, key, upstream):
    npis = [LOCAL_NPI, REMOTE_BULK, ABSENT_NPI, REMOTE_FAILING, REMOTE_BULK]
    with (
        LoopbackUpstream(proxy(upstream, failing=frozenset({REMOTE_FAILING}))) as selective,
        primary_client(primary, selective.url) as c,
    ):
        first = c.get(f"/api/v1/npi/{ORG_NPI}", headers=key)
        resp = c.post("/api/v1/npi/bulk", json={"npis": npis}, headers=key)
        again = c.get(f"/api/v1/npi/{REMOTE_BULK}", headers=key)
    assert resp.status_code == 200, resp.text
    items = resp.json()["data"]
    assert [(i["npi"], i["status"], i["cached"]) for i in items] == [
        (LOCAL_NPI, "found", True),
        (REMOTE_BULK, "found", False),
        (ABSENT_NPI, "not_found", False),
        (REMOTE_FAILING, "upstream_error", False),
        (REMOTE_BULK, "found", False),  # a duplicate: answered alike, metered again
    ]
    assert items[0]["provider"]["name"]["full"] == "DAVID A WIEBE, M.D."
    assert items[1]["provider"]["organizationName"] == "HOME I V SPECIALISTS INC"
    assert items[1]["provider"]["release"]["source"] == "upstream"
    assert [i["provider"] is None for i in items] == [False, False, True, True, False]
    assert items[2]["error"] is None
    assert items[3]["error"]["code"] == "upstream_unavailable"
    assert resp.json()["meta"]["counts"] == {
        "requested": 5,
        "found": 3,
        "notFound": 1,
        "upstreamErrors": 1,
        "quotaExceeded": 0,
        "cacheHits": 1,
    }
    assert remaining(resp) == remaining(first) - 4  # found + not_found, not the upstream error
    assert sorted(selective.numbers()) == sorted([REMOTE_BULK, ABSENT_NPI, REMOTE_FAILING])  # once each
    assert again.headers["X-Cache-Status"] == "hit"  # the provider fetched in bulk was kept


def test_bulk_with_a_dead_upstream_charges_only_local_answers(primary, key):
    npis = [LOCAL_NPI, REMOTE_ORG, LOCAL_NPI, ABSENT_NPI]
    with primary_client(primary, dead_upstream()) as c:
        first = c.get(f"/api/v1/npi/{ORG_NPI}", headers=key)
        resp = c.post("/api/v1/npi/bulk", json={"npis": npis}, headers=key)
    assert resp.status_code == 200, resp.text
    items = resp.json()["data"]
    assert [i["status"] for i in items] == ["found", "upstream_error", "found", "upstream_error"]
    assert all(i["error"]["code"] == "upstream_unavailable" for i in items if i["status"] == "upstream_error")
    counts = resp.json()["meta"]["counts"]
    assert (counts["found"], counts["notFound"], counts["upstreamErrors"], counts["cacheHits"]) == (
        2,
        0,
        2,
        2,
    )
    assert remaining(resp) == remaining(first) - 2


# -- offline -------------------------------------------------------------------------------------


def test_offline_answers_from_the_store_alone(primary, key, upstream):
    later = datetime.now(UTC) + timedelta(days=400)
    # an upstream is named, but offline=True: it must never be called
    with (
        LoopbackUpstream(proxy(upstream)) as watched,
        client(primary, upstream_url=watched.url, offline=True, now=later) as c,
    ):
        absent = c.get(f"/api/v1/npi/{REMOTE_ORG}", headers=key)
        stale = c.get(f"/api/v1/npi/{LOCAL_NPI}", headers=key)
        ready = c.get("/readyz").json()
    assert absent.status_code == 404
    assert absent.json()["error"]["code"] == "npi_not_found"
    assert absent.headers["X-Cache-Status"] == "miss"
    assert (
        stale.status_code == 200 and stale.headers["X-Cache-Status"] == "stale"
    )  # served, never revalidated
    assert remaining(stale) == remaining(absent) - 1
    assert ready["checks"]["upstream"] == "offline"
    time.sleep(0.1)
    assert watched.paths == []


# -- deactivated ---------------------------------------------------------------------------------


def test_deactivated_npi_is_found_here_but_hidden_by_the_cms_endpoint(primary, key, upstream):
    before = upstream_calls(upstream)
    with primary_client(primary, f"{upstream}/api/") as c:
        local = c.get(f"/api/v1/npi/{LOCAL_DEACTIVATED}", headers=key)
        cms_local = c.get("/api/", params={"version": "2.1", "number": LOCAL_DEACTIVATED})
        cms_active = c.get("/api/", params={"version": "2.1", "number": LOCAL_NPI})
        remote = c.get(f"/api/v1/npi/{REMOTE_DEACTIVATED}", headers=key)
    assert local.status_code == 200, local.text
    assert local.headers["X-Cache-Status"] == "hit"
    doc = local.json()["data"]
    assert doc["status"] == "deactivated"
    assert doc["deactivationDate"]
    assert cms_local.status_code == 200
    assert cms_local.json() == {"result_count": 0, "results": []}
    assert cms_active.json()["result_count"] == 1
    # a deactivated NPI only the upstream knows cannot be fetched: its CMS endpoint hides it too
    assert remote.status_code == 404 and remote.headers["X-Cache-Status"] == "miss"
    assert upstream_calls(upstream) == before + 1


# -- registry result -> NPPES row -> stored document ---------------------------------------------


@pytest.fixture(scope="module")
def sample_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sample_store(tmp_path_factory.mktemp("sample") / "store.db")


@pytest.fixture(scope="module")
def sample_docs(sample_url: str) -> list[dict[str, Any]]:
    """Every active real sample row as loaded from the file (47 of the 50; 3 are deactivated stubs)."""
    store = open_store(sample_url, read_only=True)
    try:
        docs = get_providers(store, [row[0] for row in sample_rows()[1]])
    finally:
        store.close()
    return [d for d in docs if d["status"] == "active"]


FETCHED = date(2026, 11, 21)


def round_trip(doc: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """``doc`` as the upstream would publish it, stored back: (expanded document, BlockResult)."""
    block = registry_block(render_result(doc), FETCHED)
    assert not block.quarantine, block.quarantine
    assert len(block.providers) == 1
    stored = orjson.loads(block.providers[0].doc)
    extras = [(e.kind, orjson.loads(e.doc)) for e in sorted(block.extras, key=lambda e: (e.kind, e.seq))]
    return expand(StoredProvider(stored, extras)), block


AFFIX_KEYS = ("prefix", "suffix")


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document minus what a registry result cannot carry back (each explained), with name
    affixes compared case-insensitively (their case is test_name_affixes_keep_the_file_case's)."""
    out = dict(doc)
    # By design: a copy fetched from the upstream records when and where it came from.
    out.pop("release")
    # CMS publishes neither deactivation nor reactivation dates for an active NPI, so a provider
    # deactivated and reactivated (1659374601) loses both dates.
    out.pop("deactivationDate")
    out.pop("reactivationDate")
    # Not in a registry result either: the EIN, a location's phone extension (both null in the
    # sample, kept here so a change shows) and an other name's created date (not in this layout).
    taxonomies = []
    for t in doc["taxonomies"]:
        t = dict(t)
        # CMS publishes a boolean ``primary``: a switch other than Y/N ("X" in 1780687731) comes back "N".
        t.pop("primarySwitch")
        # The registry prints its own text for a group code, not the file's ("MULTIPLE SINGLE
        # SPECIALTY GROUP" in 1700889755): only the code can come back (see test_taxonomy_group_...).
        t["group"] = t["group"] and t["group"]["code"]
        taxonomies.append(t)
    out["taxonomies"] = taxonomies

    def upper(person: dict[str, Any] | None) -> dict[str, Any] | None:
        if person is None:
            return None
        return {k: (v.upper() if k in AFFIX_KEYS and v else v) for k, v in person.items()}

    out["name"] = {**upper(doc["name"]), "full": (doc["name"]["full"] or "").upper()}  # type: ignore[dict-item]
    out["authorizedOfficial"] = upper(doc["authorizedOfficial"])
    out["otherNames"] = [upper(o) for o in doc["otherNames"]]
    return out


def test_registry_result_is_one_provider(sample_docs):
    for doc in sample_docs:
        block = registry_block(render_result(doc), FETCHED)
        assert [p.npi for p in block.providers] == [int(doc["npi"])]
        assert block.rows_read == 1  # one provider, as one row of the npidata layout
        assert block.extras == []  # the sample has no child rows


def test_registry_result_round_trips_to_the_file_document(sample_docs, sample_url):
    assert len(sample_docs) == 47
    store = open_store(sample_url, read_only=True)
    try:
        for doc in sample_docs:
            back, block = round_trip(doc)
            assert back["release"] == {"date": FETCHED.isoformat(), "source": "upstream"}
            assert comparable(back) == comparable(doc), doc["npi"]
            # the search index rows are the file load's too
            for table, rows in (
                ("providers", [provider_columns(p) for p in block.providers]),
                ("provider_names", block.names),
                ("provider_taxonomies", block.taxonomies),
                ("provider_locations", block.locations),
            ):
                cols = ", ".join(DATA_TABLES[table])
                loaded = sql_rows(store, f"SELECT {cols} FROM {table} WHERE npi = ?", [int(doc["npi"])])
                assert sorted(map(tuple, rows)) == sorted(map(tuple, loaded)), (doc["npi"], table)
    finally:
        store.close()


def test_child_rows_round_trip(tmp_path):
    """What the sample lacks: secondary locations (one abroad), other organization names (in the
    npidata row and in othername_pfile) and an endpoint."""
    org = organization(
        5,
        **{
            "Provider Other Organization Name": "ACME WALK-IN",
            "Provider Other Organization Name Type Code": "3",
        },
    )
    person = individual(
        6, other_last="JONES", other_first="JOHN", other_type="1", **{"Is Sole Proprietor": "Y"}
    )
    o, p = org[0], person[0]
    pl = [
        [o, "5 SIDE ST", "UNIT 2", "CHICAGO", "IL", "606011234", "US", "3125550000", "12", "3125550001"],
        [o, "1 RUE DE RIVOLI", "", "PARIS", "", "75001", "FR", "0140000000", "", ""],
    ]
    endpoint = [p, "DIRECT", "Direct Messaging Address", "jsmith@direct.example.org", "Y", "Direct address"]
    endpoint += ["ACME CLINIC LLC", "HIE", "Health Information Exchange (HIE)", "", "OTHER", "Other", "CCD"]
    endpoint += ["1 HOSPITAL DRIVE", "", "BOSTON", "MA", "US", "02114"]
    bundle = write_bundle(
        tmp_path / "b", [org, person], pl=pl, othername=[[o, "ACME URGENT CARE", "5"]], endpoint=[endpoint]
    )
    url = sample_store(tmp_path / "store.db", bundle)
    store = open_store(url, read_only=True)
    try:
        docs = get_providers(store, [o, p])
    finally:
        store.close()
    for doc in docs:
        back, _ = round_trip(doc)
        expected = comparable(doc)
        for loc in expected["practiceLocations"]:
            # CMS does not publish a location's phone extension: it cannot come back.
            loc["phoneExtension"] = None
        assert comparable(back) == expected, doc["npi"]
    assert [len(d["practiceLocations"]) for d in docs] == [3, 1]
    assert [len(d["otherNames"]) for d in docs] == [2, 1]
    assert [len(d["endpoints"]) for d in docs] == [0, 1]
    assert docs[1]["soleProprietor"] is True  # sole proprietor does round-trip (CMS publishes it)


def test_name_affixes_keep_the_file_case(sample_docs):
    """A provider fetched from the upstream must be stored as the file row would be: the file has
    name prefixes and suffixes in upper case ("DR.", "JR."), the registry prints "Dr.", "Jr."."""
    wrong = []
    for doc in sample_docs:
        back, _ = round_trip(doc)
        people = [
            ("name", doc["name"], back["name"]),
            ("authorizedOfficial", doc["authorizedOfficial"], back["authorizedOfficial"]),
        ]
        people += [("otherName", a, b) for a, b in zip(doc["otherNames"], back["otherNames"], strict=True)]
        for where, ours, theirs in people:
            for k in AFFIX_KEYS:
                if ours and ours.get(k) != theirs.get(k):
                    wrong.append((doc["npi"], where, k, ours[k], theirs[k]))
    assert wrong == []


def test_taxonomy_group_is_stored_in_the_file_format(sample_docs):
    """The registry prints a group as "193400000X - Single Specialty Group"; the file as
    "193400000X SINGLE SPECIALTY GROUP". Stored back, the description must not start with "- "."""
    groups = []
    for doc in sample_docs:
        back, _ = round_trip(doc)
        for ours, theirs in zip(doc["taxonomies"], back["taxonomies"], strict=True):
            if ours["group"]:
                groups.append((doc["npi"], ours["group"], theirs["group"]))
    assert len(groups) == 5
    for number, ours, theirs in groups:
        assert theirs["code"] == ours["code"], number
        if ours["description"] in ("SINGLE SPECIALTY GROUP", "MULTI-SPECIALTY GROUP"):  # the canonical texts
            assert theirs["description"] == ours["description"], number
