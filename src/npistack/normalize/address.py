"""Fast USPS Publication 28 address standardization, measured against usaddress-scourgify.

``scourgify.normalize_address_record`` costs about 95 µs per address (a CRF tagger from ``usaddress``
plus several passes of Unicode cleaning), and one NPPES row carries up to three addresses within a
budget of about 100 µs. :func:`standardize_address` is a hand-written, rule-based standardizer that
reuses scourgify's own tables (``scourgify.address_constants``: USPS Pub 28 appendix C1 street
suffixes, directionals, C2 secondary unit designators, state names) and follows its output
conventions, at a few µs per address, with an LRU cache on top because NPPES repeats addresses a lot.
``benchmarks/address_agreement.py`` measures the agreement with scourgify; tests assert it.

What it does, for domestic addresses (country blank, ``US`` or ``USA``):

- upper case, collapse whitespace; drop periods (except decimal points), commas, parentheses,
  apostrophes and other punctuation except ``# & - /``, and fold accents, as scourgify does;
- abbreviate the street suffix (C1), pre- and post-directionals, highway prefixes
  (``US HIGHWAY 50`` -> ``US HWY 50``, ``STATE ROUTE 9`` -> ``STATE RTE 9``) and secondary unit
  designators (C2: ``SUITE`` -> ``STE``, ``FLOOR`` -> ``FL``, ``2ND FLOOR`` -> ``FL 2ND`` ...);
- add the ordinal to a numbered street with a suffix (``5 AVENUE`` -> ``5TH AVE``);
- move secondary units from the end of line 1 to the front of line 2 (``# 200`` keeps its ``#``);
  a bare trailing identifier after the suffix is a unit (``49 CLEVELAND ST 310`` ->
  ``UNIT 310``), and so is a line 2 holding only an identifier when line 1 has no unit
  (``200`` -> ``UNIT 200``);
- when line 1 holds only a unit (``SUITE 200``) or a building name and line 2 the street, the
  street becomes line 1;
- ``P.O. BOX 12``, ``POST OFFICE BOX 12``, ``POB 12``, ``BOX 12`` -> ``PO BOX 12``;
- state names -> 2-letter codes (scourgify's table); postal code: 5 digits, 9 digits or
  ``NNNNN-NNNN`` -> ZIP5 and ZIP+4, anything else -> blank;
- leave unrecognized text as it is (after cleaning): street names, free text on line 2.

Non-US addresses get only upper case and whitespace cleanup, and no postal code.
The function never raises: scourgify raises on about one input in eight of the benchmark corpus
(every PO box, most free text on line 2, any missing city, state or ZIP); this returns its best
effort instead.

Known differences from scourgify. The deliberate ones follow Pub 28 or keep information that
scourgify loses; the benchmark counts each of them:

- Periods are dropped from the city: scourgify keeps ``ST. LOUIS``.
- ``#`` or ``NO`` after a designator is dropped, as Pub 28 asks: ``SUITE #200`` -> ``STE 200``,
  where scourgify gives ``STE # 200``. Glued forms are split: ``STE200`` -> ``STE 200``
  (scourgify: ``UNIT STE200``).
- ``BUILDING``, ``OFFICE`` and ``FLOOR`` are always abbreviated (C2); scourgify sometimes keeps
  them (``BUILDING 2`` on line 1, ``UNIT OFFICE B``, ``FLOOR 1``).
- Words that are not designators are kept: ``LEVEL 3``, ``MC 1234``, ``LOWER LEVEL`` stay as they
  are, where scourgify writes ``UNIT 3``, ``UNIT 1234``, ``UNIT LOWER``.
- Free text stays apart from the street: ``MEDICAL OFFICE BUILDING`` on line 2 stays on line 2,
  and a building name on line 1 over a street on line 2 goes to line 2 under the street, where
  scourgify (when it accepts them at all) joins both into line 1. Line 1 is then the same
  delivery line whether or not the provider wrote the building name, which matching needs.
- Designators that take no number (Pub 28: ``REAR``, ``LBBY``, ``PH``, ``BSMT``, ``FRNT``,
  ``UPPR``, ``LOWR``, ``SIDE``) are abbreviated on their own; scourgify gives ``UNIT REAR`` or
  raises. ``UPPER`` becomes ``UPPR`` and ``HANGAR`` ``HNGR`` (Pub 28; scourgify's table has
  ``UPPER`` and ``HANGER``).
- ``MAIN STREET EXT`` keeps the ``EXT`` and ``9 1/2 MAIN ST`` its fraction; scourgify drops the
  first (usaddress tags it as a modifier that scourgify does not print) and sometimes turns the
  second into ``9 12``.
- Postal codes of 1-4 digits are blank here; scourgify zero-fills them (``1001`` -> ``01001``).
- Not deliberate: usaddress is a statistical tagger, and on unusual token sequences (a directional
  or suffix word used as a street name, as in ``SOUTHEAST FOREST`` or ``OAK HILL``; two units on
  both lines; unknown unit words) it reads some addresses differently from these rules. About
  0.5 % of the addresses scourgify accepts in the benchmark; it prints examples.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from scourgify.address_constants import (
    AMBIGUOUS_DIRECTIONALS,
    DIRECTIONAL_REPLACEMENTS,
    OCCUPANCY_TYPE_ABBREVIATIONS,
    STATE_ABBREVIATIONS,
    STREET_TYPE_ABBREVIATIONS,
)

__all__ = ["CACHE_SIZE", "StdAddress", "standardize_address"]

CACHE_SIZE = 65536  # ~50 MB per process when full; real files repeat addresses a lot
"""Entries in the LRU cache of :func:`standardize_address`.

Full, it holds about 190 MB (measured), counting the input strings its keys keep alive.
"""


@dataclass(frozen=True, slots=True)
class StdAddress:
    """A standardized address; every field is upper case, ``''`` when absent."""

    line1: str  # e.g. "1999 N MAIN ST"
    line2: str  # e.g. "STE 200"
    city: str
    state: str  # 2-letter code for US states
    zip5: str
    zip4: str
    country: str  # "US" for domestic addresses (NPPES leaves the country blank or "US")


# --- tables -------------------------------------------------------------------------------------

# Street suffixes (C1), keyed by every spelling scourgify knows, including the standard ones.
_SUFFIXES: dict[str, str] = {k: v for k, v in STREET_TYPE_ABBREVIATIONS.items() if " " not in k}
_SUFFIXES.update({v: v for v in STREET_TYPE_ABBREVIATIONS.values() if " " not in v})
# Two-word highway prefixes: ("US", "HIGHWAY") -> "HWY", ("STATE", "RT") -> "RTE".
_PAIR_SUFFIXES: dict[tuple[str, str], str] = {
    (k.split()[0], k.split()[1]): v.split()[1] for k, v in STREET_TYPE_ABBREVIATIONS.items() if " " in k
}
# Words after which a number names the road rather than a unit: HIGHWAY 50, ROUTE 9, FM 1960.
_ROUTE_WORDS = frozenset(
    {"HIGHWAY", "HWY", "HIWAY", "HIWY", "HWAY", "ROUTE", "RTE", "RT", "ROAD", "RD", "FM"}
)
# The common suffixes: "123 NORTH AVE" is North Avenue, "123 NORTH FOREST" is North Forest.
_CORE_SUFFIXES = frozenset(
    {"ST", "STREET", "AVE", "AVENUE", "RD", "ROAD", "DR", "DRIVE", "BLVD", "BOULEVARD", "LN", "LANE", "WAY"}
    | {"CT", "COURT", "PL", "PLACE", "PKWY", "PARKWAY", "CIR", "CIRCLE", "HWY", "HIGHWAY", "TER", "TERRACE"}
    | {"TRL", "TRAIL"}
)
# A street that is one suffix word is a name ("123 RIDGE") except for these, as usaddress reads it.
_LONE_SUFFIXES = frozenset({"STREET", "AVENUE", "ROAD", "DRIVE", "BOULEVARD", "PARKWAY", "HIGHWAY"})
# Suffix words that usaddress mostly reads as part of the name when they end the street: "OAK HILL".
_NAME_SUFFIXES = frozenset({"HILL", "GROVE", "VILLAGE"})
# Suffix words that can come before the street name.
_PRE_TYPES = _ROUTE_WORDS | {"AVENUE", "AVE", "AV", "AVEN", "AVENU", "AVN", "AVNUE"}
_NUMBERED_ROUTES = _ROUTE_WORDS - {"ROAD", "RD"}
_ROUTE_PREFIXES = frozenset({"US", "STATE", "COUNTY", "OLD", "FARM", "RANCH", "FM", "SR", "CR", "NEW"})
# Words that usaddress treats as suffixes but scourgify's table lacks; kept as written.
for _word in ("RT", "RTE", "FM", "HWAY"):
    _SUFFIXES.setdefault(_word, _word)
_EXTENSIONS = frozenset({"EXT", "EXTN", "EXTNSN", "EXTENSION"})

_DIRECTIONALS: dict[str, str] = dict(DIRECTIONAL_REPLACEMENTS)
_DIRECTIONALS.update({v: v for v in DIRECTIONAL_REPLACEMENTS.values()})

# Secondary unit designators (C2), keyed by every spelling.
_UNITS: dict[str, str] = {k: v for k, v in OCCUPANCY_TYPE_ABBREVIATIONS.items() if k != "#"}
_UNITS.update({v: v for v in _UNITS.values()})
_UNITS.update(
    {
        "UPPER": "UPPR",
        "UPPR": "UPPR",
        "HANGAR": "HNGR",
        "HNGR": "HNGR",
        "STE": "STE",
        "SUITE": "STE",
        "SUIT": "STE",
        "APT": "APT",
        "APPT": "APT",
        "APARTMENT": "APT",
        "BLDG": "BLDG",
        "BLD": "BLDG",
        "BUILDING": "BLDG",
        "FLR": "FL",
        "FL": "FL",
        "FLOOR": "FL",
        "RM": "RM",
        "ROOM": "RM",
        "DEPT": "DEPT",
        "DEPARTMENT": "DEPT",
        "OFC": "OFC",
        "OFFICE": "OFC",
        "TRLR": "TRLR",
        "SPC": "SPC",
        "LBBY": "LBBY",
        "BSMT": "BSMT",
        "FRNT": "FRNT",
        "LOWR": "LOWR",
    }
)
# Designators Pub 28 allows without a number.
_RANGELESS = frozenset({"BSMT", "FRNT", "LBBY", "LOWR", "OFC", "PH", "REAR", "SIDE", "UPPR"})
# Designators that are never ordinary street words, so they mark a unit anywhere in line 1.
_STRONG_UNITS = frozenset(
    {"STE", "SUITE", "SUIT", "APT", "APPT", "APARTMENT", "UNIT", "RM", "ROOM", "FL", "FLR", "FLOOR"}
    | {"BLDG", "BLD", "BUILDING", "DEPT", "DEPARTMENT", "TRLR", "TRAILER", "SPC", "OFC"}
)
_FLOOR_WORDS = frozenset({"FLOOR", "FL", "FLR"})
_ORDINAL_WORDS = frozenset(
    {"GROUND", "FIRST", "SECOND", "THIRD", "FOURTH", "FIFTH", "SIXTH", "SEVENTH", "EIGHTH", "NINTH", "TENTH"}
)
_NUMBER_WORDS = frozenset(
    {"ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN", "ELEVEN", "TWELVE"}
)
_GLUED_UNIT = re.compile(r"(STE|SUITE|APT|UNIT|RM|ROOM|BLDG|FL|FLOOR|DEPT)-?(\d+[A-Z]?)")
_ORDINAL = re.compile(r"\d+(?:ST|ND|RD|TH)")
_PO_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("PO", "BOX"),
    ("P", "O", "BOX"),
    ("POST", "OFFICE", "BOX"),
    ("POST", "BOX"),
    ("POBOX",),
    ("POB",),
    ("BOX",),
)
_DOMESTIC = frozenset({"", "US", "USA"})

# --- cleaning -----------------------------------------------------------------------------------

_PERIOD = re.compile(r"\.(?!\d)")
# ASCII punctuation scourgify deletes (it keeps # & - . / and splits on , ( )).
_DELETE = "!\"$%'*+:;<=>?@[\\]^_`{|}~"
_TRANSLATE: dict[int, str | None] = {ord(c): None for c in _DELETE}
_TRANSLATE.update({ord(c): " " for c in ",()\t\n\r\x0b\x0c"})
_TRANSLATE.update({c: None for c in range(32) if chr(c) not in "\t\n\r\x0b\x0c"})
_TRANSLATE[127] = None
_TRANSLATE[ord("#")] = " # "
_UNICODE_DELETE = ("M", "S", "C", "Nl", "No", "Pc", "Ps", "Pe", "Pi", "Pf", "Po")
_UNICODE_KEEP = frozenset("#&-./,()")


def _ascii_fold(text: str) -> str:
    """Apply scourgify's Unicode cleaning (NFKD, drop marks and symbols, dashes to '-')."""
    text = unicodedata.normalize("NFKD", text).replace("\u2044", "/")
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat.startswith("Pd"):
            out.append("-")
        elif cat.startswith("Z"):
            out.append(" ")
        elif not cat.startswith(_UNICODE_DELETE) or ch in _UNICODE_KEEP:
            out.append(ch)
    return "".join(out)


def _tokens(text: str) -> list[str]:
    """Upper-case ``text``, strip punctuation the way scourgify does, and split it into words."""
    if not text:
        return []
    if text.isascii():
        text = text.upper()
        if text.replace(" ", "").isalnum():  # the common case: nothing to strip
            return text.split()
    else:
        text = _ascii_fold(text).upper()
    if "." in text:
        text = _PERIOD.sub("", text)
    if "-" in text:
        for long_form, abbr in AMBIGUOUS_DIRECTIONALS.items():
            text = text.replace(long_form, abbr)
    return [t for t in text.translate(_TRANSLATE).split() if t.strip("-/.")]


def _clean_text(text: str) -> str:
    """A free-text field (city, state) cleaned like an address line, without periods."""
    if text.isascii() and text.isupper() and text.replace(" ", "").isalpha():  # the common case
        return text if "  " not in text and text[0] != " " and text[-1] != " " else " ".join(text.split())
    return " ".join(_tokens(text)).replace(".", "")


def _squash(text: str) -> str:
    """Upper case and single spaces: all that is done to non-US addresses."""
    return " ".join(text.upper().split())


# --- token predicates ---------------------------------------------------------------------------


_DIGIT = re.compile(r"\d")


def _has_digit(token: str) -> bool:
    return _DIGIT.search(token) is not None


def _is_unit_id(token: str, after_designator: bool = False) -> bool:
    """Whether ``token`` can be a unit number: ``200``, ``1C``, ``B-2``, ``A``, ``G-D``.

    A lone directional letter (``E``) is a unit only after a designator (``STE E``).
    """
    if _has_digit(token):
        return True
    if token in _SUFFIXES or not all(len(part) <= 2 and part.isalpha() for part in token.split("-")):
        return False
    return after_designator or token not in _DIRECTIONALS


def _is_ordinal(token: str) -> bool:
    return token in _ORDINAL_WORDS or _ORDINAL.fullmatch(token) is not None


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}TH"
    return f"{number}{ {1: 'ST', 2: 'ND', 3: 'RD'}.get(number % 10, 'TH') }"


# --- parsing ------------------------------------------------------------------------------------


def _po_box(tokens: list[str]) -> list[str] | None:
    """``['PO', 'BOX', id, ...rest]`` when ``tokens`` starts with a PO box, else ``None``."""
    first = tokens[0]
    if first[0] not in "PB":
        return None
    if first.startswith("POBOX") and len(first) > 5 and first[5:].isdigit():
        return ["PO", "BOX", first[5:], *tokens[1:]]
    for prefix in _PO_PREFIXES:
        n = len(prefix)
        if len(tokens) > n and tuple(tokens[:n]) == prefix:
            rest = tokens[n:]
            if rest[0] in ("#", "NO") and len(rest) > 1:
                rest = rest[1:]
            if prefix == ("BOX",) and not _has_digit(rest[0]):
                return None
            return ["PO", "BOX", *rest]
    return None


def _units(tokens: list[str]) -> tuple[list[str], bool]:
    """Abbreviate the unit designators in ``tokens``; the flag says whether nothing else was there.

    Text that is not a unit ends the search: "MEDICAL OFFICE BUILDING" keeps its OFFICE.
    """
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < n else ""
        if tok == "#" and nxt:
            out += ("#", nxt)
            i += 2
            continue
        abbr = _UNITS.get(tok)
        if abbr is not None:
            j = i + 1
            if j + 1 < n and tokens[j] in ("#", "NO"):
                j += 1
            if j < n and _is_unit_id(tokens[j], after_designator=True):
                out += (abbr, tokens[j])
                i = j + 1
                continue
            if abbr in _RANGELESS and (not nxt or nxt in _UNITS or nxt == "#"):
                out.append(abbr)
                i += 1
                continue
        elif nxt in _FLOOR_WORDS and _is_ordinal(tok):
            out += ("FL", tok)
            i += 2
            continue
        else:
            glued = _GLUED_UNIT.fullmatch(tok)
            if glued is not None:
                out += (_UNITS[glued[1]], glued[2])
                i += 1
                continue
        return out + tokens[i:], False
    return out, True


def _unit_start(rest: list[str]) -> int:
    """Index in ``rest`` (line 1 after the house number) where a secondary unit begins."""
    n = len(rest)
    seen_suffix = False
    for i in range(n):
        tok = rest[i]
        if i > 0:
            if tok == "#":
                return i
            nxt = rest[i + 1] if i + 1 < n else ""
            if tok in _UNITS and (seen_suffix or tok in _STRONG_UNITS):
                after = rest[i + 2] if nxt in ("#", "NO") and i + 2 < n else nxt
                if after and _is_unit_id(after, after_designator=True):
                    return i
                if not after and _UNITS[tok] in _RANGELESS and seen_suffix:
                    return i
            if nxt in _FLOOR_WORDS and _is_ordinal(tok) and (i + 2 == n or rest[i + 2] in _UNITS):
                return i
            if _GLUED_UNIT.fullmatch(tok) and seen_suffix:
                return i
        if tok in _SUFFIXES:
            seen_suffix = True
    return n


def _names_route(s: list[str], k: int) -> bool:
    """Whether suffix ``s[k]`` takes a route number: HIGHWAY 50, RT 9, STATE ROAD 7 (not MAIN ROAD 5)."""
    return s[k] in _NUMBERED_ROUTES or (s[k] in _ROUTE_WORDS and s[k - 1] in _ROUTE_PREFIXES)


def _street(street: list[str]) -> tuple[list[str], list[str]]:
    """Standardize the street part of line 1 (after the house number); return it and any unit."""
    s = street
    pre: list[str] = []
    # "NORTH AVE" and "SOUTHWEST ELM" are names; "NORTH MAIN ST" and "SOUTH FOREST" are not.
    if (
        len(s) >= 2
        and s[0] in _DIRECTIONALS
        and (len(s) > 2 or not (s[1] in _CORE_SUFFIXES or len(s[0]) > 5))
    ):
        pre = [_DIRECTIONALS[s[0]]]
        s = s[1:]
    unit: list[str] = []
    # A bare identifier after the suffix (and directional) is a unit: "MAIN ST 310", "MAIN ST N A".
    k = 0
    if len(s) >= 3 and _is_unit_id(s[-1]):
        k = len(s) - 2
        if s[k] in _DIRECTIONALS and s[k - 1] in _SUFFIXES and k >= 2:
            k -= 1
    elif len(s) >= 4 and s[-1] in _DIRECTIONALS and s[-2] in _DIRECTIONALS:
        k = len(s) - 3  # "MAIN ST NE E": the second directional is a unit
    if k >= 1 and s[k] in _SUFFIXES and not _names_route(s, k):
        unit = ["UNIT", s[-1]]
        s = s[:-1]
    post: list[str] = []
    if len(s) >= 2 and s[-1] in _DIRECTIONALS and s[-2] not in _DIRECTIONALS:
        post = [_DIRECTIONALS[s[-1]]]
        s = s[:-1]
    s = list(s)
    n = len(s)
    last = n - 1
    if n and s[last] not in _SUFFIXES:
        # Pre-type: AVENUE OF THE AMERICAS, HIGHWAY 50, US HIGHWAY 50, OLD STATE ROAD 7.
        for j in range(last):
            word = s[j]
            if word in _PRE_TYPES and (j == 0 or (word in _ROUTE_WORDS and s[j - 1] in _ROUTE_PREFIXES)):
                pair = _PAIR_SUFFIXES.get((s[j - 1], word)) if j else None
                s[j] = pair or _SUFFIXES[word]
                return pre + s + post, unit
        # Otherwise the suffix may be followed by a name: "METROPOLITAN DRIVE ASSOCIATED MEDICAL".
        for j in range(last - 2, 0, -1):
            if s[j] in _SUFFIXES:
                last = j
                break
    if n == 1:
        if s[0] in _LONE_SUFFIXES and not pre:  # "123 PARKWAY" but "123 RIDGE", "123 S FOREST"
            s[0] = _SUFFIXES[s[0]]
    elif n and s[last] in _SUFFIXES and s[last] not in _NAME_SUFFIXES:
        if s[last] in _EXTENSIONS and last >= 2 and s[last - 1] in _SUFFIXES:
            s[last - 1] = _SUFFIXES[s[last - 1]]
        s[last] = _SUFFIXES[s[last]]
        if last == 1 and s[0].isdigit():
            s[0] = _ordinal(int(s[0]))
    return pre + s + post, unit


def _is_units(tokens: list[str]) -> bool:
    """Whether ``tokens`` hold only secondary units ("STE 200", "2ND FLOOR") or a bare unit ("200")."""
    return _units(tokens)[1] or (len(tokens) == 1 and _is_unit_id(tokens[0]))


def _street_on_line2(t1: list[str], t2: list[str]) -> bool:
    """Whether the street is on line 2, under a building name or a unit on line 1.

    "MEDICAL ARTS BUILDING" / "15 BROAD AVE", "ONE MEDICAL CENTER" / "1 MAIN ST",
    "ATTN BILLING" / "PO BOX 12" and "SUITE 200" / "1 MAIN ST" all have their street on line 2.
    """
    if _is_units(t2):
        return False
    if _is_units(t1):
        return True
    if t1[0][0].isdigit() or _po_box(t1) is not None:
        return False
    return t2[0][0].isdigit() or _po_box(t2) is not None


def _standardize_us(line1: str, line2: str, state: str) -> tuple[str, str]:
    """Standardize the two delivery lines of a domestic address."""
    t1 = _tokens(line1)
    t2 = _tokens(line2)
    if state != "CT":  # scourgify reads a lone "CT" as COURT unless the state is Connecticut
        for toks in (t1, t2):
            if "CT" in toks:
                toks[toks.index("CT")] = "COURT"
                break
    if t1 and t2 and _street_on_line2(t1, t2):
        t1, t2 = t2, t1
    if t2:
        box = _po_box(t2)
        if box is not None:
            t2 = box
    units2, _ = _units(t2)
    if not t1:
        return "", " ".join(units2)
    box = _po_box(t1)
    if box is not None:
        head, rest = box[:3], box[3:]
        if rest:
            units1, only = _units(rest)
            if not only:
                head, units1 = head + rest, []
        else:
            units1 = []
        return " ".join(head), " ".join(units1 + units2)
    number: list[str] = []
    i = 0
    if _has_digit(t1[0]) or t1[0] in _NUMBER_WORDS:
        number.append(t1[0])
        i = 1
        if i < len(t1) and "/" in t1[i] and _has_digit(t1[i]):
            number.append(t1[i])
            i += 1
    rest = t1[i:]
    k = _unit_start(rest)
    street, unit_part = rest[:k], rest[k:]
    line1_tokens, bare_unit = _street(street)
    units1, _ = _units(unit_part)
    if len(units2) == 1 and not bare_unit and not units1 and _is_unit_id(units2[0]) and units2[0] != "#":
        units2 = ["UNIT", units2[0]]
    return " ".join(number + line1_tokens), " ".join(bare_unit + units1 + units2)


def _zip(postal: str) -> tuple[str, str]:
    """Split a US postal code into ZIP5 and ZIP+4; anything else gives blanks."""
    p = postal.strip()
    if p.isdigit() and p.isascii():
        if len(p) == 9:
            return p[:5], p[5:]
        if len(p) == 5:
            return p, ""
    elif len(p) == 10 and p[5] == "-" and p[:5].isdigit() and p[6:].isdigit() and p.isascii():
        return p[:5], p[6:]
    return "", ""


def address_country(country: str) -> str:
    """The ``country`` of a standardized address: ``US`` for a domestic one (NPPES leaves the
    country blank or writes US or USA), else the published code in upper case."""
    if not country or country == "US":
        return "US"
    country = _squash(country)
    return "US" if country in _DOMESTIC else country


@lru_cache(maxsize=CACHE_SIZE)
def _standardize(line1: str, line2: str, city: str, state: str, postal: str, country: str) -> StdAddress:
    """:func:`standardize_address` without the cache's key normalization (all arguments are str)."""
    country = address_country(country)
    if country != "US":
        return StdAddress(_squash(line1), _squash(line2), _squash(city), _squash(state), "", "", country)
    if not (len(state) == 2 and state.isascii() and state.isalpha() and state.isupper()):
        state = _clean_text(state)
        state = STATE_ABBREVIATIONS.get(state, state)
    zip5, zip4 = _zip(postal)
    try:
        std1, std2 = _standardize_us(line1, line2, state)
    except Exception:  # pragma: no cover - a bug here must not stop a 9.7M-row ingest
        std1, std2 = _squash(line1), _squash(line2)
    return StdAddress(std1, std2, _clean_text(city), state, zip5, zip4, "US")


def standardize_address(
    line1: str, line2: str, city: str, state: str, postal: str, country: str = ""
) -> StdAddress:
    """Standardize one address to USPS Publication 28 form; never raises.

    >>> std = standardize_address("1824 King Street Suite 300", "", "Jacksonville", "FL", "322044736")
    >>> std.line1, std.line2, std.zip5, std.zip4
    ('1824 KING ST', 'STE 300', '32204', '4736')

    ``country`` blank, ``US`` or ``USA`` means a domestic address; any other value gets only upper
    case and whitespace cleanup. ``None`` is accepted for any field and treated as blank. Results
    are cached (``CACHE_SIZE`` entries) because NPPES repeats addresses a lot.
    """
    return _standardize(line1 or "", line2 or "", city or "", state or "", postal or "", country or "")
