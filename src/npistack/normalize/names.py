"""Names and credentials: search keys, normalized credential lists, nicknames.

- ``name_key`` gives the form names are indexed and searched by: upper case ASCII letters,
  digits, spaces and '&', accents folded, apostrophes dropped and other punctuation turned into
  spaces ("O'Brien" -> "OBRIEN", "Smith-Jones" -> "SMITH JONES", "AZAR/FILIPOV" -> "AZAR FILIPOV").
- ``normalize_credentials`` turns NPPES's free-text credential into a list of tokens so that
  "M.D.", "MD" and "M. D." are the same: ``["MD"]``; "RN, MSN, CPNP" -> ``["RN", "MSN", "CPNP"]``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache

_NON_KEY = re.compile(r"[^A-Z0-9& ]+")
_SPACES = re.compile(r"\s+")
_CRED_SPLIT = re.compile(r"[,;/|]+|\s+-\s+|\s+AND\s+")
_CRED_KEEP = re.compile(r"[^A-Z0-9\-]+")


@lru_cache(maxsize=131072)
def name_key(value: str) -> str:
    """The search key of a name (see module docstring)."""
    if not value:
        return ""
    if not value.isascii():
        value = value.replace("ß", "ss").replace("ẞ", "SS")  # NFKD does not decompose the sharp s
        value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    value = value.upper().replace("'", "")
    value = _NON_KEY.sub(" ", value)
    return _SPACES.sub(" ", value).strip()


@lru_cache(maxsize=65536)
def normalize_credentials(text: str) -> tuple[str, ...]:
    """Credential tokens from free text, in order, without duplicates."""
    if not text or not text.strip():
        return ()
    out: list[str] = []
    for part in _CRED_SPLIT.split(text.upper()):
        part = part.replace(".", " ").strip()
        if not part:
            continue
        words = part.split()
        # "M D" (from "M. D.") and "PH D" are one credential; "MSW LICSW" are two.
        if all(len(w) <= 2 for w in words) and sum(len(w) for w in words) <= 5:
            words = ["".join(words)]
        for w in words:
            token = _CRED_KEEP.sub("", w).strip("-")
            if token and token not in out:
                out.append(token)
    return tuple(out)


@cache
def _nicknamer():  # type: ignore[no-untyped-def]
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=65536)
def _variants(first: str) -> frozenset[str]:
    """A first name's nicknames and the names it is a nickname of (upper-case keys), itself included."""
    key = name_key(first)
    if not key:
        return frozenset()
    nn = _nicknamer()
    low = key.lower()
    found = nn.nicknames_of(low) | nn.canonicals_of(low)
    return frozenset({key} | {name_key(n) for n in found})


def name_variants(first: str) -> set[str]:
    """A first name's nicknames and the names it is a nickname of (upper-case keys), itself included."""
    return set(_variants(first))
