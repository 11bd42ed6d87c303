"""A CMS NPI Registry API (v2.1) result → the provider's stored document and rows, directly.

The registry publishes the file's values in its own shapes: dates as YYYY-MM-DD, phones with
dashes, yes/no words, name affixes as "Dr."/"Jr." where the file has "DR."/"JR.", "--" for no
suffix, taxonomy groups as "193400000X - Single Specialty Group". ``registry_block`` reads them
back into the file's form and builds the document with the same builders as a file load
(``records.document``), so a provider fetched one by one is stored exactly as if it had come from
the monthly file (``tests/test_api_freshness.py`` checks it against the file's documents and
index rows). What a result cannot carry (the EIN, deactivation and reactivation dates of an active
NPI, a location's phone extension, an other name's created date) stays empty.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from npistack.nppes.layout import IDENTIFIER_SLOTS, TAXONOMY_SLOTS
from npistack.records.document import (
    add_endpoint,
    add_location,
    add_other_name,
    add_provider,
    checked_npi,
)
from npistack.records.rows import BlockResult
from npistack.records.values import BadRow

# An endpoint's keys in a registry result, in the endpoint file's column order.
ENDPOINT_KEYS = (
    "endpointType",
    "endpointTypeDescription",
    "endpoint",
    "affiliation",
    "endpointDescription",
    "affiliationName",
    "use",
    "useDescription",
    "useOtherDescription",
    "contentType",
    "contentTypeDescription",
    "contentOtherDescription",
    "address_1",
    "address_2",
    "city",
    "state",
    "country_code",
    "postal_code",
)


def _text(value: Any) -> str:
    """A published value as the file has it: "" for none, "--" (the registry's "no suffix") too."""
    out = "" if value is None else str(value)
    return "" if out == "--" else out


def _affix(value: Any) -> str:
    """A name prefix or suffix: the registry prints "Dr."/"Jr.", the file "DR."/"JR."."""
    return _text(value).upper()


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def _yn(value: Any) -> str:
    return {"YES": "Y", "NO": "N", "Y": "Y", "N": "N"}.get(str(value or "").upper(), "")


def _date(value: Any, column: str) -> str | None:
    """A registry date (YYYY-MM-DD) checked like the file's; anything else is no date."""
    text = str(value or "")
    if len(text) != 10 or text[4] != "-":
        return None
    try:
        return date(int(text[:4]), int(text[5:7]), int(text[8:10])).isoformat()
    except ValueError:
        shown = f"{text[5:7]}/{text[8:10]}/{text[:4]}"  # as the file would have published it
        raise BadRow(f"impossible date {shown!r} in {column!r}") from None


def _address(a: dict[str, Any], value: Callable[[Any], str] = _text) -> tuple[str, ...]:
    return (
        value(a.get("address_1")),
        value(a.get("address_2")),
        value(a.get("city")),
        value(a.get("state")),
        value(a.get("postal_code")),
        value(a.get("country_code")),
        _digits(a.get("telephone_number")),
        _digits(a.get("fax_number")),
    )


def _plain(value: Any) -> str:
    return str(value or "")


def _taxonomies(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The taxonomy slots (code, license, state, switch, flattened) and their groups, file form."""
    slots = [""] * (4 * TAXONOMY_SLOTS)
    groups = [""] * TAXONOMY_SLOTS
    for i, t in enumerate((result.get("taxonomies") or [])[:TAXONOMY_SLOTS]):
        code = str(t.get("code") or "")
        slots[4 * i : 4 * i + 4] = [
            code,
            str(t.get("license") or ""),
            str(t.get("state") or ""),
            "Y" if t.get("primary") is True else ("N" if code else ""),
        ]
        # The registry prints "193400000X - Single Specialty Group"; the file "193400000X SINGLE SPECIALTY GROUP".
        group_code, _, group_text = str(t.get("taxonomy_group") or "").partition(" - ")
        groups[i] = f"{group_code} {group_text.upper()}".strip()
    return slots, groups


def _identifiers(result: dict[str, Any]) -> list[str]:
    region = [""] * (4 * IDENTIFIER_SLOTS)
    for i, ident in enumerate((result.get("identifiers") or [])[:IDENTIFIER_SLOTS]):
        region[4 * i : 4 * i + 4] = [
            str(ident.get("identifier") or ""),
            str(ident.get("code") or ""),
            str(ident.get("state") or ""),
            str(ident.get("issuer") or ""),
        ]
    return region


def registry_block(result: dict[str, Any], fetched: date) -> BlockResult:
    """A registry result as a file load would store it (raises ``BadRow`` if it is unusable): the
    provider, its secondary locations, other organization names and endpoints. Its document's
    ``release`` says where and when it came from: ``{"date": fetched, "source": "upstream"}``."""
    npi_s = str(result.get("number") or "")
    npi = checked_npi(npi_s)
    out = BlockResult("npidata", rows_read=1)
    entity = {"NPI-1": "1", "NPI-2": "2"}.get(str(result.get("enumeration_type")), "")
    if not entity:  # the registry answers for active NPIs only: there is no deactivation to keep
        raise BadRow("Entity Type Code is blank and the row is not a deactivated NPI")
    basic = result.get("basic") or {}
    addresses: dict[str, tuple[str, ...]] = {}
    for addr in result.get("addresses") or []:
        purpose = str(addr.get("address_purpose") or "").upper()
        if purpose == "MAILING":
            addresses["mailing"] = _address(addr)
        elif purpose in ("LOCATION", "PRIMARY"):
            addresses["practice"] = _address(addr)
    other_person: tuple[str, ...] = ("",) * 7
    other_organizations: list[tuple[str, str]] = []
    for o in result.get("other_names") or []:
        if o.get("organization_name"):
            other_organizations.append((str(o["organization_name"]), str(o.get("code") or "")))
        elif o.get("last_name") and not other_person[2]:
            other_person = (
                _text(o.get("first_name")),
                _text(o.get("middle_name")),
                _text(o.get("last_name")),
                _affix(o.get("prefix")),
                _affix(o.get("suffix")),
                _text(o.get("credential")),
                _text(o.get("code")),
            )
    slots, groups = _taxonomies(result)

    def official(key: str) -> str:
        return _text(basic.get(f"authorized_official_{key}"))

    add_provider(
        out,
        npi_s,
        int(entity),
        {"date": fetched.isoformat(), "source": "upstream"},
        0,
        deactivation=(None, None, "", ""),
        dates=(
            _date(basic.get("enumeration_date"), "Provider Enumeration Date"),
            _date(basic.get("last_updated"), "Last Update Date"),
            _date(basic.get("certification_date"), "Certification Date"),
        ),
        person=(
            _text(basic.get("first_name")),
            _text(basic.get("middle_name")),
            _text(basic.get("last_name")),
            _affix(basic.get("name_prefix")),
            _affix(basic.get("name_suffix")),
            _text(basic.get("credential")),
        ),
        other_person=other_person,
        organization=(
            _text(basic.get("organization_name")),
            "",
            "",
            "",
            _yn(basic.get("organizational_subpart")),
            _text(basic.get("parent_organization_legal_business_name")),
            _text(basic.get("parent_organization_ein")),
        ),
        official=(
            official("last_name"),
            official("first_name"),
            official("middle_name"),
            official("title_or_position"),
            _digits(basic.get("authorized_official_telephone_number")),
            _affix(basic.get("authorized_official_name_prefix")),
            _affix(basic.get("authorized_official_name_suffix")),
            official("credential"),
        ),
        individual=(_text(basic.get("sex") or basic.get("gender")), _yn(basic.get("sole_proprietor"))),
        taxonomies=slots,
        groups=groups,
        identifiers=_identifiers(result),
        mailing=addresses.get("mailing", ("",) * 8),
        practice=addresses.get("practice", ("",) * 8),
    )
    for seq, a in enumerate(result.get("practiceLocations") or [], 1):
        add_location(out, npi, seq, _address(a, _plain), "")
    for seq, (name, code) in enumerate(other_organizations, 1):
        add_other_name(out, npi, seq, name, code, None)
    for seq, e in enumerate(result.get("endpoints") or [], 1):
        add_endpoint(out, npi, seq, [str(e.get(k) or "") for k in ENDPOINT_KEYS])
    return out
