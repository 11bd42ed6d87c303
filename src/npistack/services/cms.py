"""The CMS NPI Registry API v2.1 (``GET /api/?version=2.1``) as a drop-in replacement: the pure part.

Clients written for ``https://npiregistry.cms.hhs.gov/api/`` work unchanged against npistack. This
module holds no HTTP objects and does no I/O; the route does::

    parsed = parse_params(request.query_params)      # CmsRequest, or a list of CmsError
    if not isinstance(parsed, CmsRequest):
        return 200, errors_body(parsed)              # CMS sends its errors with HTTP 200
    page = search(store, parsed.query, limit=parsed.limit, skip=parsed.skip)
    return 200, render_response(get_providers(store, [h.npi for h in page.hits]))

``parse_params`` applies the registry's parameter rules (nppes_format.md §7; docs/cms-api.md lists
every error number and which ones are CMS's own) and builds a ``SearchQuery`` for active NPIs only.
``render_result`` turns an expanded provider document (docs/provider-document.md) into one CMS
result object, from the published values (raw address lines and phones), the way 2024–2026
registry responses look: ``number`` and the epochs as strings, MAILING address first, empty address
and ``basic`` keys left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from npistack.normalize.names import name_key
from npistack.nppes.codes import IDENTIFIER_TYPES, OTHER_NAME_TYPES
from npistack.services.search import SearchQuery

API_VERSION = "2.1"
DEFAULT_LIMIT, MAX_LIMIT, MAX_SKIP = 10, 200, 1000

# Every parameter the registry knows, in the order of its demo page. Anything else is ignored.
PARAMETERS = (
    "number",
    "enumeration_type",
    "taxonomy_description",
    "name_purpose",
    "first_name",
    "use_first_name_alias",
    "last_name",
    "organization_name",
    "address_purpose",
    "city",
    "state",
    "postal_code",
    "country_code",
    "limit",
    "skip",
    "pretty",
    "version",
)
# Parameters that select providers; the others only modify a search or shape the response.
CRITERIA = (
    "number",
    "enumeration_type",
    "taxonomy_description",
    "first_name",
    "last_name",
    "organization_name",
    "city",
    "state",
    "postal_code",
    "country_code",
)
# Free-text parameters: a trailing * wildcard after at least 2 characters.
TEXT_FIELDS = ("taxonomy_description", "first_name", "last_name", "organization_name", "city")
# Besides letters, digits and spaces (help-api text; organization_name also allows @).
SPECIAL_CHARACTERS = "&':,/-().#\";"

NAME_PURPOSES = {"AO": "ao", "PROVIDER": "provider"}
ADDRESS_PURPOSES = {
    "LOCATION": "location",
    "MAILING": "mailing",
    "PRIMARY": "primary",
    "SECONDARY": "secondary",
}
ENUMERATION_TYPES = ("NPI-1", "NPI-2")
BOOLEANS = {"TRUE": True, "FALSE": False}


@dataclass(frozen=True, slots=True)
class CmsError:
    """One entry of the registry's ``{"Errors": [...]}`` body; ``number`` is two digits, as CMS sends it."""

    description: str
    field: str
    number: str

    def as_dict(self) -> dict[str, str]:
        return {"description": self.description, "field": self.field, "number": self.number}


# number -> description. Verbatim CMS texts: 07 and 09 (a live 2026 capture); 03 as reported
# (wording uncertain). All others are npistack's, numbered from 20 so that they cannot be
# mistaken for CMS codes whose texts are unknown (05, 06, 17). docs/cms-api.md shows this table.
ERRORS: dict[str, str] = {
    "03": "Wildcards require at least two leading characters",
    "07": "Field state requires additional search criteria",
    "09": "Enumeration_type requires additional search criteria",
    "20": "Field version is required: send version=2.1",
    "21": "Unsupported version: this registry answers version=2.1 only",
    "22": "No valid search criteria provided",
    "23": "Field number must be exactly 10 digits (wildcards are not allowed)",
    "24": "Field enumeration_type must be NPI-1 or NPI-2",
    "25": "Field name_purpose must be AO or PROVIDER",
    "26": "Field address_purpose must be LOCATION, MAILING, PRIMARY or SECONDARY",
    "27": "Field use_first_name_alias must be True or False",
    "28": "Field state must be a 2-letter state code",
    "29": "Field country_code must be a 2-letter country code",
    "30": "Field postal_code must be 5 or 9 digits, or at least 2 digits followed by * (e.g. 21*)",
    "31": "Field contains characters that are not allowed: use letters, digits, spaces and & ' : , / - ( ) . # \" ; (and @ in organization_name)",
    "32": "Wildcard * is only allowed at the end of the value",
    "33": "Field limit must be a whole number from 1 to 200",
    "34": "Field skip must be a whole number from 0 to 1000",
    "35": "Field country_code US requires additional search criteria",
    "36": "Field must contain at least one letter or digit",
}


def _error(number: str, field: str) -> CmsError:
    return CmsError(ERRORS[number], field, number)


def errors_body(errors: Sequence[CmsError]) -> dict[str, list[dict[str, str]]]:
    """The registry's error body: ``{"Errors": [{"description", "field", "number"}, ...]}`` (HTTP 200)."""
    return {"Errors": [e.as_dict() for e in errors]}


@dataclass(frozen=True, slots=True)
class CmsRequest:
    """A valid registry request: what to search, which page, and whether to indent the JSON."""

    query: SearchQuery
    limit: int = DEFAULT_LIMIT
    skip: int = 0
    pretty: bool = False


# -- parameters --------------------------------------------------------------------------------


def _allowed(value: str, extra: str = "") -> bool:
    return all(ch.isalnum() or ch == " " or ch in SPECIAL_CHARACTERS or ch in extra for ch in value)


def _check_wildcard(value: str, field: str) -> CmsError | None:
    """03 when fewer than 2 characters precede a trailing *; 32 when * is anywhere else."""
    if "*" not in value:
        return None
    stem = value[:-1]
    if not value.endswith("*") or "*" in stem:
        return _error("32", field)
    if len(stem.strip()) < 2:
        return _error("03", field)
    return None


def _check_text(value: str, field: str) -> CmsError | None:
    extra = "*@" if field == "organization_name" else "*"
    if not _allowed(value, extra):
        return _error("31", field)
    problem = _check_wildcard(value, field)
    if problem is None and not name_key(value.rstrip("*")):  # only punctuation: nothing to match
        return _error("36", field)
    return problem


def _check_postal(value: str) -> tuple[str | None, CmsError | None]:
    """A postal code as digits (a ZIP+4 written 60601-1234 is accepted too), or a prefix "21*"."""
    if len(value) == 10 and value[5] == "-" and (value[:5] + value[6:]).isdigit():
        value = value[:5] + value[6:]
    if "*" in value:
        problem = _check_wildcard(value, "postal_code")
        if problem:
            return None, problem
        if not (value[:-1].isascii() and value[:-1].isdigit()) or len(value) > 10:
            return None, _error("30", "postal_code")
        return value, None
    if value.isascii() and value.isdigit() and len(value) in (5, 9):
        return value, None
    return None, _error("30", "postal_code")


def _whole_number(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


def parse_params(params: Mapping[str, str]) -> CmsRequest | list[CmsError]:
    """Validate the registry's query parameters and build the search, or return every problem found.

    Parameter names are exact (lower case, as CMS); unknown ones are ignored and an empty value
    counts as absent (clients often send every parameter, most of them empty). Values are
    case-insensitive where CMS's are (``npi-1``, ``location``, ``true``). Errors are collected for
    all parameters, then the combination rules (07, 09, 35) and the no-criteria rule (22) are
    checked, so one response lists everything to fix.
    """
    values: dict[str, str] = {}
    for name in PARAMETERS:
        raw = params.get(name)
        if raw is not None and raw.strip():
            values[name] = raw.strip()
    errors: list[CmsError] = []

    number = values.get("number")
    if number is not None and not (len(number) == 10 and number.isascii() and number.isdigit()):
        errors.append(_error("23", "number"))

    entity_type = None
    if "enumeration_type" in values:
        entity_type = values["enumeration_type"].upper()
        if entity_type not in ENUMERATION_TYPES:
            errors.append(_error("24", "enumeration_type"))

    for field in TEXT_FIELDS:
        if field in values:
            problem = _check_text(values[field], field)
            if problem:
                errors.append(problem)

    name_purpose = "provider"
    if "name_purpose" in values:
        purpose = NAME_PURPOSES.get(values["name_purpose"].upper())
        if purpose is None:
            errors.append(_error("25", "name_purpose"))
        else:
            name_purpose = purpose

    alias = True
    if "use_first_name_alias" in values:
        flag = BOOLEANS.get(values["use_first_name_alias"].upper())
        if flag is None:
            errors.append(_error("27", "use_first_name_alias"))
        else:
            alias = flag

    address_purpose = None
    if "address_purpose" in values:
        address_purpose = ADDRESS_PURPOSES.get(values["address_purpose"].upper())
        if address_purpose is None:
            errors.append(_error("26", "address_purpose"))

    state = values.get("state", "").upper() or None
    if state is not None and not (len(state) == 2 and state.isascii() and state.isalpha()):
        errors.append(_error("28", "state"))

    postal_code = None
    if "postal_code" in values:
        postal_code, problem = _check_postal(values["postal_code"])
        if problem:
            errors.append(problem)

    country = values.get("country_code", "").upper() or None
    if country is not None and not (len(country) == 2 and country.isascii() and country.isalpha()):
        errors.append(_error("29", "country_code"))

    limit = DEFAULT_LIMIT
    if "limit" in values:
        n = _whole_number(values["limit"])
        if n is None:
            errors.append(_error("33", "limit"))
        elif n:  # 0 means the default, as on the live registry
            limit = min(n, MAX_LIMIT)

    skip = 0
    if "skip" in values:
        n = _whole_number(values["skip"])
        if n is None or n > MAX_SKIP:
            errors.append(_error("34", "skip"))
        else:
            skip = n

    if "version" not in values:
        errors.append(_error("20", "version"))
    elif values["version"] != API_VERSION:
        errors.append(_error("21", "version"))

    errors.extend(_combination_errors(values, country))
    if errors:
        return errors

    first_name = values.get("first_name")
    last_name = values.get("last_name")
    organization_name = values.get("organization_name")
    if entity_type is None:
        if organization_name:
            entity_type = "NPI-2"
        elif first_name or last_name:
            # Person names are individuals' names, or authorized officials' (of organizations).
            entity_type = "NPI-2" if name_purpose == "ao" else "NPI-1"
    query = SearchQuery(
        number=number,
        last_name=last_name,
        first_name=first_name,
        organization_name=organization_name,
        name_purpose=name_purpose,
        nicknames=alias and not (first_name or "").endswith("*"),
        city=values.get("city"),
        state=state,
        postal_code=postal_code,
        country_code=country,
        address_purpose=address_purpose,
        taxonomy_description=values.get("taxonomy_description"),
        entity_type=entity_type,
        status="active",  # the registry lists active NPIs only
    )
    return CmsRequest(query=query, limit=limit, skip=skip, pretty="pretty" in params)


def _combination_errors(values: Mapping[str, str], country: str | None) -> list[CmsError]:
    """state needs a criterion besides enumeration_type and country_code (07); enumeration_type
    needs one besides state, and besides a US country_code (09); country_code US alone (35); nothing
    at all (22)."""
    given = {c for c in CRITERIA if c in values}
    if not given:
        return [_error("22", "criteria")]
    substantive = given - {"enumeration_type", "state", "country_code"}
    sufficient = substantive | ({"country_code"} if country and country != "US" else set())
    out = []
    if "state" in given and not substantive:
        out.append(_error("07", "state"))
    if "enumeration_type" in given and not sufficient:
        out.append(_error("09", "enumeration_type"))
    if given == {"country_code"} and country == "US":
        out.append(_error("35", "country_code"))
    return out


# -- rendering ---------------------------------------------------------------------------------

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
