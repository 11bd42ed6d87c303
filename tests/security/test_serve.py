"""Issue 14 items 13, 16 and 21 as ``npistack serve`` shows them: no password in what it prints, a
busy port is one clear line (and no "serving ..." first), and the header-read timeout is on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from npistack.redact import redact_text, redact_url
from tests.api_support import free_port, process_server, sample_store

NPISTACK = str(Path(sys.executable).parent / "npistack")
PASSWORD = "SuperSecretPw"


@pytest.mark.parametrize(
    "url, shown",
    [
        (f"postgresql://postgres:{PASSWORD}@db:5432/npi", "postgresql://postgres:***@db:5432/npi"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://u:p@ss@h/db?x=a@b", "postgresql://u:***@h/db?x=a@b"),  # an unencoded @
        ("postgresql://postgres@db/npi", "postgresql://postgres@db/npi"),  # no password: as is
        ("sqlite:////var/lib/npistack.db", "sqlite:////var/lib/npistack.db"),
        ("http://host:8080/a@b", "http://host:8080/a@b"),  # a port is not a password
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_redacts_every_url_in_a_line() -> None:
    line = f"store postgresql://a:{PASSWORD}@h/db, counters redis://:pw2@r:6379/0."
    assert redact_text(line) == "store postgresql://a:***@h/db, counters redis://:***@r:6379/0."


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NPISTACK, "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NPISTACK_OFFLINE": "true", **(env or {})},
    )


def test_serve_never_prints_the_store_password_when_it_cannot_connect() -> None:
    closed = free_port()
    done = _serve(
        "-d", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed}/npi", "--port", str(free_port())
    )
    assert done.returncode == 1
    assert PASSWORD not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")


def test_serve_prints_the_store_url_with_its_password_hidden(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    user, _, host = parts.netloc.rpartition("@")
    with_password = urlunsplit(parts._replace(netloc=f"{user.split(':')[0]}:{PASSWORD}@{host}"))
    port = free_port()
    proc = subprocess.Popen(
        [NPISTACK, "serve", "-d", with_password, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NPISTACK_OFFLINE": "true"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "serving ..." (or EOF if it failed)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert line.startswith("serving postgresql://"), (line, err)
    assert PASSWORD not in line + err and ":***@" in line


def test_serve_on_a_busy_port_fails_in_one_line_without_saying_serving(tmp_path: Path) -> None:
    url = sample_store(tmp_path / "store.db")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _serve("-d", url, "--port", str(port))
    assert done.returncode == 1
    assert "serving" not in done.stdout, done.stdout
    assert done.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use (another server?); pick another with --port"
    )


def test_serve_closes_a_half_sent_request_after_the_header_timeout(tmp_path: Path) -> None:
    """Item 16 through `npistack serve` itself: NPISTACK_API_HEADER_TIMEOUT_S reaches uvicorn."""
    url = sample_store(tmp_path / "store.db")
    with process_server(url, env={"NPISTACK_API_HEADER_TIMEOUT_S": "0.5"}) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(15)  # a hang guard: the server closes after 0.5 s
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 408 ")
