"""End to end: subscriptions with filters, a synthetic month applied (weeklies and the deactivation
report), the real worker delivering to a loopback receiver that checks signatures. Every subscription
receives each of its matching events — the set the change feed's SQL filter selects — and nothing
else. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from npistack.ingest.load import ingest
from npistack.nppes.synth import MonthStats, write_bundle, write_month
from npistack.settings import Settings
from npistack.storage import open_store
from npistack.storage.changes import ChangeFilter, read_changes
from npistack.storage.webhooks import create_subscription
from npistack.worker import DeliveryWorker
from tests.webhook_support import allow_loopback_receivers, receiver  # noqa: F401 - applies here

FILTERS = {
    "everything": ChangeFilter(),
    "texas-or-california": ChangeFilter.parse(states=["TX", "CA"]),
    "organizations-gone": ChangeFilter.parse(types=["deactivated"], entity_types=["2"]),
    "physicians-created": ChangeFilter.parse(types=["created"], taxonomies=["207Q00000X", "207R00000X"]),
}


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> MonthStats:
    tmp = tmp_path_factory.mktemp("hookmonth")
    base = write_bundle(tmp / "base", 1500, seed=9, release=date(2026, 11, 9)).path
    return write_month(base, tmp / "month", weeks=2, weekly_rows=150, seed=4, full=False)


def test_every_subscription_receives_its_matching_events(month: MonthStats, store_url: str) -> None:
    with receiver(["whsec_month_test_secret_0123456789"]) as rx:
        store = open_store(store_url)
        try:
            ingest(month.base, store)
            subs = {
                name: create_subscription(
                    store, url=rx.url, secret="whsec_month_test_secret_0123456789", filters=flt
                ).id
                for name, flt in FILTERS.items()
            }
            for weekly in month.weeklies:
                ingest(weekly.path, store)
            assert month.report is not None
            ingest(month.report, store)
            expected = {
                subs[name]: {c.event_id for c in read_changes(store, after=0, flt=flt, limit=1_000_000)}
                for name, flt in FILTERS.items()
            }
        finally:
            store.close()
        assert all(expected.values()), expected  # each filter matches something in this month

        settings = Settings(database_url=store_url, webhook_backoff_s=0.05, webhook_timeout_s=5)
        with DeliveryWorker(store_url, settings, concurrency=4) as worker:
            while worker.run_once(limit=50):
                pass
        got: dict[int, set[str]] = {sub: set() for sub in subs.values()}
        for hit in rx.hits:
            assert hit.verified and hit.answered == 200
            body = orjson.loads(hit.body)
            assert body["id"] == hit.event_id
            got[body["subscriptionId"]].add(hit.event_id)
        assert got == expected
        assert len(rx.hits) == sum(len(v) for v in expected.values())  # each exactly once here
