"""The outermost layer of the app, around Starlette's own middleware (a pure ASGI wrapper).

For every HTTP request it:

- gives a request id (``X-Request-Id``) and the security headers: ``X-Content-Type-Options: nosniff``
  on every response, ``Cache-Control: no-store`` on every ``/admin/v1`` response (new keys and webhook
  secrets travel there) and on any response whose route sets it;
- throttles traffic without a valid key per client address (``ClientThrottle``): each 401 and each
  request to the keyless CMS endpoint costs a token; an address out of tokens gets 429
  ``client_rate_limited`` with ``Retry-After`` (a request carrying a valid key still passes);
- enforces the request deadline: a request whose response has not started within
  ``NPISTACK_API_REQUEST_TIMEOUT_S`` gets 503 ``deadline_exceeded`` (its work is cancelled);
- keeps a failed request to one log record: the unhandled-error handler logs the traceback and
  answers 500; Starlette then re-raises to the server, which would log it a second time, so the
  re-raised error stops here;
- counts the request in the metrics and writes one JSON access-log line (with the client address).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from npistack.api.errors import CONTRACT
from npistack.api.metrics import Metrics

log = logging.getLogger("npistack.api")

CMS_PATHS = ("/api/", "/api")
NO_STORE_PREFIX = "/admin/v1"


class ClientThrottle:
    """A token bucket per client address, in this process: ``per_minute`` tokens, refilled evenly.

    Addresses are remembered in least-recently-used order, at most ``max_clients`` of them (a
    forgotten address starts again with a full bucket).
    """

    def __init__(
        self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_clients: int = 50_000
    ) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)

    def _tokens(self, client: str) -> float:
        now = self.clock()
        tokens, at = self._buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.refill)

    def retry_after(self, client: str) -> int | None:
        """None when ``client`` has a token left, else the seconds until it has one."""
        tokens = self._tokens(client)
        if tokens >= 1.0:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.refill))

    def charge(self, client: str) -> None:
        tokens = max(0.0, self._tokens(client) - 1.0)
        self._buckets[client] = (tokens, self.clock())
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers", ()):
        if k == name:
            return bytes(v).decode("latin-1")
    return ""


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        access_log: bool,
        deadline_s: float,
        throttle: ClientThrottle | None,
        cms_keyless: bool,
        key_is_valid: Callable[[Scope, str], bool],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.deadline_s = deadline_s
        self.throttle = throttle
        self.cms_keyless = cms_keyless
        self.key_is_valid = key_is_valid
        self.pid = os.getpid()
        self._abandoned: set[asyncio.Task[None]] = set()  # cancelled past their deadline, still ending

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = "req_" + secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        path: str = scope["path"]
        client = client_address(scope)
        t0 = time.perf_counter()
        status = 500
        no_store = path.startswith(NO_STORE_PREFIX)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                names = {bytes(k).lower() for k, _ in headers}
                if b"x-request-id" not in names:
                    headers.append((b"x-request-id", rid.encode()))
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if no_store and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
            await send(message)

        try:
            anonymous = self.cms_keyless and path in CMS_PATHS
            refused = self._throttled(scope, client, anonymous)
            if refused is not None:
                await self._refuse(send_with_headers, rid, anonymous, refused)
                return
            if anonymous and self.throttle is not None:
                self.throttle.charge(client)
            await self._call(scope, receive, send_with_headers, rid)
        finally:
            elapsed = time.perf_counter() - t0
            if status == 401 and self.throttle is not None:
                self.throttle.charge(client)
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, elapsed)
            if self.access_log:
                line = {
                    "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "requestId": rid,
                    "client": client,
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "keyId": scope["state"].get("key_id"),
                    "pid": self.pid,
                }
                sys.stderr.write(orjson.dumps(line).decode() + "\n")

    def _throttled(self, scope: Scope, client: str, anonymous: bool) -> int | None:
        """Seconds to wait when ``client`` is out of anonymous tokens and the request has no valid key."""
        if self.throttle is None:
            return None
        wait = self.throttle.retry_after(client)
        if wait is None:
            return None
        if not anonymous:
            scheme, _, token = _header(scope, b"authorization").partition(" ")
            if scheme.lower() == "bearer" and token.strip() and self.key_is_valid(scope, token.strip()):
                return None
        return wait

    async def _refuse(self, send: Send, rid: str, cms: bool, retry_after: int) -> None:
        status, message = CONTRACT["client_rate_limited"]
        if cms:  # the CMS endpoint's own error shape
            body: dict[str, Any] = {"Errors": [{"description": message, "field": "client", "number": "429"}]}
        else:
            body = {"error": {"code": "client_rate_limited", "message": message}, "meta": {"requestId": rid}}
        await _send_json(send, status, body, {"retry-after": str(retry_after)})

    async def _call(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = False
        late = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if late:  # the deadline has answered; what the request sends now is dropped
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def run() -> None:
            try:
                await self.app(scope, receive, guarded)
            except Exception:
                if late:
                    return
                if started:
                    # The unhandled-error handler logged it and answered 500; Starlette re-raised it
                    # for the server, which would log the same traceback again.
                    return
                log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], rid)
                body = {
                    "error": {"code": "internal_error", "message": CONTRACT["internal_error"][1]},
                    "meta": {"requestId": rid},
                }
                await _send_json(send, 500, body)

        if self.deadline_s <= 0:
            await run()
            return
        task = asyncio.get_running_loop().create_task(run())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.deadline_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done or started:
            await task  # a response under way runs to its end
            return
        late = True
        task.cancel()  # work in a thread finishes there, its answer is dropped
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        status, _message = CONTRACT["deadline_exceeded"]
        body = {
            "error": {
                "code": "deadline_exceeded",
                "message": (
                    f"The request took longer than the server allows ({self.deadline_s:g} s, "
                    "NPISTACK_API_REQUEST_TIMEOUT_S). Retry later or ask for less."
                ),
            },
            "meta": {"requestId": rid},
        }
        log.warning("request %s %s (%s) passed its deadline of %g s", scope["method"], scope["path"], rid,
                    self.deadline_s)  # fmt: skip
        await _send_json(send, status, body, {"retry-after": "1"})


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    content = orjson.dumps(body)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})
