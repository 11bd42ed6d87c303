"""Validation of request parameters: an NPI in a path (``npi_message``), and
``GET /api/v1/providers/search`` parameters into a ``SearchQuery``.

An NPI follows ``nppes.npi.check_npi``, worded the contract's way. Every search problem is a 400
``invalid_search_params`` whose message names the parameter and says what is expected. A request
without a narrowing criterion gets the contract's exact message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from npistack.api.errors import ApiError
from npistack.normalize.geo import zip_info
from npistack.nppes.npi import NpiFault, check_npi
from npistack.services.search import SearchQuery

MAX_LIMIT, DEFAULT_LIMIT, MAX_SKIP = 50, 20, 1000
MAX_RADIUS, DEFAULT_RADIUS = 100.0, 10.0

NPI_FORMAT_MESSAGE = "NPI must be a 10-digit number."  # the contract's invalid_npi message
NPI_PREFIX_MESSAGE = "NPI {npi} does not start with 1 or 2, so no provider can have it."
NPI_CHECK_MESSAGE = "NPI {npi} fails the NPI check digit (Luhn), so no provider can have it."


def npi_message(raw: str) -> str | None:
    """None for an NPI, else the 400 ``invalid_npi`` message: the contract's text for anything but
    10 digits, and why 10 digits can never be an NPI (its first digit, its check digit)."""
    problem = check_npi(raw)
    if problem is None:
        return None
    if problem.kind is NpiFault.BAD_PREFIX:
        return NPI_PREFIX_MESSAGE.format(npi=raw)
    if problem.kind is NpiFault.BAD_CHECK_DIGIT:
        return NPI_CHECK_MESSAGE.format(npi=raw)
    return NPI_FORMAT_MESSAGE


PARAMS = {
    "last_name": "Last name of an individual (NPI-1); trailing * for a prefix (at least 2 characters).",
    "first_name": "First name of an individual; nicknames match unless nicknames=false.",
    "organization_name": "Name of an organization (NPI-2): legal, DBA, former or other name; trailing * allowed.",
    "city": "City of any address (see address_purpose).",
    "state": "Two-letter state of any address; narrows only together with another criterion.",
    "postal_code": "ZIP: 5 digits (matches its ZIP+4s), 9 digits (ZIP+4), or a prefix (e.g. 606 or 606*).",
    "address_purpose": "Which address the location criteria apply to: location, primary, secondary or mailing.",
    "taxonomy": "NUCC taxonomy code (any of the provider's taxonomies), e.g. 207RC0000X.",
    "taxonomy_description": "NUCC taxonomy text, case-insensitive, e.g. Cardiology or Internal Medicine; trailing * allowed.",
    "entity_type": "NPI-1 (individuals) or NPI-2 (organizations); narrows only with another criterion.",
    "status": "active, deactivated or any (the default).",
    "fuzzy": "true: typo-tolerant last and organization names.",
    "nicknames": "false: first_name matches only itself (default true: Bob finds Robert).",
    "near": "Centre of a radius search: a 5-digit ZIP or 'lat,lon'.",
    "radius_miles": "Radius around near, in miles (default 10, at most 100).",
    "limit": "Results per page, 1 to 50 (default 20).",
    "skip": "Results to skip, 0 to 1000; use cursor to read further.",
    "cursor": "The nextCursor of the previous page (keyset pagination, no cap); use instead of skip.",
    "enrichment": "completeness, quality_score, freshness or quality_freshness (plans with enrichment; 2 credits).",
}
NARROWING = ("last_name", "first_name", "organization_name", "city", "postal_code", "taxonomy",
             "taxonomy_description", "near")  # fmt: skip

_NAME_OK = re.compile(r"^[A-Za-z0-9À-ÿ&'’:,/\-().#\";@ ]+\*?$")
_STATE = re.compile(r"^[A-Za-z]{2}$")
_POSTAL = re.compile(r"^(\d{2,9})\*?$")
_TAXO = re.compile(r"^[0-9A-Za-z]{9}[Xx]$")
_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class SearchRequest:
    query: SearchQuery
    limit: int
    skip: int
    cursor: str | None
    enrichment: str | None


def bad(message: str) -> ApiError:
    return ApiError("invalid_search_params", message)


def _text(params: Mapping[str, str], name: str, *, wildcard: bool = True, max_len: int = 100) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise bad(f"{name} must not be empty.")
    if len(value) > max_len:
        raise bad(f"{name} is longer than {max_len} characters.")
    if "*" in value:
        if not wildcard or not value.endswith("*") or value.count("*") > 1:
            raise bad(f"{name} allows one * wildcard, at the end only.")
        if len(value.rstrip("*").strip()) < 2:
            raise bad(f"{name} needs at least 2 characters before the * wildcard.")
    if not _NAME_OK.match(value):
        raise bad(
            f"{name} has characters that are not allowed (letters, digits, spaces and & ' : , / - ( ) . # \" ; @)."
        )
    return value


def _bool(params: Mapping[str, str], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise bad(f"{name} must be true or false.")


def _int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    v = value.strip()
    if not re.fullmatch(r"-?\d{1,9}", v) or not lo <= int(v) <= hi:
        raise bad(f"{name} must be an integer from {lo} to {hi}.")
    return int(v)


def parse_search(params: Mapping[str, str], multi: Mapping[str, list[str]] | None = None) -> SearchRequest:
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise bad(f"Unknown parameter {unknown[0]!r}. Accepted: {', '.join(PARAMS)}.")
    if multi:
        repeated = sorted(k for k, v in multi.items() if len(v) > 1)
        if repeated:
            raise bad(f"{repeated[0]} is given more than once.")
    last = _text(params, "last_name")
    first = _text(params, "first_name")
    org = _text(params, "organization_name")
    city = _text(params, "city", max_len=64)
    tdesc = _text(params, "taxonomy_description")
    state = params.get("state")
    if state is not None:
        state = state.strip()
        if not _STATE.match(state):
            raise bad("state must be a two-letter state code, e.g. CA.")
        state = state.upper()
    postal = params.get("postal_code")
    if postal is not None:
        p = postal.strip().replace("-", "")
        if not _POSTAL.match(p) or (not p.endswith("*") and len(p) not in (2, 3, 4, 5, 9)):
            raise bad(
                "postal_code must be 5 or 9 digits, or a prefix of at least 2 digits (e.g. 606 or 606*)."
            )
        postal = p
    purpose = params.get("address_purpose")
    if purpose is not None:
        purpose = purpose.strip().lower()
        if purpose not in ("location", "primary", "secondary", "mailing"):
            raise bad("address_purpose must be location, primary, secondary or mailing.")
    taxonomy = params.get("taxonomy")
    if taxonomy is not None:
        taxonomy = taxonomy.strip()
        if not _TAXO.match(taxonomy):
            raise bad("taxonomy must be a 10-character NUCC code such as 207RC0000X.")
        taxonomy = taxonomy.upper()
    entity = params.get("entity_type")
    if entity is not None:
        entity = {"NPI-1": "NPI-1", "NPI-2": "NPI-2", "1": "NPI-1", "2": "NPI-2"}.get(entity.strip().upper())
        if entity is None:
            raise bad("entity_type must be NPI-1 or NPI-2.")
    status = params.get("status")
    if status is not None:
        status = status.strip().lower()
        if status not in ("active", "deactivated", "any"):
            raise bad("status must be active, deactivated or any.")
    near = None
    if params.get("near") is not None:
        raw = params["near"].strip()
        m = _LATLON.match(raw)
        if re.fullmatch(r"\d{5}", raw):
            info = zip_info(raw)
            if info is None or info.lat is None:
                raise bad(f"near: ZIP {raw} is not a known US ZIP code with a location.")
            near = (info.lat, info.lon)
        elif m and -90 <= float(m.group(1)) <= 90 and -180 <= float(m.group(2)) <= 180:
            near = (float(m.group(1)), float(m.group(2)))
        else:
            raise bad("near must be a 5-digit ZIP or 'lat,lon' (e.g. 41.88,-87.63).")
    radius = None
    if params.get("radius_miles") is not None:
        try:
            radius = float(params["radius_miles"])
        except ValueError:
            radius = -1.0
        if not 0 < radius <= MAX_RADIUS:
            raise bad(f"radius_miles must be a number above 0 and at most {MAX_RADIUS:g}.")
        if near is None:
            raise bad("radius_miles needs near (a ZIP or lat,lon).")
    elif near is not None:
        radius = DEFAULT_RADIUS
    limit = _int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    skip = _int(params, "skip", 0, 0, MAX_SKIP)
    cursor = params.get("cursor")
    if cursor is not None and skip:
        raise bad("Use either skip or cursor, not both.")
    fuzzy = _bool(params, "fuzzy", False)
    nicknames = _bool(params, "nicknames", True)
    if not any(params.get(k) is not None for k in NARROWING):
        raise ApiError("invalid_search_params")  # the contract's own message
    query = SearchQuery(
        last_name=last,
        first_name=first,
        organization_name=org,
        nicknames=nicknames,
        fuzzy=fuzzy,
        city=city,
        state=state,
        postal_code=postal,
        address_purpose=purpose,
        taxonomy_code=taxonomy,
        taxonomy_description=tdesc,
        entity_type=entity,
        status=None if status in (None, "any") else status,
        near=near,
        radius_miles=radius,
    )
    return SearchRequest(query, limit, skip, cursor, params.get("enrichment"))


# -- the OpenAPI document as strict as this validation ------------------------------------------

_NPI_PATTERN = "^[0-9]{10}$"


def _enrichment_pattern() -> str:
    from npistack.services.enrichment import FACTORS, PRESETS

    one = "|".join(sorted({*PRESETS, *FACTORS}, key=lambda v: (-len(v), v)))
    return rf"^ *({one}) *(, *({one}) *)*$"


def search_constraints() -> dict[str, dict[str, object]]:
    """JSON-schema constraints of each search parameter, mirroring ``parse_search`` (a value the
    document allows may still fail a rule it cannot say, e.g. a ZIP that is not a real ZIP)."""
    name = {"type": "string", "minLength": 1, "maxLength": 100}
    return {
        "last_name": name,
        "first_name": name,
        "organization_name": name,
        "taxonomy_description": name,
        "city": {"type": "string", "minLength": 1, "maxLength": 64},
        "state": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
        "postal_code": {
            "type": "string",
            "pattern": r"^([0-9]{2,5}|[0-9]{9}|[0-9]{5}-[0-9]{4}|[0-9]{2,9}\*)$",
        },
        "address_purpose": {"type": "string", "enum": ["location", "primary", "secondary", "mailing"]},
        "taxonomy": {"type": "string", "pattern": "^[0-9A-Za-z]{9}[Xx]$"},
        "entity_type": {"type": "string", "enum": ["NPI-1", "NPI-2", "1", "2"]},
        "status": {"type": "string", "enum": ["active", "deactivated", "any"]},
        "fuzzy": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]},
        "nicknames": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]},
        "near": {
            "type": "string",
            "pattern": r"^([0-9]{5}|-?[0-9]{1,3}(\.[0-9]{1,6})?,-?[0-9]{1,3}(\.[0-9]{1,6})?)$",
        },
        "radius_miles": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RADIUS},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "skip": {"type": "integer", "minimum": 0, "maximum": MAX_SKIP},
        "enrichment": {"type": "string", "pattern": _enrichment_pattern()},
    }


def path_constraints() -> dict[str, dict[str, object]]:
    """Constraints of path parameters by name, wherever they appear."""
    return {
        "npi": {"type": "string", "pattern": _NPI_PATTERN, "description": "A 10-digit NPI"},
        "action": {"type": "string", "enum": ["suspend", "resume", "revoke"]},
        "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"\S"},  # a plan's
    }
