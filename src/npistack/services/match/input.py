"""What a record to match holds (:class:`MatchInput`) and its normalized form (:class:`Parsed`).

CRM and spreadsheet rows write names every way: "Dr. Robert A. Smith, MD", "SMITH, ROBERT A",
"Robert Smith-Jones", a last name holding the credential ("Smith MD"), a first name holding the
middle one ("Robert A"). :func:`parse` reads them into name keys (``npistack.normalize.names``),
credential tokens, a standardized address, a phone in E.164, a license key and the taxonomy codes
a specialty can mean. A record with an organization name, or a one-field name that reads as an
organization ("Valley Dental Group PLLC"), is matched against organizations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from npistack.errors import NpistackError
from npistack.normalize.address import StdAddress, standardize_address
from npistack.normalize.names import name_key, normalize_credentials
from npistack.normalize.phone import normalize_phone, phone_digits
from npistack.records.keys import license_key
from npistack.services.match.specialty import specialty_codes


class MatchInputError(NpistackError, ValueError):
    """A record to match that cannot be read (unknown field, wrong type, nothing to match on)."""


@dataclass
class MatchInput:
    """One record to match; every field is optional text."""

    npi: str | None = None
    license_number: str | None = None
    license_state: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    name: str | None = None  # a whole name in one field: "Dr. Robert A. Smith, MD", "Smith, Robert A"
    organization_name: str | None = None
    credential: str | None = None
    specialty: str | None = None  # free text or a NUCC taxonomy code
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    phone: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> MatchInput:
        """A record from a mapping of field names to text (numbers are taken as text)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MatchInputError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, str | None] = {}
        for key, value in data.items():
            if value is None:
                values[key] = None
            elif isinstance(value, str):
                values[key] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                values[key] = str(value)
            else:
                raise MatchInputError(f"{key}: expected text, got {type(value).__name__}")
        return cls(**values)

    def is_empty(self) -> bool:
        return not any((getattr(self, f.name) or "").strip() for f in fields(self))


FIELDS = tuple(f.name for f in fields(MatchInput))

PREFIXES = frozenset({"DR", "DOCTOR", "MR", "MRS", "MS", "MISS", "MX", "PROF", "PROFESSOR", "REV", "SISTER"})
SUFFIXES = frozenset({"JR", "SR", "II", "III", "IV", "V", "2ND", "3RD"})
# Credentials seen in NPPES's credential field, to tell "SMITH MD" from a last name.
CREDENTIALS = frozenset(
    [
        "MD",
        "DO",
        "DDS",
        "DMD",
        "DPM",
        "DC",
        "OD",
        "PHD",
        "PSYD",
        "PHARMD",
        "RPH",
        "NP",
        "FNP",
        "APRN",
        "CRNP",
        "CNP",
        "ANP",
        "PNP",
        "DNP",
        "RN",
        "LPN",
        "LVN",
        "CRNA",
        "CNM",
        "PA",
        "PAC",
        "PT",
        "DPT",
        "OT",
        "OTR",
        "OTRL",
        "SLP",
        "CCCSLP",
        "LCSW",
        "LICSW",
        "LMSW",
        "MSW",
        "LPC",
        "LMFT",
        "LMHC",
        "MFT",
        "AUD",
        "CCC",
        "RD",
        "LD",
        "RDN",
        "MPH",
        "MBA",
        "MS",
        "MA",
        "BSN",
        "MSN",
        "FACS",
        "FACP",
        "FAAP",
        "FACOG",
        "FACC",
        "ATC",
        "CNA",
        "EMT",
        "PARAMEDIC",
        "LAC",
        "DACM",
        "OMD",
        "MBBS",
        "FRCSC",
        "DABR",
        "PMHNP",
        "AGNP",
        "ACNP",
        "AGACNP",
        "WHNP",
        "NNP",
        "CPNP",
        "LMT",
        "LISW",
        "LCPC",
        "LPCC",
        "BCBA",
        "CADC",
    ]
)
# Board-certification tails of hyphenated credentials ("FNP-BC", "PMHNP-BC", "CCC-SLP", "NP-C").
CREDENTIAL_TAILS = frozenset(["BC", "C", "A", "P", "L", "SLP", "CCC"])


def is_credential(word: str) -> bool:
    """A credential token, also hyphenated or slashed ("CCC-SLP", "PMHNP-BC", "OTR/L")."""
    if word in CREDENTIALS or word.replace("-", "").replace("/", "") in CREDENTIALS:
        return True
    parts = [x for x in word.replace("/", "-").split("-") if x]
    return (
        len(parts) > 1
        and parts[0] in CREDENTIALS
        and all(x in CREDENTIALS or x in CREDENTIAL_TAILS for x in parts[1:])
    )


# Words that make a one-field name an organization.
ORG_WORDS = frozenset(
    [
        "LLC",
        "INC",
        "PC",
        "PLLC",
        "PA",
        "LLP",
        "LTD",
        "CORP",
        "CORPORATION",
        "COMPANY",
        "CO",
        "GROUP",
        "ASSOCIATES",
        "ASSOC",
        "CLINIC",
        "CLINICS",
        "CENTER",
        "CENTRE",
        "CENTERS",
        "HOSPITAL",
        "HOSPITALS",
        "HEALTH",
        "HEALTHCARE",
        "MEDICAL",
        "MEDICINE",
        "PHARMACY",
        "DENTAL",
        "PRACTICE",
        "PARTNERS",
        "SERVICES",
        "SYSTEM",
        "SYSTEMS",
        "INSTITUTE",
        "FOUNDATION",
        "UNIVERSITY",
        "LAB",
        "LABS",
        "LABORATORY",
        "LABORATORIES",
        "CARE",
        "AMBULANCE",
        "HOME",
        "SUPPLY",
        "THERAPY",
        "REHABILITATION",
        "REHAB",
        "IMAGING",
        "RADIOLOGY",
        "SURGERY",
        "SURGICAL",
        "PEDIATRICS",
        "ORTHOPEDICS",
        "DEPARTMENT",
        "DEPT",
    ]
)
# Legal form words left out of an organization's comparison key.
ORG_FORMS = frozenset(
    [
        "THE",
        "LLC",
        "INC",
        "PC",
        "PLLC",
        "PA",
        "LLP",
        "LTD",
        "CORP",
        "CORPORATION",
        "CO",
        "COMPANY",
        "INCORPORATED",
        "LP",
        "PLC",
        "SC",
        "APC",
        "APMC",
        "DBA",
    ]
)
_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True)
class PersonName:
    last: str = ""  # name keys
    first: str = ""
    middle: str = ""


@dataclass
class Parsed:
    """A record in the forms matching compares."""

    raw: MatchInput
    entity_type: int | None = None  # 1 individual, 2 organization, None: cannot tell (no name)
    npi: str = ""
    person: PersonName = field(default_factory=PersonName)
    org_key: str = ""  # organization name without its legal form words
    org_text: str = ""
    credentials: tuple[str, ...] = ()
    license: str = ""  # license_key of the number
    license_state: str = ""
    codes: frozenset[str] = frozenset()
    specialty: str = ""
    address: StdAddress | None = None
    city_key: str = ""
    state: str = ""
    zip5: str = ""
    phone: str = ""  # E.164

    def has_name(self) -> bool:
        return bool(self.person.last or self.person.first or self.org_key)


_LETTER_ZEROS = re.compile(r"^([A-Z]+)0+(?=\d)")


def license_forms(key: str) -> tuple[str, ...]:
    """A license key and its form without zeros after a letter prefix ("J01405" -> "J1405")."""
    short = _LETTER_ZEROS.sub(r"\1", key)
    return (key,) if short == key else (key, short)


@lru_cache(maxsize=200_000)
def org_key(text: str) -> str:
    """An organization name for comparison: name key without legal form words, "&" as "AND"."""
    words = name_key(text.replace("&", " AND ")).split()
    kept = [w for w in words if w not in ORG_FORMS]
    return " ".join(kept or words)


def _split_credentials(words: list[str]) -> tuple[list[str], list[str]]:
    """Trailing credential and suffix words split off a name's words."""
    creds: list[str] = []
    while len(words) > 1 and (words[-1] in CREDENTIALS or words[-1] in SUFFIXES):
        w = words.pop()
        if w in CREDENTIALS:
            creds.insert(0, w)
    return words, creds


_DOTTED = re.compile(r"\b(?:[A-Za-z]\.\s?){2,}")


def _words(text: str) -> list[str]:
    """Name key words; dotted credentials ("M.D.", "D. O.") become one word."""
    text = _DOTTED.sub(lambda m: m.group(0).replace(".", "").replace(" ", "") + " ", text)
    out = []
    for token in text.replace(".", " ").split():  # "Smith-Jones" stays one word: "SMITH JONES"
        key = name_key(token)
        if key:
            out.append(key)
    return out


def split_full_name(text: str) -> tuple[PersonName, list[str]]:
    """A person's name written in one field, and the credentials it carries."""
    head, _, tail = text.partition(",")
    creds: list[str] = []
    tail_words = list(normalize_credentials(tail)) if tail.strip() else []
    head_words = _words(head)
    tail_is_creds = bool(tail_words) and all(
        is_credential(w) or w in SUFFIXES or (len(head_words) > 1 and len(w) <= 6) for w in tail_words
    )
    if tail.strip() and not tail_is_creds:
        # "SMITH, ROBERT A[, MD]": last name first
        last_words = _words(head)
        rest, _, after = tail.partition(",")
        given, creds = _split_credentials(_words(rest))
        creds += [w for w in _words(after) if w in CREDENTIALS]
        given = [w for w in given if w not in PREFIXES] or given
        first = given[0] if given else ""
        middle = " ".join(given[1:])
        return PersonName(" ".join(last_words), first, middle), creds
    if tail_is_creds:
        creds = [w for w in tail_words if w not in SUFFIXES]
    words, more = _split_credentials(_words(head))
    creds = more + creds
    while len(words) > 1 and words[0] in PREFIXES:
        words = words[1:]
    words = _attach_particles(words)
    if not words:
        return PersonName(), creds
    if len(words) == 1:
        return PersonName(words[0]), creds
    return PersonName(words[-1], words[0], " ".join(words[1:-1])), creds


PARTICLES = frozenset(
    {"DE", "DEL", "DELA", "LA", "LE", "DA", "DI", "DOS", "DU", "VAN", "VON", "DER", "DEN", "ST", "SAN"}
)


def _attach_particles(words: list[str]) -> list[str]:
    """ "JOSE DE LA CRUZ": the particles before the last word belong to the last name."""
    while len(words) > 2 and words[-2] in PARTICLES:
        words = [*words[:-2], f"{words[-2]} {words[-1]}"]
    return words


def looks_like_org(text: str) -> bool:
    return any(w in ORG_WORDS for w in _words(text))


def _person(raw: MatchInput) -> tuple[PersonName, list[str]]:
    if raw.first_name or raw.last_name:
        last_words, creds = _split_credentials(_words(raw.last_name or ""))
        first_words = [w for w in _words(raw.first_name or "") if w not in PREFIXES] or _words(
            raw.first_name or ""
        )
        middle = " ".join(_words(raw.middle_name or ""))
        if len(first_words) > 1 and not middle:
            middle = " ".join(first_words[1:])
        first = first_words[0] if first_words else ""
        if not last_words and raw.name:
            return split_full_name(raw.name)
        return PersonName(" ".join(last_words), first, middle), creds
    if raw.name:
        return split_full_name(raw.name)
    return PersonName(), []


_NANP_LEAD = frozenset("23456789")


def match_phone(raw: str) -> str:
    """A phone in the E.164 form the registry's phones are stored in. A NANP-shaped number (10
    digits, area code and exchange not starting with 0 or 1) is compared as is: matching needs the
    form, not ``phonenumbers``' verdict on the exchange (0.2 ms a number), and a number the
    registry does not hold is "not on record" either way; anything else goes through
    ``normalize_phone`` ("" when it is not a phone number)."""
    digits = phone_digits(raw)
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) == 10 and digits[0] in _NANP_LEAD and digits[3] in _NANP_LEAD and len(raw) <= 20:
        return "+1" + digits
    return normalize_phone(raw) or ""


def parse(raw: MatchInput) -> Parsed:
    """Normalize a record (never raises)."""
    p = Parsed(raw)
    p.npi = _DIGITS.sub("", raw.npi or "")
    org_text = (raw.organization_name or "").strip()
    if not org_text and raw.name and not (raw.first_name or raw.last_name) and looks_like_org(raw.name):
        org_text = raw.name.strip()
    if org_text:
        p.entity_type = 2
        p.org_text = org_text
        p.org_key = org_key(org_text)
    else:
        person, creds = _person(raw)
        if person.last or person.first:
            p.entity_type = 1
            p.person = person
        p.credentials = tuple(dict.fromkeys([*normalize_credentials(raw.credential or ""), *creds]))
    if raw.license_number:
        p.license = license_key(raw.license_number)
        state = (raw.license_state or "").strip().upper()
        # "CA A12345" / "CA-A12345": a state prefix on the number
        number = raw.license_number.strip().upper()
        if not state and len(number) > 3 and number[:2].isalpha() and not number[2].isalnum():
            state = number[:2]
        if state and p.license.startswith(state) and len(p.license) > len(state) + 2:
            p.license = license_key(p.license[len(state) :])
        p.license_state = state
    if raw.specialty:
        p.specialty = raw.specialty.strip()
        p.codes = specialty_codes(p.specialty)
    if raw.address_1 or raw.city or raw.state or raw.postal_code:
        std = standardize_address(
            raw.address_1 or "", raw.address_2 or "", raw.city or "", raw.state or "", raw.postal_code or ""
        )
        p.address = std if std.line1 else None
        p.city_key = name_key(std.city)
        p.state = std.state
        p.zip5 = std.zip5
    if raw.phone:
        p.phone = match_phone(raw.phone)
    return p
