"""Issue 14 item 5: webhook URLs cannot reach inside the network, and nothing a receiver answers is
read back.

Every address of the issue is refused when a subscription is created or changed (admin API: a 400
``invalid_webhook`` in the error envelope; CLI: one line, exit 1) and again before every attempt, even
when DNS answers differently between the check and the send (the resolver is a seam here). What was
checked is what is connected to (the address is pinned). ``NPISTACK_WEBHOOK_ALLOW_HOSTS`` lets chosen
hosts through. A delivery keeps only a status and npistack's own reason, never the receiver's bytes.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from npistack import outbound
from npistack.services import webhooks as wh
from npistack.settings import Settings
from npistack.storage import open_store
from npistack.storage import webhooks as stored
from npistack.worker import DeliveryWorker
from tests.api_support import bearer, client, make_key
from tests.test_api_errors import assert_error
from tests.webhook_support import add_changes, receiver

SECRET = "whsec_ssrf-test-secret-0123456789"
PUBLIC = "93.184.215.14"  # a globally routable address (example.com's)

# The list, and their relatives.
REFUSED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::1]/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),  # 127.0.0.1 as one number
    ("http://0/hook", "unspecified"),
    ("http://localhost:5432/", "loopback"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://user:pass@example.com/hook", "user name or password"),
    ("https://127.1/hook", "loopback"),
    ("http://0x7f000001/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://10.0.0.8/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://100.64.0.1/hook", "CGNAT"),
    ("http://[fd00:ec2::254]/latest/", "metadata"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://api.localhost/hook", "loopback"),
]


@pytest.fixture(autouse=True)
def no_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NPISTACK_WEBHOOK_ALLOW_HOSTS", raising=False)


class FlipResolver:
    """DNS that answers ``first`` to the first lookup of each name and ``later`` after: a rebinding."""

    def __init__(self, first: Sequence[str], later: Sequence[str]) -> None:
        self.first, self.later = list(first), list(later)
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self.lock:
            seen = host in self.calls
            self.calls.append(host)
        return self.later if seen else self.first


def worker_settings(url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "webhook_max_attempts": 1,
        "webhook_timeout_s": 3.0,
        "webhook_breaker_failures": 1000,
    }
    values.update(kw)
    return Settings(**values)


def unguarded_subscription(url: str, target: str) -> int:
    """A subscription stored without the guard (made before it existed, or while DNS said otherwise)."""
    store = open_store(url)
    try:
        return stored.create_subscription(store, url=target, secret=SECRET).id
    finally:
        store.close()


def deliveries(url: str) -> list[wh.Delivery]:
    store = open_store(url)
    try:
        return wh.list_deliveries(store, limit=1000)
    finally:
        store.close()


@pytest.fixture
def api_store(tmp_path: Path) -> str:
    """A fresh SQLite store (the API's and the worker's)."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    open_store(url).close()
    return url


sqlite_url = api_store


# -- at creation and update ---------------------------------------------------------------------


def test_the_admin_api_refuses_every_internal_url_at_create_and_update(api_store: str) -> None:
    h = bearer(make_key(api_store, admin=True))
    with client(api_store) as api:
        for url, why in REFUSED:
            r = api.post("/admin/v1/webhooks", headers=h, json={"url": url})
            body = assert_error(r, 400, "invalid_webhook")
            message = body["error"]["message"]
            assert why in message and "\n" not in message, (url, message)
        assert api.get("/admin/v1/webhooks", headers=h).json()["data"] == [], "nothing was stored"
        ok = api.post("/admin/v1/webhooks", headers=h, json={"url": f"https://{PUBLIC}/hook"})
        assert ok.status_code == 201, ok.text
        sid = ok.json()["data"]["id"]
        for url, why in REFUSED[:8]:
            r = api.patch(f"/admin/v1/webhooks/{sid}", headers=h, json={"url": url})
            assert why in assert_error(r, 400, "invalid_webhook")["error"]["message"], url
        assert (
            api.get(f"/admin/v1/webhooks/{sid}", headers=h).json()["data"]["url"] == f"https://{PUBLIC}/hook"
        )


def test_a_name_that_resolves_inside_is_refused_at_create(sqlite_url: str) -> None:
    open_store(sqlite_url).close()
    store = open_store(sqlite_url)
    try:
        for answer in (["10.1.2.3"], [PUBLIC, "127.0.0.1"], ["169.254.169.254"], ["::ffff:10.0.0.1"]):
            policy = outbound.Policy(resolver=lambda host, port, a=answer: a)
            with pytest.raises(wh.WebhookError, match="resolves to"):
                wh.create_subscription(store, url="https://hooks.customer.test/npi", policy=policy)
        public = outbound.Policy(resolver=lambda host, port: [PUBLIC])
        sub = wh.create_subscription(store, url="https://hooks.customer.test/npi", policy=public)
        with pytest.raises(wh.WebhookError, match="private"):
            wh.update_subscription(
                store,
                sub.id,
                url="https://other.test/",
                policy=outbound.Policy(resolver=lambda h, p: ["10.0.0.1"]),
            )
    finally:
        store.close()


def test_the_cli_refuses_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    open_store(url).close()
    code = "from npistack.cli import main; main()"
    env = {"NPISTACK_DATABASE_URL": url, "COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code, "webhooks", "create", "http://169.254.169.254/latest/meta-data/"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "metadata" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


# -- at send time, DNS rebinding, pinning -------------------------------------------------------


def test_every_internal_url_is_refused_at_send_time(sqlite_url: str) -> None:
    """Subscriptions that got past creation (stored unguarded) are never sent to: the transport
    sees no request, each delivery fails with the reason."""
    for url, _ in REFUSED:
        unguarded_subscription(sqlite_url, url)
    add_changes(sqlite_url, 1)
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200))
    resolver = FlipResolver(["127.0.0.1"], ["127.0.0.1"])  # localhost, metadata.google.internal...
    with DeliveryWorker(
        sqlite_url, worker_settings(sqlite_url), transport=transport, resolver=resolver, concurrency=8
    ) as w:
        assert w.drain() == len(REFUSED)
    assert seen == []
    rows = deliveries(sqlite_url)
    assert len(rows) == len(REFUSED)
    assert all(d.status == "dead" and "address refused" in (d.last_error or "") for d in rows), rows


def test_dns_that_changes_after_the_check_is_refused_at_send(sqlite_url: str) -> None:
    """Created while the name pointed outside; by the send it points at a loopback receiver: the
    receiver gets nothing."""
    with receiver([SECRET]) as rx:
        flip = FlipResolver([PUBLIC], ["127.0.0.1"])
        store = open_store(sqlite_url)
        try:
            wh.create_subscription(
                store,
                url=f"http://rebind.test:{rx.port}/hook",
                secret=SECRET,
                policy=outbound.Policy(resolver=flip),
            )
        finally:
            store.close()
        add_changes(sqlite_url, 2)
        with DeliveryWorker(sqlite_url, worker_settings(sqlite_url), resolver=flip) as w:
            assert w.drain() == 2
        assert rx.hits == []
    assert [d.status for d in deliveries(sqlite_url)] == ["dead", "dead"]
    assert all("127.0.0.1, a loopback address" in (d.last_error or "") for d in deliveries(sqlite_url))


def test_the_checked_address_is_the_one_connected_to(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first lookup says 127.0.0.1 (allowed here); every later one says 10.9.9.9 (refused,
    and nothing listens there). Delivered: so the connection used the address that was checked,
    with the name in the Host header."""
    monkeypatch.setenv("NPISTACK_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    with receiver([SECRET]) as rx:
        unguarded_subscription(sqlite_url, f"http://hooks.pinned.test:{rx.port}/hook")
        add_changes(sqlite_url, 1)
        flip = FlipResolver(["127.0.0.1"], ["10.9.9.9"])
        with DeliveryWorker(sqlite_url, worker_settings(sqlite_url), resolver=flip) as w:
            assert w.drain() == 1
        assert flip.calls == ["hooks.pinned.test"], "one lookup, at the check"
        assert len(rx.hits) == 1 and rx.hits[0].headers["host"] == f"hooks.pinned.test:{rx.port}"
    assert deliveries(sqlite_url)[0].status == "delivered"


def test_the_guarded_transport_checks_connections_it_was_not_told_about() -> None:
    """Without a pin, the transport resolves and checks itself (for callers that did not check)."""
    policy = outbound.Policy(resolver=lambda host, port: ["127.0.0.1"])
    with httpx.Client(transport=outbound.GuardedTransport(policy)) as http:
        with pytest.raises(httpx.ConnectError, match="loopback"):
            http.get("http://sneaky.test:9/")
        with pytest.raises(httpx.ConnectError, match="metadata"):
            http.get("http://169.254.169.254/")


def test_the_allow_list_lets_127_0_0_1_through(api_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    h = bearer(make_key(api_store, admin=True))
    with receiver([SECRET]) as rx:
        with client(api_store, webhook_allow_hosts="127.0.0.1") as api:
            r = api.post("/admin/v1/webhooks", headers=h, json={"url": rx.url, "secret": SECRET})
            assert r.status_code == 201, r.text
            r = api.post("/admin/v1/webhooks", headers=h, json={"url": "http://10.0.0.1/"})
            assert_error(r, 400, "invalid_webhook")  # only what is listed
        add_changes(api_store, 1)
        monkeypatch.setenv("NPISTACK_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
        with DeliveryWorker(api_store, worker_settings(api_store)) as w:
            assert w.drain() == 1
        assert len(rx.hits) == 1 and rx.hits[0].verified
    assert deliveries(api_store)[0].status == "delivered"


def test_allow_list_entries() -> None:
    p = outbound.Policy.from_setting(" 127.0.0.1, 10.0.0.0/8 ,hooks.internal., [::1] ")
    assert outbound.check_url("http://10.2.3.4/", p).literal is not None
    assert outbound.check_url("http://HOOKS.internal/x", p).host == "hooks.internal"
    assert outbound.check_url("http://[::1]:8/", p).port == 8
    with pytest.raises(outbound.Refused, match="private"):
        outbound.check_url("http://192.168.0.1/", p)
    wide = outbound.Policy.from_setting("169.254.0.0/16")
    with pytest.raises(outbound.Refused, match="metadata"):  # only an entry naming it exactly
        outbound.check_url("http://169.254.169.254/", wide)
    assert outbound.check_url("http://169.254.169.254/", outbound.Policy.from_setting("169.254.169.254"))
    with pytest.raises(outbound.OutboundError, match="not an address or CIDR"):
        outbound.Policy.from_setting("10.0.0.0/33")


# -- no read-back -------------------------------------------------------------------------------

LEAK = b"AKIA-SECRET-FROM-INSIDE ami-id: i-0123456789"


@pytest.fixture
def raw_server() -> Iterator[Callable[[bytes], int]]:
    """A TCP server on 127.0.0.1 that reads a request and answers the given bytes, then closes."""
    servers: list[socket.socket] = []

    def start(answer: bytes) -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        servers.append(srv)

        def serve() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(5)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()
        return int(srv.getsockname()[1])

    yield start
    for s in servers:
        s.close()


def test_no_receiver_bytes_are_kept(
    api_store: str, raw_server: Callable[[bytes], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPISTACK_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    answers = {
        "error": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % len(LEAK) + LEAK,
        "redirect": b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: %d\r\n\r\n"
        % len(LEAK)
        + LEAK,
        "garbage": LEAK + b"\r\n\r\n",
        "bad header": b"HTTP/1.1 503 Busy\r\n" + LEAK + b"\r\n\r\n",
    }
    for name, answer in answers.items():
        port = raw_server(answer)
        unguarded_subscription(api_store, f"http://127.0.0.1:{port}/{name.replace(' ', '-')}")
    add_changes(api_store, 1)
    with DeliveryWorker(api_store, worker_settings(api_store)) as w:
        assert w.drain() == len(answers)
    h = bearer(make_key(api_store, admin=True))
    errors: list[str] = []
    with client(api_store) as api:
        for sub in api.get("/admin/v1/webhooks", headers=h).json()["data"]:
            r = api.get(f"/admin/v1/webhooks/{sub['id']}/deliveries", headers=h)
            assert r.status_code == 200 and b"AKIA" not in r.content and b"ami-id" not in r.content, r.text
            errors += [d["lastError"] for d in r.json()["data"]]
    assert sorted(errors) == sorted(
        [
            "HTTP 500",
            "HTTP 302 (redirects are not followed)",
            "connection failed: RemoteProtocolError",
            "connection failed: RemoteProtocolError",
        ]
    ), errors
