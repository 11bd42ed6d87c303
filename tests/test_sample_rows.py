"""The 50 real NPPES rows (tests/data/npidata_sample.csv, verbatim from a mid-2025 V2 file) load with
the right fields, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from npistack.ingest.load import ingest
from npistack.services.providers import get_provider
from npistack.storage import open_store
from tests.nppes_files import SAMPLE


@pytest.fixture
def store(store_url: str) -> Any:
    s = open_store(store_url)
    summary = ingest(SAMPLE, s)
    assert summary.status == "succeeded"
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (50, 50, 0)
    yield s
    s.close()


def test_counts_by_type_and_status(store: Any) -> None:
    by = {(r["entity_type"], r["status"]): r["count"] for r in store.stats()["by_type"]}
    assert by == {(1, "active"): 35, (2, "active"): 12, (None, "deactivated"): 3}


def test_individual_with_several_taxonomies(store: Any) -> None:
    doc = get_provider(store, "1114920162")
    assert doc["entityType"] == "NPI-1" and doc["status"] == "active"
    assert doc["name"]["first"] == "JON" and doc["name"]["last"] == "DUBOSE"
    assert doc["name"]["prefix"] == "DR." and doc["name"]["credential"] == "MD"
    assert doc["name"]["credentials"] == ["MD"]
    assert doc["name"]["full"] == "JON DUBOSE, MD"
    assert doc["sex"] == "M" and doc["soleProprietor"] is False
    codes = [(t["slot"], t["code"], t["license"], t["licenseState"], t["primary"]) for t in doc["taxonomies"]]
    assert codes == [
        (1, "208000000X", "200101440", "NC", False),
        (2, "208M00000X", "87299", "SC", False),
        (3, "207R00000X", "200101440", "NC", True),
    ]
    assert doc["primaryTaxonomy"] == {
        "code": "207R00000X",
        "description": "Internal Medicine Physician",
        "state": "NC",
        "license": "200101440",
    }
    hosp = doc["taxonomies"][1]
    assert (
        hosp["classification"] == "Hospitalist" and hosp["grouping"] == "Allopathic & Osteopathic Physicians"
    )
    assert [(i["identifier"], i["typeCode"], i["type"], i["state"]) for i in doc["identifiers"]] == [
        ("891330U", "05", "Medicaid", "NC"),
        ("PENDING", "05", "Medicaid", "SC"),
    ]
    loc = doc["practiceLocation"]
    assert loc["line1"] == "111 HOSPITAL DR" and loc["postalCode"] == "278862011"
    assert (loc["zip5"], loc["zip4"]) == ("27886", "2011")
    assert loc["phone"] == "+12526417700" and loc["fax"] == "+12526417313"
    assert loc["county"] == "Edgecombe County" and loc["timeZone"] == "America/New_York"
    assert abs(loc["latitude"] - 35.9) < 0.3 and abs(loc["longitude"] + 77.55) < 0.3
    assert doc["enumerationDate"] == "2005-05-23" and doc["lastUpdated"] == "2022-10-12"
    assert doc["certificationDate"] == "2022-10-12"
    assert doc["release"]["loadId"] >= 1 and doc["source"] == {"name": "NPPES", "version": "2.1"}


def test_organization_with_authorized_official_and_unavail(store: Any) -> None:
    doc = get_provider(store, "1497758544")
    assert doc["entityType"] == "NPI-2"
    assert doc["organizationName"] == "CUMBERLAND COUNTY HOSPITAL SYSTEM, INC"
    assert doc["name"]["full"] == "CUMBERLAND COUNTY HOSPITAL SYSTEM, INC"
    assert doc["ein"] is None  # <UNAVAIL>
    assert doc["otherNames"] == []  # <UNAVAIL> with type code 6 is no name
    assert doc["authorizedOfficial"] == {
        "prefix": "MR.",
        "first": "MICHAEL",
        "middle": None,
        "last": "NAGOWSKI",
        "suffix": None,
        "credential": None,
        "title": "CEO",
        "phone": "+19106096700",
        "phoneRaw": "9106096700",
    }
    assert doc["organizationSubpart"] is False and doc["parentOrganization"] is None
    assert doc["sex"] is None and doc["soleProprietor"] is None
    assert doc["primaryTaxonomy"]["code"] == "251G00000X"
    assert doc["mailingAddress"]["fax"] is None and doc["mailingAddress"]["phone"] == "+19106096740"


def test_group_taxonomy_text_after_code(store: Any) -> None:
    doc = get_provider(store, "1336142389")
    group = doc["taxonomies"][0]["group"]
    assert group == {"code": "193400000X", "description": "SINGLE SPECIALTY GROUP"}


@pytest.mark.parametrize(
    ("npi", "date"),
    [("1306849450", "2021-03-03"), ("1578566527", "2024-11-21"), ("1891798849", "2017-11-13")],
)
def test_deactivated_stubs(store: Any, npi: str, date: str) -> None:
    doc = get_provider(store, npi)
    assert doc["status"] == "deactivated" and doc["deactivationDate"] == date
    assert doc["entityType"] is None


def test_reactivated_provider_with_former_name(store: Any) -> None:
    doc = get_provider(store, "1659374601")
    assert doc["status"] == "active"
    assert doc["deactivationDate"] == "2005-05-23" and doc["reactivationDate"] == "2005-05-24"
    assert doc["otherNames"] == [
        {
            "typeCode": "1",
            "type": "Former Name",
            "first": "WENDY",
            "middle": "NANETTE",
            "last": "TIPTON",
            "prefix": "DR.",
            "suffix": None,
            "credential": "MD",
        }
    ]
    # Searchable by the former name as well as the legal one.
    assert "1659374601" in store.find_by_name("tipton", "wen")
    assert "1659374601" in store.find_by_name("OBERD")
    # Licenses compare without their letters' punctuation and leading zeros.
    assert store.find_by_license("MD-46567", "TN") == ["1659374601"]


def test_credentials_and_suite_in_line1(store: Any) -> None:
    assert get_provider(store, "1669475711")["name"]["credentials"] == ["MD"]  # "M. D."
    assert get_provider(store, "1619970662")["name"]["credentials"] == ["RN", "MSN", "CPNP"]
    assert get_provider(store, "1164425112")["name"]["credentials"] == ["BCPS", "PHD"]
    loc = get_provider(store, "1669475612")["practiceLocation"]
    assert loc["line1"] == "8876 SPANISH RIDGE AVE STE 103"  # as published
    assert loc["standardized"]["line1"] == "8876 SPANISH RIDGE AVE"
    assert loc["standardized"]["line2"] == "STE 103"
    # The practice fax equals the practice phone here; each stays in its own field.
    assert loc["phone"] == "+17023420858" and loc["fax"] == "+17023420858"


def test_lookups(store: Any) -> None:
    assert store.find_by_taxonomy("251G00000X") == ["1023011178", "1497758544"]
    assert "1497758544" in store.find_by_name("cumberland county", entity_type=2)
    assert store.find_by_name("cumberland", entity_type=1) == []
    assert "1114920162" in store.find_by_location(city="Tarboro", state="nc")
    assert "1114920162" in store.find_by_location(zip5="27886")
    near = store.find_near(35.9, -77.55, 25)
    assert near and near[0][0] == "1114920162"
