"""Issue 14 items 4, 12 and 15: the upstream registry client cannot be used to amplify traffic, is
never flooded by one request, and neither follows redirects to other hosts nor reads huge answers.

The upstream is an ``httpx.MockTransport`` that counts the requests it gets.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from npistack.services.upstream import TokenBucket, Upstream, UpstreamBusy, UpstreamError
from tests.api_support import ABSENT_NPI, bearer, make_key, sample_store

UPSTREAM = "http://registry.test/api/"
NPI_CHECK = [  # NPIs with a valid check digit, in no store
    "1234567893",
    "1000000004",
    "1000000012",
    "1000000020",
    "1000000038",
    "1000000046",
]


def not_found(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"result_count": 0, "results": []})


class Counting:
    def __init__(self, answer: Any = not_found) -> None:
        self.calls: list[str] = []
        self.answer = answer
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.calls.append(str(request.url))
        result: httpx.Response = self.answer(request)
        return result


@pytest.fixture
def store(tmp_path: Path) -> str:
    return sample_store(tmp_path / "store.db")


def _client(url: str, transport: httpx.AsyncBaseTransport, **kw: Any) -> Any:
    from fastapi.testclient import TestClient

    from npistack.api import create_app
    from tests.api_support import settings

    app = create_app(settings(url, offline=False, upstream_url=UPSTREAM, **kw), upstream_transport=transport)
    return TestClient(app, raise_server_exceptions=False)


def test_an_npi_the_upstream_lacks_is_asked_once_then_remembered(store: str) -> None:
    """Item 12: 300 lookups of unknown NPIs made 300 upstream GETs, again and again, for free."""
    counting = Counting()
    key = make_key(store)
    with _client(store, httpx.MockTransport(counting)) as c:
        for _ in range(5):
            r = c.get(f"/api/v1/npi/{ABSENT_NPI}", headers=bearer(key))
            assert r.status_code == 404, r.text
            assert r.json()["error"]["code"] == "npi_not_found"
        bulk = c.post(
            "/api/v1/npi/bulk", headers=bearer(key), json={"npis": [ABSENT_NPI] * 3 + NPI_CHECK[1:]}
        )
        assert bulk.status_code == 200, bulk.text
        bulk = c.post("/api/v1/npi/bulk", headers=bearer(key), json={"npis": NPI_CHECK})
        assert bulk.status_code == 200, bulk.text
    assert sorted(counting.calls) == sorted(f"{UPSTREAM}?version=2.1&number={n}" for n in NPI_CHECK), (
        "each unknown NPI is asked once"
    )


def test_the_negative_cache_forgets_after_its_ttl(store: str) -> None:
    counting = Counting()
    key = make_key(store)
    with _client(store, httpx.MockTransport(counting), upstream_not_found_ttl_s=0) as c:
        for _ in range(3):
            assert c.get(f"/api/v1/npi/{ABSENT_NPI}", headers=bearer(key)).status_code == 404
    assert len(counting.calls) == 3  # 0 turns it off: asked every time


def test_a_bulk_of_unknown_npis_never_has_more_upstream_requests_in_flight_than_allowed() -> None:
    """Item 4: 1,000 NPIs fired 1,000 requests at once into a 100-connection pool."""

    async def scenario() -> tuple[int, int, list[str]]:
        in_flight = peak = 0
        release = asyncio.Event()
        arrived = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight == 3:
                arrived.set()
            await release.wait()
            in_flight -= 1
            return not_found(request)

        up = Upstream(
            UPSTREAM,
            timeout_s=30,
            transport=httpx.MockTransport(handler),
            concurrency=3,
            rate_per_s=0,
            queue_s=30,
        )
        try:
            tasks = [asyncio.create_task(up.fetch(f"{1000000000 + i}")) for i in range(60)]
            await asyncio.wait_for(arrived.wait(), 10)
            for _ in range(20):  # let every other task try its luck
                await asyncio.sleep(0)
            blocked_peak = peak
            release.set()
            results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        finally:
            await up.aclose()
        return blocked_peak, peak, [type(r).__name__ for r in results if r is not None]

    blocked_peak, peak, errors = asyncio.run(scenario())
    assert blocked_peak == 3 and peak == 3, (blocked_peak, peak)
    assert errors == []


def test_an_npi_that_gets_no_upstream_slot_in_time_fails_fast_as_upstream_error(store: str) -> None:
    """Item 12: a request whose upstream budget is spent answers those items at once (not queued)."""
    gate = threading.Event()
    calls: list[str] = []

    async def stuck(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        while not gate.is_set():  # the one slot stays busy until its upstream timeout
            await asyncio.sleep(0.01)
        return not_found(request)

    key = make_key(store)
    try:
        with _client(
            store,
            httpx.MockTransport(stuck),
            upstream_concurrency=1,
            upstream_queue_s=0.05,
            upstream_timeout_s=0.5,
            api_request_timeout_s=60,
        ) as c:
            body = {"npis": NPI_CHECK}
            r = c.post("/api/v1/npi/bulk", headers=bearer(key), json=body)
            gate.set()
            assert r.status_code == 200, r.text
            statuses = [item["status"] for item in r.json()["data"]]
            # One NPI got the slot (and timed out); the others had no slot within 0.05 s and were
            # answered without reaching the upstream at all.
            assert statuses == ["upstream_error"] * len(NPI_CHECK), statuses
            assert len(calls) == 1, calls
    finally:
        gate.set()


def test_the_upstream_rate_is_a_token_bucket_that_refuses_rather_than_queues_forever() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_s=2, burst=2, clock=lambda: now[0])
    assert bucket.reserve(0) == 0 and bucket.reserve(0) == 0  # the burst
    assert bucket.reserve(0.1) is None  # the next token comes in 0.5 s
    assert bucket.reserve(1.0) == pytest.approx(0.5)  # reserved ahead
    assert bucket.reserve(0.9) is None  # the one after in 1.0 s
    now[0] = 10.0
    assert bucket.reserve(0) == 0


def test_the_rate_limit_makes_surplus_lookups_upstream_errors_without_asking() -> None:
    counting = Counting()

    async def scenario() -> list[str]:
        up = Upstream(
            UPSTREAM, timeout_s=5, transport=httpx.MockTransport(counting), rate_per_s=2, queue_s=0.01
        )
        try:
            results = await asyncio.gather(*(up.fetch(n) for n in NPI_CHECK), return_exceptions=True)
        finally:
            await up.aclose()
        return [type(r).__name__ for r in results]

    kinds = asyncio.run(scenario())
    assert kinds.count("NoneType") == 2 and kinds.count("UpstreamBusy") == 4, kinds
    assert len(counting.calls) == 2


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:5432/secret", "https://registry.test/api/", "http://registry.test:8080/api/"],
)
def test_a_redirect_to_another_origin_is_not_followed(location: str) -> None:
    """Item 15: a 302 led the upstream client to a loopback path."""
    counting = Counting(lambda r: httpx.Response(302, headers={"Location": location}))

    async def scenario() -> str:
        up = Upstream(UPSTREAM, timeout_s=5, transport=httpx.MockTransport(counting))
        try:
            with pytest.raises(UpstreamError) as info:
                await up.fetch(ABSENT_NPI)
            return str(info.value)
        finally:
            await up.aclose()

    assert "another host" in asyncio.run(scenario())
    assert len(counting.calls) == 1


def test_a_same_origin_redirect_is_followed() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/":
            return httpx.Response(301, headers={"Location": "/v2/api/?version=2.1&number=" + ABSENT_NPI})
        return httpx.Response(200, json={"result_count": 1, "results": [{"number": ABSENT_NPI}]})

    counting = Counting(answer)

    async def scenario() -> Any:
        up = Upstream(UPSTREAM, timeout_s=5, transport=httpx.MockTransport(counting))
        try:
            return await up.fetch(ABSENT_NPI)
        finally:
            await up.aclose()

    assert asyncio.run(scenario()) == {"number": ABSENT_NPI}
    assert [c.split("?")[0] for c in counting.calls] == [UPSTREAM, "http://registry.test/v2/api/"]


@pytest.mark.parametrize("declared", [True, False])
def test_an_upstream_answer_past_the_size_cap_is_not_read_and_is_a_failure(declared: bool) -> None:
    """Item 15: a 300 MB upstream answer took the server from 80 MB to 1 GB (here 64 KiB over a 4 KiB cap)."""
    sent = [0]
    body = orjson.dumps({"result_count": 0, "results": [], "pad": "x" * 65536})

    async def chunks() -> Any:
        for i in range(0, len(body), 1024):
            sent[0] += 1024
            yield body[i : i + 1024]

    def answer(_request: httpx.Request) -> httpx.Response:
        headers = {"Content-Length": str(len(body))} if declared else {}
        return httpx.Response(200, headers=headers, content=chunks())

    async def scenario() -> str:
        up = Upstream(UPSTREAM, timeout_s=5, transport=httpx.MockTransport(answer), max_response_bytes=4096)
        try:
            with pytest.raises(UpstreamError) as info:
                await up.fetch(ABSENT_NPI)
            return str(info.value)
        finally:
            await up.aclose()

    message = asyncio.run(scenario())
    assert "larger than 4,096 bytes" in message
    assert sent[0] <= 8192, "the client stopped reading soon after the cap"


def test_upstream_busy_is_an_upstream_error() -> None:
    assert issubclass(UpstreamBusy, UpstreamError)
