"""Weekly bundles, deactivation reports and new monthly files applied to a store: what changes, the
history and field diffs, ordering rules, and the same current data as a direct full load.
Runs on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from npistack.errors import LoadError
from npistack.ingest.load import ingest
from npistack.nppes.deactivation import write_report
from npistack.services.history import provider_history
from npistack.services.providers import get_provider
from npistack.storage import open_store
from npistack.storage.changes import ChangeFilter, read_changes
from tests.nppes_files import write_bundle
from tests.storage_sql import sql_rows
from tests.update_support import (
    INDIVIDUAL,
    NEW_NPI,
    ORGANIZATION,
    STUB,
    TO_DEACTIVATE,
    UNCHANGED,
    base_bundle,
    diff_fields,
    sample_rows,
    store_content,
    week_one,
    week_one_rows,
)


@pytest.fixture
def loaded(store_url: str, tmp_path: Path) -> str:
    store = open_store(store_url)
    try:
        assert ingest(base_bundle(tmp_path / "base"), store).status == "succeeded"
    finally:
        store.close()
    return store_url


def _apply(url: str, path: Path, **kw: object):  # type: ignore[no-untyped-def]
    store = open_store(url)
    try:
        return ingest(path, store, **kw)  # type: ignore[arg-type]
    finally:
        store.close()


def _changes(url: str) -> dict[str, object]:
    store = open_store(url)
    try:
        return {f"{c.npi:010d}": c for c in read_changes(store, after=0, flt=ChangeFilter(), limit=1000)}
    finally:
        store.close()


def test_weekly_decides_each_kind_of_change(loaded: str, tmp_path: Path) -> None:
    summary = _apply(loaded, week_one(tmp_path / "w1"))
    assert summary.status == "succeeded"
    assert summary.message == "1 created, 2 updated, 1 deactivated, 1 reactivated, 1 unchanged"
    changes = _changes(loaded)
    assert {n: c.change_type for n, c in changes.items()} == {  # type: ignore[attr-defined]
        INDIVIDUAL: "updated",
        ORGANIZATION: "updated",
        TO_DEACTIVATE: "deactivated",
        STUB: "reactivated",
        NEW_NPI: "created",
    }
    assert UNCHANGED not in changes
    ind = diff_fields(changes[INDIVIDUAL].diff)  # type: ignore[attr-defined]
    assert ind["practiceLocation.line1"] == ("111 HOSPITAL DR", "500 NEW HOSPITAL DR")
    assert ind["practiceLocation.phoneRaw"][1] == "2525550199"
    assert ind["practiceLocation.phone"][1] == "+12525550199"
    assert ind["lastUpdated"][1] == "2026-11-12"
    assert not any(f.startswith(("release", "practiceLocation.std")) for f in ind)
    assert changes[INDIVIDUAL].fields == [c["field"] for c in changes[INDIVIDUAL].diff]  # type: ignore[attr-defined]


def test_weekly_transformed_by_worker_processes(
    loaded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large bundle is transformed by worker processes, which also read the stored documents of
    each block's NPIs over their own connection (SQLite; on PostgreSQL this process reads them and
    sends them along): the same changes and the same data as in one process."""
    from npistack.ingest import weekly

    inline = f"sqlite:///{tmp_path / 'inline.db'}"
    _apply(inline, base_bundle(tmp_path / "b2"))
    expected = _apply(inline, week_one(tmp_path / "w1"))
    monkeypatch.setattr(weekly, "INLINE_BELOW_BYTES", 0)
    summary = _apply(loaded, week_one(tmp_path / "w1"), workers=2)
    assert summary.message == expected.message
    assert store_content(loaded) == store_content(inline)
    got, want = _changes(loaded), _changes(inline)
    assert list(got) == list(want)
    assert [(c.change_type, c.diff) for c in got.values()] == [(c.change_type, c.diff) for c in want.values()]  # type: ignore[attr-defined]


def test_child_sets_are_replaced_as_a_whole(loaded: str, tmp_path: Path) -> None:
    _apply(loaded, week_one(tmp_path / "w1"))
    org = diff_fields(_changes(loaded)[ORGANIZATION].diff)  # type: ignore[attr-defined]
    old_locs, new_locs = org["secondaryLocations"]
    assert [x["line1"] for x in old_locs] == ["100 FIRST ST", "200 SECOND ST"]
    assert [x["line1"] for x in new_locs] == ["100 FIRST ST STE 5"]
    assert org["otherOrganizationNames"] == (
        [{"typeCode": "3", "organizationName": "CAPE FEAR VALLEY HEALTH"}],
        None,
    )
    assert "endpoints" not in org  # the same endpoint set again: no change
    store = open_store(loaded)
    try:
        doc = get_provider(store, ORGANIZATION)
        assert doc is not None
        assert [loc["line1"] for loc in doc["practiceLocations"][1:]] == ["100 FIRST ST STE 5"]
        assert "CAPE FEAR VALLEY HEALTH" not in [o.get("organizationName") for o in doc["otherNames"]]
        # nothing CMS removed lingers in the index tables either
        assert store.find_by_location(city="Durham", state="NC") == []
        assert ORGANIZATION not in store.find_by_name("Cape Fear Valley")
        assert (
            sql_rows(
                store,
                "SELECT count(*) FROM provider_locations WHERE npi = ? AND purpose = 'secondary'",
                (int(ORGANIZATION),),
            )[0][0]
            == 1
        )
    finally:
        store.close()


def test_history_and_diffs_per_kind(loaded: str, tmp_path: Path) -> None:
    _apply(loaded, week_one(tmp_path / "w1"))
    store = open_store(loaded)
    try:
        ind = provider_history(store, INDIVIDUAL)
        assert ind is not None and ind["current"] == 2
        v1, v2 = ind["versions"]
        assert (v1["changeType"], v1["validFrom"], v1["validTo"]) == ("initial", "2026-11-08", "2026-11-15")
        assert v1["record"]["practiceLocation"]["line1"] == "111 HOSPITAL DR"
        assert v1["release"]["kind"] == "full"
        assert (v2["changeType"], v2["validFrom"], v2["validTo"]) == ("updated", "2026-11-15", None)
        assert v2["record"]["practiceLocation"]["line1"] == "500 NEW HOSPITAL DR"
        assert v2["release"] == {"date": "2026-11-15", "kind": "weekly", "loadId": v2["release"]["loadId"]}
        assert diff_fields(v2["changes"])["practiceLocation.line1"] == (
            "111 HOSPITAL DR",
            "500 NEW HOSPITAL DR",
        )

        gone = provider_history(store, TO_DEACTIVATE)
        assert gone is not None
        assert [v["changeType"] for v in gone["versions"]] == ["initial", "deactivated"]
        last = gone["versions"][-1]
        assert last["record"]["status"] == "deactivated"
        assert last["record"]["deactivationDate"] == "2026-11-12"
        assert last["record"]["entityType"] is None
        fields = diff_fields(last["changes"])
        assert fields["status"] == ("active", "deactivated")
        assert fields["name"][0]["last"] == "WIEBE" and fields["name"][1] is None

        back = provider_history(store, STUB)
        assert back is not None
        assert [v["changeType"] for v in back["versions"]] == ["initial", "reactivated"]
        assert back["versions"][0]["record"]["status"] == "deactivated"
        assert back["versions"][1]["record"]["status"] == "active"
        assert back["versions"][1]["record"]["reactivationDate"] == "2026-11-14"
        assert diff_fields(back["versions"][1]["changes"])["status"] == ("deactivated", "active")

        new = provider_history(store, NEW_NPI)
        assert new is not None
        assert [(v["version"], v["changeType"], v["validFrom"]) for v in new["versions"]] == [
            (1, "created", "2026-11-15")
        ]
        assert new["versions"][0]["record"]["name"]["last"] == "NEWCOMER"

        same = provider_history(store, UNCHANGED)  # never changed: its current record only
        assert same is not None and [v["changeType"] for v in same["versions"]] == ["initial"]
        assert provider_history(store, "1000000004") is None
    finally:
        store.close()


def test_second_change_closes_the_previous_version(loaded: str, tmp_path: Path) -> None:
    _apply(loaded, week_one(tmp_path / "w1"))
    rows, _ = week_one_rows()
    again = list(rows[0])
    again[rows[0].index("500 NEW HOSPITAL DR")] = "600 THIRD HOSPITAL DR"
    _apply(loaded, write_bundle(tmp_path / "w2", [again], start="20261116", end="20261122"))
    store = open_store(loaded)
    try:
        hist = provider_history(store, INDIVIDUAL)
        assert hist is not None
        assert [(v["version"], v["validFrom"], v["validTo"]) for v in hist["versions"]] == [
            (1, "2026-11-08", "2026-11-15"),
            (2, "2026-11-15", "2026-11-22"),
            (3, "2026-11-22", None),
        ]
        assert diff_fields(hist["versions"][2]["changes"])["practiceLocation.line1"] == (
            "500 NEW HOSPITAL DR",
            "600 THIRD HOSPITAL DR",
        )
    finally:
        store.close()


def test_reapplying_a_bundle_is_a_no_op(loaded: str, tmp_path: Path) -> None:
    bundle = week_one(tmp_path / "w1")
    _apply(loaded, bundle)
    before = store_content(loaded)
    again = _apply(loaded, bundle)
    assert again.status == "unchanged"
    assert "already applied" in again.message
    assert store_content(loaded) == before
    assert len(_changes(loaded)) == 5


def test_order_rules(loaded: str, tmp_path: Path) -> None:
    rows = list(sample_rows().values())
    old = write_bundle(tmp_path / "old", rows[:3], start="20261102", end="20261108")
    with pytest.raises(LoadError, match="not newer than the data"):
        _apply(loaded, old)
    gap = write_bundle(tmp_path / "gap", rows[:3], start="20261116", end="20261122")
    with pytest.raises(LoadError, match="weeks are missing"):
        _apply(loaded, gap)
    assert _apply(loaded, gap, force=True).status == "succeeded"
    older_full = write_bundle(tmp_path / "oldfull", rows, end="20261011")
    with pytest.raises(LoadError, match="older than the data in the store"):
        _apply(loaded, older_full)
    store = open_store(loaded)
    try:
        assert store.data_release() == "2026-11-22"
    finally:
        store.close()


def test_weekly_needs_a_full_load_first(store_url: str, tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="load a monthly full file first"):
        _apply(store_url, week_one(tmp_path / "w1"))


def test_orphan_child_rows_are_quarantined(loaded: str, tmp_path: Path) -> None:
    rows, children = week_one_rows()
    from tests.update_support import pl_row

    children["pl"].append(pl_row(UNCHANGED.replace("1588667638", "1215930367"), "9 ORPHAN RD"))
    summary = _apply(
        loaded, write_bundle(tmp_path / "w1", rows, start="20261109", end="20261115", **children)
    )
    assert summary.rows_quarantined == 1
    store = open_store(loaded)
    try:
        (q,) = store.quarantined(summary.load_id)
        assert "has no npidata row in this weekly bundle" in q["reason"]
        assert "9 ORPHAN RD" in q["raw"]
    finally:
        store.close()


def test_deactivation_report(loaded: str, tmp_path: Path) -> None:
    _apply(loaded, week_one(tmp_path / "w1"))  # STUB is reactivated on 2026-11-14
    report = write_report(
        tmp_path / "report",
        date(2026, 12, 14),
        [
            (UNCHANGED, date(2026, 11, 20)),  # active: deactivated now
            (STUB, date(2021, 3, 3)),  # reactivated after this date: the report is older, skipped
            (TO_DEACTIVATE, date(2026, 11, 12)),  # already deactivated on that date: no change
            ("1000000004", date(2026, 11, 1)),  # not in the store: recorded as a deactivated NPI
        ],
    )
    summary = _apply(loaded, report)
    assert summary.status == "succeeded", summary.message
    assert (
        summary.message == "2 deactivated, 1 unchanged; 1 skipped (reactivated on or after the report's date)"
    )
    changes = _changes(loaded)
    assert changes[UNCHANGED].change_type == "deactivated"  # type: ignore[attr-defined]
    assert changes["1000000004"].change_type == "deactivated"  # type: ignore[attr-defined]
    store = open_store(loaded)
    try:
        doc = get_provider(store, UNCHANGED)
        assert doc is not None and doc["status"] == "deactivated" and doc["deactivationDate"] == "2026-11-20"
        assert doc["entityType"] is None  # exactly as CMS publishes a deactivated NPI
        stub = get_provider(store, STUB)
        assert stub is not None and stub["status"] == "active"
        assert store.get_meta("deactivation_release") == "2026-12-14"
    finally:
        store.close()
    assert _apply(loaded, report).status == "unchanged"
    older = write_report(tmp_path / "older", date(2026, 10, 12), [(UNCHANGED, date(2026, 10, 1))])
    with pytest.raises(LoadError, match="older than the last one applied"):
        _apply(loaded, older)


def test_new_monthly_file_is_reconciled(loaded: str, tmp_path: Path) -> None:
    """A new full file yields the same kinds of changes as the weekly that led to it, and the
    same current data."""
    weekly = tmp_path / "weekly"
    _apply(f"sqlite:///{weekly / 'w.db'}", base_bundle(tmp_path / "b2"))
    _apply(f"sqlite:///{weekly / 'w.db'}", week_one(tmp_path / "w1"))
    # the month-end file: base rows, with the weekly's rows in their place and the new one appended
    rows = sample_rows()
    npidata, children = week_one_rows()
    latest = {r[0]: r for r in npidata}
    merged = [latest.get(n, r) for n, r in rows.items()] + [latest[NEW_NPI]]
    full = write_bundle(tmp_path / "dec", merged, end="20261115", **children)
    summary = _apply(loaded, full)
    assert summary.status == "succeeded"
    assert summary.message == "1 created, 2 updated, 1 deactivated, 1 reactivated"
    assert {n: c.change_type for n, c in _changes(loaded).items()} == {  # type: ignore[attr-defined]
        INDIVIDUAL: "updated",
        ORGANIZATION: "updated",
        TO_DEACTIVATE: "deactivated",
        STUB: "reactivated",
        NEW_NPI: "created",
    }
    assert store_content(loaded) == store_content(f"sqlite:///{weekly / 'w.db'}")
    store = open_store(loaded)
    try:
        hist = provider_history(store, INDIVIDUAL)
        assert hist is not None and [v["changeType"] for v in hist["versions"]] == ["initial", "updated"]
        assert hist["versions"][1]["release"]["kind"] == "full"
    finally:
        store.close()
