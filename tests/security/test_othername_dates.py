"""Issue 14 item 23: an othername row's Created Date is kept when it repeats the main file's other name.

The npidata row of an organization carries one other name (``Provider Other Organization Name`` and its
type code); CMS's othername file (with its 2026 fourth column, Created Date) usually lists the same name
again, with the date. The provider document shows the name once, and with the date.
"""

from __future__ import annotations

from pathlib import Path

from npistack.ingest.load import ingest
from npistack.nppes.layout import OTHERNAME_CREATED, canonical_columns
from npistack.services.providers import get_provider
from npistack.storage import open_store
from tests.nppes_files import npi, organization, write_bundle, write_file


def _names(tmp_path: Path, othername: list[list[str]]) -> list[dict[str, object]]:
    org = npi(5, 1)
    row = organization(
        5,
        **{
            "Provider Other Organization Name": "ACME URGENT CARE",
            "Provider Other Organization Name Type Code": "3",
        },
    )
    bundle = write_bundle(tmp_path / "b", [row])
    write_file(
        next(bundle.glob("othername_pfile_*")),
        [*canonical_columns("othername"), OTHERNAME_CREATED],
        [[org, *r] for r in othername],
    )
    store = open_store(f"sqlite:///{tmp_path / 'o.db'}")
    try:
        ingest(bundle, store, workers=1)
        return list(get_provider(store, org)["otherNames"])
    finally:
        store.close()


def test_repeated_other_name_keeps_its_created_date(tmp_path: Path) -> None:
    names = _names(
        tmp_path, [["ACME URGENT CARE", "3", "06/01/2026"], ["ACME FORMER LLC", "4", "01/02/2020"]]
    )
    assert names == [
        {
            "type": "Doing Business As",
            "typeCode": "3",
            "organizationName": "ACME URGENT CARE",
            "createdDate": "2026-06-01",
        },
        {
            "type": "Former Legal Business Name",
            "typeCode": "4",
            "organizationName": "ACME FORMER LLC",
            "createdDate": "2020-01-02",
        },
    ]


def test_same_name_with_another_type_is_its_own_entry(tmp_path: Path) -> None:
    names = _names(tmp_path, [["ACME URGENT CARE", "5", "06/01/2026"]])
    assert [(n["typeCode"], n.get("createdDate")) for n in names] == [("3", None), ("5", "2026-06-01")]
