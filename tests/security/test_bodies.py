"""Issue 14 item 1: bodies are read only after the key is checked, and never past a route's cap.

Each request goes to a real server on loopback over a raw socket, so the test controls how much of
the body is sent: a request announcing 1 GiB gets its answer after a few KiB have been sent, which
proves the server answered without reading (or waiting for) the rest.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from typing import NamedTuple

import httpx
import orjson
import pytest

from npistack.api import create_app
from npistack.api.body import BULK_MAX_BYTES, MATCH_MAX_BYTES, VERIFY_BULK_MAX_BYTES, VERIFY_MAX_BYTES
from tests.api_support import app_server, make_key, sample_store, settings

GIB = 1 << 30
ROUTES = {  # route -> its cap
    "/api/v1/npi/bulk": BULK_MAX_BYTES,
    "/api/v1/match": MATCH_MAX_BYTES,
    "/api/v1/verify": VERIFY_MAX_BYTES,
    "/api/v1/verify/bulk": VERIFY_BULK_MAX_BYTES,
}


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client had sent when the answer began


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = b"x" * size
    while total > 0:
        yield block[: min(size, total)]
        total -= size


def post_raw(
    base: str,
    path: str,
    *,
    key: str | None = None,
    declared: int | None = None,
    offer: int = 0,
    chunked: bool = False,
) -> Answer:
    """POST ``offer`` bytes of body (stopping as soon as the server answers): with ``declared`` as
    Content-Length, or chunked. The answer is read to the end of its body."""
    host, port = base.removeprefix("http://").split(":")
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    if key:
        head.append(f"Authorization: Bearer {key}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
    elif declared is not None:
        head.append(f"Content-Length: {declared}")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for chunk in _chunks(offer):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:  # the answer has begun: stop sending
                break
            data = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        raw = b""
        deadline = time.monotonic() + 30  # a hang guard only
        while b"\r\n\r\n" not in raw and time.monotonic() < deadline:
            got = sock.recv(65536)
            if not got:
                break
            raw += got
        head_raw, _, body = raw.partition(b"\r\n\r\n")
        lines = head_raw.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length and time.monotonic() < deadline:
            got = sock.recv(65536)
            if not got:
                break
            body += got
        return Answer(int(lines[0].split()[1]), headers, body, sent)
    finally:
        sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A real server over the sample store: its base URL, a client key and an admin key."""
    url = sample_store(tmp_path_factory.mktemp("bodies") / "store.db")
    key, admin = make_key(url), make_key(url, admin=True)
    with app_server(create_app(settings(url, api_anonymous_per_minute=0))) as base:
        yield base, key, admin


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_a_keyless_request_announcing_1_gib_gets_its_401_after_a_few_kib(
    server: tuple[str, str, str], path: str
) -> None:
    base, _, _ = server
    started = time.monotonic()
    ans = post_raw(base, path, declared=GIB, offer=64 * 1024 * 1024)
    assert ans.status == 401, ans.body
    assert orjson.loads(ans.body)["error"]["code"] == "invalid_api_key"
    # The answer began before 4 MiB of the 64 MiB offered were sent (socket buffers hold a few):
    # the server never waited for the body.
    assert ans.sent < 4 * 1024 * 1024, ans.sent
    assert time.monotonic() - started < 10  # a hang guard; the answer takes milliseconds


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_a_keyless_chunked_body_gets_its_401_without_being_read(
    server: tuple[str, str, str], path: str
) -> None:
    base, _, _ = server
    ans = post_raw(base, path, chunked=True, offer=64 * 1024 * 1024)
    assert ans.status == 401
    assert ans.sent < 4 * 1024 * 1024, ans.sent


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_a_declared_length_past_the_cap_is_413_before_a_byte_is_sent(
    server: tuple[str, str, str], path: str
) -> None:
    base, key, _ = server
    ans = post_raw(base, path, key=key, declared=ROUTES[path] + 1, offer=0)
    assert ans.status == 413, ans.body
    body = orjson.loads(ans.body)
    assert body["error"]["code"] == "payload_too_large"
    assert f"{ROUTES[path]:,} bytes" in body["error"]["message"]
    assert body["meta"]["requestId"]
    assert ans.headers["connection"] == "close"


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_a_chunked_body_is_cut_off_with_413_once_past_the_cap(
    server: tuple[str, str, str], path: str
) -> None:
    base, key, _ = server
    cap = ROUTES[path]
    offer = cap + 48 * 1024 * 1024
    ans = post_raw(base, path, key=key, chunked=True, offer=offer)
    assert ans.status == 413, ans.body
    assert orjson.loads(ans.body)["error"]["code"] == "payload_too_large"
    # The server stopped reading soon after the cap: far from all of the body was sent.
    assert ans.sent < cap + 8 * 1024 * 1024, (ans.sent, cap)


def test_refused_bodies_cost_no_credits(server: tuple[str, str, str]) -> None:
    base, key, admin = server

    def credits() -> int:
        r = httpx.get(f"{base}/admin/v1/usage", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        assert r.status_code == 200, r.text
        return sum(row["credits"] for row in r.json()["data"])

    before = credits()
    for path in ROUTES:
        assert post_raw(base, path, key=key, declared=ROUTES[path] + 1).status == 413
        assert post_raw(base, path, key=key, declared=3, offer=3).status == 400  # "xxx" is not JSON
    assert credits() == before
