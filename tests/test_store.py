"""The store contract, run against every backend: lookups by NPI, license + state, name prefix
(including other names), taxonomy, city/state/ZIP and distance; child files merged into documents;
app state untouched by data reloads; a dropped-in NUCC release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from npistack.ingest.load import ingest
from npistack.nppes.layout import canonical_columns
from npistack.nppes.taxonomy import load_nucc, parse_nucc
from npistack.services.providers import get_provider, get_providers
from npistack.storage import open_store
from tests.nppes_files import individual, npi, organization, stub, write_bundle

ORG = npi(50, 1)


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Any:
    rows = [
        individual(
            1,
            last="SMITH",
            first="ROBERT",
            license="00012345",
            license_state="TX",
            zip="787011234",
            city="AUSTIN",
            state="TX",
            line1="1501 RED RIVER STREET",
        ),
        individual(
            2,
            last="Smithers",
            first="Ann",
            taxonomy="363LF0000X",
            license="RN-77",
            license_state="TX",
            zip="78758",
            city="Austin",
            state="TX",
            other_last="JONES",
            other_first="ANN",
            other_type="1",
        ),
        individual(3, last="O'BRIEN", first="PAT", zip="10001", city="NEW YORK", state="NY"),
        organization(
            50,
            name="ST. DAVID'S MEDICAL CENTER",
            zip="78705",
            city="AUSTIN",
            state="TX",
            other_org="<UNAVAIL>",
            other_org_type="6",
        ),
        stub(60),
    ]
    pl = [
        [
            npi(1),
            "12221 N MOPAC EXPY",
            "",
            "AUSTIN",
            "TX",
            "787583301",
            "US",
            "5125550100",
            "12",
            "5125550199",
        ]
    ]
    othername = [[ORG, "ST DAVIDS HEART CLINIC", "3"], [ORG, "AUSTIN GENERAL HOSPITAL", "4"]]
    endpoint = [
        [
            npi(1),
            "DIRECT",
            "Direct Messaging Address",
            "rsmith@direct.example.org",
            "N",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
    ]
    bundle = write_bundle(tmp_path / "b", rows, pl=pl, othername=othername, endpoint=endpoint)
    s = open_store(store_url)
    ingest(bundle, s)
    yield s
    s.close()


def test_lookup_by_npi_merges_child_files(store: Any) -> None:
    doc = get_provider(store, npi(1))
    assert [loc["purpose"] for loc in doc["practiceLocations"]] == ["primary", "secondary"]
    secondary = doc["practiceLocations"][1]
    assert secondary["standardized"]["line1"] == "12221 N MOPAC EXPY"
    assert secondary["phone"] == "+15125550100" and secondary["phoneExtension"] == "12"
    assert secondary["fax"] == "+15125550199" and secondary["zip4"] == "3301"
    assert doc["endpoints"][0]["endpoint"] == "rsmith@direct.example.org"
    assert doc["practiceLocation"]["standardized"]["line1"] == "1501 RED RIVER ST"
    org = get_provider(store, ORG)
    assert [(o["type"], o["organizationName"]) for o in org["otherNames"]] == [
        ("Doing Business As", "ST DAVIDS HEART CLINIC"),
        ("Former Legal Business Name", "AUSTIN GENERAL HOSPITAL"),
    ]
    assert get_provider(store, npi(60))["status"] == "deactivated"
    assert get_provider(store, npi(99)) is None
    assert [d["npi"] for d in get_providers(store, [npi(3), "junk", npi(1), npi(3)])] == [npi(3), npi(1)]


def test_lookup_by_license_and_state(store: Any) -> None:
    assert store.find_by_license("12345", "TX") == [npi(1)]  # leading zeros do not matter
    assert store.find_by_license("00012345", "tx") == [npi(1)]
    assert store.find_by_license("rn77", "TX") == [npi(2)]  # nor punctuation or case
    assert store.find_by_license("12345", "CA") == []


def test_lookup_by_name_prefix(store: Any) -> None:
    assert store.find_by_name("smith") == [npi(1), npi(2)]
    assert store.find_by_name("SMITH", "rob") == [npi(1)]
    assert store.find_by_name("jones", "ann") == [npi(2)]  # a former name
    assert store.find_by_name("jones", name_types=("legal",)) == []
    assert store.find_by_name("o'brien") == store.find_by_name("OBRIEN") == [npi(3)]
    assert store.find_by_name("st davids", entity_type=2) == [ORG]  # legal name and a DBA both match once
    assert store.find_by_name("austin gen") == [ORG]  # a former legal business name (othername file)
    assert store.find_by_name("jones", "mary", name_types=("ao",)) == [ORG]  # authorized official


def test_lookup_by_taxonomy_and_place(store: Any) -> None:
    assert store.find_by_taxonomy("363LF0000X") == [npi(2)]
    assert store.find_by_taxonomy("207r00000x", primary_only=True) == [npi(1), npi(3)]
    assert store.find_by_location(city="austin", state="TX") == [npi(1), npi(2), ORG]
    assert store.find_by_location(zip5="78758") == [npi(1), npi(2)]  # npi(1) by its secondary location
    assert store.find_by_location(state="NY") == [npi(3)]


def test_lookup_by_distance(store: Any) -> None:
    near = store.find_near(30.27, -97.74, 10)  # downtown Austin
    assert {n for n, _ in near} == {npi(1), npi(2), ORG}
    assert [d for _, d in near] == sorted(d for _, d in near)
    assert all(d <= 10 for _, d in near)
    assert store.find_near(40.75, -73.99, 5)[0][0] == npi(3)


def test_stats(store: Any) -> None:
    s = store.stats()
    by = {(r["entity_type"], r["status"]): r["count"] for r in s["by_type"]}
    assert by == {(1, "active"): 3, (2, "active"): 1, (None, "deactivated"): 1}
    assert s["top_states"][0] == {"state": "TX", "count": 3}
    assert {"code": "207R00000X", "count": 2} in s["top_specialties"]


def test_count_rows_counts_known_tables_only(store: Any) -> None:
    assert store.count_rows("providers") == 5 == store.count_providers()
    assert store.count_rows("provider_docs") == 5
    assert store.count_rows("changes") == 0
    for bad in ("meta", "providers; DROP TABLE providers", "PROVIDERS", ""):
        with pytest.raises(ValueError, match="no such table to count"):
            store.count_rows(bad)
    assert store.count_providers() == 5


def test_app_state_survives_reloads(store: Any, tmp_path: Path) -> None:
    store._exec("INSERT INTO meta (key, value) VALUES ('api_key:demo', 'hash')")
    first = store.current_load()
    ingest(write_bundle(tmp_path / "c", [individual(7)]), store, force=True)  # past the removal guard
    assert store._query("SELECT value FROM meta WHERE key = 'api_key:demo'") == [("hash",)]
    assert store.get_load(first.id).status == "succeeded"  # the load history is kept
    assert store.count_providers() == 1


def test_dropped_in_nucc_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Any) -> None:
    older = "Code,Grouping,Classification,Specialization,Definition\n207R00000X,Physicians,Internal Med,,x\n"
    assert parse_nucc(older)["207R00000X"].display_name == "Internal Med"  # no Display Name column
    path = tmp_path / "nucc.csv"
    path.write_text(older)
    monkeypatch.setenv("NPISTACK_NUCC_CSV", str(path))
    from npistack.settings import get_settings

    get_settings.cache_clear()
    try:
        doc = get_provider(store, npi(1))
        assert doc["primaryTaxonomy"]["description"] == "Internal Med"
        assert len(load_nucc(str(path))) == 1
    finally:
        get_settings.cache_clear()
    assert canonical_columns("othername")[0] == "NPI"


def test_wal_room_grows_while_sqlite_writes_frames(tmp_path: Path) -> None:
    """``log_room`` appends zeros to the WAL while the transaction spills frames to it (a small
    page cache makes it spill all the time): no frame is covered, the data commits intact."""
    import hashlib
    import os

    from npistack.storage.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "wal.db")
    try:
        store._exec("CREATE TABLE blobs (n INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        store._exec("PRAGMA cache_size=-256")  # 256 KiB: spills every few rows

        def body(n: int) -> bytes:
            return hashlib.sha256(str(n).encode()).digest() * 60

        for round_ in range(3):
            store._begin()
            with store.log_room(64 << 20):
                store._bulk_insert(
                    "blobs",
                    ("n", "body"),
                    ((n, body(n)) for n in range(round_ * 20_000, (round_ + 1) * 20_000)),
                )
            wal = os.path.getsize(f"{store.path}-wal")
            store._commit()
            assert wal >= 20_000 * len(body(0))  # the frames went to the WAL while it grew
        assert store._query("PRAGMA integrity_check") == [("ok",)]
        rows = store._query("SELECT n, body FROM blobs ORDER BY n")
        assert len(rows) == 60_000 and all(b == body(n) for n, b in rows)
    finally:
        store.close()


def test_wal_room_never_covers_bytes_already_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race ``log_room`` must survive, made certain: SQLite appends frames after the growing
    thread last looked at the file's size. The zeros still land after them."""
    import os
    import time

    from npistack.storage.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "race.db")
    store._exec("CREATE TABLE t (x)")
    store._bulk_insert("t", ("x",), ((bytes(4000),) for _ in range(2000)))  # a file to size the room by
    store.close()
    wal = tmp_path / "race.db-wal"
    frames = b"\xab" * 10_000
    wal.write_bytes(frames)  # what SQLite wrote after the size below was read
    real_fstat = os.fstat

    def stale(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        stale.calls += 1  # type: ignore[attr-defined]
        if stale.calls == 1:  # type: ignore[attr-defined]
            return os.stat_result(
                (st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 0, 0, 0, 0)
            )
        return st

    stale.calls = 0  # type: ignore[attr-defined]
    monkeypatch.setattr(os, "fstat", stale)
    with store.log_room(3 << 20):
        deadline = time.monotonic() + 10
        while store._log_growing.is_set() and time.monotonic() < deadline:  # until the room is made
            time.sleep(0.01)
    monkeypatch.undo()
    data = wal.read_bytes()
    assert stale.calls >= 2  # type: ignore[attr-defined]
    assert data[: len(frames)] == frames and len(data) >= 3 << 20 and not data[len(frames) :].strip(b"\0")
