"""Record matching's engine (``services.match``): the :class:`Matcher`, which finds a record's
candidates by NPI, license and name (with typos), scores them field by field (``services.match.score``)
and turns the scores into calibrated confidences (``services.match.result``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import orjson
from rapidfuzz import process
from rapidfuzz.distance import OSA

from npistack.normalize.names import name_variants
from npistack.nppes.npi import npi_problem
from npistack.records.keys import license_key
from npistack.records.rows import StoredProvider
from npistack.services.match.input import (
    MatchInput,
    Parsed,
    PersonName,
    license_forms,
    org_key,
    parse,
)
from npistack.services.match.result import Candidate, MatchResult, calibrate
from npistack.services.match.score import (
    SWAPPED,
    Facts,
    Frequencies,
    Score,
    _last_level,
    _name_weight,
    facts_of,
    score,
    w,
)
from npistack.services.match.vocab import Lru, Vocab, near_keys, org_prefixes
from npistack.storage import match as q_
from npistack.storage.base import SqlStore
from npistack.storage.changes import versions_of

__all__ = ["Matcher", "match_records"]

THRESHOLD = 0.9
PRIOR = 0.9  # the share of records whose provider is in the registry
PRIOR_WITH_NPI = 0.99  # ... when the record holds an NPI the registry has
AMBIGUOUS_BEST = 0.2
AMBIGUOUS_SUM = 0.5
CANDIDATES_SHOWN = 5
PRESCORED_MAX = 80  # candidates ranked by name, place and specialty from the indexes
TIED_NAME = 9.0  # ... more when this many have a name within TIED_NAME (the most place adds) of the best
TIED_MAX = 2000
CREDENTIAL_SAMPLE = 20_000  # documents read for the credentials' frequencies
SCORED_MAX = 12  # candidates read whole and scored on every field
STRONG_NAME = 6.0  # a name weight above this needs no typo search


class Matcher:
    """Matches records against one store (reads only). Not thread-safe: one per thread."""

    def __init__(self, store: SqlStore, *, threshold: float = THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.store = store
        self.threshold = threshold
        totals = q_.entity_counts(store)
        self._counts: Lru = Lru(200_000)
        self.freq = Frequencies(
            self._last_count,
            self._first_count,
            totals,
            last_near=self._last_near,
            first_near=self._first_near,
            code=self._code_count,
            credential=self._credential_share,
        )
        self._credentials: dict[str, float] | None = None
        self._firsts: Vocab | None = None
        self._first_counts: dict[str, int] = {}
        self._first_list: list[str] = []
        self._first_by_prefix: dict[str, list[str]] = {}
        self._facts: Lru = Lru(50_000)
        self._vocab: dict[int, Vocab] = {}
        self._orgs: tuple[Vocab, dict[str, list[str]]] | None = None

    # -- frequencies, vocabulary, facts ---------------------------------------------------------
    def _last_count(self, key: str) -> int:
        return int(self._counts.get_or(("l", key), lambda: q_.key_count(self.store, 1, key)))

    def _first_count(self, key: str) -> int:
        return int(self._counts.get_or(("f", key), lambda: q_.first_key_count(self.store, key)))

    def _credential_share(self, credential: str) -> float:
        """Share of individuals holding a credential, from a sample of the registry."""
        if self._credentials is None:
            held: dict[str, int] = {}
            people = 0
            for raw in q_.sample_docs(self.store, CREDENTIAL_SAMPLE):
                doc = orjson.loads(raw)
                if doc.get("entityType") == "NPI-1":
                    people += 1
                    for c in set((doc.get("name") or {}).get("credentials") or ()):
                        held[c] = held.get(c, 0) + 1
            self._credentials = {c: n / people for c, n in held.items()} if people else {}
        return self._credentials.get(credential, 0.0)

    def _code_count(self, code: str) -> int:
        return int(self._counts.get_or(("c", code), lambda: q_.code_count(self.store, code)))

    def _last_near(self, key: str) -> int:
        """How many people have a last name within a typo of ``key`` (other than ``key``)."""

        def count() -> int:
            return sum(self._last_count(k) for k in self._fuzzy_keys(1, key, limit=None))

        return int(self._counts.get_or(("ln", key), count))

    def _first_near(self, key: str) -> int:
        """How many people have a first name within a typo of ``key`` (other than ``key``)."""
        firsts = self._first_vocab()
        return int(
            self._counts.get_or(
                ("fn", key), lambda: sum(self._first_counts.get(k, 0) for k in near_keys(key, firsts, None))
            )
        )

    def _first_vocab(self) -> Vocab:
        if self._firsts is None:
            self._first_counts = {k: n for k, n in q_.first_vocabulary(self.store) if k}
            self._firsts = Vocab(self._first_counts)
            self._first_list = sorted(self._first_counts)
            for k in self._first_list:
                self._first_by_prefix.setdefault(k[:3], []).append(k)
        return self._firsts

    def _first_typos(self, key: str) -> list[str]:
        """The registry's first names that ``key`` may be a typo of (``_first_level`` "typo"):
        within one or two edits (the first letter right), or one starting with the other."""

        def find() -> list[str]:
            vocab = self._first_vocab()
            out = set(near_keys(key, vocab, None, shortest=3))
            if len(key) >= 3:
                out.update(
                    k
                    for k in self._first_by_prefix.get(key[:3], ())
                    if k.startswith(key) or key.startswith(k)
                )
            return sorted(out - {key})

        return list(self._counts.get_or(("ft", key), find))

    def _fuzzy_keys(self, klass: int, key: str, limit: int | None = 10) -> list[str]:
        """Name keys within one (short names) or two edits of ``key``, same first letter."""
        vocab = self._vocab.get(klass)
        if vocab is None:
            vocab = self._vocab[klass] = Vocab(q_.name_vocabulary(self.store, klass))
        return list(
            self._counts.get_or(("fz", klass, key, limit), lambda: near_keys(key, vocab, limit, shortest=3))
        )

    def _org_vocab(self) -> tuple[Vocab, dict[str, list[str]]]:
        """Organization name keys by their ``org_key`` (legal form words dropped): the keys by
        (first letter, length), and the registry's name keys of each."""
        if self._orgs is None:
            raw: dict[str, list[str]] = {}
            for k in q_.name_vocabulary(self.store, 2):
                if k:
                    raw.setdefault(org_key(k), []).append(k)
            self._orgs = (Vocab(raw), raw)
        return self._orgs

    def _fuzzy_org_keys(self, key: str) -> list[str]:
        """Organization keys (``org_key`` form) within two edits of ``key``, same first letter."""
        if len(key) < 6:
            return []
        grouped, _ = self._org_vocab()
        pool = grouped.pool(key[0], len(key) - 2, len(key) + 2)
        found = process.extract(key, pool, scorer=OSA.distance, score_cutoff=2, limit=10)
        return [k for k, d, _ in sorted(found, key=lambda x: x[1]) if k != key]

    def _load(self, npis: Sequence[int]) -> dict[int, Facts]:
        out: dict[int, Facts] = {}
        missing = []
        for n in npis:
            if n in self._facts:
                out[n] = self._facts[n]
            else:
                missing.append(n)
        if missing:
            for sp in self.store.get_stored(missing):
                f = facts_of(sp, license_key)
                self._facts[f.npi] = f
                if len(self._facts) > self._facts.size:
                    self._facts.popitem(last=False)
                out[f.npi] = f
        return out

    def _before_deactivation(self, f: Facts) -> Facts:
        """A deactivated stub's facts, with names and addresses from its last full version."""
        for v in reversed(versions_of(self.store, f.npi)):
            doc = (v.content or {}).get("doc") or {}
            if doc.get("entityType"):
                extras = [(str(k), d) for k, d in (v.content or {}).get("extras") or []]
                old = facts_of(StoredProvider({**doc, "npi": f"{f.npi:010d}"}, extras), license_key)
                old.status, old.deactivation_date = f.status, f.deactivation_date
                return old
        return f

    # -- candidates -----------------------------------------------------------------------------
    @staticmethod
    def _last_keys(p: PersonName) -> list[str]:
        keys = [p.last] if p.last else []
        if p.last and " " in p.last:
            keys += [t for t in p.last.split() if len(t) > 1]
        return keys

    def _first_forms(self, first: str) -> set[str]:
        """A first name, its nicknames and the registry's first names it may be a typo of."""
        return name_variants(first) | {first} | set(self._first_typos(first))

    def _person_rows(self, p: PersonName) -> list[tuple[int, str, str]]:
        """Name rows for a person's name (last name key or its parts; the first name's forms)."""
        keys = self._last_keys(p)
        if not keys:
            return []
        if not p.first:
            return q_.names_by_key(self.store, 1, keys, None)
        if len(p.first) == 1:
            return [r for r in q_.names_by_key(self.store, 1, keys, None) if r[2][:1] == p.first]
        return q_.names_by_key(self.store, 1, keys, sorted(self._first_forms(p.first)))

    def _pair_weight(self, q: Parsed, last: str, first: str) -> float:
        """The name weight of a (name key, first key) pair for the record."""
        if q.entity_type == 2:
            return 10.0 if org_key(last) == q.org_key else 0.0
        cand, p = PersonName(last, first), q.person
        straight = _name_weight(PersonName(p.last, p.first), cand, "legal", self.freq)[0]
        if not (p.first and p.last and _last_level(p.first, last) in ("exact", "part", "typo")):
            return straight  # the record's first name is not this candidate's last name: not swapped
        return max(straight, _name_weight(PersonName(p.first, p.last), cand, "legal", self.freq)[0] + SWAPPED)

    def _name_prescore(
        self, q: Parsed, rows: list[tuple[int, str, str]], pairs: dict[tuple[str, str], float]
    ) -> dict[int, float]:
        """The best name weight per NPI; ``pairs`` caches the weight of each distinct name pair
        for this record (many rows share a common pair)."""
        best: dict[int, float] = {}
        for npi, last, first in rows:
            value = pairs.get((last, first))
            if value is None:
                value = pairs[last, first] = self._pair_weight(q, last, first)
            if value > best.get(npi, -math.inf):
                best[npi] = value
        return best

    def _shortlist(self, q: Parsed, pre: dict[int, float]) -> list[int]:
        """The candidates worth reading whole: best by name, then by where they practice and
        their specialty (read from the indexes, not the documents)."""
        ranked = sorted(pre, key=lambda n: -pre[n])
        if len(ranked) <= SCORED_MAX:
            return ranked
        # Every candidate whose name is nearly as good as the best one's is ranked by place and
        # specialty (a common name shared by hundreds: the one at the record's address must not
        # be cut at random); at least PRESCORED_MAX are.
        best = pre[ranked[0]]
        keep = sum(1 for n in ranked if pre[n] >= best - TIED_NAME)
        ranked = ranked[: min(max(keep, PRESCORED_MAX), TIED_MAX)]
        extra = dict.fromkeys(ranked, 0.0)
        if q.state or q.zip5 or q.city_key:
            levels: dict[int, float] = {}
            for npi, st, city, zip5 in q_.places_of(self.store, ranked, q.state):
                lvl = (
                    3.0
                    if q.zip5 and zip5 == q.zip5
                    else 2.0
                    if q.city_key and city == q.city_key and st == q.state
                    else 1.0
                    if st == q.state
                    else 0.0
                )
                levels[npi] = max(levels.get(npi, 0.0), lvl)
            for npi, lvl in levels.items():
                extra[npi] += 3.0 * lvl
        ranked = sorted(ranked, key=lambda n: -(pre[n] + extra[n]))[:PRESCORED_MAX]
        if q.codes:
            for npi in {npi for npi, code in q_.codes_of(self.store, ranked) if code in q.codes}:
                extra[npi] += 3.0
        return sorted(ranked, key=lambda n: -(pre[n] + extra[n]))[:SCORED_MAX]

    def _name_candidates(self, q: Parsed, notes: list[str]) -> dict[int, float]:
        found: dict[int, float] = {}
        pairs: dict[tuple[str, str], float] = {}

        def add(rows: list[tuple[int, str, str]]) -> None:
            for npi, v in self._name_prescore(q, rows, pairs).items():
                if v > found.get(npi, -math.inf):
                    found[npi] = v

        if q.entity_type == 1:
            p = q.person
            add(self._person_rows(p))
            if p.first and p.last:
                add(self._person_rows(PersonName(p.first, p.last, p.middle)))  # swapped
            weak = max(found.values(), default=-math.inf) <= STRONG_NAME
            if p.last and (weak or p.last not in {last for last, _ in pairs}):
                # the last name mistyped (also when only a part of it, or the swapped name, was found)
                typo_keys = self._fuzzy_keys(1, p.last)
                if typo_keys:
                    firsts = sorted(name_variants(p.first) | {p.first}) if len(p.first) > 1 else None
                    add(q_.names_by_key(self.store, 1, typo_keys, firsts))
            weak = max(found.values(), default=-math.inf) <= STRONG_NAME  # after the typo search
            if weak and p.last and p.first and len(p.first) > 1 and (q.zip5 or q.city_key):
                add(
                    q_.names_in_area(
                        self.store,
                        1,
                        first_keys=sorted(name_variants(p.first) | {p.first}),
                        zip5=q.zip5,
                        city_key=q.city_key,
                        state=q.state,
                    )
                )
        elif q.entity_type == 2 and q.org_key:
            for prefix in org_prefixes(q.org_key):
                add(q_.names_by_prefix(self.store, 2, prefix))
            if max(found.values(), default=-math.inf) <= STRONG_NAME:
                first_word = q.org_key.split()[0]
                if q.zip5 or q.city_key:
                    add(
                        q_.names_in_area(
                            self.store,
                            2,
                            key_prefix=first_word,
                            zip5=q.zip5,
                            city_key=q.city_key,
                            state=q.state,
                        )
                    )
                for k in self._fuzzy_org_keys(q.org_key)[:5]:
                    add(q_.names_by_key(self.store, 2, self._org_vocab()[1][k]))
        return found

    # -- matching -------------------------------------------------------------------------------
    def match(self, records: Sequence[MatchInput]) -> list[MatchResult]:
        """Match each record (same order)."""
        return [self.match_one(r) for r in records]

    def match_one(self, raw: MatchInput) -> MatchResult:
        q = parse(raw)
        notes: list[str] = []
        if raw.is_empty() or not (q.npi or q.license or q.has_name()):
            return MatchResult(
                "no_match",
                0.0,
                None,
                None,
                None,
                notes=["nothing to match on: give an NPI, a license or a name"],
            )
        pool: dict[int, Facts] = {}
        prior = PRIOR
        npi_weight = 0.0
        n_all = self.freq.n_people + self.freq.n_orgs
        if q.npi:
            problem = npi_problem(q.npi)
            if problem:
                notes.append(f"npi: {problem}; matched on the other fields")
                q.npi = ""
            else:
                got = self._load([int(q.npi)])
                if not got:
                    notes.append(f"npi: {q.npi} is not in the registry; matched on the other fields")
                    q.npi = ""
                else:
                    f = got[int(q.npi)]
                    if f.entity_type is None:
                        f = self._before_deactivation(f)
                    pool[f.npi] = f
                    prior = PRIOR_WITH_NPI
                    npi_weight = w(0.95, 1.0 / n_all)
        if q.license:
            rows = [
                r
                for k in license_forms(q.license)
                for r in q_.npis_by_license(self.store, k, q.license_state)
            ]
            if not rows and q.license_state:
                rows = [r for k in license_forms(q.license) for r in q_.npis_by_license(self.store, k, "")]
            pool.update(self._load([n for n, _ in rows]))
        org_same = 1
        if q.has_name():
            pre = self._name_candidates(q, notes)
            if q.entity_type == 2:
                org_same = max(1, sum(1 for v in pre.values() if v >= 10.0))
            ranked = self._shortlist(q, pre)
            pool.update(self._load([n for n in ranked if n not in pool]))
        if not pool:
            return MatchResult("no_match", 0.0, None, None, None, notes=notes)
        n = {1: self.freq.n_people, 2: self.freq.n_orgs}.get(q.entity_type or 0, n_all)
        scored: list[tuple[Score, Facts]] = [
            (score(q, f, self.freq, npi_weight=npi_weight, org_same_key=org_same), f) for f in pool.values()
        ]
        return self._outcome(scored, n * (1.0 - prior) / prior, notes)

    def _outcome(self, scored: list[tuple[Score, Facts]], k_none: float, notes: list[str]) -> MatchResult:
        top = max(s.total for s, _ in scored)
        log_den = top + math.log(
            math.exp(math.log(k_none) - top) + sum(math.exp(s.total - top) for s, _ in scored)
        )
        ranked = sorted(scored, key=lambda sf: (-sf[0].total, sf[1].npi))
        cands = [
            Candidate(
                npi=f"{f.npi:010d}",
                confidence=round(calibrate(math.exp(s.total - log_den)), 4),
                name=f.display,
                status=f.status,
                city=f.city,
                state=f.state,
                evidence={"agreed": s.agreed, "disagreed": s.disagreed},
            )
            for s, f in ranked[:CANDIDATES_SHOWN]
        ]
        best_s, best_f = ranked[0]
        conf = cands[0].confidence
        total = sum(c.confidence for c in cands)
        evidence = {"agreed": best_s.agreed, "disagreed": best_s.disagreed}
        if conf >= self.threshold:
            if best_f.status == "deactivated":
                notes.append(
                    f"npi: {best_f.npi:010d} was deactivated on {best_f.deactivation_date or 'an unknown date'}"
                )
            return MatchResult(
                "matched",
                conf,
                f"{best_f.npi:010d}",
                best_f.status,
                best_f.deactivation_date,
                cands,
                evidence,
                notes,
            )
        if conf >= AMBIGUOUS_BEST or total >= AMBIGUOUS_SUM:
            return MatchResult("ambiguous", conf, None, None, None, cands, evidence, notes)
        return MatchResult("no_match", conf, None, None, None, cands, evidence, notes)


def match_records(
    store: SqlStore, records: Sequence[MatchInput], *, threshold: float = THRESHOLD
) -> list[MatchResult]:
    """Match records against a store (one :class:`Matcher` for the batch)."""
    return Matcher(store, threshold=threshold).match(records)
