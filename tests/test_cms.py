"""The CMS NPI Registry API v2.1 drop-in: parameter rules and errors (pure), and result objects rendered
from the real sample rows, read back by the client code of a public tutorial."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from npistack.api import cms
from npistack.api.cms import (
    CmsError,
    CmsRequest,
    errors_body,
    parse_params,
    render_response,
    render_result,
)
from npistack.ingest.load import ingest
from npistack.services.providers import get_provider, get_providers
from npistack.services.search import SearchQuery
from npistack.storage import open_store
from tests.nppes_files import SAMPLE, individual, npi, organization, write_bundle

DOCS = Path(__file__).parent.parent / "docs" / "cms-api.md"

# Copied verbatim from "NPI Registry API: How to Look Up Any US Healthcare Provider Programmatically"
# (The Mine Works, June 2026): client code written against the live registry.
TUTORIAL_FLATTEN = '''
def flatten_provider(p):
    """Flatten a provider record to a single dict for dataframe use."""
    basic = p.get("basic", {})

    # Get practice location address
    location_addr = next(
        (a for a in p.get("addresses", []) if a.get("address_purpose") == "LOCATION"),
        {}
    )

    # Get primary taxonomy
    primary_tax = next(
        (t for t in p.get("taxonomies", []) if t.get("primary")),
        p.get("taxonomies", [{}])[0] if p.get("taxonomies") else {}
    )

    return {
        "npi":            p.get("number"),
        "type":           p.get("enumeration_type"),
        "status":         basic.get("status"),
        "first_name":     basic.get("first_name", ""),
        "last_name":      basic.get("last_name", ""),
        "org_name":       basic.get("organization_name", ""),
        "credential":     basic.get("credential", ""),
        "gender":         basic.get("gender", ""),
        "enumerated":     basic.get("enumeration_date", ""),
        "last_updated":   basic.get("last_updated", ""),
        "specialty_code": primary_tax.get("code", ""),
        "specialty_desc": primary_tax.get("desc", ""),
        "address_1":      location_addr.get("address_1", ""),
        "city":           location_addr.get("city", ""),
        "state":          location_addr.get("state", ""),
        "zip":            location_addr.get("postal_code", ""),
        "phone":          location_addr.get("telephone_number", ""),
    }
'''


def flatten_provider(p: dict[str, Any]) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(TUTORIAL_FLATTEN, namespace)
    return namespace["flatten_provider"](p)  # type: ignore[no-any-return]


def ok(**params: str) -> CmsRequest:
    parsed = parse_params({"version": "2.1", **params})
    assert isinstance(parsed, CmsRequest), parsed
    return parsed


def errors(params: dict[str, str]) -> list[tuple[str, str]]:
    """(number, field) of each error, in order."""
    parsed = parse_params(params)
    assert isinstance(parsed, list), parsed
    return [(e.number, e.field) for e in parsed]


def err(**params: str) -> list[tuple[str, str]]:
    return errors({"version": "2.1", **params})


# -- parameters --------------------------------------------------------------------------------


def test_number_lookup_builds_an_active_only_query() -> None:
    req = ok(number="1114920162")
    assert req.query == SearchQuery(number="1114920162", status="active")
    assert (req.limit, req.skip, req.pretty) == (10, 0, False)


def test_every_query_is_for_active_npis() -> None:
    for params in ({"number": "1306849450"}, {"last_name": "smith"}, {"country_code": "CA"}):
        assert ok(**params).query.status == "active"


def test_version_is_required_and_must_be_2_1() -> None:
    assert errors({"number": "1114920162"}) == [("20", "version")]
    assert errors({"number": "1114920162", "version": "2.0"}) == [("21", "version")]
    assert errors({"number": "1114920162", "version": "1.0"}) == [("21", "version")]
    assert errors({"number": "1114920162", "version": ""}) == [("20", "version")]
    body = errors_body(parse_params({"number": "1114920162"}))  # type: ignore[arg-type]
    assert "version=2.1" in body["Errors"][0]["description"]
    assert ok(number="1114920162", version=" 2.1 ").query.number == "1114920162"


def test_no_criteria() -> None:
    assert err() == [("22", "criteria")]
    assert errors({}) == [("20", "version"), ("22", "criteria")]
    # Modifiers and paging are not criteria.
    assert err(
        address_purpose="LOCATION",
        use_first_name_alias="False",
        name_purpose="AO",
        limit="5",
        skip="1",
        pretty="on",
    ) == [("22", "criteria")]
    desc = parse_params({"version": "2.1"})[0].description  # type: ignore[index]
    assert desc == "No valid search criteria provided"


def test_empty_values_count_as_absent() -> None:
    # Clients often send every parameter, most of them empty.
    params = dict.fromkeys(cms.PARAMETERS, "")
    params.pop("pretty")
    params.update(version="2.1", last_name="DUBOSE")
    req = ok(**params)
    assert req.query == SearchQuery(last_name="DUBOSE", entity_type="NPI-1", status="active")
    assert (req.limit, req.skip) == (10, 0)


def test_unknown_and_miscased_parameter_names_are_ignored() -> None:
    assert ok(number="1114920162", foo="bar", callback="x").query.number == "1114920162"
    assert err(Last_Name="SMITH", NUMBER="1114920162") == [("22", "criteria")]


@pytest.mark.parametrize(
    "value", ["111492016", "11149201620", "111492016X", "111492016*", "1114-92016", "١١١٤٩٢٠١٦٢"]
)
def test_number_must_be_exactly_ten_digits(value: str) -> None:
    assert err(number=value) == [("23", "number")]


def test_number_check_digit_is_not_checked() -> None:
    # The registry answers a Luhn-invalid NPI with no results, not an error.
    assert ok(number="1234567890").query.number == "1234567890"


def test_enumeration_type() -> None:
    assert ok(enumeration_type="npi-1", last_name="smith").query.entity_type == "NPI-1"
    assert ok(enumeration_type="NPI-2", city="Tarboro").query.entity_type == "NPI-2"
    assert err(enumeration_type="NPI-3", last_name="smith") == [("24", "enumeration_type")]
    assert err(enumeration_type="1", last_name="smith") == [("24", "enumeration_type")]


def test_enumeration_type_alone_is_refused() -> None:
    assert err(enumeration_type="NPI-1") == [("09", "enumeration_type")]
    parsed = parse_params({"version": "2.1", "enumeration_type": "NPI-1"})
    assert errors_body(parsed) == {  # type: ignore[arg-type]
        "Errors": [
            {
                "description": "Enumeration_type requires additional search criteria",
                "field": "enumeration_type",
                "number": "09",
            }
        ]
    }


def test_state_alone_is_refused() -> None:
    parsed = parse_params({"version": "2.1", "state": "NC"})
    assert errors_body(parsed) == {  # type: ignore[arg-type]
        "Errors": [
            {
                "description": "Field state requires additional search criteria",
                "field": "state",
                "number": "07",
            }
        ]
    }


def test_state_with_enumeration_type_gives_the_verbatim_cms_body() -> None:
    # The tutorial's bulk_state_download() sends exactly this; the live registry answered it with
    # both errors on 2026-08-30.
    expected = {
        "Errors": [
            {
                "description": "Field state requires additional search criteria",
                "field": "state",
                "number": "07",
            },
            {
                "description": "Enumeration_type requires additional search criteria",
                "field": "enumeration_type",
                "number": "09",
            },
        ]
    }
    for extra in ({}, {"country_code": "US"}):
        parsed = parse_params(
            {
                "version": "2.1",
                "limit": "200",
                "skip": "0",
                "enumeration_type": "NPI-2",
                "state": "TX",
                **extra,
            }
        )
        assert errors_body(parsed) == expected  # type: ignore[arg-type]
    assert json.dumps(expected)  # plain JSON


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "NC", "country_code": "US"}, [("07", "state")]),
        ({"state": "NC", "country_code": "CA"}, [("07", "state")]),  # besides ET and country
        ({"state": "NC", "enumeration_type": "NPI-1", "country_code": "CA"}, [("07", "state")]),
        ({"enumeration_type": "NPI-1", "country_code": "US"}, [("09", "enumeration_type")]),
        ({"country_code": "US"}, [("35", "country_code")]),
        ({"country_code": "us"}, [("35", "country_code")]),
        ({"state": "NCX"}, [("28", "state"), ("07", "state")]),
    ],
)
def test_combination_rules(params: dict[str, str], expected: list[tuple[str, str]]) -> None:
    assert err(**params) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"state": "NC", "city": "Tarboro"},
        {"state": "NC", "postal_code": "27886"},
        {"state": "NC", "taxonomy_description": "Hospitalist"},
        {"state": "NC", "organization_name": "cumberland*"},
        {"state": "NC", "first_name": "jon"},
        {"state": "NC", "last_name": "dubose"},
        {"state": "NC", "number": "1114920162"},
        {"state": "NC", "enumeration_type": "NPI-1", "last_name": "dubose", "country_code": "US"},
        {"enumeration_type": "NPI-1", "country_code": "CA"},  # a non-US country may stand alone
        {"enumeration_type": "NPI-2", "postal_code": "27*"},
        {"country_code": "CA"},
        {"city": "Tarboro"},
        {"taxonomy_description": "Dentist"},
        {"postal_code": "278862011"},
    ],
)
def test_accepted_combinations(params: dict[str, str]) -> None:
    ok(**params)


@pytest.mark.parametrize(
    "field", ["first_name", "last_name", "organization_name", "city", "taxonomy_description"]
)
def test_wildcards_in_text_fields(field: str) -> None:
    assert getattr(ok(**{field: "jo*", "state": "NC"}).query, field) == "jo*"
    for short in ("j*", "*", " j*", "j *"):
        assert err(**{field: short}) == [("03", field)], short
    for misplaced in ("*son", "jo*n", "jo**", "j*o*"):
        assert err(**{field: misplaced}) == [("32", field)], misplaced
    e = parse_params({"version": "2.1", field: "j*"})[0]  # type: ignore[index]
    assert e == CmsError("Wildcards require at least two leading characters", field, "03")


def test_allowed_characters() -> None:
    special = "&':,/-().#\";"
    assert ok(last_name=f"O'BRIEN-SMITH {special}").query.last_name == f"O'BRIEN-SMITH {special}"
    assert ok(organization_name="A@B CLINIC, P.C. #2").query.organization_name == "A@B CLINIC, P.C. #2"
    assert ok(last_name="MÜLLER").query.last_name == "MÜLLER"  # letters beyond ASCII are letters
    assert ok(city="ST. LOUIS").query.city == "ST. LOUIS"
    for field in ("first_name", "last_name", "city", "taxonomy_description"):
        assert err(**{field: "a@b"}) == [("31", field)]
    for bad in ("smith!", "smith%", "smi_th", "smith<script>", "a+b", "a=b", "x?", "50$"):
        assert err(last_name=bad) == [("31", "last_name")], bad
    assert err(organization_name="ACME!") == [("31", "organization_name")]


def test_name_fields_set_the_entity_type() -> None:
    assert ok(first_name="jon").query.entity_type == "NPI-1"
    assert ok(last_name="dubose").query.entity_type == "NPI-1"
    assert ok(organization_name="cumberland*").query.entity_type == "NPI-2"
    # Authorized officials' names belong to organizations.
    q = ok(last_name="nagowski", name_purpose="AO").query
    assert (q.name_purpose, q.entity_type, q.last_name) == ("ao", "NPI-2", "nagowski")
    # An explicit enumeration_type is kept as given.
    assert ok(last_name="dubose", enumeration_type="NPI-2").query.entity_type == "NPI-2"
    assert ok(city="Tarboro").query.entity_type is None


def test_name_purpose() -> None:
    assert ok(last_name="x1", name_purpose="provider").query.name_purpose == "provider"
    assert ok(last_name="x1", name_purpose="ao").query.name_purpose == "ao"
    assert ok(last_name="x1").query.name_purpose == "provider"
    assert err(last_name="x1", name_purpose="OFFICIAL") == [("25", "name_purpose")]


@pytest.mark.parametrize(
    ("value", "purpose"),
    [
        ("LOCATION", "location"),
        ("location", "location"),
        ("MAILING", "mailing"),
        ("Primary", "primary"),
        ("SECONDARY", "secondary"),
    ],
)
def test_address_purpose(value: str, purpose: str) -> None:
    assert ok(city="Tarboro", address_purpose=value).query.address_purpose == purpose


def test_address_purpose_invalid_and_default() -> None:
    assert ok(city="Tarboro").query.address_purpose is None
    assert err(city="Tarboro", address_purpose="HOME") == [("26", "address_purpose")]


def test_first_name_alias() -> None:
    assert ok(first_name="bob", last_name="smith").query.nicknames is True
    assert ok(first_name="bob", use_first_name_alias="False").query.nicknames is False
    assert ok(first_name="bob", use_first_name_alias="false").query.nicknames is False
    assert ok(first_name="bob", use_first_name_alias="TRUE").query.nicknames is True
    # Never for wildcard first names.
    assert ok(first_name="bo*", use_first_name_alias="True").query.nicknames is False
    assert err(first_name="bob", use_first_name_alias="yes") == [("27", "use_first_name_alias")]


def test_state_and_country_codes() -> None:
    q = ok(state="nc", city="tarboro", country_code="us").query
    assert (q.state, q.country_code, q.city) == ("NC", "US", "tarboro")
    assert err(state="N1", city="x1") == [("28", "state")]
    assert err(state="North Carolina", city="x1") == [("28", "state")]
    assert err(country_code="USA", city="x1") == [("29", "country_code")]
    assert err(country_code="1", city="x1") == [("29", "country_code")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("27886", "27886"),
        ("278862011", "278862011"),
        ("27886-2011", "278862011"),
        ("27*", "27*"),
        ("278862011*", "278862011*"),
    ],
)
def test_postal_code_accepted(value: str, expected: str) -> None:
    assert ok(postal_code=value).query.postal_code == expected


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("2788", "30"),
        ("278862", "30"),
        ("ABCDE", "30"),
        ("2788A", "30"),
        ("AB*", "30"),
        ("2*", "03"),
        ("27*1", "32"),
        ("12345678901*", "30"),
    ],
)
def test_postal_code_refused(value: str, number: str) -> None:
    assert err(postal_code=value) == [(number, "postal_code")]


@pytest.mark.parametrize(
    ("value", "limit"),
    [("1", 1), ("10", 10), ("200", 200), ("201", 200), ("100000", 200), ("0", 10), ("007", 7)],
)
def test_limit(value: str, limit: int) -> None:
    assert ok(city="Tarboro", limit=value).limit == limit


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "1e3", "+5", "２"])
def test_limit_invalid(value: str) -> None:
    assert err(city="Tarboro", limit=value) == [("33", "limit")]


@pytest.mark.parametrize(("value", "skip"), [("0", 0), ("1", 1), ("400", 400), ("1000", 1000)])
def test_skip(value: str, skip: int) -> None:
    assert ok(city="Tarboro", skip=value).skip == skip


@pytest.mark.parametrize("value", ["1001", "5000", "-1", "x", "10.0"])
def test_skip_invalid(value: str) -> None:
    assert err(city="Tarboro", skip=value) == [("34", "skip")]


@pytest.mark.parametrize("value", ["", "on", "true", "false", "0"])
def test_pretty_is_any_value(value: str) -> None:
    assert ok(city="Tarboro", pretty=value).pretty is True
    assert ok(city="Tarboro").pretty is False


def test_all_errors_in_one_body() -> None:
    parsed = parse_params(
        {
            "number": "123",
            "enumeration_type": "NPI-9",
            "first_name": "j*",
            "last_name": "sm!th",
            "address_purpose": "HOME",
            "state": "TXX",
            "limit": "many",
            "skip": "2000",
            "version": "3",
        }
    )
    assert isinstance(parsed, list)
    assert [(e.number, e.field) for e in parsed] == [
        ("23", "number"),
        ("24", "enumeration_type"),
        ("03", "first_name"),
        ("31", "last_name"),
        ("26", "address_purpose"),
        ("28", "state"),
        ("33", "limit"),
        ("34", "skip"),
        ("21", "version"),
    ]
    body = errors_body(parsed)
    assert list(body) == ["Errors"] and len(body["Errors"]) == 9
    assert all(set(e) == {"description", "field", "number"} for e in body["Errors"])
    assert all(re.fullmatch(r"\d\d", e["number"]) for e in body["Errors"])


def test_works_with_starlette_query_params() -> None:
    from starlette.datastructures import QueryParams

    req = parse_params(QueryParams("version=2.1&last_name=dubose&state=nc&limit=500&pretty"))
    assert isinstance(req, CmsRequest)
    assert (req.query.last_name, req.query.state, req.limit, req.pretty) == ("dubose", "NC", 200, True)


def test_every_error_is_documented() -> None:
    text = DOCS.read_text()
    for number, description in cms.ERRORS.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| {number} |")), None)
        assert row is not None, f"error {number} missing from docs/cms-api.md"
        assert description.replace("|", "\\|") in row, f"docs/cms-api.md describes error {number} differently"
    for number in ("03", "07", "09"):
        assert "CMS" in next(line for line in text.splitlines() if line.startswith(f"| {number} |"))


# -- rendering: pure ---------------------------------------------------------------------------


def test_epochs_and_phones() -> None:
    assert cms.epoch_ms("2005-05-23") == "1116806400000"
    assert cms.epoch_ms("1970-01-01") == "0"
    assert cms.epoch_ms(None) is None
    assert cms.cms_phone("2526417700") == "252-641-7700"
    assert cms.cms_phone("011441234567890") == "011441234567890"  # not a 10-digit number: as published
    assert cms.cms_phone(None) is None


def test_foreign_address_and_missing_mailing_address() -> None:
    doc = {
        "npi": "1234567893",
        "entityType": "NPI-1",
        "status": "active",
        "name": {"first": "ANA", "last": "LOPEZ", "prefix": "PROF.", "suffix": "JR."},
        "practiceLocation": {
            "purpose": "primary",
            "line1": "10 KING ST W",
            "city": "TORONTO",
            "state": "ON",
            "postalCode": "M5H1A1",
            "countryCode": "CA",
            "phoneRaw": "4165550100",
        },
        "enumerationDate": "2020-01-02",
        "lastUpdated": "2021-02-03",
    }
    result = render_result(doc)
    assert result["addresses"] == [
        {
            "country_code": "CA",
            "country_name": "Canada",
            "address_purpose": "LOCATION",
            "address_type": "FGN",
            "address_1": "10 KING ST W",
            "city": "TORONTO",
            "state": "ON",
            "postal_code": "M5H1A1",
            "telephone_number": "416-555-0100",
        }
    ]
    assert result["basic"]["name_prefix"] == "Prof." and result["basic"]["name_suffix"] == "Jr."
    assert "sole_proprietor" not in result["basic"] and "gender" not in result["basic"]
    assert result["taxonomies"] == result["identifiers"] == result["other_names"] == []
    assert cms.render_address({"line1": "1 RUE X", "countryCode": "ZZ"}, "MAILING")["country_name"] == "ZZ"


def test_response_counts_this_page_and_leaves_out_deactivated() -> None:
    active = {"npi": "1114920162", "entityType": "NPI-1", "status": "active"}
    stub = {"npi": "1306849450", "entityType": None, "status": "deactivated"}
    body = render_response([active, stub, active])
    assert body["result_count"] == 2 and [r["number"] for r in body["results"]] == ["1114920162"] * 2
    assert render_response([]) == {"result_count": 0, "results": []}


# -- rendering: the real sample rows -----------------------------------------------------------


@pytest.fixture
def sample(store_url: str) -> Any:
    s = open_store(store_url)
    summary = ingest(SAMPLE, s)
    assert summary.status == "succeeded" and summary.rows_loaded == 50
    yield s
    s.close()


def test_individual_with_several_taxonomies(sample: Any) -> None:
    result = render_result(get_provider(sample, "1114920162"))
    assert list(result) == [
        "created_epoch",
        "enumeration_type",
        "last_updated_epoch",
        "number",
        "addresses",
        "practiceLocations",
        "basic",
        "taxonomies",
        "identifiers",
        "endpoints",
        "other_names",
    ]
    assert result["number"] == "1114920162" and result["enumeration_type"] == "NPI-1"
    assert result["created_epoch"] == "1116806400000"  # 2005-05-23T00:00:00Z
    assert result["last_updated_epoch"] == "1665532800000"  # 2022-10-12T00:00:00Z
    assert result["basic"] == {
        "first_name": "JON",
        "last_name": "DUBOSE",
        "credential": "MD",
        "sole_proprietor": "NO",
        "gender": "M",
        "sex": "M",
        "enumeration_date": "2005-05-23",
        "last_updated": "2022-10-12",
        "certification_date": "2022-10-12",
        "status": "A",
        "name_prefix": "Dr.",
        "name_suffix": "--",
    }
    location = {
        "country_code": "US",
        "country_name": "United States",
        "address_purpose": "LOCATION",
        "address_type": "DOM",
        "address_1": "111 HOSPITAL DR",
        "city": "TARBORO",
        "state": "NC",
        "postal_code": "278862011",
        "telephone_number": "252-641-7700",
        "fax_number": "252-641-7313",
    }
    assert result["addresses"] == [{**location, "address_purpose": "MAILING"}, location]
    assert result["practiceLocations"] == []
    assert result["taxonomies"] == [
        {
            "code": "208000000X",
            "taxonomy_group": "",
            "desc": "Pediatrics",
            "state": "NC",
            "license": "200101440",
            "primary": False,
        },
        {
            "code": "208M00000X",
            "taxonomy_group": "",
            "desc": "Hospitalist",
            "state": "SC",
            "license": "87299",
            "primary": False,
        },
        {
            "code": "207R00000X",
            "taxonomy_group": "",
            "desc": "Internal Medicine",
            "state": "NC",
            "license": "200101440",
            "primary": True,
        },
    ]
    assert result["identifiers"] == [
        {"code": "05", "desc": "MEDICAID", "issuer": None, "identifier": "891330U", "state": "NC"},
        {"code": "05", "desc": "MEDICAID", "issuer": None, "identifier": "PENDING", "state": "SC"},
    ]
    assert result["endpoints"] == [] and result["other_names"] == []


def test_organization_with_authorized_official(sample: Any) -> None:
    result = render_result(get_provider(sample, "1497758544"))
    assert result["enumeration_type"] == "NPI-2"
    assert result["basic"] == {
        "organization_name": "CUMBERLAND COUNTY HOSPITAL SYSTEM, INC",
        "organizational_subpart": "NO",
        "enumeration_date": "2005-05-23",
        "last_updated": "2011-09-26",
        "status": "A",
        "authorized_official_first_name": "MICHAEL",
        "authorized_official_last_name": "NAGOWSKI",
        "authorized_official_telephone_number": "9106096700",  # bare digits, as CMS sends it
        "authorized_official_title_or_position": "CEO",
        "authorized_official_name_prefix": "Mr.",
        "authorized_official_name_suffix": "--",
    }
    mailing, location = result["addresses"]
    assert mailing["address_purpose"] == "MAILING" and location["address_purpose"] == "LOCATION"
    assert mailing["telephone_number"] == "910-609-6740" and "fax_number" not in mailing
    assert "address_2" not in mailing
    assert result["taxonomies"] == [
        {
            "code": "251G00000X",
            "taxonomy_group": "",
            "desc": "Hospice Care, Community Based",
            "state": "NC",
            "license": "HC0283",
            "primary": True,
        }
    ]
    assert result["other_names"] == []  # <UNAVAIL> (type 6) is no name


def test_organization_with_taxonomy_groups_and_other_identifiers(sample: Any) -> None:
    result = render_result(get_provider(sample, "1982607933"))
    assert result["taxonomies"][0]["taxonomy_group"] == "193200000X - Multi-Specialty Group"
    assert (result["taxonomies"][0]["state"], result["taxonomies"][0]["license"]) == (None, None)
    assert result["identifiers"][0] == {
        "code": "01",
        "desc": "Other (non-Medicare)",
        "issuer": "MT ST BS",
        "identifier": "001586989",
        "state": "WV",
    }
    assert result["basic"]["authorized_official_credential"] == "MD"
    # The file says "193400000X MULTIPLE SINGLE SPECIALTY GROUP"; the registry prints its code value.
    groups = {t["taxonomy_group"] for t in render_result(get_provider(sample, "1700889755"))["taxonomies"]}
    assert groups == {"193400000X - Single Specialty Group"}


def test_individual_with_a_former_name(sample: Any) -> None:
    result = render_result(get_provider(sample, "1659374601"))
    assert result["basic"]["last_name"] == "OBERDICK" and result["basic"]["sole_proprietor"] == "YES"
    assert result["basic"]["name_prefix"] == "--"
    assert result["other_names"] == [
        {
            "code": "1",
            "type": "Former Name",
            "first_name": "WENDY",
            "last_name": "TIPTON",
            "middle_name": "NANETTE",
            "prefix": "Dr.",
            "credential": "MD",
        }
    ]
    location = next(a for a in result["addresses"] if a["address_purpose"] == "LOCATION")
    assert (location["address_1"], location["address_2"]) == ("105 W STONE DR", "STE 1F")
    # Three slots; the published switch marks the third as primary.
    assert [t["primary"] for t in result["taxonomies"]] == [False, False, True]


def test_published_values_not_standardized_ones(sample: Any) -> None:
    location = render_result(get_provider(sample, "1669475612"))["addresses"][1]
    assert location["address_1"] == "8876 SPANISH RIDGE AVE STE 103" and "address_2" not in location
    assert location["telephone_number"] == location["fax_number"] == "702-342-0858"


def test_tutorial_client_reads_rendered_results(sample: Any) -> None:
    npis = ["1114920162", "1497758544", "1306849450", "1659374601"]
    body = render_response(get_providers(sample, npis))
    assert body["result_count"] == 3  # the deactivated stub is not listed
    body = json.loads(json.dumps(body))  # what a client receives
    rows = {r["npi"]: r for r in (flatten_provider(p) for p in body["results"])}
    assert rows["1114920162"] == {
        "npi": "1114920162",
        "type": "NPI-1",
        "status": "A",
        "first_name": "JON",
        "last_name": "DUBOSE",
        "org_name": "",
        "credential": "MD",
        "gender": "M",
        "enumerated": "2005-05-23",
        "last_updated": "2022-10-12",
        "specialty_code": "207R00000X",
        "specialty_desc": "Internal Medicine",
        "address_1": "111 HOSPITAL DR",
        "city": "TARBORO",
        "state": "NC",
        "zip": "278862011",
        "phone": "252-641-7700",
    }
    org = rows["1497758544"]
    assert (org["type"], org["status"], org["org_name"], org["first_name"]) == (
        "NPI-2",
        "A",
        "CUMBERLAND COUNTY HOSPITAL SYSTEM, INC",
        "",
    )
    assert (org["specialty_code"], org["specialty_desc"]) == ("251G00000X", "Hospice Care, Community Based")
    assert (org["address_1"], org["zip"], org["phone"]) == ("3418 VILLAGE DR", "283044552", "910-609-6740")
    assert (
        rows["1659374601"]["specialty_code"] == "207Q00000X" and rows["1659374601"]["phone"] == "423-230-2420"
    )


def test_every_sample_row_renders_as_json(sample: Any) -> None:
    import csv

    with SAMPLE.open(encoding="utf-8") as fh:
        npis = [row[0] for row in csv.reader(fh)][1:]
    body = render_response(get_providers(sample, npis))
    assert body["result_count"] == 47  # 50 rows less 3 deactivated stubs
    for result in json.loads(json.dumps(body))["results"]:
        assert re.fullmatch(r"\d{10}", result["number"]) and result["basic"]["status"] == "A"
        assert [a["address_purpose"] for a in result["addresses"]] == ["MAILING", "LOCATION"]
        assert sum(t["primary"] for t in result["taxonomies"]) <= 1
        for a in result["addresses"]:
            assert "" not in a.values() and None not in a.values()
            assert re.fullmatch(r"\d{3}-\d{3}-\d{4}", a.get("telephone_number", "000-000-0000"))


# -- rendering: child files (secondary locations, other names, endpoints) -----------------------


@pytest.fixture
def bundle_store(store_url: str, tmp_path: Path) -> Any:
    org = npi(50, 1)
    rows = [individual(1, last="SMITH", first="ROBERT"), organization(50, name="ST. DAVID'S MEDICAL CENTER")]
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
    othername = [[org, "ST DAVIDS HEART CLINIC", "3"], [org, "AUSTIN GENERAL HOSPITAL", "4"]]
    endpoint = [
        [
            npi(1),
            "DIRECT",
            "Direct Messaging Address",
            "rsmith@direct.example.org",
            "Y",
            "",
            "ST. DAVID'S MEDICAL CENTER",
            "",
            "",
            "",
            "",
            "",
            "",
            "1 HOSPITAL DRIVE",
            "",
            "BOSTON",
            "MA",
            "US",
            "02114",
        ]
    ]
    bundle = write_bundle(tmp_path / "b", rows, pl=pl, othername=othername, endpoint=endpoint)
    s = open_store(store_url)
    ingest(bundle, s)
    yield s
    s.close()


def test_secondary_locations_and_endpoints(bundle_store: Any) -> None:
    result = render_result(get_provider(bundle_store, npi(1)))
    assert result["practiceLocations"] == [
        {
            "country_code": "US",
            "country_name": "United States",
            "address_purpose": "LOCATION",
            "address_type": "DOM",
            "address_1": "12221 N MOPAC EXPY",
            "city": "AUSTIN",
            "state": "TX",
            "postal_code": "787583301",
            "telephone_number": "512-555-0100",
            "fax_number": "512-555-0199",
        }
    ]
    assert [a["address_1"] for a in result["addresses"]] == ["100 MAIN STREET"]  # no mailing address
    assert result["addresses"][0]["address_2"] == "SUITE 200"
    assert result["endpoints"] == [
        {
            "endpointType": "DIRECT",
            "endpointTypeDescription": "Direct Messaging Address",
            "endpoint": "rsmith@direct.example.org",
            "affiliation": "Y",
            "affiliationName": "ST. DAVID'S MEDICAL CENTER",
            "address_1": "1 HOSPITAL DRIVE",
            "city": "BOSTON",
            "state": "MA",
            "postal_code": "02114",
            "country_code": "US",
            "country_name": "United States",
            "address_type": "DOM",
        }
    ]


def test_organization_other_names(bundle_store: Any) -> None:
    result = render_result(get_provider(bundle_store, npi(50, 1)))
    assert result["other_names"] == [
        {"code": "3", "type": "Doing Business As", "organization_name": "ST DAVIDS HEART CLINIC"},
        {"code": "4", "type": "Former Legal Business Name", "organization_name": "AUSTIN GENERAL HOSPITAL"},
    ]
    assert result["basic"]["organization_name"] == "ST. DAVID'S MEDICAL CENTER"
    assert result["basic"]["authorized_official_telephone_number"] == "6175551001"
