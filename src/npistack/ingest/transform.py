"""Turn canonical NPPES rows into provider documents and index rows. Pure functions, no I/O.

A ``BlockResult`` holds what one block of a data file becomes: the rows of each store table and
the quarantined lines (line number, reason, raw text). ``transform_block`` guarantees that every
line of the block is either loaded or quarantined, exactly once.

Documents are stored compactly: published values and their normalized forms only, without empty
keys; reference data (NUCC names, code descriptions, ZIP geodata) is added when a document is read
(``npistack.services.providers.expand``), so the full document is a superset of the Health Provider
API's provider shape (docs/provider-document.md). Rules worth knowing:

- Deactivated stubs (only NPI and deactivation date) become ``status: "deactivated"`` documents
  with ``entityType: null``. A row with both a deactivation and a later reactivation date is active.
- Primary taxonomy: the first slot whose switch is "Y". When no slot says "Y", the first filled
  slot is taken and ``primaryInferred`` is true; when several say "Y", the first wins and the
  others keep ``primarySwitch: "Y"`` but ``primary: false``.
- ``<UNAVAIL>`` placeholders become null; Other Organization Name ``<UNAVAIL>`` (type code 6) is
  not an other name and is dropped.
- Phones and faxes are kept apart: ``phone``/``fax`` in E.164 when valid, ``phoneRaw``/``faxRaw``
  as published; addresses as published plus ``std`` (USPS Publication 28 form).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import orjson

from npistack.normalize.address import StdAddress, address_country, standardize_address
from npistack.normalize.geo import zip_info
from npistack.normalize.names import name_key, normalize_credentials
from npistack.normalize.phone import normalize_phone
from npistack.nppes.layout import IDENTIFIER_SLOTS, TAXONOMY_SLOTS, FileKind, canonical_columns
from npistack.nppes.npi import npi_problem
from npistack.nppes.reader import parse_line

UNAVAIL = "<UNAVAIL>"

YES_NO = {"Y": True, "N": False}

# Canonical npidata positions (checked against the shipped header at import).
NPI, ENTITY, REPLACEMENT, EIN, ORG_NAME = 0, 1, 2, 3, 4
LAST, FIRST, MIDDLE, PREFIX, SUFFIX, CREDENTIAL = 5, 6, 7, 8, 9, 10
OTHER_ORG, OTHER_ORG_TYPE = 11, 12
OTHER_LAST, OTHER_FIRST, OTHER_MIDDLE, OTHER_PREFIX, OTHER_SUFFIX, OTHER_CRED, OTHER_LAST_TYPE = range(13, 20)
MAIL, PRACTICE = 20, 28  # line1, line2, city, state, postal, country, phone, fax
ENUMERATED, UPDATED, DEACT_REASON, DEACTIVATED, REACTIVATED, SEX = 36, 37, 38, 39, 40, 41
AO_LAST, AO_FIRST, AO_MIDDLE, AO_TITLE, AO_PHONE = 42, 43, 44, 45, 46
TAXO, IDENT = 47, 107
SOLE_PROP, SUBPART, PARENT_LBN, PARENT_TIN, AO_PREFIX, AO_SUFFIX, AO_CRED = range(307, 314)
TAXO_GROUP, CERTIFIED = 314, 329
NPIDATA_WIDTH = 330

_cols = canonical_columns("npidata")
assert len(_cols) == NPIDATA_WIDTH
assert _cols[ENUMERATED] == "Provider Enumeration Date" and _cols[AO_PHONE].startswith(
    "Authorized Official Tele"
)
assert _cols[TAXO] == "Healthcare Provider Taxonomy Code_1" and _cols[IDENT] == "Other Provider Identifier_1"
assert (
    _cols[SOLE_PROP] == "Is Sole Proprietor" and _cols[TAXO_GROUP] == "Healthcare Provider Taxonomy Group_1"
)
assert _cols[CERTIFIED] == "Certification Date"

WIDTHS: dict[FileKind, int] = {
    k: len(canonical_columns(k)) for k in ("npidata", "pl", "othername", "endpoint")
}

CELL_DEGREES = 0.1  # geo cell size used by radius search

# ``provider_locations.purpose`` of the row of a primary practice location that is also the mailing
# address (same city, state, postal code, country and point: most providers' are): one row instead
# of two, in the table and in each of its indexes. Search reads it as either purpose.
MAILING_AND_PRIMARY = "both"


class BadRow(ValueError):
    """A row that cannot be used; its message is the quarantine reason."""


def geo_cell(lat: float, lon: float) -> int:
    """The integer id of the CELL_DEGREES grid cell holding a point."""
    return int(math.floor((lat + 90.0) / CELL_DEGREES)) * 10000 + int(
        math.floor((lon + 180.0) / CELL_DEGREES)
    )


@dataclass
class BlockResult:
    """Everything one block of one data file turns into."""

    kind: FileKind
    rows_read: int = 0
    # (npi, entity, status, updated, primary_code, practice_state, doc_json, line)
    providers: list[tuple[Any, ...]] = field(default_factory=list)
    names: list[tuple[Any, ...]] = field(default_factory=list)  # (npi, entity, name_type, key, first_key)
    taxonomies: list[tuple[Any, ...]] = field(
        default_factory=list
    )  # (npi, slot, code, lic_key, lic_state, primary)
    locations: list[tuple[Any, ...]] = field(
        default_factory=list
    )  # (npi, purpose, seq, city, state, zip5, cell, lat, lon, postal, country)
    extras: list[tuple[Any, ...]] = field(default_factory=list)  # (npi, kind, seq, doc)
    quarantine: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)
    # Rows refused after the block was transformed (duplicates of an earlier block), whose raw
    # text is read back from the file at the end of the file: (line, reason).
    deferred: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine) + len(self.deferred)

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - self.rows_quarantined


@dataclass(frozen=True)
class Context:
    """What a transform needs besides the row: the load and release it belongs to."""

    load_id: int
    release_date: str | None  # ISO date of the bundle
    nucc_csv: str | None = None


# -- values ------------------------------------------------------------------------------------


@lru_cache(maxsize=32768)
def _iso_date(value: str) -> str:
    if len(value) != 10 or value[2] != "/" or value[5] != "/":
        raise ValueError(value)
    return date(int(value[6:]), int(value[:2]), int(value[3:5])).isoformat()


def iso_date(value: str, column: str) -> str | None:
    """MM/DD/YYYY -> YYYY-MM-DD; '' -> None; anything else is a bad row."""
    if not value:
        return None
    try:
        return _iso_date(value)
    except ValueError:
        raise BadRow(f"impossible date {value!r} in {column!r}") from None


def _s(value: str) -> str | None:
    """A published text value: None for empty or <UNAVAIL>."""
    if not value or value == UNAVAIL:
        return None
    return value


def _c(**kw: Any) -> dict[str, Any]:
    """A stored object: keys whose value is None, '' or [] are left out (expand() restores them)."""
    # (falsy values other than None, '' and [], such as False, 0 and {}, are kept)
    return {
        k: v
        for k, v in kw.items()
        if v or (v is not None and v.__class__ is not str and v.__class__ is not list)
    }


def _address(f: list[str], at: int) -> tuple[dict[str, Any] | None, Any]:
    line1, line2, city, state, postal, country, phone, fax = f[at : at + 8]
    if not (line1 or city or postal):
        return None, None
    std = standardize_address(line1, line2, city, state, postal, country)
    doc = _c(
        line1=line1,
        line2=line2,
        city=city,
        state=state,
        postalCode=postal,
        countryCode=country,
        phone=normalize_phone(phone) if phone else None,
        phoneRaw=phone,
        fax=normalize_phone(fax) if fax else None,
        faxRaw=fax,
        std=_c(
            line1=std.line1, line2=std.line2, city=std.city, state=std.state, zip5=std.zip5, zip4=std.zip4
        ),
    )
    return doc, std


def postal_key(postal: str, std: Any) -> str:
    """The searchable postal code of an address: ZIP5 + ZIP+4 (5 or 9 digits) for a domestic address,
    the published code in upper case without spaces or punctuation for a foreign one."""
    if std.country == "US":
        return std.zip5 + std.zip4 if std.zip5 else ""
    return "".join(ch for ch in postal.upper() if ch.isalnum())


def _location_row(npi: int, purpose: str, seq: int, std: Any, postal: str) -> tuple[Any, ...]:
    info = zip_info(std.zip5) if std.zip5 and std.country == "US" else None
    key, country = postal_key(postal, std), std.country or "US"
    if info:
        return (
            npi,
            purpose,
            seq,
            name_key(std.city),
            std.state,
            std.zip5,
            geo_cell(info.lat, info.lon),
            info.lat,
            info.lon,
            key,
            country,
        )
    return (npi, purpose, seq, name_key(std.city), std.state, std.zip5, None, None, None, key, country)


def license_key(value: str) -> str:
    """License numbers compared without punctuation, spaces and leading zeros (upper case)."""
    key = "".join(ch for ch in value.upper() if ch.isalnum())
    return key.lstrip("0") or key


def _taxonomies(f: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    out: list[dict[str, Any]] = []
    codes = f[TAXO : TAXO + 4 * TAXONOMY_SLOTS : 4]
    licenses = f[TAXO + 1 : TAXO + 4 * TAXONOMY_SLOTS : 4]
    for slot in range(TAXONOMY_SLOTS):
        if not (codes[slot] or licenses[slot]):
            continue
        at = TAXO + 4 * slot
        group = f[TAXO_GROUP + slot]
        group_code, _, group_text = group.partition(" ")
        out.append(
            _c(
                slot=slot + 1,
                code=f[at].upper(),
                license=f[at + 1],
                licenseState=f[at + 2],
                primarySwitch=f[at + 3],
                group=_c(code=group_code, description=" ".join(group_text.split())) if group else None,
            )
        )
    primary = next((t for t in out if t.get("primarySwitch") == "Y"), None)
    if primary is None:
        primary = next((t for t in out if t.get("code")), None)
        if primary is not None:
            primary["primaryInferred"] = True
    if primary is not None:
        primary["primary"] = True
    return out, primary


def _identifiers(f: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    region = f[IDENT : IDENT + 4 * IDENTIFIER_SLOTS]
    if not any(region):
        return out
    for slot in range(IDENTIFIER_SLOTS):
        at = 4 * slot
        ident, typ, state, issuer = region[at], region[at + 1], region[at + 2], region[at + 3]
        if ident or typ:
            out.append(_c(identifier=ident, typeCode=typ, state=state, issuer=issuer))
    return out


# -- index rows --------------------------------------------------------------------------------
# ``transform_provider`` makes a provider's provider_names, provider_taxonomies and provider_locations
# rows with these, from the parts of the document it has just made; ``document_rows`` makes the same
# rows again from a stored document.


def _name_rows(
    npi: int,
    etype: int,
    name: dict[str, Any] | None,
    organization_name: str | None,
    other_names: list[dict[str, Any]],
    ao: dict[str, Any] | None,
) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    if etype == 1:
        first, last = (name or {}).get("first", ""), (name or {}).get("last", "")
        rows.append((npi, 1, "legal", name_key(last), name_key(first)))
        for o in other_names:
            rows.append((npi, 1, "other", name_key(o.get("last") or last), name_key(o.get("first") or first)))
    else:
        if organization_name:
            rows.append((npi, 2, "legal", name_key(organization_name), ""))
        for o in other_names:
            rows.append((npi, 2, "other", name_key(o["organizationName"]), ""))
    if ao:
        rows.append((npi, etype, "ao", name_key(ao.get("last", "")), name_key(ao.get("first", ""))))
    return rows


def _taxonomy_row(npi: int, t: dict[str, Any]) -> tuple[Any, ...]:
    return (
        npi,
        t["slot"],
        t.get("code", ""),
        license_key(t.get("license", "")),
        t.get("licenseState", ""),
        1 if t.get("primary") else 0,
    )


def _address_rows(
    npi: int, mailing: tuple[Any, str] | None, practice: tuple[Any, str] | None
) -> list[tuple[Any, ...]]:
    """Location rows of the mailing and primary practice addresses, each (standardized, postal);
    one ``both`` row when they are the same place."""
    mail_row = None if mailing is None else _location_row(npi, "mailing", 0, *mailing)
    practice_row = None if practice is None else _location_row(npi, "primary", 1, *practice)
    if mail_row is not None and practice_row is not None and mail_row[3:] == practice_row[3:]:
        return [(npi, MAILING_AND_PRIMARY, 1, *practice_row[3:])]
    return [r for r in (mail_row, practice_row) if r is not None]


def _address_parts(address: dict[str, Any] | None) -> tuple[Any, str, str] | None:
    """What an address's location row is made of, as a document holds it (``_address``): its
    standardized form (a dict), postal code and country code."""
    if address is None:
        return None
    return (address.get("std") or {}, address.get("postalCode", ""), address.get("countryCode", ""))


def _stored_address(parts: tuple[Any, str, str] | None) -> tuple[StdAddress, str] | None:
    """(standardized, postal) of an address from its ``_address_parts``."""
    if parts is None:
        return None
    std, postal, country = parts
    return (
        StdAddress(
            std.get("line1", ""),
            std.get("line2", ""),
            std.get("city", ""),
            std.get("state", ""),
            std.get("zip5", ""),
            std.get("zip4", ""),
            address_country(country),
        ),
        postal,
    )


def _document_address_rows(
    npi: int, mailing: tuple[Any, str, str] | None, practice: tuple[Any, str, str] | None
) -> list[tuple[Any, ...]]:
    return _address_rows(npi, _stored_address(mailing), _stored_address(practice))


def _taxonomy_rows(npi: int, taxonomies: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [_taxonomy_row(npi, t) for t in taxonomies]


# Per table: the function making its rows of a provider (the NPI, then its inputs).
_ROWS: dict[str, Callable[..., list[tuple[Any, ...]]]] = {
    "provider_names": _name_rows,
    "provider_taxonomies": _taxonomy_rows,
    "provider_locations": _document_address_rows,
}
ROW_TABLES = tuple(_ROWS)


def row_inputs(doc: dict[str, Any]) -> dict[str, tuple[Any, ...]] | None:
    """Per table, what a provider's rows there are made of (``_ROWS``), taken from its document;
    None for a deactivated NPI as CMS publishes it (no rows). Equal inputs, equal rows."""
    entity = doc.get("entityType")
    if entity not in ("NPI-1", "NPI-2"):
        return None
    return {
        "provider_names": (
            1 if entity == "NPI-1" else 2,
            doc.get("name"),
            doc.get("organizationName"),
            doc.get("otherNames") or [],
            doc.get("authorizedOfficial"),
        ),
        "provider_taxonomies": (doc.get("taxonomies") or [],),
        "provider_locations": (
            _address_parts(doc.get("mailingAddress")),
            _address_parts(doc.get("practiceLocation")),
        ),
    }


def document_rows(npi: int, doc: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows ``transform_provider`` made of a provider's npidata row, per table, made again from
    the document it made (the secondary locations and other organization names of the child files
    are not in it; ``tests/test_document_rows.py`` checks that both agree)."""
    inputs = row_inputs(doc)
    return {t: [] if inputs is None else make(npi, *inputs[t]) for t, make in _ROWS.items()}


def rows_change(npi: int, old_doc: dict[str, Any], new_doc: dict[str, Any]) -> tuple[str, ...]:
    """The tables whose rows made of a provider's npidata row differ between two of its documents.

    A weekly apply tells this way which of a stored provider's rows to rewrite, without reading
    them: a phone number change rewrites none. Both sides are made by this version's code, so rows
    written by an older version are not compared as such (a new monthly load rewrites every row)."""
    old, new = row_inputs(old_doc), row_inputs(new_doc)
    out = []
    for table, make in _ROWS.items():
        a = None if old is None else old[table]
        b = None if new is None else new[table]
        if a == b:
            continue
        if (make(npi, *a) if a is not None else []) != (make(npi, *b) if b is not None else []):
            out.append(table)
    return tuple(out)


# -- npidata -----------------------------------------------------------------------------------


def transform_provider(f: list[str], line: int, ctx: Context, out: BlockResult) -> None:
    """One canonical npidata row -> stored provider document and index rows (raises BadRow)."""
    npi_s = f[NPI]
    problem = npi_problem(npi_s)
    if problem:
        raise BadRow(problem)
    npi = int(npi_s)
    entity = f[ENTITY]
    deactivated = iso_date(f[DEACTIVATED], "NPI Deactivation Date")
    reactivated = iso_date(f[REACTIVATED], "NPI Reactivation Date")
    release = {"date": ctx.release_date, "loadId": ctx.load_id, "line": line}

    if not entity:
        if not deactivated:
            raise BadRow("Entity Type Code is blank and the row is not a deactivated NPI")
        doc = _c(
            npi=npi_s,
            status="deactivated",
            deactivationDate=deactivated,
            deactivationReasonCode=f[DEACT_REASON],
            replacementNpi=f[REPLACEMENT],
            release=release,
        )
        out.providers.append((npi, None, "deactivated", None, None, None, orjson.dumps(doc).decode(), line))
        return
    if entity not in ("1", "2"):
        raise BadRow(f"Entity Type Code {entity!r} is not 1 or 2")
    etype = int(entity)
    enumerated = iso_date(f[ENUMERATED], "Provider Enumeration Date")
    updated = iso_date(f[UPDATED], "Last Update Date")
    certified = iso_date(f[CERTIFIED], "Certification Date")
    status = "deactivated" if deactivated and (not reactivated or reactivated < deactivated) else "active"
    replacement = f[REPLACEMENT]
    if replacement and npi_problem(replacement):
        raise BadRow(f"Replacement NPI: {npi_problem(replacement)}")

    taxonomies, primary = _taxonomies(f)
    mailing, mailing_std = _address(f, MAIL)
    practice, practice_std = _address(f, PRACTICE)
    other_names: list[dict[str, Any]] = []
    name = None
    organization_name = None

    if etype == 1:
        first, last = f[FIRST], f[LAST]
        name = _c(
            first=first,
            middle=f[MIDDLE],
            last=last,
            prefix=f[PREFIX],
            suffix=f[SUFFIX],
            credential=f[CREDENTIAL],
            credentials=list(normalize_credentials(f[CREDENTIAL])),
        )
        if f[OTHER_LAST] or f[OTHER_FIRST]:
            other_names.append(
                _c(
                    typeCode=f[OTHER_LAST_TYPE],
                    first=f[OTHER_FIRST],
                    middle=f[OTHER_MIDDLE],
                    last=f[OTHER_LAST],
                    prefix=f[OTHER_PREFIX],
                    suffix=f[OTHER_SUFFIX],
                    credential=f[OTHER_CRED],
                )
            )
    else:
        organization_name = _s(f[ORG_NAME])
        other = _s(f[OTHER_ORG])
        if other:
            other_names.append(_c(typeCode=f[OTHER_ORG_TYPE], organizationName=other))

    ao = None
    if f[AO_LAST] or f[AO_FIRST]:
        ao = _c(
            prefix=f[AO_PREFIX],
            first=f[AO_FIRST],
            middle=f[AO_MIDDLE],
            last=f[AO_LAST],
            suffix=f[AO_SUFFIX],
            credential=f[AO_CRED],
            title=f[AO_TITLE],
            phone=normalize_phone(f[AO_PHONE]) if f[AO_PHONE] else None,
            phoneRaw=f[AO_PHONE],
        )
    out.names += _name_rows(npi, etype, name, organization_name, other_names, ao)
    out.taxonomies += _taxonomy_rows(npi, taxonomies)
    out.locations += _address_rows(
        npi,
        None if mailing_std is None else (mailing_std, f[MAIL + 4]),
        None if practice_std is None else (practice_std, f[PRACTICE + 4]),
    )

    parent = _c(name=f[PARENT_LBN], tin=_s(f[PARENT_TIN]))
    doc = _c(
        npi=npi_s,
        entityType=f"NPI-{etype}",
        status=status,
        deactivationDate=deactivated,
        deactivationReasonCode=f[DEACT_REASON],
        reactivationDate=reactivated,
        replacementNpi=replacement,
        name=name,
        organizationName=organization_name,
        otherNames=other_names,
        ein=_s(f[EIN]),
        authorizedOfficial=ao,
        organizationSubpart=YES_NO.get(f[SUBPART]),
        parentOrganization=parent or None,
        sex=f[SEX],
        soleProprietor=YES_NO.get(f[SOLE_PROP]),
        taxonomies=taxonomies,
        identifiers=_identifiers(f),
        mailingAddress=mailing,
        practiceLocation=practice,
        enumerationDate=enumerated,
        lastUpdated=updated,
        certificationDate=certified,
        release=release,
    )
    out.providers.append(
        (
            npi,
            etype,
            status,
            updated,
            primary.get("code") if primary else None,
            practice_std.state or None if practice_std is not None else None,
            orjson.dumps(doc).decode(),
            line,
        )
    )


# -- child files -------------------------------------------------------------------------------


def _child_npi(f: list[str]) -> int:
    problem = npi_problem(f[0])
    if problem:
        raise BadRow(problem)
    return int(f[0])


def transform_location(f: list[str], line: int, ctx: Context, out: BlockResult) -> None:
    """One pl_pfile row: a secondary practice location."""
    npi = _child_npi(f)
    line1, line2, city, state, postal, country, phone, ext, fax = f[1:10]
    std = standardize_address(line1, line2, city, state, postal, country)
    doc = _c(
        line1=line1,
        line2=line2,
        city=city,
        state=state,
        postalCode=postal,
        countryCode=country,
        phone=normalize_phone(phone) if phone else None,
        phoneRaw=phone,
        phoneExtension=ext,
        fax=normalize_phone(fax) if fax else None,
        faxRaw=fax,
        std=_c(
            line1=std.line1, line2=std.line2, city=std.city, state=std.state, zip5=std.zip5, zip4=std.zip4
        ),
    )
    out.extras.append((npi, "location", line, orjson.dumps(doc).decode()))
    out.locations.append(_location_row(npi, "secondary", line, std, postal))


def transform_other_name(f: list[str], line: int, ctx: Context, out: BlockResult) -> None:
    """One othername_pfile row: another name of an organization."""
    npi = _child_npi(f)
    name, code = f[1], f[2]
    if not _s(name):
        raise BadRow("Provider Other Organization Name is blank")
    created = iso_date(f[3], "Created Date") if len(f) > 3 else None
    doc = _c(typeCode=code, organizationName=name, createdDate=created)
    out.extras.append((npi, "other_name", line, orjson.dumps(doc).decode()))
    out.names.append((npi, 2, "other", name_key(name), ""))


def transform_endpoint(f: list[str], line: int, ctx: Context, out: BlockResult) -> None:
    """One endpoint_pfile row: an electronic endpoint (Direct address, FHIR URL, ...)."""
    npi = _child_npi(f)
    (
        etype,
        etype_desc,
        endpoint,
        affiliation,
        desc,
        aff_lbn,
        use,
        use_desc,
        use_other,
        ctype,
        cdesc,
        cother,
        a1,
        a2,
        city,
        state,
        country,
        postal,
    ) = f[1:19]
    if not endpoint:
        raise BadRow("Endpoint is blank")
    doc = _c(
        endpointType=etype,
        endpointTypeDescription=etype_desc,
        endpoint=endpoint,
        endpointDescription=desc,
        affiliation=YES_NO.get(affiliation),
        affiliationName=aff_lbn,
        use=use,
        useDescription=use_desc,
        useOtherDescription=use_other,
        contentType=ctype,
        contentTypeDescription=cdesc,
        contentOtherDescription=cother,
        address=_c(line1=a1, line2=a2, city=city, state=state, countryCode=country, postalCode=postal)
        or None,
    )
    out.extras.append((npi, "endpoint", line, orjson.dumps(doc).decode()))


TRANSFORMS = {
    "npidata": transform_provider,
    "pl": transform_location,
    "othername": transform_other_name,
    "endpoint": transform_endpoint,
}


def transform_block(
    kind: FileKind, layout_remap: Any, width: int, start_line: int, text: str, ctx: Context
) -> BlockResult:
    """Parse and transform one decoded block; every line ends up loaded or quarantined."""
    from npistack.nppes.reader import split_lines

    out = BlockResult(kind)
    fn = TRANSFORMS[kind]
    canonical_width = WIDTHS[kind]
    seen: set[int] = set()
    line = start_line - 1
    for raw in split_lines(text):
        line += 1
        out.rows_read += 1
        fields = parse_line(raw)
        if fields is None:
            out.quarantine.append((line, "malformed CSV quoting", raw))
            continue
        if len(fields) != width:
            if not raw.strip():
                out.quarantine.append((line, "empty line", raw))
            else:
                out.quarantine.append((line, f"has {len(fields)} columns, expected {width}", raw))
            continue
        if layout_remap is not None:
            fields = layout_remap(fields)
        if len(fields) < canonical_width:  # pragma: no cover - guarded by layout detection
            out.quarantine.append((line, "layout mismatch", raw))
            continue
        if kind == "npidata":
            npi = fields[0]
            if npi.isdigit() and len(npi) == 10:
                n = int(npi)
                if n in seen:
                    out.quarantine.append(
                        (line, f"duplicate NPI {npi} (an earlier row of this file has it)", raw)
                    )
                    continue
        marks = _marks(out)
        try:
            fn(fields, line, ctx, out)
        except BadRow as e:
            _rollback(out, marks)
            out.quarantine.append((line, str(e), raw))
            continue
        except Exception as e:  # a bug must not lose the row either
            _rollback(out, marks)
            out.quarantine.append((line, f"could not transform: {type(e).__name__}: {e}", raw))
            continue
        if kind == "npidata":
            seen.add(int(fields[0]))
    return out


def _marks(out: BlockResult) -> tuple[int, int, int, int, int]:
    return (len(out.providers), len(out.names), len(out.taxonomies), len(out.locations), len(out.extras))


def _rollback(out: BlockResult, marks: tuple[int, int, int, int, int]) -> None:
    """Drop partial output of a row that failed half-way."""
    del out.providers[marks[0] :]
    del out.names[marks[1] :]
    del out.taxonomies[marks[2] :]
    del out.locations[marks[3] :]
    del out.extras[marks[4] :]
