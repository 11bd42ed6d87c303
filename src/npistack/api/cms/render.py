"""The CMS NPI Registry API v2.1's response: ``render_result`` turns an expanded provider document
(docs/provider-document.md) into one CMS result object, from the published values (raw address
lines and phones), the way 2024-2026 registry responses look: ``number`` and the epochs as strings,
MAILING address first, empty address and ``basic`` keys left out. Pure: no HTTP objects, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from npistack.nppes.codes import IDENTIFIER_TYPES, OTHER_NAME_TYPES

COUNTRY_NAMES = {
    "US": "United States",
    "CA": "Canada",
    "MX": "Mexico",
    "GB": "United Kingdom",
    "IE": "Ireland",
    "DE": "Germany",
    "FR": "France",
    "IT": "Italy",
    "ES": "Spain",
    "NL": "Netherlands",
    "CH": "Switzerland",
    "IL": "Israel",
    "IN": "India",
    "PK": "Pakistan",
    "PH": "Philippines",
    "CN": "China",
    "JP": "Japan",
    "KR": "Korea, Republic of",
    "AU": "Australia",
    "NZ": "New Zealand",
    "BR": "Brazil",
    "DO": "Dominican Republic",
    "JM": "Jamaica",
    "BS": "Bahamas",
    "SA": "Saudi Arabia",
    "AE": "United Arab Emirates",
}
# The registry's identifier descriptions ("MEDICAID" in upper case, 01 as "Other (non-Medicare)").
IDENTIFIER_DESCRIPTIONS = {
    "01": "Other (non-Medicare)",
    "02": "MEDICARE UPIN",
    "04": "MEDICARE ID-TYPE UNSPECIFIED",
    "05": "MEDICAID",
    "06": "MEDICARE OSCAR/CERTIFICATION",
    "07": "MEDICARE NSC",
    "08": "MEDICARE PIN",
}
# Taxonomy group code values (CV19) as the registry prints them: "193400000X - Single Specialty Group".
TAXONOMY_GROUPS = {"193200000X": "Multi-Specialty Group", "193400000X": "Single Specialty Group"}
# Name prefix/suffix code values (CV19) in the registry's case; the files hold them in upper case.
NAME_AFFIXES = {
    v.upper(): v
    for v in (
        *("Ms.", "Mr.", "Miss", "Mrs.", "Dr.", "Prof."),
        *("Jr.", "Sr.", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"),
    )
}
NO_AFFIX = "--"  # the registry's "none" for name prefixes and suffixes


def _compact(**kw: Any) -> dict[str, Any]:
    """Keys with no value (None or "") left out, as recent registry responses do."""
    return {k: v for k, v in kw.items() if v is not None and v != ""}


def epoch_ms(iso_date: str | None) -> str | None:
    """ "2005-05-23" -> "1116806400000": Unix milliseconds of that day's UTC midnight, as a string."""
    if not iso_date:
        return None
    d = date.fromisoformat(iso_date)
    return str(int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1000)


def cms_phone(raw: str | None) -> str | None:
    """A published 10-digit number as the registry shows it (NNN-NNN-NNNN); anything else as is."""
    if not raw:
        return None
    return f"{raw[:3]}-{raw[3:6]}-{raw[6:]}" if len(raw) == 10 and raw.isdigit() else raw


def _affix(value: str | None) -> str:
    if not value:
        return NO_AFFIX
    return NAME_AFFIXES.get(value.upper(), value)


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("YES" if value else "NO")


def _country(code: str | None) -> dict[str, str]:
    """country_code, country_name and address_type (DOM for the US, FGN otherwise)."""
    code = (code or "US").upper()
    return {
        "country_code": code,
        "country_name": COUNTRY_NAMES.get(code, code),
        "address_type": "DOM" if code == "US" else "FGN",
    }


def render_address(address: Mapping[str, Any], purpose: str) -> dict[str, Any]:
    """One registry address (``LOCATION`` or ``MAILING``) from a provider-document address."""
    country = _country(address.get("countryCode"))
    return {
        "country_code": country["country_code"],
        "country_name": country["country_name"],
        "address_purpose": purpose,
        "address_type": country["address_type"],
        **_compact(
            address_1=address.get("line1"),
            address_2=address.get("line2"),
            city=address.get("city"),
            state=address.get("state"),
            postal_code=address.get("postalCode"),
            telephone_number=cms_phone(address.get("phoneRaw")),
            fax_number=cms_phone(address.get("faxRaw")),
        ),
    }


def _basic(doc: Mapping[str, Any]) -> dict[str, Any]:
    status = {"active": "A", "deactivated": "D"}.get(doc.get("status") or "")
    dates = _compact(
        enumeration_date=doc.get("enumerationDate"),
        last_updated=doc.get("lastUpdated"),
        certification_date=doc.get("certificationDate"),
        status=status,
    )
    if doc.get("entityType") == "NPI-1":
        name = doc.get("name") or {}
        sex = doc.get("sex")
        return {
            **_compact(
                first_name=name.get("first"),
                last_name=name.get("last"),
                middle_name=name.get("middle"),
                credential=name.get("credential"),
                sole_proprietor=_yes_no(doc.get("soleProprietor")),
                # The file renamed Gender to Sex in 2025; which key the registry sends now is not
                # settled, so both are sent (clients read either).
                gender=sex,
                sex=sex,
            ),
            **dates,
            "name_prefix": _affix(name.get("prefix")),
            "name_suffix": _affix(name.get("suffix")),
        }
    if doc.get("entityType") == "NPI-2":
        out = {
            **_compact(
                organization_name=doc.get("organizationName"),
                organizational_subpart=_yes_no(doc.get("organizationSubpart")),
            ),
            **dates,
        }
        ao = doc.get("authorizedOfficial")
        if ao:
            out.update(
                _compact(
                    authorized_official_first_name=ao.get("first"),
                    authorized_official_last_name=ao.get("last"),
                    authorized_official_middle_name=ao.get("middle"),
                    authorized_official_telephone_number=ao.get("phoneRaw"),
                    authorized_official_title_or_position=ao.get("title"),
                )
            )
            out["authorized_official_name_prefix"] = _affix(ao.get("prefix"))
            out["authorized_official_name_suffix"] = _affix(ao.get("suffix"))
            out.update(_compact(authorized_official_credential=ao.get("credential")))
        parent = doc.get("parentOrganization") or {}
        out.update(
            _compact(
                parent_organization_legal_business_name=parent.get("name"),
                parent_organization_ein=parent.get("tin"),
            )
        )
        return out
    return dates  # a deactivated stub: no entity type, no names


def _taxonomy_group(group: Mapping[str, Any] | None) -> str:
    if not group or not group.get("code"):
        return ""
    code = group["code"]
    text = TAXONOMY_GROUPS.get(code) or group.get("description")
    return f"{code} - {text}" if text else code


def render_taxonomy(t: Mapping[str, Any]) -> dict[str, Any]:
    """One registry taxonomy; ``primary`` is the published switch (Y), ``desc`` the NUCC
    "Classification, Specialization"."""
    return {
        "code": t.get("code"),
        "taxonomy_group": _taxonomy_group(t.get("group")),
        "desc": t.get("description") or "",
        "state": t.get("licenseState"),
        "license": t.get("license"),
        "primary": t.get("primarySwitch") == "Y",
    }


def render_identifier(i: Mapping[str, Any]) -> dict[str, Any]:
    code = i.get("typeCode") or ""
    return {
        "code": code,
        "desc": IDENTIFIER_DESCRIPTIONS.get(code) or IDENTIFIER_TYPES.get(code) or "",
        "issuer": i.get("issuer"),
        "identifier": i.get("identifier"),
        "state": i.get("state"),
    }


def render_other_name(o: Mapping[str, Any], entity_type: str | None) -> dict[str, Any]:
    code = o.get("typeCode") or ""
    head = {"code": code, "type": o.get("type") or OTHER_NAME_TYPES.get(code, "Other Name")}
    if entity_type == "NPI-2" or "organizationName" in o:
        return {**head, **_compact(organization_name=o.get("organizationName"))}
    return {
        **head,
        **_compact(
            first_name=o.get("first"),
            last_name=o.get("last"),
            middle_name=o.get("middle"),
            prefix=_affix(o.get("prefix")) if o.get("prefix") else None,
            suffix=_affix(o.get("suffix")) if o.get("suffix") else None,
            credential=o.get("credential"),
        ),
    }


def render_endpoint(e: Mapping[str, Any]) -> dict[str, Any]:
    affiliation = e.get("affiliation")
    out = _compact(
        endpointType=e.get("endpointType"),
        endpointTypeDescription=e.get("endpointTypeDescription"),
        endpoint=e.get("endpoint"),
        endpointDescription=e.get("endpointDescription"),
        affiliation=None if affiliation is None else ("Y" if affiliation else "N"),
        affiliationName=e.get("affiliationName"),
        use=e.get("use"),
        useDescription=e.get("useDescription"),
        useOtherDescription=e.get("useOtherDescription"),
        contentType=e.get("contentType"),
        contentTypeDescription=e.get("contentTypeDescription"),
        contentOtherDescription=e.get("contentOtherDescription"),
    )
    address = e.get("address")
    if address and any(address.values()):
        out.update(
            _compact(
                address_1=address.get("line1"),
                address_2=address.get("line2"),
                city=address.get("city"),
                state=address.get("state"),
                postal_code=address.get("postalCode"),
            )
        )
        if address.get("countryCode"):
            out.update(_country(address["countryCode"]))
    return out


def render_result(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One registry v2.1 result object from an expanded provider document."""
    entity = doc.get("entityType")
    addresses = []
    if doc.get("mailingAddress"):
        addresses.append(render_address(doc["mailingAddress"], "MAILING"))
    if doc.get("practiceLocation"):
        addresses.append(render_address(doc["practiceLocation"], "LOCATION"))
    return {
        **_compact(
            created_epoch=epoch_ms(doc.get("enumerationDate")),
            enumeration_type=entity,
            last_updated_epoch=epoch_ms(doc.get("lastUpdated")),
        ),
        "number": str(doc["npi"]),
        "addresses": addresses,
        "practiceLocations": [
            render_address(loc, "LOCATION")
            for loc in doc.get("practiceLocations") or []
            if loc.get("purpose") == "secondary"
        ],
        "basic": _basic(doc),
        "taxonomies": [render_taxonomy(t) for t in doc.get("taxonomies") or [] if t.get("code")],
        "identifiers": [render_identifier(i) for i in doc.get("identifiers") or []],
        "endpoints": [render_endpoint(e) for e in doc.get("endpoints") or []],
        "other_names": [render_other_name(o, entity) for o in doc.get("otherNames") or []],
    }


def render_response(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The registry's body for one page: ``result_count`` counts the results in this page (as CMS
    does), not all matches. Deactivated NPIs are left out: the registry lists active ones only."""
    results = [render_result(d) for d in docs if d.get("status") == "active"]
    return {"result_count": len(results), "results": results}
