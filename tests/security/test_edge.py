"""Issue 14 items 4 (deadline), 16, 17 and 22: what the API's edge does for every request.

In-process clients for the app's behaviour; real servers on loopback where it is about the server
(the header-read timeout, one log record for a 500).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi.testclient import TestClient

from npistack.api import create_app
from npistack.api.server import GuardedHttpToolsProtocol
from tests.api_support import (
    ABSENT_NPI,
    ACTIVE_NPI,
    _wait_healthy,
    bearer,
    client,
    free_port,
    make_key,
    sample_store,
    settings,
)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return sample_store(tmp_path / "store.db")


# -- item 4: a deadline for every request -------------------------------------------------------


def test_a_request_past_its_deadline_gets_503_deadline_exceeded(store: str) -> None:
    release = asyncio.Event()

    async def never(_request: httpx.Request) -> httpx.Response:
        await release.wait()  # an upstream that does not answer (until the app shuts down)
        raise httpx.ConnectError("gone")

    key = make_key(store)
    app = create_app(
        settings(
            store,
            offline=False,
            upstream_url="http://registry.test/api/",
            upstream_timeout_s=60,
            upstream_queue_s=60,
            api_request_timeout_s=0.3,
        ),  # fmt: skip
        upstream_transport=httpx.MockTransport(never),
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get(f"/api/v1/npi/{ABSENT_NPI}", headers=bearer(key))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "deadline_exceeded"
        assert r.json()["meta"]["requestId"] == r.headers["x-request-id"]
        assert "NPISTACK_API_REQUEST_TIMEOUT_S" in r.json()["error"]["message"]
        assert c.get("/healthz").status_code == 200  # the server goes on
        c.portal.call(release.set)  # type: ignore[union-attr]


# -- item 16: unauthenticated traffic is throttled per client address ---------------------------


def test_401s_from_one_address_are_throttled_with_429_and_retry_after(store: str) -> None:
    key = make_key(store)
    with client(store, api_anonymous_per_minute=5) as c:
        codes = [c.get(f"/api/v1/npi/{ACTIVE_NPI}").status_code for _ in range(8)]
        assert codes == [401] * 5 + [429] * 3
        r = c.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=bearer("npk_garbage"))
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "client_rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        # A request with a valid key from the same address still passes.
        assert c.get(f"/api/v1/npi/{ACTIVE_NPI}", headers=bearer(key)).status_code == 200


def test_the_keyless_cms_endpoint_is_throttled_per_address(store: str) -> None:
    with client(store, api_anonymous_per_minute=3) as c:
        codes = [
            c.get("/api/", params={"version": "2.1", "number": ACTIVE_NPI}).status_code for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        r = c.get("/api/", params={"version": "2.1", "number": ACTIVE_NPI})
        assert r.json()["Errors"][0]["number"] == "429" and "retry-after" in r.headers


def test_the_anonymous_limit_can_be_turned_off(store: str) -> None:
    with client(store, api_anonymous_per_minute=0) as c:
        assert {c.get(f"/api/v1/npi/{ACTIVE_NPI}").status_code for _ in range(20)} == {401}


@contextlib.contextmanager
def guarded_server(app: Any, **limits: Any) -> Iterator[tuple[str, int]]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        http=GuardedHttpToolsProtocol.configured(**limits),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_healthy(f"http://127.0.0.1:{port}", thread.is_alive)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(15)  # a hang guard only: the server closes long before
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return data + b"<still open>"
        if not chunk:
            return data
        data += chunk


def test_half_sent_requests_are_closed_with_408_after_the_header_timeout(store: str) -> None:
    """1,100 half-sent requests stayed open 30 s: here 20 half-sent and 5 silent connections."""
    app = create_app(settings(store))
    with guarded_server(app, header_timeout_s=0.5, max_header_bytes=8192) as addr:
        half = [socket.create_connection(addr) for _ in range(20)]
        silent = [socket.create_connection(addr) for _ in range(5)]
        try:
            for s in half:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            # The server still answers others meanwhile.
            assert httpx.get(f"http://{addr[0]}:{addr[1]}/healthz", timeout=10).status_code == 200
            for s in half:
                assert _read_until_closed(s).startswith(b"HTTP/1.1 408 ")
            for s in silent:
                assert _read_until_closed(s).startswith(b"HTTP/1.1 408 ")
        finally:
            for s in half + silent:
                s.close()


def test_a_keep_alive_connection_that_half_sends_its_second_request_is_closed(store: str) -> None:
    app = create_app(settings(store))
    with guarded_server(app, header_timeout_s=0.5, max_header_bytes=8192) as addr:
        with socket.create_connection(addr) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n")
            data = _read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in data


def test_oversized_headers_get_431(store: str) -> None:
    app = create_app(settings(store))
    with (
        guarded_server(app, header_timeout_s=5, max_header_bytes=4096) as addr,
        socket.create_connection(addr) as s,
    ):
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000)
        assert _read_until_closed(s).startswith(b"HTTP/1.1 431 ")


# -- item 17: headers, readyz, metrics, access log, Allow, the document ---------------------------


def test_every_response_has_nosniff_and_admin_responses_are_not_stored(store: str) -> None:
    admin = make_key(store, admin=True)
    with client(store) as c:
        for r in (
            c.get("/healthz"),
            c.get("/nope"),
            c.get(f"/api/v1/npi/{ACTIVE_NPI}"),
            c.get("/openapi.json"),
        ):
            assert r.headers["x-content-type-options"] == "nosniff", r.url
        created = c.post("/admin/v1/keys", headers=bearer(admin), json={"name": "new", "plan": "free"})
        assert created.status_code == 201 and created.json()["data"]["key"].startswith("npk_")
        assert created.headers["cache-control"] == "no-store"
        hook = c.post("/admin/v1/webhooks", headers=bearer(admin), json={"url": "https://example.com/h"})
        assert hook.headers["cache-control"] == "no-store", hook.text
        assert c.get("/admin/v1/keys").headers["cache-control"] == "no-store"  # even a 401


def test_readyz_does_not_show_the_upstream_url(store: str) -> None:
    secret_url = "https://user:pw@registry.internal.example/api/"
    with client(store, offline=False, upstream_url=secret_url) as c:
        r = c.get("/readyz")
        assert r.status_code == 200, r.text
        assert "registry.internal" not in r.text and r.json()["checks"]["upstream"] == "configured"


def test_metrics_can_be_protected_by_a_token_or_an_admin_key(store: str) -> None:
    admin, client_key = make_key(store, admin=True), make_key(store)
    with client(store, metrics_token="s3cret-token") as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=bearer("wrong")).status_code == 401
        assert c.get("/metrics", headers=bearer(client_key)).status_code == 401
        ok = c.get("/metrics", headers=bearer("s3cret-token"))
        assert ok.status_code == 200 and "npistack_http_requests_total" in ok.text
        assert c.get("/metrics", headers=bearer(admin)).status_code == 200
    with client(store) as c:
        assert c.get("/metrics").status_code == 200  # unset: open, as before


def test_the_access_log_line_has_the_client_address(store: str, capfd: pytest.CaptureFixture[str]) -> None:
    with client(store, access_log=True) as c:
        c.get("/healthz")
    lines = [orjson.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    assert lines and lines[-1]["client"] == "testclient" and lines[-1]["path"] == "/healthz"


def test_a_405_allow_header_lists_every_method_of_the_path(store: str) -> None:
    admin = make_key(store, admin=True)
    with client(store) as c:
        r = c.put("/admin/v1/webhooks/1", headers=bearer(admin))
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}


def test_the_openapi_document_is_as_strict_as_the_validation(store: str) -> None:
    with client(store) as c:
        doc = c.get("/openapi.json").json()
    npi = [p for p in doc["paths"]["/api/v1/npi/{npi}"]["get"]["parameters"] if p["name"] == "npi"][0]
    assert npi["schema"]["pattern"] == "^[0-9]{10}$"
    search = {p["name"]: p["schema"] for p in doc["paths"]["/api/v1/providers/search"]["get"]["parameters"]}
    assert search["state"]["pattern"] == "^[A-Za-z]{2}$"
    assert search["limit"] == {"type": "integer", "minimum": 1, "maximum": 50, "title": "Limit"}
    assert search["last_name"]["maxLength"] == 100 and search["city"]["maxLength"] == 64
    assert search["status"]["enum"] == ["active", "deactivated", "any"]
    bulk = doc["paths"]["/api/v1/npi/bulk"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert bulk["properties"]["npis"]["items"]["pattern"] == "^[0-9]{10}$"
    assert "503" in doc["paths"]["/api/v1/npi/{npi}"]["get"]["responses"]


# -- item 22: one log record for a 500; readyz checks the store -----------------------------------


def test_a_500_is_one_log_record_with_one_traceback(store: str) -> None:
    from fastapi import APIRouter

    app = create_app(settings(store))
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("kaboom")

    app.include_router(boom)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(n) for n in ("", "uvicorn")]  # the others propagate to one of these
    for lg in loggers:
        lg.addHandler(handler)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", thread.is_alive)
        r = httpx.get(f"http://127.0.0.1:{port}/boom", timeout=10)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert r.headers["x-request-id"] == r.json()["meta"]["requestId"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for lg in loggers:
            lg.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("Traceback (most recent call last)") == 1, text
    assert text.count("kaboom") == 2  # the raise line and the exception line of the one traceback
    assert "Exception in ASGI application" not in text


def test_readyz_is_503_when_the_store_file_is_corrupted(store: str) -> None:
    path = Path(store.removeprefix("sqlite:///"))
    with client(store, readyz_check_s=0) as c:
        assert c.get("/readyz").status_code == 200
        size = path.stat().st_size
        with open(path, "r+b") as f:  # garbage over everything past the first pages
            f.seek(4096 * 2)
            f.write(os.urandom(size - 4096 * 2))
        r = c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "not ready" and r.json()["checks"]["store"].startswith("error")
