"""Phone and fax numbers to E.164, as ``phonenumbers`` says, at a fraction of its cost.

``phonenumbers.parse`` + ``is_valid_number`` + ``format_number`` cost 20-35 µs per number, and
an NPPES row has up to five. Nearly all NPPES numbers are 10 bare digits of the North American
Numbering Plan (NANP), and for almost all of those ``phonenumbers``' verdict depends only on the
first six digits (area code and exchange): its NANP patterns constrain at most six leading digits
and leave the rest free (``...[2-9]\\d{6}``). So the verdict is computed once per 6-digit prefix,
with exactly the calls the slow path makes (``parse(number, "US")`` + ``is_valid_number``, which
accepts every NANP region: US, CA, PR, GU, VI ...), and cached.

"Almost": a few patterns constrain a seventh digit (phonenumbers 9.0: Barbados ``246521[0369]``,
``246522``; Jamaica ``8766060``). :func:`suffix_dependent_prefixes` finds such prefixes by reading
the NANP metadata patterns themselves, so a new metadata release cannot silently break the cache;
those numbers, and everything that is not plain NANP digits (extensions, letters, ``+``, foreign
numbers, short numbers, another default region), go to ``phonenumbers`` itself.

``tests/test_phone.py`` checks that the two paths agree on random digit strings, random strings and
every area code.
"""

from __future__ import annotations

import itertools
import re
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

from npistack.errors import NpistackError

__all__ = ["normalize_phone", "phone_digits", "suffix_dependent_prefixes"]

_MAX_INPUT_LENGTH = 250  # phonenumbers refuses longer input as TOO_LONG
_SEPARATORS = str.maketrans("", "", " ()-.")
_NOT_DIGITS = re.compile(r"[^0-9]+")
_NANP_FIRST = frozenset("23456789")  # area codes never start with 0 or 1
_PREFIX = 6

# 6-digit NANP prefix -> phonenumbers' verdict; at most 800,000 entries (area code x exchange).
_valid_prefixes: dict[str, bool] = {}


def _phonenumbers_e164(raw: str, region: str) -> str | None:
    """The slow path: E.164 when ``phonenumbers`` parses ``raw`` and finds it valid."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- which prefixes decide validity on their own ------------------------------------------------

try:  # the regex parser behind ``re``; without it the fast path is off, nothing else changes
    from re import _parser as _sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a Python without re._parser
    _sre = None

_ALL_DIGITS = frozenset("0123456789")
_NUMBER_DESCS = (
    "general_desc",
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)
_Shape = tuple[frozenset[str], ...]  # the digits a regex allows at each position


class _Unsupported(NpistackError):
    """A regex construct the metadata analysis does not handle."""


def _digit_class(items: Any) -> frozenset[str]:
    """The digits matched by a parsed character class (``[0369]``, ``[2-9]``, ``\\d``)."""
    chars: set[str] = set()
    negate = False
    for op, arg in items:
        if op is _sre.NEGATE:
            negate = True
        elif op is _sre.LITERAL:
            chars.add(chr(arg))
        elif op is _sre.RANGE:
            chars.update(chr(c) for c in range(arg[0], arg[1] + 1))
        elif op is _sre.CATEGORY and arg is _sre.CATEGORY_DIGIT:
            chars.update(_ALL_DIGITS)
        else:
            raise _Unsupported(op)
    digits = frozenset(chars) & _ALL_DIGITS
    return _ALL_DIGITS - digits if negate else digits


def _paths(parsed: Any, limit: int = 10) -> set[_Shape]:
    """Every sequence of per-position digit sets a parsed regex matches, cut after ``limit`` + 1."""
    result: set[_Shape] = {()}
    for op, arg in parsed:
        if op is _sre.LITERAL:
            alternatives: set[_Shape] = {(frozenset(chr(arg)),)}
        elif op is _sre.IN:
            alternatives = {(_digit_class(arg),)}
        elif op is _sre.SUBPATTERN:
            alternatives = _paths(arg[3], limit)
        elif op is _sre.BRANCH:
            alternatives = {path for branch in arg[1] for path in _paths(branch, limit)}
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            low, high, sub = arg
            inner = _paths(sub, limit)
            alternatives = set()
            for count in range(low, min(high, limit + 1) + 1):
                for combo in itertools.product(inner, repeat=count):
                    alternatives.add(sum(combo, ())[: limit + 1])
        else:
            raise _Unsupported(op)
        result = {(head + tail)[: limit + 1] for head in result for tail in alternatives}
    return result


def _prefixes(path: _Shape) -> set[str]:
    """The 6-digit prefixes a path allows."""
    return {"".join(chars) for chars in itertools.product(*(sorted(s) for s in path[:_PREFIX]))}


@cache
def suffix_dependent_prefixes() -> frozenset[str] | None:
    """The 6-digit prefixes whose NANP verdict also depends on later digits.

    Read from the ``phonenumbers`` metadata of every NANP region: the national number patterns that
    ``is_valid_number`` matches and the ``leading_digits`` that pick the region. ``None`` when the
    patterns use a construct this analysis does not handle; then nothing takes the fast path.
    """
    if _sre is None:  # pragma: no cover
        return None
    found: set[str] = set()
    try:
        for region in phonenumbers.region_codes_for_country_code(1):
            metadata = PhoneMetadata.metadata_for_region(region)
            if metadata is None:  # pragma: no cover
                return None
            for name in _NUMBER_DESCS:
                desc = getattr(metadata, name)
                if desc is None or not desc.national_number_pattern:
                    continue
                for path in _paths(_sre.parse(desc.national_number_pattern)):
                    # A 10-digit pattern that constrains a digit after the sixth.
                    if len(path) == 10 and any(s != _ALL_DIGITS for s in path[_PREFIX:]):
                        found |= _prefixes(path)
            if metadata.leading_digits:
                for path in _paths(_sre.parse(metadata.leading_digits)):
                    if len(path) > _PREFIX:  # matched as a prefix: every position counts
                        found |= _prefixes(path)
    except (_Unsupported, re.error, RecursionError):  # pragma: no cover - depends on the metadata
        return None
    return frozenset(found)


# --- public API ---------------------------------------------------------------------------------


def _nanp_valid(national: str) -> bool:
    """``phonenumbers``' verdict on a 10-digit NANP number, cached by its first six digits."""
    prefix = national[:_PREFIX]
    valid = _valid_prefixes.get(prefix)
    if valid is None:
        valid = _valid_prefixes[prefix] = phonenumbers.is_valid_number(phonenumbers.parse(national, "US"))
    return valid


def normalize_phone(raw: str, region: str = "US") -> str | None:
    """``raw`` in E.164 (``'+15408224224'``) when ``phonenumbers`` finds it valid, else ``None``.

    ``region`` is the default region for numbers written without ``+`` and a country code.
    The result is always the one ``phonenumbers.parse`` + ``is_valid_number`` + ``format_number``
    give; plain NANP numbers just get there faster.
    """
    if region == "US" and raw.isascii() and len(raw) <= _MAX_INPUT_LENGTH:
        digits = raw if raw.isdigit() else raw.translate(_SEPARATORS)
        if digits.isdigit():
            if len(digits) == 11 and digits[0] == "1":
                digits = digits[1:]
            if len(digits) == 10 and digits[0] in _NANP_FIRST:
                special = suffix_dependent_prefixes()
                if special is not None and digits[:_PREFIX] not in special:
                    return "+1" + digits if _nanp_valid(digits) else None
    return _phonenumbers_e164(raw, region)


def phone_digits(raw: str) -> str:
    """The ASCII digits of ``raw``, in order: ``'(540) 822-4224'`` -> ``'5408224224'``."""
    if raw.isdigit() and raw.isascii():
        return raw
    return _NOT_DIGITS.sub("", raw)
