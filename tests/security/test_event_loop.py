"""Issue 14 item 4: the heaviest requests never hold up a worker's event loop.

Each heavy operation (a 10,000-event change page, a 1,000-record match, a search, a verify-bulk
whose upstream never answers) is made to block, deterministically, on an event the test holds;
while it is blocked, ``/healthz`` on the same one-process server must answer. Work done on the event
loop would hold ``/healthz`` until the test let go, so this fails (by the client's timeout) rather
than measuring how long anything took. The figures (healthz p99 under load) are in
benchmarks/hardening.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from npistack.api import create_app
from npistack.api.routes import changes as changes_route
from npistack.api.routes import match as match_route
from npistack.api.routes import v1 as v1_route
from npistack.nppes.npi import make_npi
from tests.api_support import ABSENT_NPI, ACTIVE_NPI, app_server, bearer, make_key, sample_store, settings

HOLD_S = 30.0  # how long a blocked operation waits for the test at most (a hang guard)


class Gate:
    """Blocks the calls made through it until opened; tells when the first call is waiting."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        self.opened.wait(HOLD_S)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kw: Any) -> Any:
            self.hold()
            return fn(*args, **kw)

        return held


@pytest.fixture
def store(tmp_path: Path) -> str:
    return sample_store(tmp_path / "store.db")


def _healthz_answers_while_held(base: str, gate: Gate, heavy: Callable[[], httpx.Response]) -> httpx.Response:
    """Start ``heavy`` in a thread, wait until it blocks in the gate, check /healthz, then let go."""
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", heavy()), daemon=True)
    thread.start()
    try:
        for _ in range(int(HOLD_S * 10)):
            if gate.entered.wait(0.1) or not thread.is_alive():
                break
        assert gate.entered.is_set(), f"the heavy request never reached the blocked operation: {result}"
        # The event loop is free: /healthz answers (a blocked loop would not, until the gate opens).
        for _ in range(5):
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    finally:
        gate.opened.set()
        thread.join(HOLD_S)
    return result["r"]


def test_a_10000_event_ndjson_change_page_does_not_hold_healthz(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    monkeypatch.setattr(changes_route, "change_page", gate.wrap(changes_route.change_page))
    key = make_key(store)
    with app_server(create_app(settings(store))) as base:
        r = _healthz_answers_while_held(
            base,
            gate,
            lambda: httpx.get(
                f"{base}/api/v1/changes",
                params={"format": "ndjson", "limit": "10000"},
                headers=bearer(key),
                timeout=HOLD_S + 10,
            ),
        )
    assert r.status_code == 200, r.text


def test_a_1000_record_match_does_not_hold_healthz(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate()
    real = match_route._matcher

    def matcher(st: Any, threshold: float) -> Any:
        m = real(st, threshold)

        class Held:
            def match(self, records: Any) -> Any:
                gate.hold()
                return m.match(records)

        return Held()

    monkeypatch.setattr(match_route, "_matcher", matcher)
    key = make_key(store)
    records = [{"first_name": "Jon", "last_name": "Dubose", "state": "SC"}] * 1000
    with app_server(create_app(settings(store))) as base:
        r = _healthz_answers_while_held(
            base,
            gate,
            lambda: httpx.post(
                f"{base}/api/v1/match", json={"records": records}, headers=bearer(key), timeout=HOLD_S + 60
            ),
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1000


def test_a_search_does_not_hold_healthz(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate()
    monkeypatch.setattr(v1_route, "search", gate.wrap(v1_route.search))
    key = make_key(store)
    with app_server(create_app(settings(store))) as base:
        r = _healthz_answers_while_held(
            base,
            gate,
            lambda: httpx.get(
                f"{base}/api/v1/providers/search",
                params={"last_name": "DUBOSE"},
                headers=bearer(key),
                timeout=HOLD_S + 10,
            ),
        )
    assert r.status_code == 200, r.text


def test_a_verify_bulk_with_a_dead_upstream_does_not_hold_healthz(store: str) -> None:
    """1,000 NPIs not in the store, an upstream that never answers: the fan-out waits on the
    upstream's bounded pool, and /healthz answers meanwhile."""
    gate = Gate()
    in_flight: list[int] = [0, 0]  # now, most at once
    lock = threading.Lock()

    async def dead(_request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        gate.entered.set()
        try:
            while not gate.opened.is_set():
                await asyncio.sleep(0.01)
            raise httpx.ConnectTimeout("the upstream never answered")
        finally:
            with lock:
                in_flight[0] -= 1

    key = make_key(store)
    npis = _absent_npis(1000)
    app = create_app(
        settings(
            store,
            offline=False,
            upstream_url="http://registry.test/api/",
            upstream_concurrency=8,
            upstream_queue_s=60,
            upstream_timeout_s=60,
            upstream_rate_per_s=0,
        ),
        upstream_transport=httpx.MockTransport(dead),
    )
    with app_server(app) as base:
        r = _healthz_answers_while_held(
            base,
            gate,
            lambda: httpx.post(
                f"{base}/api/v1/verify/bulk",
                json={"records": [{"npi": n} for n in npis]},
                headers=bearer(key),
                timeout=HOLD_S + 60,
            ),
        )
        # The known NPI still verifies while the upstream is dead (a smoke check of the same server).
        ok = httpx.post(f"{base}/api/v1/verify", json={"npi": ACTIVE_NPI}, headers=bearer(key), timeout=30)
        assert ok.status_code == 200, ok.text
    assert in_flight[1] <= 8, in_flight  # never more upstream requests at once than allowed
    assert r.status_code in (200, 502, 503), r.text


def _absent_npis(n: int) -> Iterator[str]:
    """``n`` NPIs with a valid check digit, in no store."""
    return iter([ABSENT_NPI] + [make_npi(str(190000000 + i)) for i in range(n - 1)])


def test_a_server_process_tunes_the_collector(store: str) -> None:
    """Full collections under load held the loop ~100 ms each (benchmarks/hardening.py): a server
    process freezes its start-up heap and collects young objects per 100,000 allocations."""
    import subprocess
    import sys

    code = (
        "import gc, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from npistack.api import create_app\n"
        "from tests.api_support import settings\n"
        "before = gc.get_threshold()\n"
        "with TestClient(create_app(settings(sys.argv[1], api_tune_gc=sys.argv[2] == 'on'))) as c:\n"
        "    assert c.get('/healthz').status_code == 200\n"
        "    print(before, gc.get_threshold(), gc.get_freeze_count() > 0)\n"
    )
    for flag, expected in (("on", "(100000, 50, 100) True"), ("off", "(700, 10, 10) False")):
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code, store, flag],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"(700, 10, 10) {expected}", out.stdout
