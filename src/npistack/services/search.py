"""Provider search: the query every search front end (the v1 API, the CMS-compatible endpoint,
the CLI) builds, and the engine that answers it from the store's index tables.

Front ends validate their own parameters and build a ``SearchQuery``; this module only answers
queries. ``search()`` returns NPIs in relevance order; callers fetch the documents with
``npistack.services.providers.get_providers``.

Here a query becomes index terms (``storage.search.IndexQuery``): name keys (``name_key`` forms)
with their match quality, first-name nicknames, typo-tolerant name keys found with rapidfuzz,
NUCC codes for a taxonomy text, one address rule, a circle. The store answers with sort keys
``(distance, rank, npi)``; the last key of a page becomes the opaque cursor of the next one.
A query that cannot make sense raises ``ValueError`` with a one-line message naming the field.
docs/search.md describes matching, ranking and pagination.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from rapidfuzz.distance import OSA

from npistack.normalize.names import name_key, name_variants
from npistack.nppes.taxonomy import load_nucc
from npistack.settings import get_settings
from npistack.storage.base import SqlStore
from npistack.storage.search import AddressRule, Circle, IndexQuery, KeyMatch, NameRule, SortKey

ADDRESS_PURPOSES = {
    "location": ("primary", "secondary"),
    "primary": ("primary",),
    "secondary": ("secondary",),
    "mailing": ("mailing",),
}
ENTITY_TYPES = {"NPI-1": 1, "NPI-2": 2}
STATUSES = ("active", "deactivated")
PROVIDER_NAMES = ("legal", "other")
FUZZY_MAX_KEYS = 50  # typo-tolerant name keys (or prefixes) tried per name, closest first
CURSOR_VERSION = 1


@dataclass(frozen=True)
class SearchQuery:
    """What to find. Every field is optional; text fields are case-insensitive.

    Name and text fields accept a trailing ``*`` wildcard ("SMI*"); without one they match the
    whole value (after ``name_key`` normalization), except ``postal_code`` (see below).
    """

    number: str | None = None  # one exact NPI
    last_name: str | None = None  # NPI-1 last names (legal and other names, or AO names)
    first_name: str | None = None  # NPI-1 first names
    organization_name: str | None = None  # NPI-2 names: legal, DBA, former, other
    name_purpose: str = "provider"  # "provider": provider names; "ao": authorized officials' names
    nicknames: bool = True  # first-name aliases (Bob finds Robert); never for wildcard first names
    fuzzy: bool = False  # typo-tolerant last/organization names
    city: str | None = None
    state: str | None = None  # 2 letters
    postal_code: str | None = None  # 5 or 9 digits (a 5-digit code matches its ZIP+4s), or a prefix "606*"
    country_code: str | None = None  # 2 letters
    address_purpose: str | None = (
        None  # None: any; "location": primary or secondary; "mailing"; "primary"; "secondary"
    )
    taxonomy_code: str | None = None  # NUCC code, e.g. 207RC0000X
    taxonomy_description: str | None = None  # NUCC classification/specialization/display name text
    entity_type: str | None = None  # "NPI-1" or "NPI-2"
    status: str | None = None  # "active", "deactivated", or None for both
    near: tuple[float, float] | None = None  # (lat, lon) centre of a radius search
    radius_miles: float | None = None  # with ``near``


@dataclass(frozen=True)
class SearchHit:
    npi: str
    distance_miles: float | None = None  # set for radius searches
    matched_name: str | None = None  # "legal", "other" or "ao": which name matched, for name searches


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    has_more: bool
    next_cursor: str | None  # opaque; pass back as ``cursor`` for the next page (no skip cap)


def search(
    store: SqlStore, query: SearchQuery, *, limit: int, skip: int = 0, cursor: str | None = None
) -> SearchPage:
    """One page of NPIs matching ``query``, best match first (see docs/search.md)."""
    if limit < 1:
        raise ValueError("limit: must be at least 1")
    if skip < 0:
        raise ValueError("skip: must not be negative")
    plan = plan_query(store, query)
    after = decode_cursor(cursor, query) if cursor is not None else None
    if plan is None:
        return SearchPage(hits=[], has_more=False, next_cursor=None)
    keys = store.search_index(plan, after=after, limit=limit + 1, offset=skip)
    has_more = len(keys) > limit
    keys = keys[:limit]
    label = _labeller(plan)
    hits = [
        SearchHit(npi=str(npi), distance_miles=None if d is None else round(d, 2), matched_name=label(rank))
        for d, rank, npi in keys
    ]
    return SearchPage(
        hits=hits, has_more=has_more, next_cursor=encode_cursor(keys[-1], query) if has_more else None
    )


def _labeller(plan: IndexQuery) -> Callable[[int], str | None]:
    """Which name matched, from the rank (rank = quality * 4 + 2 for an other name + alias bit)."""
    if not plan.ranked:
        return lambda rank: None
    if plan.ranked[0].name_types == ("ao",):
        return lambda rank: "ao"
    return lambda rank: "other" if rank & 2 else "legal"


# -- planning ----------------------------------------------------------------------------------


def plan_query(store: SqlStore, q: SearchQuery) -> IndexQuery | None:
    """The query in index terms, or None when nothing can match (e.g. NPI-1 names with NPI-2)."""
    entity = _choice("entity_type", q.entity_type, ENTITY_TYPES)
    status = q.status
    if status is not None and status not in STATUSES:
        raise ValueError(f"status: {status!r} is not one of active, deactivated (or None for both)")
    purpose = (q.name_purpose or "provider").lower()
    if purpose not in ("provider", "ao"):
        raise ValueError(f"name_purpose: {q.name_purpose!r} is not 'provider' or 'ao'")
    npi = None
    if q.number is not None:
        number = q.number.strip()
        if not (number.isascii() and number.isdigit() and len(number) == 10):
            raise ValueError(f"number: {q.number!r} is not a 10-digit NPI")
        npi = int(number)
    last = _name("last_name", q.last_name)
    first = _name("first_name", q.first_name)
    org = _name("organization_name", q.organization_name)
    address, circle, codes = _address(q), _circle(q), _taxonomy_codes(q)

    person = _person_rule(store, q, last, first, ("ao",) if purpose == "ao" else PROVIDER_NAMES)
    org_rule = _org_rule(store, q, org) if org else None
    ranked: list[NameRule] = []
    required: list[NameRule] = []
    if purpose == "ao" and person is not None:
        ranked.append(person)  # an organization name then narrows to that organization's officials
        if org_rule is not None:
            required.append(org_rule)
    else:
        ranked += [r for r in (person, org_rule) if r is not None]
    if entity is not None and ranked:
        ranked = [_with_entity(r, entity) for r in ranked if r.entity_type in (None, entity)]
        if not ranked or any(r.entity_type not in (None, entity) for r in required):
            return None  # e.g. an organization name with entity_type NPI-1
        required = [_with_entity(r, entity) for r in required]
        entity = None  # every ranked name row carries it
    if codes is not None and not codes:
        return None
    return IndexQuery(npi, tuple(ranked), tuple(required), address, circle, codes, entity, status)


def _choice(field: str, value: str | None, allowed: dict[str, int]) -> int | None:
    if value is None:
        return None
    if value not in allowed:
        raise ValueError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
    return allowed[value]


def _with_entity(r: NameRule, entity: int) -> NameRule:
    if r.entity_type == entity:
        return r
    return NameRule(r.name_types, entity, r.keys, r.first_keys, r.first_prefix, r.first_typed)


def _name(field: str, value: str | None) -> tuple[str, bool] | None:
    """(name key, is a prefix) of a name field; a trailing * makes it a prefix."""
    if value is None:
        return None
    text = value.strip()
    prefix = text.endswith("*")
    text = text[:-1] if prefix else text
    if "*" in text:
        raise ValueError(f"{field}: * is allowed only at the end ({value!r})")
    key = name_key(text)
    if not key:
        raise ValueError(f"{field}: {value!r} has no letters or digits")
    if prefix and len(key) < 2:
        raise ValueError(f"{field}: needs at least 2 characters before * ({value!r})")
    return key, prefix


def _key_matches(store: SqlStore, name: tuple[str, bool], *, fuzzy: bool, klass: int) -> tuple[KeyMatch, ...]:
    """Exact key (quality 0), prefix (1), and with ``fuzzy`` keys within a few typos (2, 3)."""
    key, prefix = name
    out = [KeyMatch(key, False, 0)]
    if prefix:
        out.append(KeyMatch(key, True, 1))
    if fuzzy:
        out += [KeyMatch(k, prefix, 1 + d) for k, d in fuzzy_keys(store, klass, key, prefix)]
    return tuple(out)


def _person_rule(
    store: SqlStore,
    q: SearchQuery,
    last: tuple[str, bool] | None,
    first: tuple[str, bool] | None,
    name_types: tuple[str, ...],
) -> NameRule | None:
    if last is None and first is None:
        return None
    ao = name_types == ("ao",)
    keys = _key_matches(store, last, fuzzy=q.fuzzy, klass=3 if ao else 1) if last else ()
    first_keys: tuple[str, ...] = ()
    first_prefix = first_typed = ""
    if first is not None:
        first_typed = first[0]
        if first[1]:
            first_prefix = first[0]
        elif q.nicknames:
            first_keys = tuple(sorted(name_variants(first[0]) | {first[0]}))
        else:
            first_keys = (first[0],)
    return NameRule(name_types, None if ao else 1, keys, first_keys, first_prefix, first_typed)


def _org_rule(store: SqlStore, q: SearchQuery, org: tuple[str, bool]) -> NameRule:
    return NameRule(PROVIDER_NAMES, 2, _key_matches(store, org, fuzzy=q.fuzzy, klass=2))


def max_edits(length: int) -> int:
    """Typos tolerated in a name of ``length`` characters: 0 up to 2, 1 up to 5, then 2."""
    return 0 if length <= 2 else 1 if length <= 5 else 2


def fuzzy_keys(store: SqlStore, klass: int, key: str, prefix: bool) -> list[tuple[str, int]]:
    """(name key or prefix, typos) within ``max_edits`` of ``key`` (optimal string alignment:
    a swap of two neighbours is one typo), sharing its first character, closest first.

    Candidates come from the store's vocabulary of distinct name keys of the class, limited to the
    same first character and a length window, so a typo in the first character is not found.
    For a prefix, candidates are the keys' own prefixes of nearby lengths (at least 4 characters or
    the query's length, whichever is shorter)."""
    k = max_edits(len(key))
    if k == 0:
        return []
    n = len(key)
    found: dict[str, int] = {}
    if prefix:
        # Prefixes of n - k to n + k characters, but not below 4 (nor n): dropping the query's
        # last letters would match far too much ("PION*" is not "PI*").
        shortest = max(min(n, 4), n - k)
        for cand in store.name_keys(klass, key[0], shortest, 1000, cut=n + k):
            for m in range(shortest, min(len(cand), n + k) + 1):
                p = cand[:m]
                if p.startswith(key):
                    continue
                d = OSA.distance(key, p, score_cutoff=k)
                if d <= k and d < found.get(p, k + 1):
                    found[p] = d
        # a prefix inside a closer (or equal) prefix's range adds nothing
        found = {
            p: d
            for p, d in found.items()
            if not any(o != p and p.startswith(o) and found[o] <= d for o in found)
        }
    else:
        for cand in store.name_keys(klass, key[0], max(1, n - k), n + k):
            if cand != key:
                d = OSA.distance(key, cand, score_cutoff=k)
                if d <= k:
                    found[cand] = d
    return sorted(found.items(), key=lambda kv: (kv[1], kv[0]))[:FUZZY_MAX_KEYS]


def _address(q: SearchQuery) -> AddressRule | None:
    purposes: tuple[str, ...] = ()
    if q.address_purpose is not None:
        if q.address_purpose not in ADDRESS_PURPOSES:
            raise ValueError(
                f"address_purpose: {q.address_purpose!r} is not one of"
                f" {', '.join(ADDRESS_PURPOSES)} (or None for any)"
            )
        purposes = ADDRESS_PURPOSES[q.address_purpose]
    state = _code("state", q.state)
    country = _code("country_code", q.country_code)
    city_keys: tuple[str, ...] = ()
    if q.city is not None:
        # "O'Fallon" is "O FALLON" in USPS city names, where name_key drops the apostrophe
        city_keys = tuple(sorted({name_key(q.city), name_key(q.city.replace("'", " "))} - {""}))
        if not city_keys:
            raise ValueError(f"city: {q.city!r} has no letters or digits")
    postal, postal_prefix = "", False
    if q.postal_code is not None:
        raw = q.postal_code.strip().upper()
        postal_prefix = raw.endswith("*")
        postal = "".join(ch for ch in raw.rstrip("*") if ch.isalnum())
        if not postal or "*" in raw.rstrip("*"):
            raise ValueError(f"postal_code: {q.postal_code!r} is not a postal code or a prefix such as 606*")
        # 5 digits match their ZIP+4s; fewer digits are a prefix
        postal_prefix = postal_prefix or (postal.isdigit() and len(postal) <= 5)
    rule = AddressRule(purposes, state, city_keys, postal, postal_prefix, country)
    return rule if rule.narrows or purposes else None


def _code(field: str, value: str | None) -> str:
    if value is None:
        return ""
    code = value.strip().upper()
    if not code:
        raise ValueError(f"{field}: is empty")
    return code


def _circle(q: SearchQuery) -> Circle | None:
    if q.near is None:
        if q.radius_miles is not None:
            raise ValueError("radius_miles: needs near (the centre of the circle)")
        return None
    if q.radius_miles is None:
        raise ValueError("near: needs radius_miles")
    lat, lon = q.near
    if not (math.isfinite(lat) and -90 <= lat <= 90 and math.isfinite(lon) and -180 <= lon <= 180):
        raise ValueError(
            f"near: ({lat}, {lon}) is not a latitude from -90 to 90 and a longitude from -180 to 180"
        )
    miles = q.radius_miles
    if not (math.isfinite(miles) and miles > 0):
        raise ValueError(f"radius_miles: {miles} is not a positive number of miles")
    if q.address_purpose == "mailing":
        raise ValueError(
            "address_purpose: 'mailing' cannot be combined with near (radius searches use practice locations)"
        )
    return Circle(float(lat), float(lon), float(miles))


# -- taxonomy texts ----------------------------------------------------------------------------


def _norm_text(text: str) -> str:
    return " ".join(text.lower().split())


@cache
def _nucc_texts(path: str | None) -> tuple[tuple[str, tuple[str, str, str, str]], ...]:
    """(code, (classification, specialization, display name, description)) in lower case."""
    return tuple(
        (
            code,
            (
                _norm_text(t.classification),
                _norm_text(t.specialization),
                _norm_text(t.display_name),
                _norm_text(t.description),
            ),
        )
        for code, t in sorted(load_nucc(path).items())
    )


def taxonomy_codes(description: str) -> tuple[str, ...]:
    """NUCC codes for a taxonomy text (case-insensitive; a trailing * makes it a prefix).

    A code matches when its classification, specialization, display name or "Classification,
    Specialization" description equals the text (starts with it, for a prefix), or when its
    specialization contains the text as whole words (a word prefix), or, only when nothing equals
    the text, when its classification does. So "Cardiology" finds the pharmacists' "Cardiology"
    and "Pediatric Cardiology"; "Neurology" finds "Vascular Neurology" but not every "Psychiatry &
    Neurology" code; "Orthopaedic" (equal to nothing) finds the "Orthopaedic Surgery" codes.
    """
    text = _norm_text(description)
    prefix = text.endswith("*")
    text = text.rstrip("*").strip()
    if not text or "*" in text:
        raise ValueError(
            f"taxonomy_description: {description!r} is not a taxonomy text (a trailing * is allowed)"
        )
    table = _nucc_texts(get_settings().nucc_csv or None)
    words = re.compile(r"(?<!\w)" + re.escape(text) + ("" if prefix else r"(?!\w)"))

    def equal(t: str) -> bool:
        return t.startswith(text) if prefix else t == text

    exact = {code for code, texts in table if any(equal(t) for t in texts)}
    found = exact | {code for code, texts in table if words.search(texts[1])}
    if not exact:
        found |= {code for code, texts in table if words.search(texts[0])}
    return tuple(sorted(found))


def _taxonomy_codes(q: SearchQuery) -> tuple[str, ...] | None:
    codes: tuple[str, ...] | None = None
    if q.taxonomy_code is not None:
        code = q.taxonomy_code.strip().upper()
        if not code:
            raise ValueError("taxonomy_code: is empty")
        codes = (code,)
    if q.taxonomy_description is not None:
        described = taxonomy_codes(q.taxonomy_description)
        codes = described if codes is None else tuple(c for c in codes if c in described)
    return codes


# -- cursors -----------------------------------------------------------------------------------


def _fingerprint(query: SearchQuery) -> str:
    return hashlib.sha256(repr(query).encode()).hexdigest()[:12]


def encode_cursor(key: SortKey, query: SearchQuery) -> str:
    """The opaque cursor after ``key``: url-safe base64 of JSON (version, query fingerprint, key)."""
    raw = json.dumps([CURSOR_VERSION, _fingerprint(query), *key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: SearchQuery) -> SortKey:
    """The sort key a cursor holds; ValueError if it does not decode or belongs to another search."""
    try:
        text = cursor.strip()
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
        version, fingerprint, d, rank, npi = value
        if version != CURSOR_VERSION or not isinstance(fingerprint, str):
            raise ValueError
        if not (isinstance(rank, int) and isinstance(npi, int)) or isinstance(rank, bool):
            raise ValueError
        if d is not None and not (isinstance(d, int | float) and math.isfinite(d)):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValueError(
            "cursor: does not decode (pass back the next_cursor of the previous page unchanged)"
        ) from None
    if fingerprint != _fingerprint(query) or (d is None) != (query.near is None):
        raise ValueError("cursor: belongs to a different search (start again without a cursor)")
    return (None if d is None else float(d), rank, npi)
