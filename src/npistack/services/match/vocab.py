"""The registry's name vocabulary as record matching (``services.match``) searches it for typos: name
keys grouped by first letter and length (:class:`Vocab`), the keys within one or two edits of a key
(:func:`near_keys`), organization name prefixes, and a small LRU cache for the counts read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA


class Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class Vocab(dict[tuple[str, int], list[str]]):
    """Name keys grouped by (first letter, length), with the pools of neighbouring lengths cached."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        super().__init__()
        self._pools: dict[tuple[str, int, int], list[str]] = {}
        for k in keys:
            if k:
                self.setdefault((k[0], len(k)), []).append(k)

    def pool(self, letter: str, lo: int, hi: int) -> list[str]:
        """Keys starting with ``letter`` of a length from ``lo`` to ``hi``."""
        got = self._pools.get((letter, lo, hi))
        if got is None:
            got = self._pools[letter, lo, hi] = [
                k for n in range(lo, hi + 1) for k in self.get((letter, n), ())
            ]
        return got


def near_keys(key: str, vocab: Vocab, limit: int | None, shortest: int = 4) -> list[str]:
    """Keys of ``vocab`` within one edit of ``key`` (up to 5 letters) or two, with the same first
    letter, nearest first; ``key`` itself is left out, and keys shorter than ``shortest`` have none."""
    if len(key) < shortest:
        return []
    edits = 1 if len(key) <= 5 else 2
    pool = vocab.pool(key[0], len(key) - edits, len(key) + edits)
    found = process.extract(key, pool, scorer=OSA.distance, score_cutoff=edits, limit=limit)
    return [k for k, d, _ in sorted(found, key=lambda x: x[1]) if k != key]


def org_prefixes(key: str) -> list[str]:
    """Name key prefixes for an organization key: as written, with "&" for "AND" (name keys keep
    the ampersand), and after "THE"."""
    forms = [key, key.replace(" AND ", " & ")]
    return list(dict.fromkeys([*forms, *("THE " + f for f in forms)]))
