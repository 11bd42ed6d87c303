"""Which column of a provider CSV holds which field: header names compared without case, spaces or
punctuation (``header_key``), also after a leading word such as "Provider" or "Practice"
(``field_of``), and overridable per field (``parse_overrides``, ``detect_columns``). The fields are
those of ``npistack.services.match.MatchInput``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from npistack.services.enrich.input import EnrichError

# The fields of npistack.services.match.MatchInput, in its order.
FIELDS = (
    "npi",
    "license_number",
    "license_state",
    "first_name",
    "middle_name",
    "last_name",
    "name",
    "organization_name",
    "credential",
    "specialty",
    "address_1",
    "address_2",
    "city",
    "state",
    "postal_code",
    "phone",
)
# A row needs one of these to be matched at all.
IDENTIFYING = ("npi", "name", "last_name", "organization_name")

# Header names (lower case, letters and digits only) that mean a field.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "npi": (
        "npi", "npinumber", "npino", "npinum", "npiid", "nationalprovideridentifier",
        "nationalproviderid", "nationalprovidernumber", "individualnpi", "typeinpi", "type1npi",
    ),
    "license_number": (
        "license", "licensenumber", "licenseno", "licensenum", "licenseid", "lic", "licno", "licnumber",
        "licence", "licencenumber", "statelicense", "statelicensenumber", "medicallicense",
        "medicallicensenumber",
    ),
    "license_state": (
        "licensestate", "licstate", "licensestatecode", "stateoflicense", "stateoflicensure",
        "licensingstate", "licencestate", "licenseissuingstate",
    ),
    "first_name": ("firstname", "fname", "first", "givenname", "forename", "firstnm", "namefirst"),
    "middle_name": ("middlename", "mname", "middle", "middleinitial", "mi", "namemiddle"),
    "last_name": ("lastname", "lname", "last", "surname", "familyname", "lastnm", "namelast"),
    "name": ("name", "fullname", "personname"),
    "organization_name": (
        "organization", "organisation", "organizationname", "organisationname", "orgname", "org",
        "practicename", "practice", "company", "companyname", "facility", "facilityname", "group",
        "groupname", "practicegroup", "clinic", "clinicname", "hospital", "hospitalname", "account",
        "accountname", "businessname", "legalbusinessname", "employer", "institution",
    ),
    "credential": ("credential", "credentials", "degree", "degrees", "designation", "professionaldesignation"),
    "specialty": (
        "specialty", "speciality", "specialties", "specialities", "primaryspecialty", "taxonomy",
        "taxonomycode", "primarytaxonomy", "specialtycode", "specialtydescription", "providertype",
    ),
    "address_1": (
        "address", "address1", "addressline1", "addr", "addr1", "street", "street1", "streetaddress",
        "streetaddress1", "line1", "addressstreet",
    ),
    "address_2": (
        "address2", "addressline2", "addr2", "street2", "streetaddress2", "line2", "suite", "suitenumber",
        "unit", "apt", "aptsuite", "suiteapt",
    ),
    "city": ("city", "town", "cityname", "municipality", "locality"),
    "state": ("state", "st", "statecode", "stateabbreviation", "stateabbr", "stateprovince", "province"),
    "postal_code": (
        "zip", "zipcode", "zip5", "zip4", "zipplus4", "postal", "postalcode", "postcode", "zippostalcode",
        "postalzip",
    ),
    "phone": (
        "phone", "telephone", "tel", "phonenumber", "phoneno", "telephonenumber", "phone1", "primaryphone",
        "mainphone",
    ),
}  # fmt: skip
_LOOKUP = {syn: f for f, syns in SYNONYMS.items() for syn in syns}
# Words a header may start with before the field's name: "Provider First Name", "Practice City".
_QUALIFIERS = (
    "provider", "practice", "office", "physician", "doctor", "dr", "contact", "primary", "hcp", "business",
    "work", "billing", "mailing", "location", "service", "servicing", "rendering", "individual",
    "prescriber", "clinician", "practitioner", "main", "person",
)  # fmt: skip


def header_key(name: str) -> str:
    """A header name for comparison: lower case letters and digits only ("License #" -> "license")."""
    return "".join(c for c in name.lower() if c.isalnum())


def field_of(header: str) -> str | None:
    """The field a header name means, if any."""
    key = header_key(header)
    found = _LOOKUP.get(key)
    if found:
        return found
    for q in _QUALIFIERS:
        if key.startswith(q) and key[len(q) :] in _LOOKUP:
            return _LOOKUP[key[len(q) :]]
    return None


@dataclass(frozen=True)
class Columns:
    """Which input column holds each field."""

    header: tuple[str, ...]
    fields: dict[str, int]  # field -> column index
    overridden: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, str]:
        """field -> header name, in field order."""
        return {f: self.header[self.fields[f]] for f in FIELDS if f in self.fields}

    def unused(self) -> list[str]:
        used = set(self.fields.values())
        return [h for i, h in enumerate(self.header) if i not in used]

    def record(self, values: Sequence[str]) -> dict[str, str]:
        """The non-empty field values of a row."""
        out = {}
        for f, i in self.fields.items():
            v = values[i].strip() if i < len(values) else ""
            if v:
                out[f] = v
        return out


def parse_overrides(specs: Iterable[str]) -> dict[str, str]:
    """``["last_name=Surname", "npi="]`` -> ``{"last_name": "Surname", "npi": ""}`` ("" means none)."""
    out: dict[str, str] = {}
    for spec in specs:
        name, eq, header = spec.partition("=")
        f = name.strip().lower().replace("-", "_").replace(" ", "_")
        if not eq:
            raise EnrichError(f"column {spec!r}: write FIELD=HEADER, e.g. last_name=Surname")
        if f not in FIELDS:
            raise EnrichError(f"column {spec!r}: unknown field {name.strip()!r}; fields: {', '.join(FIELDS)}")
        if f in out:
            raise EnrichError(f"column {spec!r}: {f} is given more than once")
        out[f] = header.strip()
    return out


def _find_header(header: Sequence[str], wanted: str) -> int | None:
    for test in (
        lambda h: h == wanted,
        lambda h: h.strip().lower() == wanted.lower(),
        lambda h: header_key(h) == header_key(wanted) != "",
    ):
        for i, h in enumerate(header):
            if test(h):
                return i
    return None


def detect_columns(header: Sequence[str], overrides: Mapping[str, str] | None = None) -> Columns:
    """The columns of each field, from the header names, then ``overrides`` (field -> header; ""
    leaves the field out). EnrichError if an override names no column or nothing identifies a row."""
    overrides = overrides or {}
    mapping: dict[str, int] = {}
    for field_name, wanted in overrides.items():
        if field_name not in FIELDS:
            raise EnrichError(f"column {field_name}={wanted!r}: unknown field; fields: {', '.join(FIELDS)}")
        if not wanted:
            continue
        i = _find_header(header, wanted)
        if i is None:
            raise EnrichError(
                f"column {field_name}={wanted!r}: the header has no such column (its columns: "
                f"{_shown(header)})"
            )
        mapping[field_name] = i
    taken = set(mapping.values())
    for i, h in enumerate(header):
        f = field_of(h)
        if f and f not in mapping and f not in overrides and i not in taken:
            mapping[f] = i
            taken.add(i)
    if not any(f in mapping for f in IDENTIFYING):
        raise EnrichError(
            "no column to match on: the header needs an NPI or a name column, or name one with "
            f"--column npi=HEADER, name=..., last_name=... or organization_name=... (its columns: {_shown(header)})"
        )
    return Columns(tuple(header), mapping, frozenset(f for f, h in overrides.items() if h))


def _shown(header: Sequence[str]) -> str:
    names = [repr(h) for h in header[:30]]
    return ", ".join(names) + (f" and {len(header) - 30} more" if len(header) > 30 else "")
