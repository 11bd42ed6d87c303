"""Issue 14 item 15 (the ``sync`` part): ``npistack sync`` fetches only from the download page's host
(every request and every redirect), reads a page up to NPISTACK_SYNC_MAX_PAGE_BYTES and a bundle up to
NPISTACK_SYNC_MAX_FILE_BYTES counted while the bytes stream in, and leaves nothing behind a refusal.

Real loopback HTTP servers: the "CMS" server and, on another port, the host a hostile redirect points
to (which must never be asked). Bodies without a Content-Length are sent chunked and generated on the
fly, so the test also sees how much the server managed to send before the client hung up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from npistack.ingest.sync import FetchLimits, FetchRefused, GuardedTransport, new_client, sync_once
from tests.test_sync import ENTRY, FakeStore, a, cms_page, weekly_name, weekly_zip

WEEK = date(2026, 12, 7)
WEEKLY = weekly_name(WEEK)
MONTHLY = "NPPES_Data_Dissemination_December_2026_V2.zip"
MiB = 1 << 20

Route = Callable[["Handler"], None]


@dataclass
class Server:
    """A loopback server: ``routes`` by path, a log of the paths asked, bytes of body sent."""

    base: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    sent: int = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state: Server = self.server.state
        path = urlsplit(self.path).path
        state.asked.append(path)
        route = state.routes.get(path)
        if route is None:
            self.body(404, b"Not Found")
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up: what the caps are for

    def body(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.server.state.sent += len(data)

    def chunked(self, total: int, content_type: str, chunk: bytes = b"x" * 65536) -> None:
        """``total`` bytes with no Content-Length (chunked), written as the client reads them."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        left = total
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.server.state.sent += len(piece)
            left -= len(piece)
        self.wfile.write(b"0\r\n\r\n")

    def redirect(self, to: str) -> None:
        self.body(302, b"", {"Location": to})


@pytest.fixture
def servers() -> Iterator[Callable[[], Server]]:
    """Start as many loopback servers as a test needs (each on its own port)."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start() -> Server:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        state = Server(base=f"http://127.0.0.1:{httpd.server_address[1]}")
        httpd.state = state  # type: ignore[attr-defined]
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((httpd, thread))
        return state

    try:
        yield start
    finally:
        for httpd, thread in running:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)


def page_of(server: Server, *links: str) -> str:
    html = cms_page([a(link) for link in links]).encode()
    server.routes["/nppes/NPI_Files.html"] = lambda h: h.body(200, html, {"Content-Type": "text/html"})
    return f"{server.base}/nppes/NPI_Files.html"


def weekly_route(data: bytes) -> Route:
    return lambda h: h.body(200, data, {"Content-Type": "application/zip"})


def one_round(page: str, dl: Path, limits: FetchLimits | None = None) -> tuple[Any, list[Path]]:
    """A sync round (its own guarded client) over a store whose data ends the day before WEEK."""
    store = FakeStore("2026-12-06", "2026-12-06")
    applied: list[Path] = []

    def apply(path: Path) -> str:
        applied.append(path)
        store.data = "2026-12-13"
        return "ok"

    report = sync_once(
        store, page_url=page, download_dir=dl, apply=apply, log=lambda _: None, limits=limits, backoff_s=0
    )
    return report, applied


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- redirects and hosts -------------------------------------------------------------------------


def test_a_redirect_to_another_port_is_refused_and_never_followed(
    servers: Callable[[], Server], tmp_path: Path
) -> None:
    cms, other = servers(), servers()  # same address, another port: another origin
    other.routes[f"/{WEEKLY}"] = weekly_route(weekly_zip(WEEK))
    cms.routes[f"/nppes/{WEEKLY}"] = lambda h: h.redirect(f"{other.base}/{WEEKLY}")
    report, applied = one_round(page_of(cms, f"./{WEEKLY}"), tmp_path / "dl")
    assert applied == [] and report.failed is not None and report.failed.name == WEEKLY
    assert report.error is not None and "\n" not in report.error
    assert report.error.startswith(f"refused the redirect from {cms.base}/nppes/{WEEKLY} to {other.base}/")
    assert "sync follows redirects only within http://127.0.0.1:" in report.error
    assert other.asked == [] and leftovers(tmp_path / "dl") == []


def test_a_redirect_to_another_host_is_refused(servers: Callable[[], Server], tmp_path: Path) -> None:
    cms = servers()
    cms.routes[f"/nppes/{WEEKLY}"] = lambda h: h.redirect(
        f"http://localhost:{cms.base.rsplit(':', 1)[1]}/x.zip"
    )
    report, _ = one_round(page_of(cms, f"./{WEEKLY}"), tmp_path / "dl")
    assert report.error is not None and report.error.startswith("refused the redirect from")
    assert cms.asked == ["/nppes/NPI_Files.html", f"/nppes/{WEEKLY}"]  # localhost:same port never asked


def test_the_page_redirected_elsewhere_is_refused(servers: Callable[[], Server], tmp_path: Path) -> None:
    cms, other = servers(), servers()
    page_of(other, f"./{WEEKLY}")
    cms.routes["/nppes/NPI_Files.html"] = lambda h: h.redirect(f"{other.base}/nppes/NPI_Files.html")
    with pytest.raises(
        FetchRefused, match=r"^refused the redirect from .*NPI_Files.html to http://127.0.0.1:"
    ):
        one_round(f"{cms.base}/nppes/NPI_Files.html", tmp_path / "dl")
    assert other.asked == []


def test_a_link_to_another_host_is_refused(servers: Callable[[], Server], tmp_path: Path) -> None:
    cms, other = servers(), servers()
    other.routes[f"/{WEEKLY}"] = weekly_route(weekly_zip(WEEK))
    report, applied = one_round(page_of(cms, f"{other.base}/{WEEKLY}"), tmp_path / "dl")
    assert applied == [] and report.error == (
        f"refused {other.base}/{WEEKLY}: sync fetches only from {cms.base}, the download page's host "
        "(NPISTACK_CMS_FILES_URL or --page-url)"
    )
    assert other.asked == []


def test_a_same_host_redirect_is_followed(servers: Callable[[], Server], tmp_path: Path) -> None:
    cms = servers()
    data = weekly_zip(WEEK)
    cms.routes[f"/nppes/{WEEKLY}"] = lambda h: h.redirect(f"/cdn/files/{WEEKLY}?sig=1")  # relative
    cms.routes[f"/cdn/files/{WEEKLY}"] = lambda h: h.redirect(f"{cms.base}/cdn/final")  # absolute, no .zip
    cms.routes["/cdn/final"] = weekly_route(data)
    # A file-sized cap on the final hop: it is still a bundle, not a page, though its path is not .zip.
    report, applied = one_round(page_of(cms, f"./{WEEKLY}"), tmp_path / "dl", FetchLimits(1024, 10 * MiB))
    assert report.ok, report.error
    assert [p.read_bytes() for p in applied] == [data] and leftovers(tmp_path / "dl") == [WEEKLY]
    assert cms.asked[1:] == [f"/nppes/{WEEKLY}", f"/cdn/files/{WEEKLY}", "/cdn/final"]


def test_an_http_page_may_be_upgraded_to_https_on_the_same_host() -> None:
    guard = GuardedTransport("http://download.example.org/nppes/NPI_Files.html", FetchLimits())
    assert guard.allowed == {("http", "download.example.org", 80), ("https", "download.example.org", 443)}
    assert GuardedTransport("https://h.example:8443/p", FetchLimits()).allowed == {
        ("https", "h.example", 8443)
    }


# -- size caps -----------------------------------------------------------------------------------


def test_a_file_over_the_cap_without_content_length_is_refused_while_streaming(
    servers: Callable[[], Server], tmp_path: Path
) -> None:
    cms = servers()
    cms.routes[f"/nppes/{WEEKLY}"] = lambda h: h.chunked(200 * MiB, "application/zip")
    report, applied = one_round(page_of(cms, f"./{WEEKLY}"), tmp_path / "dl", FetchLimits(max_file_bytes=MiB))
    assert applied == [] and report.error == (
        f"refused {cms.base}/nppes/{WEEKLY}: the file is larger than 1,048,576 bytes "
        "(NPISTACK_SYNC_MAX_FILE_BYTES); deleted what was downloaded"
    )
    assert leftovers(tmp_path / "dl") == []  # no .part, no final name
    assert cms.sent < 32 * MiB  # stopped while streaming, far from the 200 MiB on offer


def test_a_declared_size_over_the_cap_is_refused_before_the_body(
    servers: Callable[[], Server], tmp_path: Path
) -> None:
    cms = servers()
    cms.routes[f"/nppes/{WEEKLY}"] = weekly_route(b"z" * (2 * MiB))
    report, _ = one_round(page_of(cms, f"./{WEEKLY}"), tmp_path / "dl", FetchLimits(max_file_bytes=MiB))
    assert report.error is not None and "the file is larger than 1,048,576 bytes" in report.error
    assert leftovers(tmp_path / "dl") == []


def test_a_resumed_file_counts_the_bytes_already_on_disk(
    servers: Callable[[], Server], tmp_path: Path
) -> None:
    """A ``.part`` of 900 KiB resumed with 200 KiB more passes a 1 MiB cap on neither response alone."""
    cms = servers()
    total = 1100 * 1024

    def ranged(h: Handler) -> None:
        start = int(h.headers["Range"].removeprefix("bytes=").rstrip("-"))
        h.body(206, b"r" * (total - start), {"Content-Range": f"bytes {start}-{total - 1}/*"})

    cms.routes[f"/nppes/{WEEKLY}"] = ranged
    dl = tmp_path / "dl"
    dl.mkdir()
    (dl / f"{WEEKLY}.part").write_bytes(b"p" * (900 * 1024))
    report, _ = one_round(page_of(cms, f"./{WEEKLY}"), dl, FetchLimits(max_file_bytes=MiB))
    assert report.error is not None and "the file is larger than 1,048,576 bytes" in report.error
    assert leftovers(dl) == []


def test_a_page_over_the_default_cap_is_refused(servers: Callable[[], Server], tmp_path: Path) -> None:
    cms = servers()
    cms.routes["/nppes/NPI_Files.html"] = lambda h: h.chunked(200 * MiB, "text/html")
    with pytest.raises(
        FetchRefused,
        match=r"^refused .*/nppes/NPI_Files.html: the download page is larger than 4,194,304 bytes",
    ):
        one_round(f"{cms.base}/nppes/NPI_Files.html", tmp_path / "dl")
    assert cms.sent < 40 * MiB  # cut at the cap (plus what the socket buffers took), not read to the end


def test_new_client_without_a_page_is_unguarded_and_with_one_is_guarded() -> None:
    with new_client(page_url="http://127.0.0.1:9/p.html") as guarded, new_client() as plain:
        assert isinstance(guarded._transport, GuardedTransport)
        assert not isinstance(plain._transport, GuardedTransport)


# -- the command, caps from the environment --------------------------------------------------------


def run_sync(tmp_path: Path, page: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(
        os.environ,
        NPISTACK_DATA_DIR=str(tmp_path / "data"),
        NPISTACK_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        COLUMNS="200",
        NO_COLOR="1",
        **env,
    )
    full.pop("NPISTACK_DEBUG", None)
    cmd = [sys.executable, "-c", ENTRY, "sync", "--page-url", page, "--download-dir", str(tmp_path / "dl")]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=120)


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


def test_cli_file_cap_from_the_environment(servers: Callable[[], Server], tmp_path: Path) -> None:
    cms = servers()
    cms.routes[f"/nppes/{MONTHLY}"] = lambda h: h.chunked(100 * MiB, "application/zip")
    proc = run_sync(tmp_path, page_of(cms, f"./{MONTHLY}"), NPISTACK_SYNC_MAX_FILE_BYTES=str(2 * MiB))
    assert error_lines(proc)[-1] == (
        f"error: refused {cms.base}/nppes/{MONTHLY}: the file is larger than 2,097,152 bytes "
        "(NPISTACK_SYNC_MAX_FILE_BYTES); deleted what was downloaded"
    )
    assert leftovers(tmp_path / "dl") == [] and cms.sent < 40 * MiB


def test_cli_page_cap_from_the_environment(servers: Callable[[], Server], tmp_path: Path) -> None:
    cms = servers()
    cms.routes["/nppes/NPI_Files.html"] = lambda h: h.chunked(MiB, "text/html")
    proc = run_sync(tmp_path, f"{cms.base}/nppes/NPI_Files.html", NPISTACK_SYNC_MAX_PAGE_BYTES="65536")
    assert error_lines(proc) == [
        f"error: refused {cms.base}/nppes/NPI_Files.html: the download page is larger than 65,536 bytes "
        "(NPISTACK_SYNC_MAX_PAGE_BYTES)"
    ]


def test_cli_redirect_elsewhere_is_one_line(servers: Callable[[], Server], tmp_path: Path) -> None:
    cms, other = servers(), servers()
    cms.routes[f"/nppes/{MONTHLY}"] = lambda h: h.redirect(f"{other.base}/internal/{MONTHLY}")
    proc = run_sync(tmp_path, page_of(cms, f"./{MONTHLY}"))
    last = error_lines(proc)[-1]
    assert last.startswith(f"error: refused the redirect from {cms.base}/nppes/{MONTHLY} to {other.base}/")
    assert other.asked == [] and leftovers(tmp_path / "dl") == []
