"""The CMS NPI Registry drop-in over HTTP: ``GET /api/?version=2.1`` (and ``/api``).

Result objects for real sample rows (NPI-1 and NPI-2), pretty printing, errors in HTTP 200
``{"Errors": [...]}`` bodies, limit and skip, active NPIs only, wildcards, first-name aliases, and
the optional key (``cms_require_key``). The parameter rules themselves are unit-tested in
tests/test_cms.py; docs/cms-api.md describes the endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api_support import ACTIVE_NPI, ORG_NPI, bearer, client, make_key, sample_store, set_plan
from tests.nppes_files import SAMPLE, individual, npi, write_bundle

SPRINGFIELD = 230  # synthetic individuals in SPRINGFIELD IL: more than one 200-record page
ROBERT = npi(501)  # ROBERT KOWALCZYK, synthetic
RETIRED = npi(502)  # HANS ZELLWEGER: full row, deactivated in 2024 (not reactivated)
ZELLWEGER = npi(503)  # ANNA ZELLWEGER: active
BISBEE = "1750384806"  # ROBERT BISBEE, a real sample row
STUB = "1306849450"  # a real deactivated NPI (a stub row in the sample)

SURNAMES = ("ABBOTT", "BRENNAN", "CHAVEZ", "DOYLE", "ELLIS", "FOSTER", "GUPTA", "HAYES", "IBARRA", "JENSEN")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with the 50 real rows and a few hundred synthetic ones (read-only for these tests;
    keys and plans are made per test)."""
    tmp = tmp_path_factory.mktemp("cms")
    with SAMPLE.open(encoding="utf-8") as fh:
        rows: list[Any] = fh.readlines()[1:]
    rows += [individual(i, last=SURNAMES[i % len(SURNAMES)], first="PAT") for i in range(1, SPRINGFIELD + 1)]
    rows += [
        individual(501, last="KOWALCZYK", first="ROBERT", city="MILWAUKEE", state="WI", zip="53202"),
        individual(502, last="ZELLWEGER", first="HANS", city="PEORIA", deactivated="01/15/2024"),
        individual(503, last="ZELLWEGER", first="ANNA", city="PEORIA"),
    ]
    return sample_store(tmp / "store.db", write_bundle(tmp / "bundle", rows))


@pytest.fixture(scope="module")
def api(url: str) -> Iterator[Any]:
    with client(url) as c:
        yield c


def get(api: Any, query: str, **kw: Any) -> Any:
    response = api.get(f"/api/?version=2.1&{query}", **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def numbers(body: dict[str, Any]) -> list[str]:
    assert body["result_count"] == len(body["results"]), body
    return [r["number"] for r in body["results"]]


def errors(body: dict[str, Any]) -> list[tuple[str, str]]:
    assert list(body) == ["Errors"], body
    return [(e["number"], e["field"]) for e in body["Errors"]]


DUBOSE_LOCATION = {
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
DUBOSE = {
    "created_epoch": "1116806400000",
    "enumeration_type": "NPI-1",
    "last_updated_epoch": "1665532800000",
    "number": "1114920162",
    "addresses": [{**DUBOSE_LOCATION, "address_purpose": "MAILING"}, DUBOSE_LOCATION],
    "practiceLocations": [],
    "basic": {
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
    },
    "taxonomies": [
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
    ],
    "identifiers": [
        {"code": "05", "desc": "MEDICAID", "issuer": None, "identifier": "891330U", "state": "NC"},
        {"code": "05", "desc": "MEDICAID", "issuer": None, "identifier": "PENDING", "state": "SC"},
    ],
    "endpoints": [],
    "other_names": [],
}


# -- result shape ------------------------------------------------------------------------------


def test_individual_by_number(api: Any) -> None:
    response = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"result_count": 1, "results": [DUBOSE]}
    # Key order as in the registry's responses.
    assert list(response.json()["results"][0]) == list(DUBOSE)
    assert "\n" not in response.text  # compact unless pretty


def test_organization_by_number(api: Any) -> None:
    body = get(api, f"number={ORG_NPI}")
    assert numbers(body) == [ORG_NPI]
    result = body["results"][0]
    assert (result["number"], result["enumeration_type"]) == (ORG_NPI, "NPI-2")
    assert (result["created_epoch"], result["last_updated_epoch"]) == ("1116806400000", "1316995200000")
    assert result["basic"] == {
        "organization_name": "CUMBERLAND COUNTY HOSPITAL SYSTEM, INC",
        "organizational_subpart": "NO",
        "enumeration_date": "2005-05-23",
        "last_updated": "2011-09-26",
        "status": "A",
        "authorized_official_first_name": "MICHAEL",
        "authorized_official_last_name": "NAGOWSKI",
        "authorized_official_telephone_number": "9106096700",
        "authorized_official_title_or_position": "CEO",
        "authorized_official_name_prefix": "Mr.",
        "authorized_official_name_suffix": "--",
    }
    assert [
        (a["address_purpose"], a["address_1"], a["city"], a["postal_code"]) for a in result["addresses"]
    ] == [
        ("MAILING", "3418 VILLAGE DR", "FAYETTEVILLE", "283044552"),
        ("LOCATION", "3418 VILLAGE DR", "FAYETTEVILLE", "283044552"),
    ]
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
    assert result["practiceLocations"] == result["endpoints"] == result["other_names"] == []


def test_search_results_have_the_same_shape(api: Any) -> None:
    body = get(api, "city=Tarboro&state=NC")
    assert body == {"result_count": 1, "results": [DUBOSE]}
    body = get(api, "organization_name=CUMBERLAND COUNTY HOSPITAL SYSTEM, INC")
    assert numbers(body) == [ORG_NPI] and body["results"][0] == get(api, f"number={ORG_NPI}")["results"][0]


def test_pretty(api: Any) -> None:
    compact = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}")
    for flag in ("pretty=on", "pretty=true", "pretty=", "pretty"):
        pretty = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}&{flag}")
        assert pretty.status_code == 200
        assert pretty.text.startswith(
            '{\n  "result_count": 1,\n  "results": [\n    {\n      "created_epoch"'
        ), flag
        assert pretty.json() == compact.json()
    refused = api.get("/api/?version=2.1&state=NC&pretty=on")
    assert refused.status_code == 200
    assert refused.text.startswith('{\n  "Errors": [\n    {\n      "description": "Field state')


def test_api_without_trailing_slash(api: Any) -> None:
    response = api.get(f"/api?version=2.1&number={ACTIVE_NPI}", follow_redirects=False)
    assert response.status_code == 200
    assert response.json() == {"result_count": 1, "results": [DUBOSE]}
    refused = api.get("/api?version=2.1&enumeration_type=NPI-1", follow_redirects=False)
    assert refused.status_code == 200 and errors(refused.json()) == [("09", "enumeration_type")]


# -- errors ------------------------------------------------------------------------------------

STATE_07 = {
    "description": "Field state requires additional search criteria",
    "field": "state",
    "number": "07",
}
TYPE_09 = {
    "description": "Enumeration_type requires additional search criteria",
    "field": "enumeration_type",
    "number": "09",
}


def test_state_alone_is_error_07(api: Any) -> None:
    assert get(api, "state=NC") == {"Errors": [STATE_07]}
    assert get(api, "state=NC&country_code=US&limit=5") == {"Errors": [STATE_07]}


def test_enumeration_type_alone_is_error_09(api: Any) -> None:
    assert get(api, "enumeration_type=NPI-1") == {"Errors": [TYPE_09]}
    assert get(api, "enumeration_type=NPI-2&country_code=US") == {"Errors": [TYPE_09]}


def test_both_errors_in_one_body(api: Any) -> None:
    # The verbatim body the live registry sent on 2026-08-30 for a whole-state pull.
    assert get(api, "enumeration_type=NPI-2&state=TX&country_code=US&limit=200&skip=0") == {
        "Errors": [STATE_07, TYPE_09]
    }


def test_other_errors_come_with_http_200(api: Any) -> None:
    response = api.get("/api/?number=1114920162")
    assert response.status_code == 200 and errors(response.json()) == [("20", "version")]
    assert errors(get(api, "")) == [("22", "criteria")]
    assert errors(get(api, "number=12345&last_name=D*")) == [("23", "number"), ("03", "last_name")]
    assert errors(get(api, "last_name=SMITH&limit=ten")) == [("33", "limit")]
    assert errors(api.get("/api/?version=1.0&number=1114920162").json()) == [("21", "version")]


# -- limit and skip ----------------------------------------------------------------------------


def test_limit_defaults_to_10_and_is_cut_to_200(api: Any) -> None:
    springfield = "city=Springfield&state=IL"
    assert len(numbers(get(api, springfield))) == 10
    assert len(numbers(get(api, f"{springfield}&limit=0"))) == 10  # 0 means the default, as on CMS
    assert len(numbers(get(api, f"{springfield}&limit=3"))) == 3
    assert len(numbers(get(api, f"{springfield}&limit=200"))) == 200
    assert len(numbers(get(api, f"{springfield}&limit=500"))) == 200
    assert len(numbers(get(api, f"{springfield}&limit=99999999999999999999"))) == 200


def test_skip_pages_and_is_capped_at_1000(api: Any) -> None:
    springfield = "city=Springfield&state=IL&limit=200"
    first = numbers(get(api, springfield))
    second = numbers(get(api, f"{springfield}&skip=200"))
    assert len(second) == SPRINGFIELD - 200  # result_count counts the page, not all matches
    assert len(set(first) | set(second)) == SPRINGFIELD
    assert set(first) | set(second) == {npi(i) for i in range(1, SPRINGFIELD + 1)}
    assert numbers(get(api, f"{springfield}&skip=10"))[:5] == first[10:15]
    assert get(api, f"{springfield}&skip=1000") == {"result_count": 0, "results": []}
    assert get(api, f"{springfield}&skip=1001") == {
        "Errors": [
            {
                "description": "Field skip must be a whole number from 0 to 1000",
                "field": "skip",
                "number": "34",
            }
        ]
    }
    assert errors(get(api, f"{springfield}&skip=-1")) == [("34", "skip")]


# -- what is found -----------------------------------------------------------------------------


def test_deactivated_npis_are_not_returned(api: Any, url: str) -> None:
    assert get(api, f"number={STUB}") == {"result_count": 0, "results": []}
    assert get(api, f"number={RETIRED}") == {"result_count": 0, "results": []}
    # Hans Zellweger (deactivated) is in the store, as npistack's own API shows; CMS lists Anna only.
    assert numbers(get(api, "last_name=ZELLWEGER")) == [ZELLWEGER]
    key = make_key(url, name="deactivated")
    v1 = api.get("/api/v1/providers/search?last_name=ZELLWEGER", headers=bearer(key)).json()
    assert sorted((d["npi"], d["status"]) for d in v1["data"]) == [
        (RETIRED, "deactivated"),
        (ZELLWEGER, "active"),
    ]


def test_wildcard_names(api: Any) -> None:
    assert numbers(get(api, "last_name=DUB*")) == [ACTIVE_NPI]
    assert numbers(get(api, "last_name=dubo*&first_name=jo*")) == [ACTIVE_NPI]
    assert numbers(get(api, "organization_name=cumberland*")) == [ORG_NPI]
    assert sorted(numbers(get(api, "last_name=ZELL*"))) == [ZELLWEGER]
    assert sorted(numbers(get(api, "last_name=GOLD*&state=NY"))) == ["1205839255"]
    # At least two characters before the *.
    assert errors(get(api, "last_name=D*")) == [("03", "last_name")]
    assert errors(get(api, "organization_name=*")) == [("03", "organization_name")]
    assert errors(get(api, "last_name=DU*OSE")) == [("32", "last_name")]


def test_first_name_alias_is_on_by_default(api: Any) -> None:
    assert numbers(get(api, "first_name=Bob&last_name=KOWALCZYK")) == [ROBERT]
    assert numbers(get(api, "first_name=Bob&last_name=BISBEE")) == [BISBEE]  # a real row
    assert numbers(get(api, "first_name=Bobby&last_name=Bisbee&use_first_name_alias=True")) == [BISBEE]
    assert numbers(get(api, "first_name=Robert&last_name=KOWALCZYK")) == [ROBERT]
    result = get(api, "first_name=Bob&last_name=KOWALCZYK")["results"][0]
    assert (result["basic"]["first_name"], result["addresses"][0]["city"]) == ("ROBERT", "MILWAUKEE")


def test_first_name_alias_can_be_turned_off(api: Any) -> None:
    assert get(api, "first_name=Bob&last_name=KOWALCZYK&use_first_name_alias=False") == {
        "result_count": 0,
        "results": [],
    }
    assert get(api, "first_name=Bob&last_name=BISBEE&use_first_name_alias=false")["result_count"] == 0
    assert numbers(get(api, "first_name=Robert&last_name=KOWALCZYK&use_first_name_alias=False")) == [ROBERT]
    # Never for a wildcard first name: Bo* is a prefix of names, not an alias of Robert.
    assert get(api, "first_name=Bo*&last_name=BISBEE")["result_count"] == 0
    assert numbers(get(api, "first_name=Rob*&last_name=BISBEE")) == [BISBEE]
    assert errors(get(api, "first_name=Bob&last_name=BISBEE&use_first_name_alias=maybe")) == [
        ("27", "use_first_name_alias")
    ]


@pytest.mark.parametrize(
    "query",
    [
        "city=---&state=NC",
        "last_name=()",
        "first_name=--&last_name=DUBOSE",
        "organization_name=-- *",
        "last_name=\u4e00",
    ],
)
def test_a_name_without_letters_or_digits_is_not_a_server_error(api: Any, query: str) -> None:
    # Allowed characters only, so parse_params accepts them; the search must not fail with a 500.
    response = api.get(f"/api/?version=2.1&{query}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Errors" in body or body == {"result_count": 0, "results": []}


# -- keys --------------------------------------------------------------------------------------


def test_no_key_needed_by_default(api: Any) -> None:
    response = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}")
    assert response.status_code == 200 and numbers(response.json()) == [ACTIVE_NPI]
    assert "x-quota-remaining" not in response.headers and "x-ratelimit-limit" not in response.headers
    garbage = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}", headers={"Authorization": "Bearer nope"})
    assert garbage.status_code == 200 and numbers(garbage.json()) == [ACTIVE_NPI]


def test_required_key(url: str) -> None:
    set_plan(url, "cms-five", credits=5)
    key = make_key(url, "cms-five", name="cms client")
    with client(url, cms_require_key=True) as api:
        missing = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/json"
        assert missing.json() == {
            "Errors": [
                {"description": "Missing or invalid API key.", "field": "Authorization", "number": "401"}
            ]
        }
        wrong = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}&pretty", headers=bearer("npk_" + "x" * 32))
        assert wrong.status_code == 401 and wrong.text.startswith('{\n  "Errors": [')

        remaining = []
        for _ in range(5):
            ok = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}", headers=bearer(key))
            assert ok.status_code == 200 and ok.json() == {"result_count": 1, "results": [DUBOSE]}
            assert ok.headers["x-quota-limit"] == "5"
            remaining.append(int(ok.headers["x-quota-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]  # one credit a request
        spent = api.get(f"/api/?version=2.1&number={ACTIVE_NPI}", headers=bearer(key))
        assert spent.status_code == 403
        assert spent.json() == {
            "Errors": [
                {
                    "description": "Monthly lookup quota has been exceeded.",
                    "field": "Authorization",
                    "number": "403",
                }
            ]
        }
    # The same store without the setting: open again, no key needed.
    with client(url) as api:
        assert api.get(f"/api/?version=2.1&number={ACTIVE_NPI}").json()["result_count"] == 1


def test_required_key_also_for_the_path_without_slash(url: str) -> None:
    set_plan(url, "cms-slash", credits=10)
    key = make_key(url, "cms-slash", name="cms slash")
    with client(url, cms_require_key=True) as api:
        assert api.get(f"/api?version=2.1&number={ACTIVE_NPI}").status_code == 401
        ok = api.get(f"/api?version=2.1&number={ACTIVE_NPI}", headers=bearer(key))
        assert ok.status_code == 200 and ok.headers["x-quota-remaining"] == "9"
        assert json.loads(ok.text)["results"][0]["number"] == ACTIVE_NPI
