"""Helpers for API tests: stores with the real sample rows, keys, in-process clients and real
servers on loopback (threads for one process, subprocesses for several)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient

from npistack.api import create_app
from npistack.ingest.load import ingest
from npistack.services.accounts import Accounts
from npistack.settings import Settings
from npistack.storage import open_store
from npistack.storage.accounts import AccountsDb, Plan
from tests.nppes_files import SAMPLE
from tests.storage_sql import sql_rows

ACTIVE_NPI = "1114920162"  # JON DUBOSE, MD (real sample row)
ORG_NPI = "1497758544"  # a hospital with an authorized official
DEACTIVATED_NPI = "1003009879"  # check with deactivated_npi() when unsure
ABSENT_NPI = "1234567893"  # valid check digit, in no store


def sample_store(path: Path, source: Path = SAMPLE) -> str:
    """A SQLite store at ``path`` loaded with ``source`` (default: the 50 real rows); its URL."""
    url = f"sqlite:///{path}"
    store = open_store(url)
    try:
        assert ingest(source, store).status == "succeeded"
    finally:
        store.close()
    return url


def deactivated_npi(url: str) -> str:
    store = open_store(url, read_only=url.startswith("sqlite"))
    try:
        rows = sql_rows(store, "SELECT npi FROM providers WHERE status = 'deactivated' ORDER BY npi LIMIT 1")
    finally:
        store.close()
    return f"{rows[0][0]:010d}"


def make_key(url: str, plan: str = "growth", *, admin: bool = False, name: str = "test") -> str:
    db = AccountsDb(url)
    try:
        key, _ = Accounts(db).create_key(name=name, plan=plan, admin=admin)
    finally:
        db.close()
    return key


def set_plan(url: str, name: str, credits: int, rpm: int = 300, enrichment: bool = False) -> None:
    db = AccountsDb(url)
    try:
        db.upsert_plan(Plan(name, credits, rpm, enrichment, "test plan"))
    finally:
        db.close()


def settings(url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "offline": True,
        "access_log": False,
        "redis_url": "",
        "upstream_url": "",
    }
    values.update(kw)
    return Settings(**values)


@contextlib.contextmanager
def client(url: str, now: datetime | None = None, **kw: Any) -> Iterator[TestClient]:
    """An in-process client of an app over the store at ``url`` (lifespan run)."""
    app = create_app(settings(url, **kw), now=(lambda: now) if now else None)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def thread_server(url: str, **kw: Any) -> Iterator[str]:
    """A real uvicorn server in a thread on a loopback port; yields its base URL."""
    port = free_port()
    app = create_app(settings(url, **kw))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    _wait_healthy(base, lambda: thread.is_alive())
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def app_server(app: Any, **config: Any) -> Iterator[str]:
    """A real uvicorn server in a thread serving ``app`` (made by the caller, e.g. with an upstream
    transport) on a loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    _wait_healthy(base, thread.is_alive)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def process_server(url: str, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[str]:
    """``npistack serve`` in a subprocess on a loopback port; yields its base URL."""
    port = free_port()
    full_env = {
        **os.environ,
        "NPISTACK_DATABASE_URL": url,
        "NPISTACK_OFFLINE": "true",
        "NPISTACK_ACCESS_LOG": "false",
        **(env or {}),
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "npistack"),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, lambda: proc.poll() is None, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_healthy(base: str, alive: Any, log: Any = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not alive():
            detail = ""
            if log is not None:
                log.seek(0)
                detail = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"server at {base} died at start-up: {detail}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {base} did not become healthy")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
