"""The CMS NPI Registry API v2.1's parameters (``GET /api/?version=2.1``): ``parse_params`` turns a
query string into a ``CmsRequest`` (a ``SearchQuery`` for active NPIs, a page, ``pretty``) or the
registry's errors (``CmsError``, sent with HTTP 200 as ``errors_body``).

The registry's parameter rules are in nppes_format.md §7; docs/cms-api.md lists every error number
and which ones are CMS's own. Pure: no HTTP objects, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from npistack.normalize.names import name_key
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
