"""Provider verification (services.verify) on the 50 real NPPES sample rows, with right and wrong claims
for every field.

The real rows have no practice-location or other-name file, so the store here also loads three
hand-made rows for real NPIs: two secondary practice locations of JON DUBOSE (1114920162) and a DBA and
a former legal business name of COLLABRIA CARE (1023011178). Everything else is the real data: the
former names of DEBRA TROTCHIE (MUDDER) and WENDY OBERDICK (TIPTON), WENDY OBERDICK's reactivation, the
three deactivated stubs, hyphenated last names, a practice phone that is also the fax.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from pydantic import ValidationError

from npistack.ingest.load import ingest
from npistack.services.providers import get_provider
from npistack.services.verify import CHECKS, STATUSES, Check, Claim, Verification, verify, verify_claim
from npistack.services.verify import contact as verify_contact
from npistack.services.verify import engine as verify_module
from npistack.storage import open_store
from npistack.storage.base import SqlStore
from tests.nppes_files import SAMPLE, write_bundle
from tests.storage_sql import sql_rows

DUBOSE = "1114920162"  # JON DUBOSE, MD: 111 HOSPITAL DR, TARBORO NC; phone 2526417700, fax 2526417313
COLLABRIA = "1023011178"  # COLLABRIA CARE (NPI-2), 414 S JEFFERSON ST, NAPA CA
CUMBERLAND = "1497758544"  # CUMBERLAND COUNTY HOSPITAL SYSTEM, INC; authorized official MICHAEL NAGOWSKI
TROTCHIE = "1669475612"  # DEBRA CHARLENE TROTCHIE, former name DEBRA C MUDDER; phone = fax
OBERDICK = "1659374601"  # WENDY TIPTON OBERDICK, former WENDY NANETTE TIPTON; reactivated 2005-05-24
STUB = "1306849450"  # deactivated 2021-03-03 (a stub: NPI and date only)
STUB_2024 = "1578566527"  # deactivated 2024-11-21
ABSENT = "1234567893"  # a valid check digit, in no store
BAD_CHECK_DIGIT = "1234567890"

SECONDARY = [
    [DUBOSE, "500 E Main Street", "Suite 100", "Rocky Mount", "NC", "278044111", "US", "2524436000", "", "2524436001"],
    [DUBOSE, "1000 Medical Park Dr", "", "Greenville", "NC", "27834", "US", "2527441000", "12", ""],
]  # fmt: skip
OTHER_NAMES = [[COLLABRIA, "NAPA VALLEY HOSPICE", "3"], [COLLABRIA, "HOSPICE OF NAPA VALLEY, INC.", "4"]]


def build(url: str, folder: Path) -> None:
    rows = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[1:]
    bundle = write_bundle(folder, rows, pl=SECONDARY, othername=OTHER_NAMES, end="20250706")
    store = open_store(url)
    try:
        assert ingest(bundle, store).status == "succeeded"
    finally:
        store.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    folder = tmp_path_factory.mktemp("verify")
    url = f"sqlite:///{folder / 'store.db'}"
    build(url, folder / "bundle")
    s = open_store(url, read_only=True)
    yield s
    s.close()


def check(store: SqlStore, field: str, **claim: Any) -> Check:
    return one(store, **claim).checks[field]


def one(store: SqlStore, **claim: Any) -> Verification:
    (result,) = verify(store, [Claim(**claim)], email_dns=False)
    return result


def assert_check(c: Check, status: str, *words: str, matched: str | None = None) -> None:
    assert c.status == status, c
    for w in words:
        assert w in c.reason, (w, c.reason)
    if matched is not None:
        assert c.matched == matched, c


# -- the whole record ----------------------------------------------------------------------------

FULL = dict(
    npi=DUBOSE,
    ref="crm-1",
    first_name="Jon",
    last_name="DuBose",
    credential="M.D.",
    address_1="111 Hospital Drive",
    city="Tarboro",
    state="North Carolina",
    postal_code="27886-2011",
    phone="(252) 641-7700",
    fax="252.641.7313",
    email="jon.dubose@gmail.com",
)


def test_a_right_claim_is_verified_and_every_check_says_so(store: SqlStore) -> None:
    v = one(store, **FULL)
    assert (v.status, v.reasons, v.ref, v.npi) == ("verified", [], "crm-1", DUBOSE)
    assert list(v.checks) == list(CHECKS)
    assert {k: c.status for k, c in v.checks.items()} == dict.fromkeys(CHECKS, "pass")
    assert v.provider == {"entityType": "NPI-1", "name": "JON DUBOSE, MD", "status": "active",
                          "lastUpdated": "2022-10-12", "releaseDate": "2025-07-06"}  # fmt: skip
    d = v.to_dict()
    assert list(d) == ["ref", "npi", "status", "reasons", "checks", "provider"]
    assert set(d["checks"]["name"]) == {"status", "reason", "claimed", "registry", "matched"}


def test_wrong_fields_need_review_with_one_reason_each(store: SqlStore) -> None:
    v = one(store, **{**FULL, "last_name": "Smith", "phone": "2526417313", "email": "jon@example.com"})
    assert v.status == "needs_review"
    assert [r.split(":")[0] for r in v.reasons] == ["name", "phone", "email"]
    assert "this is a fax line" in v.reasons[1]


def test_only_an_npi_is_verified_by_npi_checks_alone(store: SqlStore) -> None:
    v = one(store, npi=DUBOSE)
    assert v.status == "verified"
    assert {k for k, c in v.checks.items() if c.status == "not_supplied"} == set(CHECKS[3:])


def test_statuses_are_the_documented_ones(store: SqlStore) -> None:
    claims = [Claim(**{**FULL, "npi": n}) for n in (DUBOSE, COLLABRIA, STUB, ABSENT, BAD_CHECK_DIGIT, "x")]
    for v in verify(store, claims, email_dns=False):
        assert v.status in ("verified", "needs_review")
        assert all(c.status in STATUSES and c.reason for c in v.checks.values())


# -- NPI -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "npi, words",
    [(BAD_CHECK_DIGIT, "fails the check digit"), ("12345", "not 10 digits"), ("abcdefghij", "not 10 digits"),
     ("3234567893", "does not start with 1 or 2")],
)  # fmt: skip
def test_a_malformed_npi_fails_and_nothing_else_is_checked_against_the_registry(
    store: SqlStore, npi: str, words: str
) -> None:
    v = one(store, npi=npi, last_name="Dubose", phone="2526417700", email="a@gmail.com")
    assert_check(v.checks["npiFormat"], "fail", words)
    assert v.checks["npiExists"].status == v.checks["npiActive"].status == "not_checked"
    assert_check(v.checks["name"], "not_checked", "the NPI is not valid")
    assert_check(v.checks["phone"], "not_checked")
    assert v.checks["phoneValid"].status == v.checks["email"].status == "pass"  # no registry needed
    assert v.status == "needs_review" and v.reasons == [f"npiFormat: {v.checks['npiFormat'].reason}"]
    assert v.provider is None


def test_an_unknown_npi_fails_exists(store: SqlStore) -> None:
    v = one(store, npi=ABSENT, last_name="Dubose")
    assert v.checks["npiFormat"].status == "pass"
    assert_check(v.checks["npiExists"], "fail", f"no provider has NPI {ABSENT}")
    assert_check(v.checks["name"], "not_checked", "not in the registry")
    assert v.reasons == [f"npiExists: no provider has NPI {ABSENT} in the registry"]


@pytest.mark.parametrize("npi, date", [(STUB, "2021-03-03"), (STUB_2024, "2024-11-21")])
def test_a_deactivated_npi_fails_with_its_date(store: SqlStore, npi: str, date: str) -> None:
    v = one(store, npi=npi, first_name="Jon", last_name="Dubose", phone="2526417700")
    assert v.checks["npiExists"].status == "pass"
    active = v.checks["npiActive"]
    assert_check(active, "fail", f"deactivated on {date}")
    assert active.registry == {"status": "deactivated", "deactivationDate": date, "reactivationDate": None,
                               "replacementNpi": None}  # fmt: skip
    assert_check(v.checks["name"], "not_checked", "only the NPI and deactivation date")
    assert v.status == "needs_review" and v.reasons == [f"npiActive: NPI {npi} was deactivated on {date}"]


def test_a_reactivated_npi_is_active_and_says_when(store: SqlStore) -> None:
    active = check(store, "npiActive", npi=OBERDICK)
    assert_check(active, "pass", "reactivated on 2005-05-24", "deactivation on 2005-05-23")


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "npi, claim, matched, words",
    [
        (DUBOSE, {"first_name": "JON", "last_name": "DUBOSE"}, "legal", ()),
        (DUBOSE, {"first_name": "Dr. Jon", "last_name": "Dubose, M.D."}, "legal", ()),  # titles, credentials
        (DUBOSE, {"first_name": "jon", "last_name": "du bose"}, "legal", ()),  # case and spaces
        (DUBOSE, {"first_name": "J.", "last_name": "Dubose"}, "legal", ("first initial",)),
        (DUBOSE, {"first_name": "Johnny", "last_name": "Dubose"}, "legal", ("nickname",)),
        ("1750384806", {"first_name": "Bob", "last_name": "Bisbee MD"}, "legal", ("BOB is a nickname of ROBERT",)),
        ("1932102084", {"first_name": "Ravi", "middle_name": "Kumar", "last_name": "Adusumilli"}, "legal", ()),
        ("1205839255", {"first_name": "Steven", "middle_name": "Michael", "last_name": "Goldberg"}, "legal", ()),
        ("1225031271", {"first_name": "David", "last_name": "Shepherd"}, "legal", ("middle name",)),
        ("1073516027", {"first_name": "John", "middle_name": "Chu Hong", "last_name": "Chang"}, "legal", ()),
        ("1396748448", {"first_name": "Cynthia", "last_name": "Young"}, "legal", ("hyphenated",)),
        ("1396748448", {"first_name": "Cynthia", "last_name": "Young Mayka"}, "legal", ()),
        ("1508869553", {"first_name": "Lee Ann", "last_name": "Van Houten"}, "legal", ("hyphenated",)),
        ("1922001973", {"first_name": "Teresa", "last_name": "Krull"}, "legal", ("hyphenated",)),
        ("1215930367", {"last_name": "Gressot"}, "legal", ()),  # the last name alone
    ],
)  # fmt: skip
def test_names_that_agree_pass(
    store: SqlStore, npi: str, claim: dict[str, str], matched: str, words: tuple[str, ...]
) -> None:
    assert_check(check(store, "name", npi=npi, **claim), "pass", *words, matched=matched)


@pytest.mark.parametrize(
    "npi, claim, words",
    [
        (DUBOSE, {"first_name": "Jon", "last_name": "Duboise"}, ("DUBOISE vs the registry's DUBOSE",)),
        (DUBOSE, {"first_name": "Jno", "last_name": "Dubose"}, ()),  # too short for a typo: see below
        ("1932102084", {"first_name": "Ravi", "middle_name": "S", "last_name": "Adusumilli"}, ("middle name S",)),
        ("1750384707", {"first_name": "Alan", "last_name": "Markmann"}, ("MARKMANN",)),
    ],
)  # fmt: skip
def test_typo_level_differences_are_close_not_pass(
    store: SqlStore, npi: str, claim: dict[str, str], words: tuple[str, ...]
) -> None:
    c = check(store, "name", npi=npi, **claim)
    if claim.get("first_name") == "Jno":  # three letters: one edit is another name, not a typo
        assert_check(c, "fail")
        return
    assert_check(c, "close", *words, matched="legal")


@pytest.mark.parametrize(
    "npi, claim",
    [(DUBOSE, {"first_name": "Jane", "last_name": "Dubose"}), (DUBOSE, {"first_name": "Jon", "last_name": "Smith"}),
     ("1750384806", {"first_name": "William", "last_name": "Bisbee"})],
)  # fmt: skip
def test_names_that_disagree_fail_and_show_the_registry_name(
    store: SqlStore, npi: str, claim: dict[str, str]
) -> None:
    c = check(store, "name", npi=npi, **claim)
    assert_check(c, "fail", "does not agree with the registry's name")
    assert c.registry["last"] and c.matched is None


def test_a_former_name_is_a_warning_naming_the_current_one(store: SqlStore) -> None:
    c = check(store, "name", npi=TROTCHIE, first_name="Debra", last_name="Mudder")
    assert_check(
        c, "warning", "former name, DEBRA C MUDDER", "DEBRA CHARLENE TROTCHIE", matched="former_name"
    )
    assert c.registry["otherNames"] == [
        {"type": "Former Name", "first": "DEBRA", "middle": "C", "last": "MUDDER"}
    ]
    c = check(store, "name", npi=OBERDICK, first_name="Wendy", middle_name="N", last_name="Tipton")
    assert_check(c, "warning", "WENDY NANETTE TIPTON", "WENDY TIPTON OBERDICK", matched="former_name")
    # The current name still passes, against the legal name.
    assert_check(check(store, "name", npi=TROTCHIE, first_name="Debra", last_name="Trotchie"), "pass")


@pytest.mark.parametrize(
    "claim, status, matched, words",
    [
        ("Collabria Care", "pass", "legal", ("legal business name",)),
        ("COLLABRIA CARE, INC.", "pass", "legal", ()),  # legal forms ignored
        ("The Napa Valley Hospice", "pass", "dba", ("doing-business-as name NAPA VALLEY HOSPICE",)),
        ("Hospice of Napa Valley", "warning", "former_legal_name", ("former legal name", "COLLABRIA CARE")),
        ("Colabria Care", "close", "legal", ("close to",)),
        ("Queen of the Valley Medical Center", "fail", None, ("NAPA VALLEY HOSPICE",)),
    ],
)  # fmt: skip
def test_organization_names_against_legal_dba_and_former_names(
    store: SqlStore, claim: str, status: str, matched: str | None, words: tuple[str, ...]
) -> None:
    c = check(store, "name", npi=COLLABRIA, organization_name=claim)
    assert_check(c, status, *words)
    assert c.matched == matched


def test_organization_legal_forms_and_punctuation(store: SqlStore) -> None:
    assert_check(
        check(store, "name", npi=CUMBERLAND, organization_name="Cumberland County Hospital System"), "pass"
    )
    assert_check(
        check(store, "name", npi="1700889755", organization_name="Azar / Filipov M.D., P.A."), "pass"
    )
    assert_check(check(store, "name", npi="1043213093", organization_name="Home IV Specialists"), "pass")


def test_a_person_named_on_an_organization_npi(store: SqlStore) -> None:
    c = check(store, "name", npi=CUMBERLAND, first_name="Michael", last_name="Nagowski")
    assert_check(c, "warning", "authorized official", matched="authorized_official")
    c = check(store, "name", npi=CUMBERLAND, first_name="Jon", last_name="Dubose")
    assert_check(c, "fail", "organization_name")


def test_an_organization_name_on_an_individual_npi_fails(store: SqlStore) -> None:
    assert_check(check(store, "name", npi=DUBOSE, organization_name="Tarboro Clinic"), "fail", "NPI-1")


# -- credentials ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "npi, claim, status",
    [
        (DUBOSE, "MD", "pass"),
        (DUBOSE, "M. D.", "pass"),
        (DUBOSE, "DO", "fail"),
        ("1619970662", "CPNP", "pass"),  # RN, MSN, CPNP
        ("1164425112", "PhD", "pass"),  # B.C.P.S., PH.D.
        ("1164425112", "MD, PhD", "close"),
        (CUMBERLAND, "MD", "not_checked"),  # organizations have none
    ],
)  # fmt: skip
def test_credentials_are_compared_normalized(store: SqlStore, npi: str, claim: str, status: str) -> None:
    assert check(store, "credential", npi=npi, credential=claim).status == status


def test_an_unverifiable_credential_does_not_block_verification(store: SqlStore) -> None:
    v = one(store, npi=CUMBERLAND, organization_name="Cumberland County Hospital System", credential="MD")
    assert v.checks["credential"].status == "not_checked" and v.status == "verified"


# -- addresses -----------------------------------------------------------------------------------

ADDRESS = {"city": "Tarboro", "state": "NC", "postal_code": "27886"}


@pytest.mark.parametrize(
    "npi, claim, matched, words",
    [
        (DUBOSE, {"address_1": "111 Hospital Drive", **ADDRESS}, "primary", ("primary practice location",)),
        (DUBOSE, {"address_1": "111 HOSPITAL DR.", "city": "tarboro", "state": "north carolina",
                  "postal_code": "278862011"}, "primary", ()),
        (DUBOSE, {"address_1": "500 East Main St Ste 100", "city": "Rocky Mount", "state": "NC",
                  "postal_code": "27804"}, "secondary", ("secondary practice location 1",)),
        (DUBOSE, {"address_1": "1000 Medical Park Drive", "city": "Greenville", "state": "NC"}, "secondary",
         ("secondary practice location 2",)),
        ("1134122187", {"address_1": "P.O. Box 440100", "city": "Nashville", "state": "TN",
                        "postal_code": "37244"}, "mailing", ("mailing address", "not a practice location")),
        ("1750384707", {"address_1": "3800 Park Nicollet Blvd", "city": "Saint Louis Park", "state": "MN"},
         "mailing", ()),
        ("1750384806", {"address_1": "808 Joliet Ave", "address_2": "#120", "city": "Lubbock", "state": "TX",
                        "postal_code": "79415"}, "primary", ()),
        ("1114920261", {"address_1": "2770 Capital Medical Blvd", "city": "Tallahassee", "state": "FL",
                        "postal_code": "32308"}, "primary", ("the registry adds STE 200",)),
        ("1225031271", {"address_1": "293 Olmsted Blvd, Suite 7", "city": "Pinehurst", "state": "NC",
                        "postal_code": "28374"}, "primary", ()),
        (DUBOSE, {"city": "Tarboro", "state": "NC"}, "primary", ("no street supplied",)),
    ],
)  # fmt: skip
def test_addresses_match_primary_secondary_or_mailing(
    store: SqlStore, npi: str, claim: dict[str, str], matched: str, words: tuple[str, ...]
) -> None:
    c = check(store, "address", npi=npi, **claim)
    assert_check(c, "pass", *words, matched=matched)
    assert any(a["agreement"] == "match" and a["purpose"] == matched for a in c.registry)


def test_the_address_check_shows_every_registry_address_standardized(store: SqlStore) -> None:
    c = check(store, "address", npi=DUBOSE, address_1="1000 Medical Park Dr", city="Greenville", state="NC")
    assert [(a["purpose"], a.get("index"), a["line1"], a["agreement"]) for a in c.registry] == [
        ("primary", None, "111 HOSPITAL DR", "none"),
        ("secondary", 1, "500 E MAIN ST", "none"),
        ("secondary", 2, "1000 MEDICAL PARK DR", "match"),
        ("mailing", None, "111 HOSPITAL DR", "none"),
    ]
    assert c.claimed == {"line1": "1000 MEDICAL PARK DR", "line2": "", "city": "GREENVILLE", "state": "NC",
                         "zip5": "", "zip4": ""}  # fmt: skip


@pytest.mark.parametrize(
    "npi, claim, agreement, words",
    [
        ("1114920261", {"address_1": "2770 Capital Medical Blvd", "address_2": "Suite 210", "city": "Tallahassee",
                        "state": "FL", "postal_code": "32308"}, "other_unit", ("another unit", "STE 210", "STE 200")),
        (DUBOSE, {"address_1": "111 Hosptial Dr", **ADDRESS}, "close_street", ("111 HOSPTIAL DR",)),
        (DUBOSE, {"address_1": "111 Hospital Dr", "city": "Tarboro", "state": "NC", "postal_code": "27887"},
         "other_zip", ("ZIP 27887", "27886")),
    ],
)  # fmt: skip
def test_partial_address_agreement_is_close(
    store: SqlStore, npi: str, claim: dict[str, str], agreement: str, words: tuple[str, ...]
) -> None:
    c = check(store, "address", npi=npi, **claim)
    assert_check(c, "close", *words, matched="primary")
    assert c.registry[0]["agreement"] == agreement


def test_an_address_matching_none_fails_and_says_so(store: SqlStore) -> None:
    c = check(store, "address", npi=DUBOSE, address_1="900 Western Blvd", **ADDRESS)
    assert_check(c, "fail", "matches none", "same ZIP as the primary practice location", "111 HOSPITAL DR")
    assert c.matched is None and c.registry[0]["agreement"] == "same_zip"
    c = check(store, "address", npi=DUBOSE, address_1="111 Hospital Dr", city="Raleigh", state="NC",
              postal_code="27601")  # fmt: skip
    assert_check(c, "fail", "matches none")  # the same street in another town is another address


# -- phones and faxes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "npi, phone, matched, words",
    [
        (DUBOSE, "2526417700", "primary_phone", ("primary practice location's phone",)),
        (DUBOSE, "+1 (252) 641-7700", "primary_phone", ()),
        (DUBOSE, "1-252-641-7700 ext. 12", "primary_phone", ()),
        (DUBOSE, "252 443 6000", "secondary_phone", ("secondary practice location's phone",)),
        ("1134122187", "615-986-4102", "mailing_phone", ("mailing address's phone",)),
        (TROTCHIE, "702-342-0858", "primary_phone", ("also listed as the primary practice location's fax",)),
        (CUMBERLAND, "9106096740", "primary_phone", ()),
    ],
)  # fmt: skip
def test_a_phone_on_record_passes_and_says_which(
    store: SqlStore, npi: str, phone: str, matched: str, words: tuple[str, ...]
) -> None:
    v = one(store, npi=npi, phone=phone)
    assert_check(v.checks["phone"], "pass", *words, matched=matched)
    assert v.checks["phoneValid"].status == "pass"


def test_a_fax_given_as_the_phone_is_a_fax_line(store: SqlStore) -> None:
    c = check(store, "phone", npi=DUBOSE, phone="(252) 641-7313")
    assert_check(c, "warning", "this is a fax line", "+12526417700", matched="primary_fax")
    assert {"purpose": "primary", "kind": "fax", "number": "+12526417313"} in c.registry
    assert_check(check(store, "phone", npi=DUBOSE, phone="2524436001"), "warning", "fax line",
                 matched="secondary_fax")  # fmt: skip


def test_an_unknown_phone_is_not_on_record(store: SqlStore) -> None:
    v = one(store, npi=DUBOSE, phone="919-555-0142")
    assert_check(v.checks["phone"], "fail", "not on record", "+12526417700", "+12524436000")
    assert v.checks["phoneValid"].status == "pass"


@pytest.mark.parametrize("phone", ["123", "555-0100", "(111) 222-3333", "call the office"])
def test_an_invalid_phone_fails_validation(store: SqlStore, phone: str) -> None:
    v = one(store, npi=DUBOSE, phone=phone)
    assert_check(v.checks["phoneValid"], "fail", "not a valid phone number")
    assert v.checks["phone"].status == "fail" and v.status == "needs_review"


def test_fax_claims(store: SqlStore) -> None:
    assert_check(check(store, "fax", npi=DUBOSE, fax="2526417313"), "pass", matched="primary_fax")
    assert_check(check(store, "fax", npi=DUBOSE, fax="2526417700"), "warning", "a phone line, not a fax")
    assert_check(check(store, "fax", npi=DUBOSE, fax="9195550142"), "fail", "not on record", "+12526417313")


# -- email ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email, status, words",
    [
        ("jon.dubose@gmail.com", "pass", ("DNS not checked",)),
        ("Jon.Dubose@ECUHealth.ORG", "pass", ()),
        ("jon.dubose@gmial.com", "close", ("typo of gmail.com",)),
        ("jon.dubose@yahooo.com", "close", ("typo of yahoo.com",)),
        ("jon.dubose@", "fail", ("not a valid email address",)),
        ("jon dubose@gmail.com", "fail", ("not a valid email address",)),
        ("jon@@gmail.com", "fail", ("not a valid email address",)),
        ("jon@localhost", "fail", ("not a valid email address",)),
        ("jon@ecuhealth.c0m", "fail", ("not a plausible domain",)),
        ("jon@example.com", "fail", ("reserved",)),
        ("jon@clinic.test", "fail", ()),
    ],
)  # fmt: skip
def test_email_syntax_and_domain(store: SqlStore, email: str, status: str, words: tuple[str, ...]) -> None:
    assert_check(check(store, "email", npi=DUBOSE, email=email), status, *words)


def test_email_is_checked_even_when_the_npi_is_not(store: SqlStore) -> None:
    assert check(store, "email", npi=STUB, email="x@gmial.com").status == "close"


class FakeResolver:
    """Stands in for dnspython's resolver: MX answers for one domain, NXDOMAIN for the rest."""

    class _Mx:
        preference = 10
        exchange = "mx.ecuhealth.org."

    def resolve(self, domain: str, kind: str) -> list[Any]:
        if domain == "ecuhealth.org" and kind == "MX":
            return [self._Mx()]
        raise dns.resolver.NXDOMAIN


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_contact, "_dns_resolver", lambda: FakeResolver())


@pytest.mark.usefixtures("fake_dns")
def test_email_deliverability_is_asked_of_dns_only_when_enabled(store: SqlStore) -> None:
    def email(address: str, dns_on: bool) -> Check:
        (v,) = verify(store, [Claim(npi=DUBOSE, email=address)], email_dns=dns_on)
        return v.checks["email"]

    assert_check(email("jon@ecuhealth.org", True), "pass", "accepts email (MX mx.ecuhealth.org)")
    assert_check(email("jon@no-such-clinic.org", True), "fail", "does not accept email")
    assert_check(email("jon@no-such-clinic.org", False), "pass", "DNS not checked")


def test_the_setting_decides_by_default(
    store: SqlStore, fake_dns: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from npistack.settings import Settings

    monkeypatch.setattr(verify_module, "get_settings", lambda: Settings(verify_email_dns=True))
    (v,) = verify(store, [Claim(npi=DUBOSE, email="jon@no-such-clinic.org")])
    assert v.checks["email"].status == "fail"
    monkeypatch.setattr(verify_module, "get_settings", lambda: Settings())
    (v,) = verify(store, [Claim(npi=DUBOSE, email="jon@no-such-clinic.org")])
    assert v.checks["email"].status == "pass"


# -- every real row: its own data verifies, another row's data does not ------------------------


def claim_from(doc: dict[str, Any]) -> dict[str, Any]:
    """What a careful CRM would hold: the registry's values, re-cased and re-punctuated."""
    n, loc = doc["name"], doc["practiceLocation"]
    out: dict[str, Any] = {"npi": doc["npi"]}
    if doc["entityType"] == "NPI-1":
        out.update(first_name=n["first"].title(), middle_name=n["middle"], last_name=n["last"].title(),
                   credential=n["credential"])  # fmt: skip
    else:
        out["organization_name"] = doc["organizationName"].title()
    out.update(address_1=loc["line1"].title(), address_2=loc["line2"], city=loc["city"].title(),
               state=loc["state"], postal_code=loc["postalCode"], phone=loc["phoneRaw"], email="office@gmail.com")  # fmt: skip
    return out


def active_docs(store: SqlStore) -> list[dict[str, Any]]:
    npis = [
        f"{r[0]:010d}"
        for r in sql_rows(store, "SELECT npi FROM providers WHERE status = 'active' ORDER BY npi")
    ]
    docs = [get_provider(store, n) for n in npis]
    return [d for d in docs if d]


def test_every_real_row_verifies_its_own_data_and_not_its_neighbours(store: SqlStore) -> None:
    docs = active_docs(store)
    assert len(docs) == 47
    right = verify(store, [Claim(**claim_from(d)) for d in docs], email_dns=False)
    problems = [(v.npi, v.reasons) for v in right if v.status != "verified"]
    assert not problems, problems
    # Each row with the next row's name, address and phone: all three fail (or are close at best).
    wrong = []
    for d, other in zip(docs, docs[1:] + docs[:1], strict=True):
        mixed = {**claim_from(other), "npi": d["npi"]}
        if (d["entityType"] == "NPI-1") != (other["entityType"] == "NPI-1"):
            continue
        wrong.append(Claim(**mixed))
    for v in verify(store, wrong, email_dns=False):
        assert v.status == "needs_review"
        assert {v.checks[k].status for k in ("name", "address", "phone")} <= {"fail", "close"}, v.reasons


def test_one_record_answers_well_under_a_second(store: SqlStore) -> None:
    docs = active_docs(store)
    verify(store, [Claim(**claim_from(docs[0]))], email_dns=False)  # warm: nicknames, NUCC
    slowest = 0.0
    for d in docs:
        t = time.perf_counter()
        verify(store, [Claim(**claim_from(d))], email_dns=False)
        slowest = max(slowest, time.perf_counter() - t)
    assert slowest < 0.1, f"slowest record took {slowest * 1000:.1f} ms"


# -- the claim, and both backends ----------------------------------------------------------------


def test_claims_strip_blanks_and_refuse_unknown_fields_and_non_strings() -> None:
    c = Claim(npi=" 1114920162 ", first_name="  ", phone="")
    assert (c.npi, c.first_name, c.phone) == (DUBOSE, None, None)
    with pytest.raises(ValidationError):
        Claim(npi=DUBOSE, phon="2526417700")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Claim(npi=1114920162)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Claim(npi="")


def test_verify_claim_is_pure(store: SqlStore) -> None:
    doc = get_provider(store, DUBOSE)
    assert doc is not None
    v = verify_claim(Claim(npi=DUBOSE, last_name="Dubose"), doc)
    assert v.status == "verified" and v.checks["name"].matched == "legal"
    v = verify_claim(Claim(npi=DUBOSE, last_name="Dubose"), None)
    assert v.checks["npiExists"].status == "fail"


def test_same_answers_on_every_backend(store: SqlStore, store_url: str, tmp_path: Path) -> None:
    build(store_url, tmp_path / "bundle")
    other = open_store(store_url)
    try:
        claims = [Claim(**{**FULL, "npi": n}) for n in (DUBOSE, COLLABRIA, TROTCHIE, STUB, ABSENT)]
        claims.append(Claim(npi=COLLABRIA, organization_name="Napa Valley Hospice", address_1="414 S Jefferson St",
                            city="Napa", state="CA", phone="7072582476"))  # fmt: skip
        mine = [v.to_dict() for v in verify(store, claims, email_dns=False)]
        theirs = [v.to_dict() for v in verify(other, claims, email_dns=False)]
    finally:
        other.close()
    assert theirs == mine
