"""The tutorial's client functions run unchanged against the CMS-compatible endpoint.

tests/data/npi-registry-api-tutorial.txt is a copy of a public tutorial ("NPI Registry API: How to Look
Up Any US Healthcare Provider Programmatically", The Mine Works, June 2026) whose Python functions were
written against the live registry at https://npiregistry.cms.hhs.gov/api/. This test cuts the functions
out of that text at test time (nothing is retyped), runs them with ``requests`` against a real npistack
server on loopback, and checks what they return for the 50 real sample rows plus a small synthetic
bundle of Chicago cardiologists (enough matches for more than one 200-record page).
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from tests.api_support import ABSENT_NPI, ACTIVE_NPI, ORG_NPI, deactivated_npi, sample_store, thread_server
from tests.nppes_files import SAMPLE, individual, npi, organization, write_bundle

TUTORIAL = Path(__file__).parent / "data" / "npi-registry-api-tutorial.txt"
FUNCTIONS = ("search_nppes", "flatten_provider", "validate_provider_list", "bulk_state_download")

CHICAGO_CARDIOLOGISTS = 230  # NPI-1, 207RC0000X (Internal Medicine, Cardiovascular Disease), CHICAGO IL
CARDIOLOGY_PHARMACISTS = 2  # NPI-1, 1835C0206X (Pharmacist, Cardiology), CHICAGO IL
CHICAGO_CLINICS = 2  # NPI-2, 207RC0000X, CHICAGO IL
DEACTIVATED_STUBS = {"1306849450", "1578566527", "1891798849"}  # the sample's three deactivated NPIs

SURNAMES = (
    "NOVAK",
    "OKAFOR",
    "PATEL",
    "QUINN",
    "RAMIREZ",
    "SATO",
    "TRAN",
    "ULLMAN",
    "VOSS",
    "WEBER",
    "YOUNG",
)
GIVEN = (
    "ANNA",
    "BRIAN",
    "CARLOS",
    "DIANA",
    "ELI",
    "FATIMA",
    "GRACE",
    "HENRY",
    "IVAN",
    "JUNE",
    "KEVIN",
    "LEILA",
    "MARK",
)


def tutorial_function(text: str, name: str) -> str:
    """The source of the tutorial's ``def name(...)``: from its ``def`` line up to the next line that
    starts in column 0 (the next top-level statement, comment or prose), checked with ``ast`` to be
    exactly one complete function of that name and nothing else."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"def {name}(")]
    assert len(starts) == 1, f"{TUTORIAL.name}: expected one `def {name}(`, found {len(starts)}"
    start = starts[0]
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()),
        len(lines),
    )
    source = "\n".join(lines[start:end]).rstrip() + "\n"
    tree = ast.parse(source)
    assert len(tree.body) == 1, f"{name}: the block holds more than one statement"
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef) and node.name == name
    # The function ends on the block's last line: no trailing statement was swallowed, and since the
    # next line starts in column 0, no part of the function was left out.
    assert node.end_lineno == len(source.splitlines())
    return source


def load_tutorial(base_url: str, sleeps: list[float]) -> dict[str, Any]:
    """The tutorial's functions, exec'd in a namespace like the tutorial's module: ``requests``,
    ``time`` and ``NPPES_BASE`` (pointed at npistack instead of npiregistry.cms.hhs.gov)."""
    text = TUTORIAL.read_text(encoding="utf-8")
    namespace: dict[str, Any] = {
        "__name__": "npi_registry_tutorial",
        "requests": requests,
        # time.sleep(0.2)/(0.1) are the tutorial's politeness pauses between calls to CMS. They are
        # recorded instead of slept, to keep the test fast; the functions themselves are not changed.
        "time": SimpleNamespace(sleep=sleeps.append),
        "NPPES_BASE": f"{base_url}/api/",
    }
    for name in FUNCTIONS:
        exec(compile(tutorial_function(text, name), f"{TUTORIAL}:{name}", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server over the 50 sample rows plus synthetic Chicago cardiology providers."""
    tmp = tmp_path_factory.mktemp("tutorial")
    with SAMPLE.open(encoding="utf-8") as fh:
        rows: list[Any] = fh.readlines()[1:]  # the real rows, verbatim (same header as the bundle)
    for i in range(1, CHICAGO_CARDIOLOGISTS + 1):
        rows.append(
            individual(
                i,
                last=SURNAMES[i % len(SURNAMES)],
                first=GIVEN[i % len(GIVEN)],
                taxonomy="207RC0000X",
                license_state="IL",
                line1=f"{100 + i} N MICHIGAN AVE",
                line2="",
                city="CHICAGO",
                state="IL",
                zip="606011234",
                phone=f"312555{i:04d}",
            )
        )
    for i in range(1, CARDIOLOGY_PHARMACISTS + 1):
        rows.append(
            individual(
                500 + i,
                last="KOWALSKI",
                first="PETRA",
                taxonomy="1835C0206X",
                city="CHICAGO",
                zip="606011234",
            )
        )
    for i in range(1, CHICAGO_CLINICS + 1):
        rows.append(
            organization(
                600 + i,
                name=f"LAKESHORE HEART CLINIC {i}",
                taxonomy="207RC0000X",
                city="CHICAGO",
                state="IL",
                zip="60611",
            )
        )
    url = sample_store(tmp / "store.db", write_bundle(tmp / "bundle", rows))
    assert deactivated_npi(url) in DEACTIVATED_STUBS
    with thread_server(url) as base:
        yield base


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def tutorial(server: str, sleeps: list[float]) -> dict[str, Callable[..., Any]]:
    return load_tutorial(server, sleeps)


DUBOSE = {
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


def test_the_functions_are_cut_whole_from_the_tutorial() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    sources = {name: tutorial_function(text, name) for name in FUNCTIONS}
    assert all(src in text for src in sources.values())  # verbatim, not retyped
    # Telltales of the tutorial's own code: 200-record pages, skip += 200, CMS's version parameter.
    assert 'base_params = {"version": "2.1", "limit": 200}' in sources["search_nppes"]
    assert "skip += 200" in sources["search_nppes"] and "time.sleep(0.2)" in sources["search_nppes"]
    assert 'params={"version": "2.1", "number": npi}' in sources["validate_provider_list"]
    assert '"country_code":     "US",' in sources["bulk_state_download"]
    assert sources["flatten_provider"].rstrip().endswith("}")


def test_search_by_last_name_and_flatten(tutorial: dict[str, Any], sleeps: list[float]) -> None:
    found = tutorial["search_nppes"]({"last_name": "DUBOSE"})
    assert [p["number"] for p in found] == [ACTIVE_NPI]
    assert tutorial["flatten_provider"](found[0]) == DUBOSE
    assert sleeps == []  # one page: no pause


def test_search_state_and_taxonomy_description(tutorial: dict[str, Any]) -> None:
    found = tutorial["search_nppes"]({"state": "NY", "taxonomy_description": "Internal Medicine"})
    rows = {r["npi"]: r for r in map(tutorial["flatten_provider"], found)}
    # "Internal Medicine" is a NUCC classification: its specializations (207RC0000X) match too.
    assert sorted(rows) == ["1205839255", "1245233295"]
    goldberg, potts = rows["1205839255"], rows["1245233295"]
    assert (goldberg["first_name"], goldberg["last_name"], goldberg["status"]) == ("STEVEN", "GOLDBERG", "A")
    assert (goldberg["specialty_code"], goldberg["specialty_desc"]) == (
        "207RC0000X",
        "Internal Medicine, Cardiovascular Disease",
    )
    assert (goldberg["city"], goldberg["state"], goldberg["zip"]) == ("GREAT NECK", "NY", "110215306")
    assert (potts["first_name"], potts["last_name"], potts["specialty_code"]) == (
        "JILL",
        "POTTS",
        "207R00000X",
    )
    assert (potts["city"], potts["zip"]) == ("CANANDAIGUA", "144241728")
    assert all(r["type"] == "NPI-1" and r["status"] == "A" and r["org_name"] == "" for r in rows.values())
    assert all(len(r["phone"]) == 12 and r["phone"][3] == r["phone"][7] == "-" for r in rows.values())


def test_search_city_and_state(tutorial: dict[str, Any]) -> None:
    found = tutorial["search_nppes"]({"city": "Houston", "state": "TX"})
    rows = {r["npi"]: r for r in map(tutorial["flatten_provider"], found)}
    assert sorted(rows) == ["1215930367", "1396748349"]
    gressot, grunert = rows["1215930367"], rows["1396748349"]
    # Gressot's primary taxonomy is his second slot; the tutorial picks it by `primary`.
    assert (gressot["last_name"], gressot["specialty_code"], gressot["specialty_desc"]) == (
        "GRESSOT",
        "207RH0003X",
        "Internal Medicine, Hematology & Oncology",
    )
    # Grunert's mailing address is in Cincinnati; the tutorial reads the LOCATION address.
    assert (grunert["last_name"], grunert["city"], grunert["state"], grunert["zip"]) == (
        "GRUNERT",
        "HOUSTON",
        "TX",
        "770632313",
    )
    assert grunert["specialty_desc"] == "Obstetrics & Gynecology, Reproductive Endocrinology"


def test_search_an_organization_by_name(tutorial: dict[str, Any]) -> None:
    found = tutorial["search_nppes"]({"organization_name": "CUMBERLAND*", "state": "NC"})
    assert [tutorial["flatten_provider"](p) for p in found] == [
        {
            "npi": ORG_NPI,
            "type": "NPI-2",
            "status": "A",
            "first_name": "",
            "last_name": "",
            "org_name": "CUMBERLAND COUNTY HOSPITAL SYSTEM, INC",
            "credential": "",
            "gender": "",
            "enumerated": "2005-05-23",
            "last_updated": "2011-09-26",
            "specialty_code": "251G00000X",
            "specialty_desc": "Hospice Care, Community Based",
            "address_1": "3418 VILLAGE DR",
            "city": "FAYETTEVILLE",
            "state": "NC",
            "zip": "283044552",
            "phone": "910-609-6740",
        }
    ]


def test_the_tutorials_chicago_search_adapted(
    tutorial: dict[str, Any], sleeps: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    params = {
        "enumeration_type": "NPI-1",
        "taxonomy_description": "Cardiovascular Disease",  # the NUCC specialization of 207RC0000X
        "city": "Chicago",
        "state": "IL",
        "country_code": "US",
    }
    found = tutorial["search_nppes"](params, max_results=500)
    rows = [tutorial["flatten_provider"](p) for p in found]
    # 230 providers match, but the tutorial's loop stops after the first page: it compares its
    # total with result_count, which (on CMS and here) counts the results of the page, 200.
    assert len(rows) == 200 and len({r["npi"] for r in rows}) == 200
    assert capsys.readouterr().out == "Fetched 200 / 200\n"
    assert sleeps == []  # it never asked for a second page
    assert all(
        (r["type"], r["status"], r["specialty_code"], r["city"], r["state"], r["zip"])
        == ("NPI-1", "A", "207RC0000X", "CHICAGO", "IL", "606011234")
        for r in rows
    )
    assert all(r["specialty_desc"] == "Internal Medicine, Cardiovascular Disease" for r in rows)
    assert all(r["credential"] == "M.D." and r["phone"].startswith("312-555-") for r in rows)
    assert all(r["address_1"].endswith(" N MICHIGAN AVE") for r in rows)
    synthetic = {npi(i) for i in range(1, CHICAGO_CARDIOLOGISTS + 1)}
    assert {r["npi"] for r in rows} < synthetic  # no clinic (NPI-2), no pharmacist, no sample row

    # The other 30 are there: the next page, as the tutorial would have asked for it.
    rest = requests.get(
        tutorial["NPPES_BASE"], params={"version": "2.1", "limit": 200, "skip": 200, **params}
    )
    assert rest.status_code == 200
    more = rest.json()
    assert more["result_count"] == 30
    assert {r["npi"] for r in rows} | {p["number"] for p in more["results"]} == synthetic

    # A smaller max_results cuts the page.
    assert len(tutorial["search_nppes"](params, max_results=25)) == 25
    assert capsys.readouterr().out == "Fetched 200 / 25\n"


def test_the_tutorials_chicago_search_verbatim(tutorial: dict[str, Any]) -> None:
    # The tutorial's own parameters. "Cardiology" is matched exactly, as CMS documents ("Exact
    # Description or Exact Specialty"): in NUCC it is a specialization of Pharmacist only (1835C0206X).
    found = tutorial["search_nppes"](
        {
            "enumeration_type": "NPI-1",
            "taxonomy_description": "Cardiology",
            "city": "Chicago",
            "state": "IL",
            "country_code": "US",
        },
        max_results=500,
    )
    rows = [tutorial["flatten_provider"](p) for p in found]
    assert sorted(r["npi"] for r in rows) == [npi(501), npi(502)]
    assert {(r["first_name"], r["last_name"], r["specialty_code"], r["specialty_desc"]) for r in rows} == {
        ("PETRA", "KOWALSKI", "1835C0206X", "Pharmacist, Cardiology")
    }
    # The clinics carry the same taxonomy as the physicians but are organizations.
    orgs = tutorial["search_nppes"](
        {"enumeration_type": "NPI-2", "taxonomy_description": "Cardiovascular Disease", "city": "Chicago"}
    )
    assert sorted(tutorial["flatten_provider"](p)["org_name"] for p in orgs) == [
        "LAKESHORE HEART CLINIC 1",
        "LAKESHORE HEART CLINIC 2",
    ]


def test_every_search_result_flattens(tutorial: dict[str, Any]) -> None:
    with SAMPLE.open(encoding="utf-8") as fh:
        sample = {row[0] for row in list(csv.reader(fh))[1:]}
    found = tutorial["search_nppes"]({"taxonomy_description": "Internal Medicine"})
    rows = [tutorial["flatten_provider"](p) for p in found]
    npis = {r["npi"] for r in rows}
    # All 31 Internal Medicine codes: the sample's internists and cardiologists, the Chicago ones
    # (physicians and clinics), but the first page only (200).
    assert len(rows) == 200 and len(npis) == 200
    assert all(r["status"] == "A" and r["specialty_code"].startswith("207R") for r in rows)
    expected_sample = {
        "1588667638",  # PILCHER, cardiovascular disease
        "1215930367",  # GRESSOT, hematology & oncology
        "1932102084",  # ADUSUMILLI
        "1750384806",  # BISBEE
        "1114920261",  # THACKER
        "1205839255",  # GOLDBERG
        "1114920162",  # DUBOSE (third slot)
        "1831192889",  # COE
        "1255334207",  # SOUCIER
        "1245233295",  # POTTS
        "1225031271",  # SHEPHERD, nephrology
    }
    everything = []
    for skip in (0, 200):
        page = requests.get(
            tutorial["NPPES_BASE"],
            params={
                "version": "2.1",
                "taxonomy_description": "Internal Medicine",
                "limit": 200,
                "skip": skip,
            },
        ).json()
        everything += [p["number"] for p in page["results"]]
    assert (
        len(everything)
        == len(set(everything))
        == len(expected_sample) + CHICAGO_CARDIOLOGISTS + CHICAGO_CLINICS
    )
    assert set(everything) & sample == expected_sample
    assert npis < set(everything)


def test_validate_provider_list(server: str, tutorial: dict[str, Any], sleeps: list[float]) -> None:
    deactivated = sorted(DEACTIVATED_STUBS)[0]
    npis = [ACTIVE_NPI, ORG_NPI, deactivated, ABSENT_NPI, "1659374601"]
    assert tutorial["validate_provider_list"](npis) == {
        ACTIVE_NPI: {"found": True, "status": "A", "name": "JON DUBOSE", "credential": "MD", "type": "NPI-1"},
        ORG_NPI: {
            "found": True,
            "status": "A",
            "name": "CUMBERLAND COUNTY HOSPITAL SYSTEM, INC",
            "credential": "",
            "type": "NPI-2",
        },
        # The registry lists active NPIs only: a deactivated NPI is not found, like an unknown one.
        deactivated: {"found": False, "status": None},
        ABSENT_NPI: {"found": False, "status": None},
        # Deactivated in 2005 and reactivated: active again.
        "1659374601": {
            "found": True,
            "status": "A",
            "name": "WENDY OBERDICK",
            "credential": "MD",
            "type": "NPI-1",
        },
    }
    assert sleeps == [0.1] * len(npis)


def test_validate_the_tutorials_own_list(tutorial: dict[str, Any]) -> None:
    # "1234567890" fails the check digit, "0987654321" cannot be an NPI; the registry answers both
    # with no results, not an error.
    npis_to_check = ["1234567890", "0987654321", "1111111112"]
    assert tutorial["validate_provider_list"](npis_to_check) == dict.fromkeys(
        npis_to_check, {"found": False, "status": None}
    )


def test_bulk_state_download_gets_the_cms_errors(tutorial: dict[str, Any]) -> None:
    # enumeration_type + state + country_code=US is refused by CMS with HTTP 200 and an Errors body,
    # which has no "results": the tutorial's loop stops at once and returns nothing.
    assert tutorial["bulk_state_download"]("TX", enumeration_type="NPI-2", max_results=5000) == []
    assert tutorial["bulk_state_download"]("NC") == []
    response = requests.get(
        tutorial["NPPES_BASE"],
        params={
            "version": "2.1",
            "limit": 200,
            "enumeration_type": "NPI-2",
            "state": "TX",
            "country_code": "US",
            "skip": 0,
        },
    )
    assert response.status_code == 200
    assert response.json() == {
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
    # With a criterion besides the state, the same kind of request works.
    found = tutorial["search_nppes"](
        {"enumeration_type": "NPI-2", "state": "IL", "city": "Morris", "country_code": "US"}
    )
    assert [tutorial["flatten_provider"](p)["org_name"] for p in found] == [
        "ADVANTAGE HOME HEALTH CARE, INC."
    ]
