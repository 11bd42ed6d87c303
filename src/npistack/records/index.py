"""A provider's index rows (``provider_names``, ``provider_taxonomies``, ``provider_locations``).

``npidata.transform_provider`` makes them from the parts of the document it has just made;
``document_rows`` makes the same rows again from a stored document (``tests/test_document_rows.py``
checks that both agree), and ``rows_change`` tells which tables' rows differ between two documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from npistack.normalize.address import StdAddress, address_country
from npistack.normalize.geo import zip_info
from npistack.normalize.names import name_key
from npistack.records.keys import MAILING_AND_PRIMARY, geo_cell, license_key, postal_key
from npistack.records.rows import LocationRow, NameRow, TaxonomyRow


def location_row(npi: int, purpose: str, seq: int, std: Any, postal: str) -> LocationRow:
    """The location row of a standardized address (``std``) and its published postal code."""
    info = zip_info(std.zip5) if std.zip5 and std.country == "US" else None
    key, country = postal_key(postal, std), std.country or "US"
    if info:
        return LocationRow(
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
    return LocationRow(
        npi, purpose, seq, name_key(std.city), std.state, std.zip5, None, None, None, key, country
    )


def name_rows(
    npi: int,
    etype: int,
    name: dict[str, Any] | None,
    organization_name: str | None,
    other_names: list[dict[str, Any]],
    ao: dict[str, Any] | None,
) -> list[NameRow]:
    """The searchable names of a provider: legal, other names, and an organization's official."""
    rows: list[NameRow] = []
    if etype == 1:
        first, last = (name or {}).get("first", ""), (name or {}).get("last", "")
        rows.append(NameRow(npi, 1, "legal", name_key(last), name_key(first)))
        for o in other_names:
            rows.append(
                NameRow(npi, 1, "other", name_key(o.get("last") or last), name_key(o.get("first") or first))
            )
    else:
        if organization_name:
            rows.append(NameRow(npi, 2, "legal", name_key(organization_name), ""))
        for o in other_names:
            rows.append(NameRow(npi, 2, "other", name_key(o["organizationName"]), ""))
    if ao:
        rows.append(NameRow(npi, etype, "ao", name_key(ao.get("last", "")), name_key(ao.get("first", ""))))
    return rows


def taxonomy_rows(npi: int, taxonomies: list[dict[str, Any]]) -> list[TaxonomyRow]:
    return [
        TaxonomyRow(
            npi,
            t["slot"],
            t.get("code", ""),
            license_key(t.get("license", "")),
            t.get("licenseState", ""),
            1 if t.get("primary") else 0,
        )
        for t in taxonomies
    ]


def address_rows(
    npi: int, mailing: tuple[Any, str] | None, practice: tuple[Any, str] | None
) -> list[LocationRow]:
    """Location rows of the mailing and primary practice addresses, each (standardized, postal);
    one ``both`` row when they are the same place."""
    mail_row = None if mailing is None else location_row(npi, "mailing", 0, *mailing)
    practice_row = None if practice is None else location_row(npi, "primary", 1, *practice)
    if mail_row is None or practice_row is None:
        return [r for r in (mail_row, practice_row) if r is not None]
    place = practice_row.place()
    if mail_row.place() == place:
        return [LocationRow(npi, MAILING_AND_PRIMARY, practice_row.seq, *place)]
    return [mail_row, practice_row]


def _address_parts(address: dict[str, Any] | None) -> tuple[Any, str, str] | None:
    """What an address's location row is made of, as a document holds it: its standardized form
    (a dict), postal code and country code."""
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
) -> list[LocationRow]:
    return address_rows(npi, _stored_address(mailing), _stored_address(practice))


# Per table: the function making its rows of a provider (the NPI, then its inputs).
_ROWS: dict[str, Callable[..., list[Any]]] = {
    "provider_names": name_rows,
    "provider_taxonomies": taxonomy_rows,
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


def document_rows(npi: int, doc: dict[str, Any]) -> dict[str, list[Any]]:
    """The rows ``transform_provider`` made of a provider's npidata row, per table, made again from
    the document it made (the secondary locations and other organization names of the child files
    are not in it)."""
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
