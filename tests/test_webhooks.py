"""Webhooks: signatures, retry delays, subscriptions and their filters, the outbox, the worker
against real loopback receivers (retries, dead letters, replays, leases, two workers), the admin
API and the CLI. Store tests run on SQLite, and on PostgreSQL when NPISTACK_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from npistack.services import webhooks as wh
from npistack.services.changes import ChangeFilter
from npistack.settings import Settings
from npistack.storage import open_store
from npistack.worker import DeliveryWorker
from tests.api_support import bearer, client, make_key
from tests.storage_sql import sql_execute
from tests.test_api_errors import assert_error, envelope_problems
from tests.webhook_support import (  # noqa: F401 - allow_loopback_receivers applies to this module
    add_changes,
    allow_loopback_receivers,
    closed_port,
    npi,
    receiver,
    statuses,
    wait_for,
)

SECRET = "whsec_test-secret-0123456789abcdef"


def worker_settings(url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "webhook_max_attempts": 5,
        "webhook_backoff_s": 0.01,
        "webhook_timeout_s": 2.0,
        "webhook_lease_s": 30.0,
        "webhook_breaker_failures": 1000,  # retries are the subject here, not the breaker
    }
    values.update(kw)
    return Settings(**values)


def subscribe(url: str, target: str, **kw: Any) -> wh.Subscription:
    store = open_store(url)
    try:
        return wh.create_subscription(store, url=target, secret=kw.pop("secret", SECRET), **kw)
    finally:
        store.close()


def drain(worker: DeliveryWorker, rounds: int = 200) -> None:
    """Run rounds until nothing is due (retries are due after a few milliseconds here)."""
    idle = 0
    for _ in range(rounds):
        if worker.run_once():
            idle = 0
            continue
        idle += 1
        if idle > 5:
            return
        time.sleep(0.03)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hooks.db'}"


# -- signatures -----------------------------------------------------------------------------------


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"id":"evt_1","type":"provider.updated"}'
    now = 1_735_689_600
    sig = wh.sign(SECRET, now, body)
    assert sig.startswith("v1=") and len(sig) == 3 + 64
    assert wh.verify(SECRET, str(now), sig, body, now=now + 10)
    assert not wh.verify(SECRET, str(now), sig, body + b" ", now=now), "tampered body"
    assert not wh.verify(SECRET, str(now + 1), sig, body, now=now), "tampered timestamp"
    assert not wh.verify("whsec_other-secret-000000000000", str(now), sig, body, now=now), "wrong secret"
    assert not wh.verify(SECRET, str(now), sig, body, now=now + 301), "too old"
    assert not wh.verify(SECRET, str(now), sig, body, now=now - 301), "from the future"
    assert wh.verify(SECRET, str(now), sig, body, now=now + 3000, tolerance_s=3600)
    for ts, s in [(None, sig), (str(now), None), ("soon", sig), (str(now), "v1=zz"), (str(now), "")]:
        assert not wh.verify(SECRET, ts, s, body, now=now)
    # Rotation: the receiver holds the old and the new secret; the header may carry several signatures.
    new = "whsec_new-secret-0123456789abcdefgh"
    assert wh.verify([SECRET, new], str(now), wh.sign(new, now, body), body, now=now)
    assert wh.verify(new, str(now), f"{wh.sign(SECRET, now, body)}, {wh.sign(new, now, body)}", body, now=now)
    assert not wh.verify([new], str(now), sig, body, now=now)


def test_the_documented_verification_snippet_works() -> None:
    """docs/webhooks.md's Python snippet accepts what the worker signs and refuses the rest."""
    text = (Path(__file__).parent.parent / "docs" / "webhooks.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(snippet, scope)
    check = scope["verify_npistack"]
    body, now = b'{"id":"evt_1"}', int(time.time())
    headers = wh.request_headers(delivery_row(), SECRET, body, now)
    ts, sig = headers["X-Npistack-Timestamp"], headers["X-Npistack-Signature"]
    assert check(SECRET, ts, sig, body)
    assert not check(SECRET, ts, sig, body + b"x") and not check("whsec_other-0123456789", ts, sig, body)
    assert not check(SECRET, str(now - 1000), wh.sign(SECRET, now - 1000, body), body)
    assert check(SECRET, ts, f"v1=00, {sig}", body) and not check(SECRET, "x", sig, body)


def delivery_row() -> wh.Delivery:
    return wh.Delivery(5, 2, 9, "evt_1", "pending", 0, 0.0, None, None, None, None, "2025-01-01", None)


def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        d = min(30.0 * 2 ** (attempt - 1), 6 * 3600)
        for _ in range(50):
            assert d / 2 <= wh.backoff(attempt, 30.0, rng=rng) <= d
    draws = {round(wh.backoff(3, 30.0, rng=rng), 6) for _ in range(20)}
    assert len(draws) > 15, "jittered"
    assert all(3 * 3600 <= wh.backoff(n, 30.0, rng=rng) <= 6 * 3600 for n in (12, 40, 10_000))
    assert wh.backoff(50, 1.0, cap_s=10.0, rng=rng) <= 10.0
    assert wh.backoff(1, 1.0, rng=random.Random(1)) == wh.backoff(1, 1.0, rng=random.Random(1))


# -- subscriptions and the outbox --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("http:///nohost", "no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com:99999/", "cannot be parsed"),
        ("https://" + "a" * 2000 + ".com", "at most 2000"),
        ("", "http:// or https://"),
    ],  # fmt: skip
)
def test_bad_urls_are_refused_with_a_reason(sqlite_url: str, url: str, words: str) -> None:
    with pytest.raises(wh.WebhookError, match=words):
        subscribe(sqlite_url, url)


def test_subscription_crud(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        sub = wh.create_subscription(store, url=" https://example.com/hook ", description="ops")
        assert sub.url == "https://example.com/hook" and sub.active and sub.filters.empty
        assert sub.secret.startswith("whsec_") and len(sub.secret) == 6 + 32
        assert "secret" not in sub.as_dict() and sub.as_dict(secret=True)["secret"] == sub.secret
        with pytest.raises(wh.WebhookError, match="16 to 200"):
            wh.create_subscription(store, url="https://example.com", secret="short")
        flt = ChangeFilter.parse(types=["deactivated"], states=["ca"])
        other = wh.create_subscription(store, url="http://127.0.0.1:9/x", filters=flt, active=False)
        assert [s.id for s in wh.list_subscriptions(store)] == [sub.id, other.id]
        assert wh.get_subscription(store, other.id) == other and not other.active
        assert other.filters.as_dict()["states"] == ["CA"]

        updated = wh.update_subscription(store, sub.id, active=False, description=None, rotate_secret=True)
        assert updated is not None and not updated.active and updated.description is None
        assert updated.secret != sub.secret and updated.secret.startswith("whsec_")
        same = wh.update_subscription(store, sub.id)
        assert same == updated, "no field given: nothing changes"
        assert wh.update_subscription(store, 999, active=True) is None
        with pytest.raises(wh.WebhookError):
            wh.update_subscription(store, sub.id, url="gopher://x")
        assert wh.delete_subscription(store, other.id) == 0
        assert wh.delete_subscription(store, other.id) is None
        assert wh.get_subscription(store, other.id) is None
    finally:
        store.close()


def test_filters_decide_which_subscriptions_get_deliveries(sqlite_url: str) -> None:
    everything = subscribe(sqlite_url, "http://127.0.0.1:9/all")
    california = subscribe(sqlite_url, "http://127.0.0.1:9/ca", filters=ChangeFilter.parse(states=["CA"]))
    tx_people = subscribe(
        sqlite_url,
        "http://127.0.0.1:9/tx1",
        filters=ChangeFilter.parse(states=["TX"], entity_types=["NPI-1"]),
    )
    tx_orgs = subscribe(
        sqlite_url, "http://127.0.0.1:9/tx2", filters=ChangeFilter.parse(states=["TX"], entity_types=["2"])
    )
    one_npi = subscribe(sqlite_url, "http://127.0.0.1:9/npi", filters=ChangeFilter.parse(npis=[str(npi(5))]))
    removals = subscribe(sqlite_url, "http://127.0.0.1:9/rm", filters=ChangeFilter.parse(types=["removed"]))
    paused = subscribe(sqlite_url, "http://127.0.0.1:9/paused", active=False)
    add_changes(sqlite_url, 12)  # states cycle CA, NY, TX, NC; entity types 1, 2, 1, 2, ...
    store = open_store(sqlite_url)
    try:
        counts = wh.delivery_counts(store)
        per_sub = {sid: sum(c.values()) for sid, c in counts.items()}
        assert per_sub.get(everything.id) == 12
        assert per_sub.get(california.id) == 3  # i = 0, 4, 8
        assert per_sub.get(tx_people.id) == 3  # i = 2, 6, 10: TX, and individuals (even i)
        assert per_sub.get(one_npi.id) == 1
        assert tx_orgs.id not in per_sub and removals.id not in per_sub and paused.id not in per_sub
        rows = wh.list_deliveries(store, subscription_id=one_npi.id)
        assert len(rows) == 1 and rows[0].status == "pending" and rows[0].attempts == 0
        event_ids = {d.change_id: d.event_id for d in wh.list_deliveries(store, limit=100)}
        assert len(set(event_ids.values())) == 12, "one event id per change, shared by its deliveries"
    finally:
        store.close()


def test_deleting_a_subscription_cancels_its_pending_deliveries(sqlite_url: str) -> None:
    sub = subscribe(sqlite_url, "http://127.0.0.1:9/x")
    keep = subscribe(sqlite_url, "http://127.0.0.1:9/y")
    add_changes(sqlite_url, 4)
    store = open_store(sqlite_url)
    try:
        assert wh.delete_subscription(store, sub.id) == 4
        counts = wh.delivery_counts(store)
        assert counts[sub.id]["cancelled"] == 4 and counts[keep.id]["pending"] == 4
        first = wh.list_deliveries(store, subscription_id=sub.id)[0]
        with pytest.raises(wh.WebhookError, match="was deleted"):
            wh.replay_delivery(store, first.id)
        assert wh.replay_range(store, since="2000-01-01", until="2100-01-01") == 4, "only the live one's"
    finally:
        store.close()


def test_claims_do_not_overlap_and_leases_guard_results(store_url: str) -> None:
    sub = subscribe(store_url, "http://127.0.0.1:9/x")
    add_changes(store_url, 5)
    a, b = open_store(store_url), open_store(store_url)
    try:
        now = time.time()
        first = wh.claim_due(a, "worker-a", limit=3, lease_s=10, now=now)
        second = wh.claim_due(b, "worker-b", limit=10, lease_s=10, now=now)
        assert len(first) == 3 and len(second) == 2
        assert not {d.id for d in first} & {d.id for d in second}
        assert all(d.locked_by == "worker-a" and d.locked_until == now + 10 for d in first)
        assert wh.claim_due(b, "worker-b", limit=10, lease_s=10, now=now + 5) == []
        # worker-a's lease runs out; worker-b takes one over: worker-a's late result is refused.
        taken = wh.claim_due(b, "worker-b", limit=1, lease_s=10, now=now + 11)
        assert [d.id for d in taken] == [first[0].id]
        assert not wh.mark_delivered(a, first[0].id, "worker-a", 200)
        assert wh.mark_delivered(b, first[0].id, "worker-b", 200)
        assert not wh.mark_delivered(b, first[0].id, "worker-b", 200), "already recorded"
        assert wh.mark_failed(
            a, first[1].id, "worker-a", http_status=500, error="HTTP 500", next_attempt_at=now + 60
        )
        assert wh.mark_failed(
            a, first[2].id, "worker-a", http_status=None, error="refused", next_attempt_at=None
        )
        got = {d.id: d for d in wh.list_deliveries(a)}
        assert got[first[0].id].status == "delivered" and got[first[0].id].attempts == 1
        assert got[first[1].id].status == "pending" and got[first[1].id].next_attempt_at == now + 60
        assert got[first[2].id].status == "dead" and got[first[2].id].last_error == "refused"
        assert got[first[2].id].locked_by is None
        # A paused subscription's deliveries wait.
        wh.update_subscription(a, sub.id, active=False)
        assert wh.claim_due(a, "worker-a", limit=10, lease_s=10, now=now + 100) == []
        wh.update_subscription(a, sub.id, active=True)
        assert len(wh.claim_due(a, "worker-a", limit=10, lease_s=10, now=now + 100)) == 3
    finally:
        a.close()
        b.close()


# -- the worker against real receivers ----------------------------------------------------------------


def test_delivery_is_signed_and_carries_the_event(sqlite_url: str) -> None:
    with receiver([SECRET]) as rx:
        sub = subscribe(sqlite_url, rx.url)
        (n,) = add_changes(sqlite_url, 1, start=3)
        with DeliveryWorker(sqlite_url, worker_settings(sqlite_url)) as w:
            assert w.run_once() == 1
            assert w.run_once() == 0
    (hit,) = rx.hits
    assert hit.verified and hit.answered == 200
    body = orjson.loads(hit.body)
    assert body["id"] == hit.event_id == hit.headers["x-npistack-event-id"]
    assert body["type"] == "provider.updated" and body["npi"] == f"{n:010d}" and body["version"] == 2
    assert body["subscriptionId"] == sub.id and body["deliveryId"] == hit.delivery_id
    assert body["record"]["npi"] == f"{n:010d}" and body["record"]["release"]["date"] == "2025-01-06"
    assert body["changes"] == [{"field": "practiceLocation.line1", "old": "2 OLD RD", "new": "1 MAIN ST"}]
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["user-agent"].startswith("npistack-webhooks/")
    assert abs(int(hit.headers["x-npistack-timestamp"]) - time.time()) < 60
    assert statuses(sqlite_url) == {hit.delivery_id: "delivered"}


def test_retries_then_success(sqlite_url: str) -> None:
    with receiver([SECRET], lambda d, nth: (500 if nth <= 2 else 204, 0.0)) as rx:
        subscribe(sqlite_url, rx.url)
        add_changes(sqlite_url, 3)
        with DeliveryWorker(sqlite_url, worker_settings(sqlite_url)) as w:
            drain(w)
    hits = rx.by_delivery()
    assert len(hits) == 3 and all(len(h) == 3 for h in hits.values())
    for per in hits.values():
        assert len({h.body for h in per}) == 1 and len({h.event_id for h in per}) == 1, (
            "same event, same body"
        )
        assert len({h.headers["x-npistack-timestamp"] + h.headers["x-npistack-signature"] for h in per}) >= 1
    store = open_store(sqlite_url)
    try:
        rows = wh.list_deliveries(store)
    finally:
        store.close()
    assert all(d.status == "delivered" and d.attempts == 3 and d.last_status == 204 for d in rows)


def test_dead_letter_after_max_attempts_then_replay(sqlite_url: str) -> None:
    healthy = threading.Event()
    with receiver([SECRET], lambda d, nth: (200 if healthy.is_set() else 503, 0.0)) as rx:
        subscribe(sqlite_url, rx.url)
        add_changes(sqlite_url, 2)
        settings = worker_settings(sqlite_url, webhook_max_attempts=3)
        with DeliveryWorker(sqlite_url, settings) as w:
            drain(w)
            store = open_store(sqlite_url)
            try:
                rows = wh.list_deliveries(store)
                assert [(d.status, d.attempts, d.last_status) for d in rows] == [("dead", 3, 503)] * 2
                assert rows[0].last_error and rows[0].last_error.startswith("HTTP 503")
                assert all(len(h) == 3 for h in rx.by_delivery().values())
                healthy.set()
                replayed = wh.replay_delivery(store, rows[0].id)
                assert replayed is not None and (replayed.status, replayed.attempts) == ("pending", 0)
                drain(w)
                assert statuses(sqlite_url) == {rows[0].id: "delivered", rows[1].id: "dead"}
                # A range replay: by creation time, optionally by status.
                assert wh.replay_range(store, since="2000-01-01", until="2001-01-01") == 0
                assert (
                    wh.replay_range(store, since="2000-01-01", until="2100-01-01T00:00:00Z", status="dead")
                    == 1
                )
                drain(w)
            finally:
                store.close()
    assert set(statuses(sqlite_url).values()) == {"delivered"}
    per = rx.by_delivery()
    assert [len(per[d.id]) for d in rows] == [4, 4]
    assert all(
        len({h.event_id for h in hits}) == 1 and len({h.body for h in hits}) == 1 for hits in per.values()
    )


def test_timeouts_refused_connections_and_odd_answers_are_failures(sqlite_url: str) -> None:
    with receiver([SECRET], lambda d, nth: (200, 1.5) if nth == 1 else (302, 0.0)) as rx:
        subscribe(sqlite_url, rx.url)
        subscribe(sqlite_url, f"http://127.0.0.1:{closed_port()}/nobody")
        add_changes(sqlite_url, 1)
        settings = worker_settings(sqlite_url, webhook_timeout_s=0.3, webhook_max_attempts=2)
        with DeliveryWorker(sqlite_url, settings) as w:
            drain(w)
    store = open_store(sqlite_url)
    try:
        slow, refused = wh.list_deliveries(store)
    finally:
        store.close()
    assert (
        slow.status == "dead"
        and slow.last_status == 302
        and "redirects are not followed" in (slow.last_error or "")
    )
    assert (
        refused.status == "dead"
        and refused.last_status is None
        and "cannot connect" in (refused.last_error or "")
    )
    assert len(rx.hits) == 2, "the slow answer counted as a failure and was retried"


def test_a_delivery_whose_change_is_gone_is_dead_at_once(sqlite_url: str) -> None:
    subscribe(sqlite_url, "http://127.0.0.1:9/never-called")
    add_changes(sqlite_url, 1)
    store = open_store(sqlite_url)
    try:
        sql_execute(store, "DELETE FROM changes")
    finally:
        store.close()
    with DeliveryWorker(sqlite_url, worker_settings(sqlite_url)) as w:
        assert w.run_once() == 1
    store = open_store(sqlite_url)
    try:
        (d,) = wh.list_deliveries(store)
    finally:
        store.close()
    assert d.status == "dead" and d.attempts == 1 and "no longer exists" in (d.last_error or "")


def test_mock_transport_and_worker_clock(sqlite_url: str) -> None:
    """The transport is swappable; retries are scheduled on the worker's clock."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500 if len(seen) == 1 else 200)

    subscribe(sqlite_url, "https://hooks.example.com/npi")
    add_changes(sqlite_url, 1)
    now = [time.time()]
    settings = worker_settings(sqlite_url, webhook_backoff_s=60.0)
    with DeliveryWorker(
        sqlite_url,
        settings,
        transport=httpx.MockTransport(handler),
        clock=lambda: now[0],
        worker_id="w1",
        resolver=lambda host, port: ["93.184.215.14"],  # a public address: the guard lets it through
    ) as w:
        assert w.run_once() == 1
        assert w.run_once() == 0, "not due before the backoff"
        now[0] += 29.0
        assert w.run_once() == 0, "equal jitter: at least half of 60 s"
        now[0] += 32.0
        assert w.run_once() == 1
    assert len(seen) == 2 and seen[0].headers["x-npistack-event-id"] == seen[1].headers["x-npistack-event-id"]
    assert seen[0].content == seen[1].content
    assert set(statuses(sqlite_url).values()) == {"delivered"}


def test_two_workers_never_send_a_delivery_twice(store_url: str) -> None:
    with receiver([SECRET], lambda d, nth: (200, 0.002)) as rx:
        subscribe(store_url, rx.url)
        subscribe(store_url, rx.url, filters=ChangeFilter.parse(states=["NY"]))
        add_changes(store_url, 120)  # 120 + 30 deliveries
        stop = threading.Event()
        workers = [DeliveryWorker(store_url, worker_settings(store_url), concurrency=3) for _ in range(2)]
        threads = [threading.Thread(target=w.run, args=(stop, 0.02)) for w in workers]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: set(statuses(store_url).values()) == {"delivered"}, 30, "every delivery")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=10)
            for w in workers:
                w.close()
    per = rx.by_delivery()
    assert len(per) == 150 and all(len(h) == 1 for h in per.values()), "a delivery was sent twice"
    assert all(h.verified for h in rx.hits)


def test_run_exits_promptly_on_stop(sqlite_url: str) -> None:
    stop = threading.Event()
    with DeliveryWorker(sqlite_url, worker_settings(sqlite_url)) as w:
        t = threading.Thread(target=w.run, args=(stop, 5.0))
        t.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        stop.set()
        t.join(timeout=5)
        assert not t.is_alive() and time.monotonic() - t0 < 1.0


# -- the admin API --------------------------------------------------------------------------------------


def test_admin_api_crud_and_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    open_store(url).close()
    admin, client_key = make_key(url, admin=True), make_key(url, "growth")
    h = bearer(admin)
    base = "/admin/v1/webhooks"
    with client(url) as api:
        r = api.post(base, headers=h, json={"url": "https://example.com/h", "filters": {"states": ["ca"]}})
        assert r.status_code == 201, r.text
        created = r.json()["data"]
        sid = created["id"]
        assert created["secret"].startswith("whsec_") and created["filters"]["states"] == ["CA"]
        assert created["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0, "cancelled": 0}
        listed = api.get(base, headers=h).json()["data"]
        assert [s["id"] for s in listed] == [sid] and "secret" not in listed[0]
        assert "secret" not in api.get(f"{base}/{sid}", headers=h).json()["data"]

        r = api.patch(
            f"{base}/{sid}", headers=h, json={"active": False, "rotateSecret": True, "description": "x"}
        )
        patched = r.json()["data"]
        assert r.status_code == 200 and not patched["active"] and patched["description"] == "x"
        assert patched["secret"] != created["secret"]
        r = api.patch(f"{base}/{sid}", headers=h, json={"filters": {}, "active": True})
        assert r.json()["data"]["filters"]["states"] == [] and "secret" not in r.json()["data"]

        add_changes(url, 3)
        deliveries = api.get(f"{base}/{sid}/deliveries", headers=h, params={"limit": 2}).json()
        assert [d["status"] for d in deliveries["data"]] == ["pending", "pending"]
        assert deliveries["meta"]["next"] == deliveries["data"][-1]["id"]
        rest = api.get(f"{base}/{sid}/deliveries", headers=h, params={"after": deliveries["meta"]["next"]})
        assert len(rest.json()["data"]) == 1 and rest.json()["meta"]["next"] is None
        did = deliveries["data"][0]["id"]
        one = api.get(f"{base}/deliveries/{did}", headers=h).json()["data"]
        assert one["eventId"].startswith("evt_") and one["subscriptionId"] == sid
        r = api.post(f"{base}/deliveries/{did}/replay", headers=h)
        assert r.status_code == 200 and r.json()["data"]["attempts"] == 0
        r = api.post(f"{base}/{sid}/replay", headers=h, json={"since": "2000-01-01", "until": "2100-01-01"})
        assert r.json()["data"] == {"replayed": 3}

        for method, path, body, status, code, words in [
            ("POST", base, {"url": "ftp://x"}, 400, "invalid_webhook", "http:// or https://"),
            ("POST", base, {}, 400, "invalid_webhook", "url is required"),
            ("POST", base, {"url": "https://x.com", "filters": {"states": ["Cal"]}}, 400, "invalid_webhook", "two-letter"),
            ("POST", base, {"url": "https://x.com", "filters": {"colour": ["red"]}}, 400, "invalid_webhook", "colour"),
            ("POST", base, {"url": "https://x.com", "filters": ["CA"]}, 400, "invalid_webhook", "filters must be an object"),
            ("POST", base, {"url": "https://x.com", "secret": "short"}, 400, "invalid_webhook", "secret"),
            ("POST", base, {"url": "https://x.com", "active": "yes"}, 400, "invalid_webhook", "active"),
            ("POST", base, {"url": "https://x.com", "extra": 1}, 400, "invalid_webhook", "extra"),
            ("POST", base, None, 400, "invalid_request", "JSON object"),
            ("PATCH", f"{base}/{sid}", {"url": 5}, 400, "invalid_webhook", "url must be a string"),
            ("PATCH", f"{base}/999", {"active": True}, 404, "webhook_not_found", "999"),
            ("GET", f"{base}/999", None, 404, "webhook_not_found", "999"),
            ("DELETE", f"{base}/999", None, 404, "webhook_not_found", "999"),
            ("GET", f"{base}/999/deliveries", None, 404, "webhook_not_found", "999"),
            ("GET", f"{base}/{sid}/deliveries?status=lost", None, 400, "invalid_request", "status"),
            ("GET", f"{base}/{sid}/deliveries?limit=0", None, 400, "invalid_request", "limit"),
            ("GET", f"{base}/deliveries/999", None, 404, "delivery_not_found", "999"),
            ("POST", f"{base}/deliveries/999/replay", None, 404, "delivery_not_found", "999"),
            ("POST", f"{base}/{sid}/replay", {"since": "yesterday", "until": "2100-01-01"}, 400, "invalid_webhook", "since"),
            ("POST", f"{base}/{sid}/replay", {"since": "2100-01-01", "until": "2000-01-01"}, 400, "invalid_webhook", "before"),
            ("POST", f"{base}/{sid}/replay", {"since": "2000-01-01", "until": "2100-01-01", "status": "x"}, 400, "invalid_webhook", "status"),
            ("POST", f"{base}/{sid}/replay", {"until": "2100-01-01"}, 400, "invalid_request", "since"),
            ("POST", f"{base}/999/replay", {"since": "2000-01-01", "until": "2100-01-01"}, 404, "webhook_not_found", "999"),
            ("GET", f"{base}/abc", None, 400, "invalid_request", "webhook_id"),
            ("GET", f"{base}/0", None, 400, "invalid_request", "webhook_id"),
            ("GET", f"{base}/{'9' * 30}", None, 400, "invalid_request", "webhook_id"),
            ("GET", f"{base}/deliveries/-1", None, 400, "invalid_request", "delivery_id"),
        ]:  # fmt: skip
            content = orjson.dumps(body) if body is not None else b"[]" if method != "GET" else None
            r = api.request(method, path, headers=h, content=content)
            err = assert_error(r, status, code)
            assert words in err["error"]["message"], (method, path, err)
        for method, path in [
            ("GET", base),
            ("POST", base),
            ("DELETE", f"{base}/{sid}"),
            ("GET", f"{base}/deliveries/1"),
        ]:
            assert_error(api.request(method, path, headers=bearer(client_key)), 403, "admin_required")
            assert_error(api.request(method, path), 401, "invalid_api_key")

        r = api.delete(f"{base}/{sid}", headers=h)
        assert r.json()["data"] == {"id": sid, "deleted": True, "cancelledDeliveries": 3}
        assert not envelope_problems(api.get(f"{base}/{sid}", headers=h))
        assert api.get(f"{base}/{sid}", headers=h).status_code == 404


def test_admin_api_on_a_store_the_server_opened_read_only(tmp_path: Path) -> None:
    """The server's store is read-only (SQLite): writes go through a store of their own."""
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    open_store(url).close()
    h = bearer(make_key(url, admin=True))
    with client(url) as api:
        for i in range(3):
            r = api.post("/admin/v1/webhooks", headers=h, json={"url": f"https://example.com/{i}"})
            assert r.status_code == 201, r.text
        assert len(api.get("/admin/v1/webhooks", headers=h).json()["data"]) == 3


# -- the CLI ---------------------------------------------------------------------------------------------

CLI = "from npistack.cli import main; main()"


def cli(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NPISTACK_DATABASE_URL=url, COLUMNS="250", NO_COLOR="1")
    env.pop("NPISTACK_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True, timeout=60
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_subscriptions_deliveries_replay_and_worker_once(sqlite_url: str) -> None:
    with receiver([SECRET]) as rx:
        made = cli(sqlite_url, "webhooks", "create", rx.url, "--secret", SECRET, "-t", "updated", "--state", "ca",
                   "--state", "NY", "--description", "crm sync").stdout  # fmt: skip
        assert "subscription 1:" in made and SECRET in made and "states=CA,NY" in made
        cli(sqlite_url, "webhooks", "create", "https://example.com/paused", "--entity-type", "2")
        listed = cli(sqlite_url, "webhooks", "list").stdout
        assert rx.url in listed and "https://example.com/paused" in listed and SECRET not in listed
        add_changes(sqlite_url, 8)  # CA and NY: 4 of the 8 for subscription 1; organizations: 4 for 2
        assert "active:      no" in cli(sqlite_url, "webhooks", "update", "2", "--inactive").stdout
        shown = cli(sqlite_url, "webhooks", "show", "1").stdout
        assert "4 pending" in shown and SECRET not in shown and "crm sync" in shown
        out = cli(sqlite_url, "worker", "--once", "--concurrency", "2")
        assert "4 deliveries attempted" in out.stdout
        assert out.stderr.count(" delivered: HTTP 200") == 4, out.stderr
        assert len(rx.hits) == 4 and all(h.verified for h in rx.hits)
        rows = cli(
            sqlite_url, "webhooks", "deliveries", "--subscription", "1", "--status", "delivered"
        ).stdout
        assert rows.count("delivered") == 4
        assert "pending again" in cli(sqlite_url, "webhooks", "replay", "1").stdout
        ranged = cli(sqlite_url, "webhooks", "replay", "--since", "2000-01-01", "--until", "2100-01-01",
                     "--subscription", "1", "--status", "delivered").stdout  # fmt: skip
        assert "3 deliveries are pending again" in ranged
        cli(sqlite_url, "worker", "--once")
        assert len(rx.hits) == 8 and len({h.event_id for h in rx.hits}) == 4
        rotated = cli(
            sqlite_url, "webhooks", "update", "1", "--rotate-secret", "--inactive", "--every-change"
        ).stdout
        assert "secret:" in rotated and SECRET not in rotated and "every change" in rotated
        assert "active:      no" in rotated
        deleted = cli(sqlite_url, "webhooks", "delete", "2").stdout
        assert "4 pending deliveries cancelled" in deleted


@pytest.mark.parametrize(
    "args, words",
    [
        (("webhooks", "show", "9"), "no webhook subscription has id 9"),
        (("webhooks", "delete", "9"), "no webhook subscription has id 9"),
        (("webhooks", "create", "ftp://x"), "http:// or https://"),
        (("webhooks", "create", "https://x.com", "--state", "California"), "two-letter"),
        (("webhooks", "create", "https://x.com", "--secret", "tiny"), "16 to 200"),
        (("webhooks", "replay"), "give a DELIVERY_ID"),
        (("webhooks", "replay", "1", "--since", "2000-01-01"), "give a DELIVERY_ID"),
        (("webhooks", "replay", "--since", "nope", "--until", "2100-01-01"), "ISO"),
        (("webhooks", "replay", "99"), "no webhook delivery has id 99"),
        (("webhooks", "deliveries", "--status", "lost"), "unknown delivery status"),
    ],
)
def test_cli_errors_are_one_clear_line(
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    words: str,
) -> None:
    from npistack.cli import main
    from npistack.settings import get_settings

    monkeypatch.setenv("NPISTACK_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("NPISTACK_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["npistack", *args])
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and words in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_worker_command_stops_cleanly_on_a_signal(sqlite_url: str, sig: signal.Signals) -> None:
    open_store(sqlite_url).close()
    env = dict(os.environ, NPISTACK_DATABASE_URL=sqlite_url)
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "worker", "--poll", "30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first log line: the worker is up
        assert "started" in line, line
        t0 = time.monotonic()
        proc.send_signal(sig)
        output = proc.communicate(timeout=10)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and time.monotonic() - t0 < 5, output
    assert f"{sig.name}: finishing the deliveries in flight" in output and "stopped" in output
    assert "Traceback" not in output
