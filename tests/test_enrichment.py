"""Enrichment scores (npistack.services.enrichment): request parsing, completeness, quality checks,
freshness, and the worked example in docs/enrichment.md (real output for a real sample row)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from npistack.ingest.load import ingest
from npistack.nppes.taxonomy import load_nucc
from npistack.records.rows import StoredProvider
from npistack.services.enrichment import (
    ACCEPTED_VALUES,
    age_score,
    enrich,
    is_licensed,
    parse_enrichment,
)
from npistack.services.providers import expand, get_provider
from npistack.storage import open_store
from npistack.storage.base import SqlStore
from tests.nppes_files import SAMPLE

NUCC = load_nucc()
ALL = frozenset({"completeness", "quality_score", "freshness"})
TODAY = date(2025, 7, 1)
RELEASE = date(2025, 6, 9)
LOADED = datetime(2025, 6, 10, 4, 12, tzinfo=UTC)
DOC_PAGE = Path(__file__).parent.parent / "docs" / "enrichment.md"


def _address(line1: str = "111 HOSPITAL DR", zip5: str = "27886", **extra: Any) -> dict[str, Any]:
    return {
        "line1": line1,
        "city": "TARBORO",
        "state": "NC",
        "postalCode": zip5,
        "countryCode": "US",
        "phone": "+12526417700",
        "phoneRaw": "2526417700",
        "std": {"line1": line1, "city": "TARBORO", "state": "NC", "zip5": zip5},
        **extra,
    }


PHYSICIAN: dict[str, Any] = {
    "npi": "1114920162",
    "entityType": "NPI-1",
    "status": "active",
    "name": {"first": "JON", "last": "DUBOSE", "credential": "MD", "credentials": ["MD"]},
    "sex": "M",
    "taxonomies": [
        {"slot": 1, "code": "208000000X", "license": "200101440", "licenseState": "NC"},
        {"slot": 2, "code": "207R00000X", "license": "200101440", "licenseState": "NC", "primary": True},
    ],
    "mailingAddress": _address(),
    "practiceLocation": _address(),
    "lastUpdated": "2024-07-01",
    "release": {"date": None, "loadId": 1, "line": 2},
}

ORGANIZATION: dict[str, Any] = {
    "npi": "1497758544",
    "entityType": "NPI-2",
    "status": "active",
    "organizationName": "TARBORO CLINIC LLC",
    "authorizedOfficial": {"first": "ANN", "last": "LEE", "title": "CEO", "phoneRaw": "2526417701"},
    "taxonomies": [{"slot": 1, "code": "261QP2300X", "primary": True}],
    "mailingAddress": _address(),
    "practiceLocation": _address(),
    "lastUpdated": "2024-07-01",
}

STUB: dict[str, Any] = {"npi": "1306849450", "status": "deactivated", "deactivationDate": "2021-03-03"}


def doc_of(stored: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The expanded document of ``stored`` with top-level keys replaced (None removes a key)."""
    d = copy.deepcopy(stored)
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return expand(StoredProvider(doc=d, extras=[]), NUCC)


def run(doc: dict[str, Any], factors: frozenset[str] = ALL, **kw: Any) -> dict[str, Any]:
    kw = {"release_date": RELEASE, "loaded_at": LOADED, "today": TODAY, **kw}
    return enrich(doc, factors, nucc=NUCC, **kw)


def check(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in result["qualityScore"]["checks"] if c["name"] == name)


# --- parse_enrichment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("completeness", {"completeness"}),
        ("quality_score", {"quality_score"}),
        ("freshness", {"freshness"}),
        ("quality_freshness", {"completeness", "quality_score", "freshness"}),
        ("  Completeness ", {"completeness"}),
        ("QUALITY_SCORE,freshness", {"quality_score", "freshness"}),
        ("completeness , Freshness", {"completeness", "freshness"}),
        ("freshness,freshness", {"freshness"}),
        ("quality_freshness, completeness", {"completeness", "quality_score", "freshness"}),
    ],
)
def test_parse_accepts(value: str, expected: set[str]) -> None:
    assert parse_enrichment(value) == frozenset(expected)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("", "enrichment is empty"),
        ("   ", "enrichment is empty"),
        (" , ", "enrichment is empty"),
        ("completeness,", "an empty item"),
        ("quality", "'quality'"),
        ("qualityScore", "'qualityscore'"),
        ("completeness;freshness", "'completeness;freshness'"),
    ],
)
def test_parse_rejects_with_the_accepted_values(value: str, named: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_enrichment(value)
    message = str(e.value)
    assert named in message
    assert "completeness, quality_score, freshness, quality_freshness" in message
    assert ACCEPTED_VALUES == ("completeness", "quality_score", "freshness", "quality_freshness")


# --- the enrichment object --------------------------------------------------------------------------


def test_only_requested_factors() -> None:
    doc = doc_of(PHYSICIAN)
    assert list(run(doc, frozenset({"freshness"}))) == ["factors", "freshness"]
    assert run(doc, frozenset({"freshness"}))["factors"] == ["freshness"]
    assert list(run(doc, frozenset({"quality_score"}))) == ["factors", "qualityScore"]
    both = run(doc, frozenset({"completeness", "quality_score"}))
    assert list(both) == ["factors", "completeness", "qualityScore"]
    full = run(doc, parse_enrichment("quality_freshness"))
    assert full["factors"] == ["completeness", "freshness", "qualityScore"]
    assert list(full) == ["factors", "completeness", "qualityScore", "freshness"]


def test_unknown_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="quality_freshness"):
        run(doc_of(PHYSICIAN), frozenset({"quality_freshness"}))


def test_enrich_does_not_change_the_document() -> None:
    doc = doc_of(PHYSICIAN)
    before = copy.deepcopy(doc)
    run(doc)
    assert doc == before


# --- completeness -----------------------------------------------------------------------------------


def test_complete_active_physician() -> None:
    result = run(doc_of(PHYSICIAN))
    c = result["completeness"]
    assert c["score"] == 1.0
    assert c["missing"] == [] and c["notApplicable"] == []
    assert c["present"] == [
        "name.first",
        "name.last",
        "name.credential",
        "sex",
        "primaryTaxonomy",
        "primaryTaxonomy.license",
        "practiceLocation",
        "practiceLocation.phone",
        "mailingAddress",
    ]
    assert c["fields"] == dict.fromkeys(c["present"], True)
    q = result["qualityScore"]
    assert (q["score"], q["passed"], q["applicable"]) == (1.0, 8, 8)
    assert all(ch["applicable"] and ch["passed"] for ch in q["checks"])


def test_physician_missing_fields() -> None:
    name = {"first": "JON", "last": "DUBOSE"}
    c = run(doc_of(PHYSICIAN, name=name, sex=None, mailingAddress=None))["completeness"]
    assert c["missing"] == ["name.credential", "sex", "mailingAddress"]
    assert len(c["fields"]) == 9 and c["fields"]["sex"] is False and c["fields"]["name.first"] is True
    assert c["score"] == 0.67  # 6 of 9


def test_license_not_applicable_for_an_unlicensed_primary_taxonomy() -> None:
    student = [{"slot": 1, "code": "390200000X", "primary": True}]
    result = run(doc_of(PHYSICIAN, taxonomies=student))
    c = result["completeness"]
    assert c["notApplicable"] == ["primaryTaxonomy.license"]
    assert "primaryTaxonomy.license" not in c["fields"] and len(c["fields"]) == 8
    assert c["score"] == 1.0
    lic = check(result, "license_present")
    assert lic == {
        "name": "license_present",
        "applicable": False,
        "passed": None,
        "detail": "no licensed taxonomy",
    }
    assert (result["qualityScore"]["passed"], result["qualityScore"]["applicable"]) == (7, 7)


def test_missing_license_on_a_licensed_taxonomy() -> None:
    taxonomies = [
        {"slot": 1, "code": "208000000X", "license": "200101440", "licenseState": "NC"},
        {"slot": 2, "code": "207R00000X", "primary": True},
        {"slot": 3, "code": "174400000X"},  # Specialist: Other Service Providers, not licensed
    ]
    result = run(doc_of(PHYSICIAN, taxonomies=taxonomies))
    assert result["completeness"]["missing"] == ["primaryTaxonomy.license"]
    assert result["completeness"]["score"] == 0.89  # 8 of 9
    lic = check(result, "license_present")
    assert (lic["applicable"], lic["passed"]) == (True, False)
    assert lic["detail"] == "no license number for 207R00000X"
    assert result["qualityScore"]["score"] == 0.88  # 7 of 8


def test_organization_fields() -> None:
    result = run(doc_of(ORGANIZATION))
    c = result["completeness"]
    assert c["present"] == [
        "organizationName",
        "authorizedOfficial",
        "authorizedOfficial.phone",
        "primaryTaxonomy",
        "practiceLocation",
        "practiceLocation.phone",
        "mailingAddress",
    ]
    assert c["score"] == 1.0 and c["notApplicable"] == []
    assert check(result, "license_present")["applicable"] is False
    assert check(result, "license_present")["detail"] == "not an individual (NPI-1)"
    assert (result["qualityScore"]["passed"], result["qualityScore"]["applicable"]) == (7, 7)

    no_phone = dict(ORGANIZATION["authorizedOfficial"], phoneRaw=None)
    c = run(doc_of(ORGANIZATION, authorizedOfficial=no_phone, ein=None))["completeness"]
    assert c["missing"] == ["authorizedOfficial.phone"] and c["score"] == 0.86  # 6 of 7


def test_deactivated_stub_scores_zero() -> None:
    result = run(doc_of(STUB))
    c = result["completeness"]
    assert c["score"] == 0.0
    assert c["missing"] == [
        "name.full",
        "primaryTaxonomy",
        "practiceLocation",
        "practiceLocation.phone",
        "mailingAddress",
    ]
    q = result["qualityScore"]
    assert (q["score"], q["passed"], q["applicable"]) == (0.0, 0, 6)
    assert check(result, "not_deactivated") == {
        "name": "not_deactivated",
        "applicable": True,
        "passed": False,
        "detail": "NPI deactivated on 2021-03-03",
    }
    assert check(result, "taxonomy_codes_known")["applicable"] is False
    assert check(result, "practice_address_standardizable")["detail"] == "no practice location"


# --- quality checks ---------------------------------------------------------------------------------


def test_unknown_taxonomy_code_fails_its_check() -> None:
    taxonomies = [{"slot": 1, "code": "999Z00000X", "license": "A1", "primary": True}]
    result = run(doc_of(PHYSICIAN, taxonomies=taxonomies))
    known = check(result, "taxonomy_codes_known")
    assert (known["applicable"], known["passed"]) == (True, False)
    assert known["detail"] == "not in the NUCC code set: 999Z00000X"
    # An unknown code is not judged licensed or not: license_present has nothing to check.
    assert check(result, "license_present")["applicable"] is False
    q = result["qualityScore"]
    assert (q["passed"], q["applicable"], q["score"]) == (6, 7, 0.86)
    # ...but the license field of the primary taxonomy still counts for completeness.
    assert result["completeness"]["fields"]["primaryTaxonomy.license"] is True


def test_known_codes_listed_once() -> None:
    taxonomies = [
        {"slot": 1, "code": "207R00000X", "license": "1"},
        {"slot": 2, "code": "207R00000X", "license": "2", "primary": True},
    ]
    result = run(doc_of(PHYSICIAN, taxonomies=taxonomies))
    assert check(result, "taxonomy_codes_known")["detail"] == "all 1 code(s) in the NUCC code set"
    assert check(result, "license_present")["detail"] == "license number for 207R00000X"


def test_no_primary_taxonomy() -> None:
    taxonomies = [{"slot": 1, "code": "207R00000X", "license": "1"}]
    result = run(doc_of(PHYSICIAN, taxonomies=taxonomies))
    assert check(result, "primary_taxonomy_present")["passed"] is False
    assert result["completeness"]["missing"] == ["primaryTaxonomy", "primaryTaxonomy.license"]
    assert result["qualityScore"]["score"] == 0.88  # 7 of 8


def test_invalid_practice_phone() -> None:
    loc = _address(phone=None, phoneRaw="0000000000")
    del loc["phone"]
    result = run(doc_of(PHYSICIAN, practiceLocation=loc))
    phone = check(result, "practice_phone_valid")
    assert (phone["passed"], phone["detail"]) == (False, "'0000000000' is not a valid phone number")
    assert result["completeness"]["fields"]["practiceLocation.phone"] is True  # published, just not valid
    assert result["qualityScore"]["score"] == 0.88

    no_phone = {k: v for k, v in _address().items() if k not in ("phone", "phoneRaw")}
    result = run(doc_of(PHYSICIAN, practiceLocation=no_phone))
    assert check(result, "practice_phone_valid")["detail"] == "no practice phone"
    assert result["completeness"]["missing"] == ["practiceLocation.phone"]


def test_unknown_zip() -> None:
    result = run(doc_of(PHYSICIAN, practiceLocation=_address(zip5="00000")))
    assert check(result, "practice_address_standardizable")["passed"] is True
    zip_check = check(result, "practice_zip_known")
    assert (zip_check["passed"], zip_check["detail"]) == (False, "ZIP 00000 not in the ZIP geodata")
    assert check(run(doc_of(PHYSICIAN)), "practice_zip_known")["detail"] == "ZIP 27886 (Edgecombe County)"


def test_address_not_standardizable() -> None:
    loc = _address()
    loc["std"] = {"line1": "111 HOSPITAL DR", "city": "TARBORO", "state": "NC"}  # no ZIP published
    result = run(doc_of(PHYSICIAN, practiceLocation=loc))
    std = check(result, "practice_address_standardizable")
    assert (std["passed"], std["detail"]) == (False, "standardized form lacks zip5")
    assert check(result, "practice_zip_known")["detail"] == "no ZIP code"
    assert result["qualityScore"]["score"] == 0.75  # 6 of 8


def test_foreign_practice_address_skips_us_checks() -> None:
    loc = {"line1": "HAUPTSTR 1", "city": "BERLIN", "countryCode": "DE", "phoneRaw": "0301234567"}
    result = run(doc_of(PHYSICIAN, practiceLocation=loc))
    for name in ("practice_address_standardizable", "practice_zip_known"):
        assert check(result, name) == {
            "name": name,
            "applicable": False,
            "passed": None,
            "detail": "foreign address (DE)",
        }
    q = result["qualityScore"]
    assert (q["passed"], q["applicable"]) == (5, 6)  # the phone is not valid as a US number
    assert result["completeness"]["fields"]["practiceLocation"] is True


def test_missing_mailing_address() -> None:
    result = run(doc_of(PHYSICIAN, mailingAddress=None))
    mailing = check(result, "mailing_address_present")
    assert (mailing["passed"], mailing["detail"]) == (False, "no mailing address (line 1 and city)")


def test_reactivated_provider_passes() -> None:
    result = run(doc_of(PHYSICIAN, deactivationDate="2005-05-23", reactivationDate="2005-05-24"))
    assert check(result, "not_deactivated")["detail"] == "active (reactivated on 2005-05-24)"
    assert check(result, "not_deactivated")["passed"] is True


def test_licensed_rule() -> None:
    assert is_licensed("207R00000X", "NPI-1", NUCC)  # Internal Medicine Physician
    assert is_licensed("363L00000X", "NPI-1", NUCC)  # Nurse Practitioner
    assert not is_licensed("207R00000X", "NPI-2", NUCC)  # organizations are never checked
    assert not is_licensed("390200000X", "NPI-1", NUCC)  # Student, Health Care
    assert not is_licensed("174400000X", "NPI-1", NUCC)  # Other Service Providers
    assert not is_licensed("193200000X", "NPI-1", NUCC)  # Group: Multi-Specialty
    assert not is_licensed("261QP2300X", "NPI-1", NUCC)  # Non-Individual section
    assert not is_licensed("999Z00000X", "NPI-1", NUCC)  # unknown to NUCC
    assert not is_licensed(None, "NPI-1", NUCC)


# --- freshness --------------------------------------------------------------------------------------


def test_freshness_days_against_a_fixed_today() -> None:
    f = run(doc_of(PHYSICIAN))["freshness"]
    assert f == {
        "providerLastUpdated": "2024-07-01",
        "daysSinceProviderUpdate": 365,
        "releaseDate": "2025-06-09",
        "daysSinceRelease": 22,
        "loadedAt": "2025-06-10T04:12:00+00:00",
        "daysSinceLoad": 21,
        "recordScore": 1.0,
        "datasetScore": 1.0,
        "score": 1.0,
        "band": "fresh",
    }


def test_freshness_aging_and_stale() -> None:
    # 2021-07-01 -> 2025-07-01 is 1461 days: record 1 - (1461-365)/(1826-365) = 0.2498 -> 0.25.
    f = run(doc_of(PHYSICIAN, lastUpdated="2021-07-01"))["freshness"]
    assert (f["daysSinceProviderUpdate"], f["recordScore"], f["datasetScore"]) == (1461, 0.25, 1.0)
    assert (f["score"], f["band"]) == (0.63, "aging")  # (0.25 + 1.0) / 2 = 0.625, half up

    # A copy of the data 212 days old and a record untouched for ten years.
    f = run(doc_of(PHYSICIAN, lastUpdated="2015-07-01"), release_date=date(2024, 12, 1))["freshness"]
    assert (f["daysSinceRelease"], f["datasetScore"], f["recordScore"]) == (212, 0.0, 0.0)
    assert (f["score"], f["band"]) == (0.0, "stale")


def test_freshness_dataset_age_falls_back() -> None:
    # No release date given: the document's own release.date...
    stored = dict(PHYSICIAN, release={"date": "2025-03-03", "loadId": 1, "line": 2})
    f = run(doc_of(stored), release_date=None)["freshness"]
    assert (f["releaseDate"], f["daysSinceRelease"]) == ("2025-03-03", 120)
    assert f["datasetScore"] == 0.43  # (185 - 120) / (185 - 35) = 0.4333
    assert (f["score"], f["band"]) == (0.72, "aging")  # (1.0 + 0.43) / 2 = 0.715, half up
    # ...and without any release date, the load time.
    late = datetime(2025, 3, 1, 23, 59, tzinfo=UTC)
    f = run(doc_of(PHYSICIAN), release_date=None, loaded_at=late)["freshness"]
    assert (f["releaseDate"], f["daysSinceRelease"], f["daysSinceLoad"]) == (None, None, 122)
    assert f["datasetScore"] == 0.42  # (185 - 122) / 150
    # Nothing known: no score, no band.
    f = run(doc_of(PHYSICIAN, lastUpdated=None), release_date=None, loaded_at=None)["freshness"]
    assert (f["score"], f["band"], f["recordScore"], f["datasetScore"]) == (None, None, None, None)


def test_stub_freshness_counts_the_dataset_only() -> None:
    f = run(doc_of(STUB), release_date=date(2025, 4, 1))["freshness"]
    assert (f["providerLastUpdated"], f["recordScore"]) == (None, None)
    assert (f["daysSinceRelease"], f["datasetScore"], f["score"], f["band"]) == (91, 0.63, 0.63, "aging")


@pytest.mark.parametrize(
    ("days", "expected"),
    [(-3, 1.0), (0, 1.0), (35, 1.0), (36, 0.99), (110, 0.5), (184, 0.01), (185, 0.0), (4000, 0.0)],
)
def test_age_score(days: int, expected: float) -> None:
    assert age_score(days, 35, 185) == expected


# --- real sample rows and the worked example --------------------------------------------------------


@pytest.fixture
def sample_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    assert ingest(SAMPLE, store).rows_loaded == 50
    yield store
    store.close()


def test_sample_rows(sample_store: SqlStore) -> None:
    def scores(npi: str) -> tuple[float, float, str]:
        doc = get_provider(sample_store, npi)
        assert doc is not None
        result = run(doc)
        return result["completeness"]["score"], result["qualityScore"]["score"], result["freshness"]["band"]

    assert scores("1497758544") == (1.0, 1.0, "aging")  # organization, last updated 2011
    assert scores("1306849450") == (0.0, 0.0, "fresh")  # deactivated stub: the copy is current
    assert scores("1487657532") == (1.0, 1.0, "fresh")  # physician, last updated 2025-04-03
    doc = get_provider(sample_store, "1750384707")  # NPI-1 whose primary taxonomy is Specialist
    assert doc is not None
    assert run(doc)["completeness"]["notApplicable"] == ["primaryTaxonomy.license"]


def test_worked_example_in_the_docs_is_real_output(sample_store: SqlStore) -> None:
    text = DOC_PAGE.read_text()
    match = re.search(r"<!-- worked-example -->\s*```json\n(.*?)```", text, re.S)
    assert match, "docs/enrichment.md lost its worked example"
    doc = get_provider(sample_store, "1114920162")
    assert doc is not None
    assert json.loads(match.group(1)) == run(doc)
    assert 'enrich(doc, parse_enrichment("quality_freshness"), release_date=date(2025, 6, 9)' in text
