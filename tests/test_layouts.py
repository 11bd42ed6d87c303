"""Every layout variant of the NPPES files is read; an unknown layout is refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from npistack.errors import LayoutError
from npistack.ingest.load import ingest
from npistack.nppes.layout import CERTIFICATION_DATE, OTHERNAME_CREATED, canonical_columns, detect_layout
from npistack.services.providers import get_provider
from npistack.storage import open_store
from tests.nppes_files import COLS, gender_header, individual, npi, organization, write_bundle, write_file


def _load(tmp_path: Path, bundle: Path) -> object:
    store = open_store(f"sqlite:///{tmp_path / 'v.db'}")
    summary = ingest(bundle, store)
    return store, summary


def test_current_layout(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", [individual(1, sex="F", certified="02/03/2024")])
    store, summary = _load(tmp_path, bundle)
    assert [f.layout for f in summary.files] == ["current"] * 4
    doc = get_provider(store, npi(1))
    assert doc["sex"] == "F" and doc["certificationDate"] == "2024-02-03"


def test_pre2025_gender_layout(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", [individual(1, sex="F")], header=gender_header())
    store, summary = _load(tmp_path, bundle)
    assert summary.files[0].layout == "gender+330"
    assert get_provider(store, npi(1))["sex"] == "F"


def test_329_columns_without_certification_date(tmp_path: Path) -> None:
    header = [c for c in gender_header() if c != CERTIFICATION_DATE]
    row = individual(1, sex="M")[:-1]
    bundle = write_bundle(tmp_path / "b", [row], header=header)
    store, summary = _load(tmp_path, bundle)
    assert summary.files[0].layout == "gender+329-no-certification-date"
    doc = get_provider(store, npi(1))
    assert doc["sex"] == "M" and doc["certificationDate"] is None and doc["name"]["last"] == "SMITH"
    assert doc["primaryTaxonomy"]["code"] == "207R00000X"


def test_othername_with_created_date(tmp_path: Path) -> None:
    org = npi(5, 1)
    bundle = write_bundle(tmp_path / "b", [organization(5)])
    path = next(bundle.glob("othername_pfile_*"))
    write_file(
        path,
        [*canonical_columns("othername"), OTHERNAME_CREATED],
        [[org, "ACME URGENT CARE", "3", "06/01/2026"]],
    )
    store, summary = _load(tmp_path, bundle)
    assert summary.files[2].layout == "with-created-date"
    names = get_provider(store, org)["otherNames"]
    assert names == [
        {
            "typeCode": "3",
            "type": "Doing Business As",
            "organizationName": "ACME URGENT CARE",
            "createdDate": "2026-06-01",
        }
    ]
    assert store.find_by_name("acme urgent") == [org]


def test_header_spacing_and_case_do_not_matter() -> None:
    header = [c.upper().replace(" ", "  ") for c in canonical_columns("pl")]
    assert detect_layout("pl", header, "pl.csv").kind == "pl"


def test_unknown_layout_names_file_and_columns(tmp_path: Path) -> None:
    header = [c for c in COLS if c != "Provider First Name"] + ["Provider Favourite Colour"]
    bundle = write_bundle(tmp_path / "b", [], header=header)
    store = open_store(f"sqlite:///{tmp_path / 'v.db'}")
    with pytest.raises(LayoutError) as e:
        ingest(bundle, store)
    msg = str(e.value)
    assert "npidata_pfile_20050523-20261108.csv" in msg
    assert "missing columns: 'Provider First Name'" in msg
    assert "unexpected columns: 'Provider Favourite Colour'" in msg
    assert store.loads() == []  # refused before anything was written


def test_reordered_columns_are_refused() -> None:
    header = list(canonical_columns("endpoint"))
    header[1], header[2] = header[2], header[1]
    with pytest.raises(LayoutError, match="unexpected order"):
        detect_layout("endpoint", header, "endpoint.csv")


def test_zip_bundle_as_cms_publishes_it(tmp_path: Path) -> None:
    import zipfile

    folder = write_bundle(tmp_path / "b", [individual(1), individual(2, last="JONES")])
    zpath = tmp_path / "NPPES_Data_Dissemination_November_2026_V2.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
            zf.writestr(f.name.replace(".csv", "_fileheader.csv"), f.read_text().splitlines()[0] + "\n")
    store, summary = _load(tmp_path, zpath)
    assert summary.rows_loaded == 2 and summary.release_date == "2026-11-08"
    assert store.find_by_name("jon") == [npi(2)]
