"""Provider documents as users see them: the stored (compact) form expanded with reference data.

The store keeps facts: published values and their normalized forms, without empty keys. ``expand``
adds what is derived from reference data at read time (NUCC names for taxonomy codes, code-value
descriptions, ZIP geodata, the primary taxonomy summary, the full name) and restores every key, so
each document has the same, complete shape (docs/provider-document.md). A new NUCC release dropped
in with ``NPISTACK_NUCC_CSV`` therefore shows up without reloading the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from npistack.normalize.geo import zip_info
from npistack.nppes.codes import ENDPOINT_TYPES, IDENTIFIER_TYPES, OTHER_NAME_TYPES
from npistack.nppes.taxonomy import Taxonomy, load_nucc
from npistack.records.rows import StoredProvider
from npistack.settings import get_settings
from npistack.storage.base import SqlStore

SOURCE = {"name": "NPPES", "version": "2.1"}
NAME_KEYS = ("first", "middle", "last", "prefix", "suffix", "credential")
ADDRESS_KEYS = (
    "line1",
    "line2",
    "city",
    "state",
    "postalCode",
    "countryCode",
    "phone",
    "phoneRaw",
    "phoneExtension",
    "fax",
    "faxRaw",
)
STD_KEYS = ("line1", "line2", "city", "state", "zip5", "zip4")


def _nucc() -> dict[str, Taxonomy]:
    return load_nucc(get_settings().nucc_csv or None)


def full_name(
    first: str | None, middle: str | None, last: str | None, suffix: str | None, credential: str | None
) -> str:
    """ "JOHN A SMITH JR, M.D." (the contract's ``name.full``)."""
    name = " ".join(p for p in (first, middle, last, suffix) if p)
    return f"{name}, {credential}" if credential else name


def expand_address(stored: dict[str, Any] | None, purpose: str) -> dict[str, Any] | None:
    if not stored:
        return None
    out: dict[str, Any] = {"purpose": purpose}
    for k in ADDRESS_KEYS:
        out[k] = stored.get(k)
    out["countryCode"] = out["countryCode"] or "US"
    std = stored.get("std") or {}
    out["standardized"] = {k: std.get(k) for k in STD_KEYS}
    zip5 = std.get("zip5")
    out["zip5"], out["zip4"] = zip5, std.get("zip4")
    info = zip_info(zip5) if zip5 and out["countryCode"] == "US" else None
    out["latitude"] = info.lat if info else None
    out["longitude"] = info.lon if info else None
    out["county"] = info.county if info else None
    out["timeZone"] = info.timezone if info else None
    return out


def expand_taxonomy(stored: dict[str, Any], nucc: dict[str, Taxonomy]) -> dict[str, Any]:
    code = stored.get("code")
    t = nucc.get(code) if code else None
    group = stored.get("group")
    return {
        "slot": stored["slot"],
        "code": code,
        "known": t is not None,
        "grouping": t.grouping if t else None,
        "classification": t.classification if t else None,
        "specialization": (t.specialization or None) if t else None,
        "displayName": t.display_name if t else None,
        "description": t.description if t else None,
        "license": stored.get("license"),
        "licenseState": stored.get("licenseState"),
        "primarySwitch": stored.get("primarySwitch"),
        "primary": bool(stored.get("primary")),
        "primaryInferred": bool(stored.get("primaryInferred")),
        "group": {"code": group.get("code"), "description": group.get("description")} if group else None,
    }


def _other_name(stored: dict[str, Any], entity: str | None) -> dict[str, Any]:
    code = stored.get("typeCode")
    out: dict[str, Any] = {"type": OTHER_NAME_TYPES.get(code or "", "Other Name"), "typeCode": code}
    if entity == "NPI-2" or "organizationName" in stored:
        out["organizationName"] = stored.get("organizationName")
        if "createdDate" in stored:
            out["createdDate"] = stored["createdDate"]
    else:
        for k in NAME_KEYS:
            out[k] = stored.get(k)
    return out


def _endpoint(stored: dict[str, Any]) -> dict[str, Any]:
    etype = stored.get("endpointType")
    address = stored.get("address")
    return {
        "endpointType": etype,
        "endpointTypeDescription": stored.get("endpointTypeDescription")
        or ENDPOINT_TYPES.get((etype or "").upper()),
        "endpoint": stored.get("endpoint"),
        "endpointDescription": stored.get("endpointDescription"),
        "affiliation": stored.get("affiliation"),
        "affiliationName": stored.get("affiliationName"),
        "use": stored.get("use"),
        "useDescription": stored.get("useDescription"),
        "useOtherDescription": stored.get("useOtherDescription"),
        "contentType": stored.get("contentType"),
        "contentTypeDescription": stored.get("contentTypeDescription"),
        "contentOtherDescription": stored.get("contentOtherDescription"),
        "address": {
            k: address.get(k) for k in ("line1", "line2", "city", "state", "countryCode", "postalCode")
        }
        if address
        else None,
    }


def expand(sp: StoredProvider, nucc: dict[str, Taxonomy] | None = None) -> dict[str, Any]:
    """The full provider document from its stored form and its child rows."""
    nucc = nucc if nucc is not None else _nucc()
    d = sp.doc
    entity = d.get("entityType")
    name_src = d.get("name") or {}
    if entity == "NPI-1":
        name = {k: name_src.get(k) for k in NAME_KEYS}
        name["full"] = full_name(
            name["first"], name["middle"], name["last"], name["suffix"], name["credential"]
        )
    else:
        name = dict.fromkeys(NAME_KEYS)
        name["full"] = d.get("organizationName")
    name["credentials"] = list(name_src.get("credentials") or [])
    name = {"full": name.pop("full"), **name}

    taxonomies = [expand_taxonomy(t, nucc) for t in d.get("taxonomies") or []]
    primary = next((t for t in taxonomies if t["primary"]), None)
    other_names = [_other_name(o, entity) for o in d.get("otherNames") or []]
    practice = expand_address(d.get("practiceLocation"), "primary")
    locations = [practice] if practice else []
    endpoints = []
    seen_names = {(o.get("organizationName"), o.get("typeCode")): o for o in other_names}
    for kind, extra in sp.extras:
        if kind == "location":
            loc = expand_address(extra, "secondary")
            if loc:
                locations.append(loc)
        elif kind == "endpoint":
            endpoints.append(_endpoint(extra))
        elif kind == "other_name":
            item = _other_name(extra, entity)
            same = seen_names.get((item.get("organizationName"), item.get("typeCode")))
            if same is None:
                other_names.append(item)
                seen_names[(item.get("organizationName"), item.get("typeCode"))] = item
            elif item.get("createdDate") and not same.get("createdDate"):
                # an othername row repeating the npidata row's other name: one entry, with its date
                same["createdDate"] = item["createdDate"]
    ao = d.get("authorizedOfficial")
    parent = d.get("parentOrganization")
    return {
        "npi": d["npi"],
        "entityType": entity,
        "status": d.get("status"),
        "deactivationDate": d.get("deactivationDate"),
        "deactivationReasonCode": d.get("deactivationReasonCode"),
        "reactivationDate": d.get("reactivationDate"),
        "replacementNpi": d.get("replacementNpi"),
        "name": name,
        "organizationName": d.get("organizationName"),
        "otherNames": other_names,
        "ein": d.get("ein"),
        "authorizedOfficial": {
            k: ao.get(k)
            for k in (*NAME_KEYS[:3], "prefix", "suffix", "credential", "title", "phone", "phoneRaw")
        }
        if ao
        else None,
        "organizationSubpart": d.get("organizationSubpart"),
        "parentOrganization": {"name": parent.get("name"), "tin": parent.get("tin")} if parent else None,
        "sex": d.get("sex"),
        "soleProprietor": d.get("soleProprietor"),
        "primaryTaxonomy": {
            "code": primary["code"],
            "description": primary["displayName"] or primary["description"],
            "state": primary["licenseState"],
            "license": primary["license"],
        }
        if primary
        else None,
        "taxonomies": taxonomies,
        "identifiers": [
            {
                "identifier": i.get("identifier"),
                "typeCode": i.get("typeCode"),
                "type": IDENTIFIER_TYPES.get(i.get("typeCode") or "", "Unknown"),
                "state": i.get("state"),
                "issuer": i.get("issuer"),
            }
            for i in d.get("identifiers") or []
        ],
        "mailingAddress": expand_address(d.get("mailingAddress"), "mailing"),
        "practiceLocation": practice,
        "practiceLocations": locations,
        "endpoints": endpoints,
        "enumerationDate": d.get("enumerationDate"),
        "lastUpdated": d.get("lastUpdated"),
        "certificationDate": d.get("certificationDate"),
        "release": d.get("release"),
        "source": dict(SOURCE),
    }


def get_providers(store: SqlStore, npis: Sequence[str | int]) -> list[dict[str, Any]]:
    """Full documents for the NPIs that exist, in the order asked (duplicates collapsed)."""
    nucc = _nucc()
    return [expand(sp, nucc) for sp in store.get_stored(npis)]


def get_provider(store: SqlStore, npi: str | int) -> dict[str, Any] | None:
    docs = get_providers(store, [npi])
    return docs[0] if docs else None
