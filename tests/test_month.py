"""The issue's acceptance test: a synthetic month (a monthly full file, four weekly bundles and a
deactivation report) applied in order gives exactly the same current data as ingesting the resulting
month-end full file directly; the feed lists every change exactly once. SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from npistack.ingest.load import ingest
from npistack.nppes.synth import MonthStats, write_bundle, write_month
from npistack.storage import open_store
from npistack.storage.changes import ChangeFilter, read_changes
from tests.update_support import store_content


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> MonthStats:
    tmp = tmp_path_factory.mktemp("month")
    base = write_bundle(tmp / "base", 3000, seed=5, release=date(2026, 11, 9)).path
    return write_month(base, tmp / "month", weeks=4, weekly_rows=300, seed=3)


def test_month_in_order_equals_the_month_end_file(month: MonthStats, store_url: str, tmp_path: Path) -> None:
    assert month.full is not None and month.report is not None and len(month.weeklies) == 4
    store = open_store(store_url)
    try:
        assert ingest(month.base, store).status == "succeeded"
        summaries = [ingest(w.path, store) for w in month.weeklies]
        report = ingest(month.report, store)
        assert report.status == "succeeded", report.message
        assert store.data_release() == month.weeklies[-1].end.isoformat()
        changes = read_changes(store, after=0, flt=ChangeFilter(), limit=1_000_000)
    finally:
        store.close()
    direct = f"sqlite:///{tmp_path / 'direct.db'}"
    d = open_store(direct)
    try:
        assert ingest(month.full, d).status == "succeeded"
    finally:
        d.close()
    assert store_content(store_url) == store_content(direct)

    # the feed: every change once, in order, one per NPI per load, counted like the synthesizer counted
    assert [c.id for c in changes] == sorted({c.id for c in changes})
    assert len({c.event_id for c in changes}) == len(changes)
    per_load = Counter((c.load_id, c.npi) for c in changes)
    assert max(per_load.values()) == 1
    for week, summary in zip(month.weeklies, summaries, strict=True):
        assert summary.status == "succeeded"
        got = Counter(c.change_type for c in changes if c.load_id == summary.load_id)
        assert got["created"] == week.created
        assert got["reactivated"] == week.reactivated
        assert got["deactivated"] == week.deactivated
        assert 0 < got["updated"] <= sum(week.updated.values())
    got = Counter(c.change_type for c in changes if c.load_id == report.load_id)
    assert got == Counter({"deactivated": month.report_extra})


def test_month_end_file_reconciles_to_the_same_changes(month: MonthStats, tmp_path: Path) -> None:
    """Loading the month-end file over the base records one change per NPI that the weeks changed."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = open_store(url)
    try:
        ingest(month.base, store)
        summary = ingest(month.full, store)  # type: ignore[arg-type]
        changes = read_changes(store, after=0, flt=ChangeFilter(), limit=1_000_000)
    finally:
        store.close()
    assert summary.status == "succeeded"
    kinds = Counter(c.change_type for c in changes)
    created = sum(w.created for w in month.weeklies)
    # new NPIs are version 1: created, or deactivated when a later week deactivated them again
    assert sum(1 for c in changes if c.version == 1) == created
    assert kinds["created"] <= created and kinds["removed"] == 0
    assert len({c.npi for c in changes}) == len(changes)
