"""How ``npistack serve`` runs uvicorn: its options, and an HTTP protocol with a header-read timeout.

uvicorn (0.55) has a keep-alive timeout but none for reading a request's line and headers: a client
that opens a connection and sends half a request holds it open as long as it likes (and one that
sends nothing at all, forever). ``GuardedHttpToolsProtocol`` closes such a connection with
``408 Request Timeout`` once ``NPISTACK_API_HEADER_TIMEOUT_S`` has passed since the connection opened
(or since the request's first byte, for later requests on a keep-alive connection), and answers
``431`` when the request line and headers pass ``NPISTACK_API_MAX_HEADER_BYTES``.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from npistack.settings import Settings, get_settings

PROTOCOL = "npistack.api.server:GuardedHttpToolsProtocol"
GC_THRESHOLDS = (100_000, 50, 100)  # Python's defaults: (700, 10, 10)


def tune_gc() -> None:
    """The collector set for a server process (``NPISTACK_API_TUNE_GC``, on under ``npistack serve``).

    A server holds large long-lived tables (the NUCC and ZIP tables, the matcher's registry
    frequencies, caches), and every full collection walks all of them while holding the GIL: under
    load (a change page, a match, a verify-bulk in worker threads, allocating fast) full collections
    came every few seconds and held the event loop ~100 ms each, the whole of /healthz's p99
    (benchmarks/hardening.py: p99 100-118 ms with the defaults, 22 ms with these). The start-up heap
    is frozen (never walked again) and young collections run per 100,000 allocations instead of 700,
    so full collections become rare; cycles of short-lived garbage are still collected young.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _raw_response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on the request line and headers."""

    header_timeout_s: float | None = None  # None: from the settings
    max_header_bytes: int | None = None

    @classmethod
    def configured(cls, *, header_timeout_s: float, max_header_bytes: int) -> type[GuardedHttpToolsProtocol]:
        """A subclass with these limits (for servers built in-process, e.g. tests)."""
        return type(
            "GuardedHttpToolsProtocol",
            (cls,),
            {"header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes},
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.header_timeout_s is None or self.max_header_bytes is None:
            s = get_settings()
            self.header_timeout_s = s.api_header_timeout_s
            self.max_header_bytes = s.api_max_header_bytes
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._header_bytes = 0

    # -- the timer -----------------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            assert self.header_timeout_s is not None
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._awaiting_headers:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_timer()  # a pipelined request waits behind one being answered
            return
        self.transport.write(
            _raw_response(408, "Request Timeout", "The request line and headers did not arrive in time.")
        )
        self.transport.close()

    # -- uvicorn's protocol hooks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        assert self.max_header_bytes is not None
        too_big = self._awaiting_headers and self._header_bytes > self.max_header_bytes
        if too_big and not self.transport.is_closing():
            self.transport.write(
                _raw_response(
                    431,
                    "Request Header Fields Too Large",
                    f"The request line and headers exceed {self.max_header_bytes} bytes.",
                )
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = 0
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True  # what comes next is the next request's line
        self._header_bytes = 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments ``npistack serve`` gives ``uvicorn.run`` besides the app, host and port."""
    return {
        "access_log": False,  # npistack writes its own access log (NPISTACK_ACCESS_LOG)
        "log_level": "warning",
        "loop": "uvloop",
        "http": PROTOCOL,
        "timeout_keep_alive": settings.api_keep_alive_s,
        "limit_concurrency": settings.api_limit_concurrency or None,
        "h11_max_incomplete_event_size": settings.api_max_header_bytes,
        "server_header": False,
    }
