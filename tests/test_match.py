"""Record matching on the 50 real NPPES rows (SQLite and PostgreSQL), the name parser, and a
small run of the evaluation on a synthetic store that must meet its bars."""

from __future__ import annotations

from typing import Any

import pytest

from npistack.ingest.load import ingest
from npistack.nppes.synth import write_bundle
from npistack.services.match import Matcher, MatchInput, MatchInputError
from npistack.services.match.eval import evaluate, fit_calibration, labeled_set, typo
from npistack.services.match.input import license_forms, parse, split_full_name
from npistack.services.match.specialty import specialty_codes
from npistack.storage import open_store
from tests.nppes_files import SAMPLE

WENDY = "1659374601"  # WENDY TIPTON OBERDICK, MD; former name WENDY NANETTE TIPTON; Kingsport TN
SUNG = "1669475711"  # BIN SHENG SUNG, M. D.; Fulshear TX; license J1405 TX
FRIEDMAN = "1619970662"  # LISA AMY FRIEDMAN, RN, MSN, CPNP; San Antonio TX
ADVANTAGE = "1023011079"  # ADVANTAGE HOME HEALTH CARE, INC.


@pytest.fixture
def matcher(store_url: str) -> Any:
    s = open_store(store_url)
    assert ingest(SAMPLE, s).status == "succeeded"
    yield Matcher(s)
    s.close()


def _one(m: Matcher, **fields: str) -> Any:
    return m.match_one(MatchInput(**fields))


def test_npi_with_agreeing_name_matches(matcher: Matcher) -> None:
    r = _one(matcher, npi=WENDY, first_name="Wendy", last_name="Oberdick")
    assert (r.match_status, r.npi, r.provider_status) == ("matched", WENDY, "active")
    assert r.match_confidence >= 0.99
    assert "npi: agrees" in r.evidence["agreed"]
    assert any(e.startswith("last_name: exact") for e in r.evidence["agreed"])


def test_npi_of_someone_else_is_not_matched_silently(matcher: Matcher) -> None:
    r = _one(matcher, npi=WENDY, first_name="Lisa", last_name="Friedman", city="San Antonio", state="TX")
    assert r.match_status == "matched" and r.npi == FRIEDMAN  # the name and place win over the NPI
    assert "npi: different" in r.evidence["disagreed"]
    r = _one(matcher, npi=WENDY, first_name="Zebulon", last_name="Quark")
    assert r.match_status != "matched" or r.npi != WENDY
    assert any(e.startswith("last_name: different") for e in r.candidates[0].evidence["disagreed"])


def test_invalid_and_unknown_npis_fall_back_to_the_other_fields(matcher: Matcher) -> None:
    r = _one(matcher, npi="1659374600", first_name="Wendy", last_name="Oberdick", state="TN")
    assert r.npi == WENDY and any("check digit" in n for n in r.notes)
    r = _one(matcher, npi="1234567893", first_name="Wendy", last_name="Oberdick", state="TN")
    assert r.npi == WENDY and any("not in the registry" in n for n in r.notes)


def test_deactivated_npi_is_reported_as_such(matcher: Matcher) -> None:
    r = _one(matcher, npi="1306849450")
    assert r.match_status == "matched" and r.provider_status == "deactivated"
    assert r.deactivation_date and any("deactivated on" in n for n in r.notes)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Dr. Wendy Oberdick, M.D.", "state": "TN"},
        {"name": "OBERDICK, WENDY T", "city": "Kingsport", "state": "TN"},
        {"first_name": "Wendy", "last_name": "Tipton", "state": "TN"},  # former name
        {"first_name": "Wendy", "last_name": "Oberdik", "city": "Kingsport", "state": "TN"},  # typo
        {
            "first_name": "Oberdick",
            "last_name": "Wendy",
            "address_1": "105 West Stone Drive",
            "city": "Kingsport",
            "state": "TN",
            "postal_code": "37660",
        },
        {"first_name": "Wendi", "last_name": "Oberdick", "specialty": "Family Medicine", "state": "TN"},
        {"last_name": "Oberdick", "phone": "(423) 230-2420"},
    ],
)
def test_person_written_the_crm_ways(matcher: Matcher, fields: dict[str, str]) -> None:
    r = matcher.match_one(MatchInput(**fields))
    assert (r.match_status, r.npi) == ("matched", WENDY), r


def test_nickname_and_credential(matcher: Matcher) -> None:
    r = _one(matcher, name="Liz Friedman RN", city="San Antonio", state="TX")
    assert (r.match_status, r.npi) == ("matched", FRIEDMAN)
    assert "first_name: nickname (LIZ / LISA)" in r.evidence["agreed"]
    r = _one(matcher, first_name="Lisa", last_name="Friedman", credential="R.N.", state="TX")
    assert (r.match_status, r.npi) == ("matched", FRIEDMAN)
    assert "credential: agrees" in r.evidence["agreed"]


def test_license_path(matcher: Matcher) -> None:
    r = _one(matcher, license_number="TX-J01405", last_name="Sung")
    assert (r.match_status, r.npi) == ("matched", SUNG)
    assert any(e.startswith("license: agrees") for e in r.evidence["agreed"])
    r = _one(matcher, license_number="MD-46567", license_state="TN")
    assert r.candidates and r.candidates[0].npi == WENDY


def test_organization_by_name_without_legal_form(matcher: Matcher) -> None:
    r = _one(matcher, organization_name="Advantage Home Health Care", state="IL")
    assert (r.match_status, r.npi) == ("matched", ADVANTAGE)
    r = _one(matcher, name="Advantage Home Health Care Inc")  # one-field name read as an organization
    assert r.candidates and r.candidates[0].npi == ADVANTAGE


def test_no_match_and_nothing_to_match(matcher: Matcher) -> None:
    r = _one(matcher, first_name="Zebulon", last_name="Quark", state="WY")
    assert r.match_status == "no_match" and r.npi is None
    r = _one(matcher, city="Kingsport")
    assert r.match_status == "no_match" and "nothing to match on" in r.notes[0]


def test_results_in_order_and_json_shape(matcher: Matcher) -> None:
    out = matcher.match([MatchInput(npi=SUNG), MatchInput(npi=WENDY)])
    assert [r.npi for r in out] == [SUNG, WENDY]
    d = out[0].as_dict()
    assert set(d) == {
        "match_status",
        "match_confidence",
        "npi",
        "provider_status",
        "deactivation_date",
        "candidates",
        "evidence",
        "notes",
    }
    assert set(d["candidates"][0]) == {"npi", "confidence", "name", "status", "city", "state", "evidence"}


def test_input_validation() -> None:
    with pytest.raises(MatchInputError, match="unknown field"):
        MatchInput.from_mapping({"surname": "x"})
    with pytest.raises(MatchInputError, match="expected text"):
        MatchInput.from_mapping({"npi": ["1"]})
    assert MatchInput.from_mapping({"npi": 1659374601}).npi == "1659374601"


@pytest.mark.parametrize(
    ("text", "last", "first", "middle", "creds"),
    [
        ("Dr. Robert Smith", "SMITH", "ROBERT", "", []),
        ("Robert A. Smith, MD", "SMITH", "ROBERT", "A", ["MD"]),
        ("SMITH, ROBERT A", "SMITH", "ROBERT", "A", []),
        ("Dr. Robert Smith-Jones M.D.", "SMITH JONES", "ROBERT", "", ["MD"]),
        ("Jose de la Cruz, PA-C", "DE LA CRUZ", "JOSE", "", ["PA-C"]),
        ("Mary Ann O'Neil, RN, MSN", "ONEIL", "MARY", "ANN", ["RN", "MSN"]),
    ],
)
def test_full_name_parser(text: str, last: str, first: str, middle: str, creds: list[str]) -> None:
    name, found = split_full_name(text)
    assert (name.last, name.first, name.middle) == (last, first, middle)
    assert found == creds


def test_parse_reads_everything() -> None:
    p = parse(
        MatchInput(
            license_number="CA-A012345",
            phone="(415) 867-5309",
            specialty="cardiologist",
            address_1="1824 King Street Suite 300",
            city="Jacksonville",
            state="fl",
            postal_code="32204-4736",
        )
    )
    assert (p.license, p.license_state) == ("A012345", "CA")
    assert license_forms(p.license) == ("A012345", "A12345")
    assert p.phone == "+14158675309"
    assert (
        p.address is not None and p.address.line1 == "1824 KING ST" and p.zip5 == "32204" and p.state == "FL"
    )
    assert "207RC0000X" in p.codes
    assert (
        parse(MatchInput(organization_name="The Valley Dental Group, LLC")).org_key == "VALLEY DENTAL GROUP"
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("207RC0000X", "207RC0000X"),
        ("Cardiologist", "207RC0000X"),
        ("family practice", "207Q00000X"),
        ("OB/GYN", "207V00000X"),
        ("Pediatrician", "208000000X"),
        ("Nurse Practitioner", "363L00000X"),
    ],
)
def test_specialty_in_other_words(text: str, code: str) -> None:
    assert code in specialty_codes(text)


def test_typo_changes_one_thing() -> None:
    import random

    rng = random.Random(1)
    for word in ("JOHNSON", "MARTINEZ", "LEE"):
        t = typo(rng, word)
        assert t != word or len(word) < 4
        assert abs(len(t) - len(word)) <= 1


def test_evaluation_meets_its_bars_on_a_synthetic_store(tmp_path: Any) -> None:
    """A small run of ``npistack match-eval``: 600 perturbed registry records and 60 strangers
    against a 20,000-provider synthetic store."""
    bundle = write_bundle(tmp_path / "b", 20_000, seed=5)
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        assert ingest(bundle.path, store).status == "succeeded"
        labeled = labeled_set(store, 600, seed=11)
        report, results = evaluate(store, labeled)
    finally:
        store.close()
    assert report.records == 660 and len(results) == 660
    assert report.precision >= 0.995, report.as_dict()
    assert report.recall >= 0.95, report.as_dict()
    assert report.by_error["not_in_registry"][1] >= 0.95  # strangers are left unmatched
    top = [b for b in report.bands if b[0] == "0.99-1.00"]
    assert top and top[0][3] >= 0.99  # calibrated at the top
    for band, n, mean, accuracy in report.bands:  # confidence says how often the best one is right
        if n >= 20:
            assert abs(accuracy - mean) <= 0.1, (band, n, mean, accuracy)


def test_fit_calibration_recovers_a_logistic_map() -> None:
    """Points drawn from sigmoid(2 * logit(p) - 1): the fit finds (2, -1)."""
    import math
    import random

    rng = random.Random(3)
    points = []
    for _ in range(20_000):
        p = rng.uniform(0.01, 0.99)
        z = 2.0 * math.log(p / (1 - p)) - 1.0
        points.append((p, rng.random() < 1 / (1 + math.exp(-z))))
    a, b = fit_calibration(points)
    assert abs(a - 2.0) < 0.15 and abs(b + 1.0) < 0.15


@pytest.mark.parametrize(
    "raw, e164",
    [
        ("(540) 822-4224", "+15408224224"),
        ("1-540-822-4224", "+15408224224"),
        ("540.822.4224", "+15408224224"),
        ("555-0100", ""),  # not a whole number
        ("(040) 822-4224", ""),  # no area code starts with 0: phonenumbers decides, and rejects it
        ("+44 20 7946 0958", "+442079460958"),  # not NANP: phonenumbers
    ],
)
def test_match_phone_forms(raw: str, e164: str) -> None:
    from npistack.services.match.input import match_phone

    assert match_phone(raw) == e164


def test_a_match_result_as_dict_is_what_dataclasses_asdict_gives() -> None:
    import dataclasses

    from npistack.services.match import Candidate, MatchResult

    cand = Candidate("1114920162", 0.93, "JON DUBOSE", "active", "MYRTLE BEACH", "SC", {"name": ["exact"]})
    result = MatchResult(
        "ambiguous", 0.93, None, None, None, [cand, cand], {"place": ["city", "state"]}, ["two close"]
    )
    got = result.as_dict()
    assert got == dataclasses.asdict(result)
    got["candidates"][0]["evidence"]["name"].append("x")  # a copy: the result is not changed
    assert cand.evidence == {"name": ["exact"]}
