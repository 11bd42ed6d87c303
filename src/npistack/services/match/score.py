"""Evidence for "this record is this provider": per-field comparisons and their weights.

The model is Fellegi-Sunter record linkage. Each field compares at one *level* (exact, nickname,
typo, different ...) and adds the weight ``ln(m / u)``, where ``m`` is how often a CRM record of
the same provider shows that level (CRM data is stale and mistyped: an old phone, a moved practice)
and ``u`` how often a random other provider does. Names use their frequency in the registry for
``u``: a shared rare last name is strong evidence, a shared "SMITH" much less. A field either side
lacks adds nothing. ``services.match`` turns the summed weights of the candidates into a
confidence (``docs/matching.md`` has the table of levels, ``m`` and ``u``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from npistack.normalize.names import name_key, name_variants
from npistack.records.rows import StoredProvider
from npistack.services.match.input import Parsed, PersonName, license_forms, org_key
from npistack.services.match.specialty import related


def w(m: float, u: float) -> float:
    return math.log(m / u)


# (m, u) per level; the u of name agreement comes from the registry's name frequencies instead.
LAST = {"exact": 0.90, "other_name": 0.05, "part": 0.03, "typo": 0.03, "different": 0.02}
FIRST = {"exact": 0.85, "nickname": 0.08, "initial": 0.03, "typo": 0.02, "different": 0.02}
U_TYPO = 1e-3  # a name within a typo of the record's, when the registry's vocabulary is not at hand
U_CODE_MIN = 2e-3  # a rare taxonomy code is not stronger evidence than this
U_CREDENTIAL_MIN = 5e-3  # ... nor a rare credential
# Floors of name frequencies: a name rarer than this is not stronger evidence (a rare first name
# in a CRM is as often someone's nickname or typo as it is the provider's own).
U_LAST_MIN = 2e-5
U_FIRST_MIN = 5e-4  # a random provider's name is within a typo or two of a given one
U_FIRST_INITIAL = 0.06
SWAPPED = w(0.02, 0.90)  # first and last name in each other's place
MIDDLE = {"agree": (0.90, 0.07), "different": (0.05, 0.93)}
CREDENTIAL = {"agree": (0.80, 0.35), "different": (0.20, 0.65)}
ORG = {
    "exact": 0.80,
    "other_name": 0.10,  # a DBA or former name
    "parent": 0.03,  # the record names the parent organization of a subpart
    "close": (0.04, 1e-4),
    "partial": (0.02, 2e-3),
    "different": (0.01, 1.0),
}
LOCATION = {  # the best level over the practice locations and the mailing address
    "street": (0.55, 1e-5),
    "zip": (0.15, 3e-4),
    "city": (0.07, 2e-3),
    "state": (0.08, 0.05),
    "different": (0.15, 0.95),
}
STATE_ONLY = {"state": (0.85, 0.05), "different": (0.15, 0.95)}
PHONE = {"practice": (0.45, 1e-5), "fax": (0.05, 1e-5), "different": (0.50, 1.0)}
SPECIALTY = {"agree": (0.75, 0.04), "related": (0.15, 0.08), "different": (0.10, 0.88)}
LICENSE = {
    "agree": (0.70, 2e-6),
    "number_only": (0.70, 2e-5),
    "other_state": (0.05, 1e-4),
    "different": (0.25, 1.0),
}
NPI_DIFFERENT = w(0.03, 1.0)
ENTITY_DIFFERENT = w(0.01, 1.0)  # the record's NPI is another provider's (a typo or a stale NPI)


@dataclass
class Facts:
    """What a candidate provider holds, in the forms matching compares."""

    npi: int
    entity_type: int | None
    status: str
    deactivation_date: str | None
    names: list[tuple[str, PersonName]] = field(default_factory=list)  # ("legal" | "other", name)
    orgs: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, org key, text)
    credentials: frozenset[str] = frozenset()
    codes: tuple[str, ...] = ()
    licenses: tuple[tuple[str, str], ...] = ()  # (license key, state)
    locations: list[tuple[str, str, str, str, str]] = field(
        default_factory=list
    )  # purpose, line1, zip5, city, st
    phones: dict[str, str] = field(default_factory=dict)  # E.164 -> where
    faxes: dict[str, str] = field(default_factory=dict)
    display: str = ""
    city: str = ""
    state: str = ""


_key = lru_cache(maxsize=200_000)(name_key)  # names and cities recur across candidates


def _person(d: dict[str, Any]) -> PersonName:
    return PersonName(_key(d.get("last") or ""), _key(d.get("first") or ""), _key(d.get("middle") or ""))


def facts_of(sp: StoredProvider, license_key: Any) -> Facts:
    """Facts from a stored provider (``license_key`` is ``records.keys.license_key``)."""
    d = sp.doc
    entity = {"NPI-1": 1, "NPI-2": 2}.get(d.get("entityType") or "")
    f = Facts(int(d["npi"]), entity, d.get("status") or "active", d.get("deactivationDate"))
    creds: set[str] = set()
    if entity == 1:
        name = d.get("name") or {}
        f.names.append(("legal", _person(name)))
        creds.update(name.get("credentials") or [])
        f.display = " ".join(x for x in (name.get("first"), name.get("middle"), name.get("last")) if x)
        if name.get("credential"):
            f.display += f", {name['credential']}"
    elif entity == 2:
        text = d.get("organizationName") or ""
        f.orgs.append(("legal", org_key(text), text))
        f.display = text
        parent = (d.get("parentOrganization") or {}).get("name")
        if parent:
            f.orgs.append(("parent", org_key(parent), parent))
    others = list(d.get("otherNames") or []) + [x for k, x in sp.extras if k == "other_name"]
    for o in others:
        if o.get("organizationName"):
            f.orgs.append(("other_name", org_key(o["organizationName"]), o["organizationName"]))
        elif o.get("last") or o.get("first"):
            f.names.append(("other", _person(o)))
    f.credentials = frozenset(creds)
    f.codes = tuple(t["code"] for t in d.get("taxonomies") or [] if t.get("code"))
    f.licenses = tuple(
        (license_key(t["license"]), (t.get("licenseState") or "").upper())
        for t in d.get("taxonomies") or []
        if t.get("license")
    )
    addresses = [("primary", d.get("practiceLocation")), ("mailing", d.get("mailingAddress"))]
    addresses += [("secondary", x) for k, x in sp.extras if k == "location"]
    for purpose, a in addresses:
        if not a:
            continue
        std = a.get("std") or {}
        f.locations.append(
            (
                purpose,
                std.get("line1") or "",
                std.get("zip5") or "",
                _key(std.get("city") or ""),
                std.get("state") or "",
            )
        )
        if a.get("phone"):
            f.phones.setdefault(a["phone"], purpose)
        if a.get("fax"):
            f.faxes.setdefault(a["fax"], purpose)
    practice = d.get("practiceLocation") or d.get("mailingAddress") or {}
    f.city, f.state = practice.get("city") or "", practice.get("state") or ""
    return f


DISAGREEING = (
    ": different",
    "not on record",
    "another state",
    "swapped",
    "not recognized",
    "same state only",
)


@dataclass
class Score:
    total: float = 0.0
    agreed: list[str] = field(default_factory=list)
    disagreed: list[str] = field(default_factory=list)

    def add(self, weight: float, what: str) -> None:
        """Count a comparison; it is listed as agreeing unless it says otherwise."""
        self.total += weight
        against = any(m in what for m in DISAGREEING)
        (self.disagreed if against else self.agreed).append(what)


class Frequencies:
    """u-probabilities of agreement, from the registry: the share of providers with a name (at
    least one), with a name within a typo of one, with a nickname of a first name, with a taxonomy
    code. Without the ``near`` and ``code`` callables the fixed u's of the tables are used."""

    def __init__(
        self,
        last: Any,
        first: Any,
        totals: dict[int, int],
        *,
        last_near: Any = None,
        first_near: Any = None,
        code: Any = None,
        credential: Any = None,
    ) -> None:
        self._last, self._first = last, first  # callables: key -> count
        self._last_near, self._first_near = last_near, first_near  # key -> count within a typo
        self._code = code  # taxonomy code -> providers holding it
        self._credential = credential  # credential -> share of individuals holding it
        self.n_people = max(totals.get(1, 0), 1)
        self.n_orgs = max(totals.get(2, 0), 1)

    def last(self, key: str) -> float:
        return max(self._last(key) / self.n_people, U_LAST_MIN)

    def first(self, key: str) -> float:
        return max(self._first(key) / self.n_people, U_FIRST_MIN)

    def last_typo(self, key: str) -> float:
        """Share of people whose last name is within a typo of ``key`` (not ``key`` itself)."""
        if self._last_near is None:
            return U_TYPO
        return max(self._last_near(key) / self.n_people, U_LAST_MIN)

    def first_typo(self, key: str) -> float:
        if self._first_near is None:
            return U_TYPO
        return max(self._first_near(key) / self.n_people, U_FIRST_MIN)

    def nickname(self, key: str) -> float:
        """Share of people whose first name is a nickname (or full form) of ``key``."""
        variants = name_variants(key) - {key}
        return min(max(sum(self._first(v) for v in variants) / self.n_people, U_FIRST_MIN), 0.5)

    def credential(self, creds: set[str]) -> float:
        """Share of individuals holding one of ``creds``."""
        if self._credential is None:
            return CREDENTIAL["agree"][1]
        return min(max(sum(self._credential(c) for c in creds), U_CREDENTIAL_MIN), 0.5)

    def code(self, codes: frozenset[str] | set[str]) -> float:
        """Share of providers holding one of ``codes``."""
        if self._code is None:
            return SPECIALTY["agree"][1]
        n = self.n_people + self.n_orgs
        return min(max(sum(self._code(c) for c in codes) / n, U_CODE_MIN), 0.5)


def _last_level(a: str, b: str) -> str:
    if not a or not b:
        return ""
    if a == b:
        return "exact"
    ta, tb = set(a.split()), set(b.split())
    if ta <= tb or tb <= ta or a.replace(" ", "") == b.replace(" ", ""):
        return "part"  # hyphenated, double or spaced last names: "SMITH" / "SMITH JONES"
    k = 1 if max(len(a), len(b)) <= 5 else 2
    if OSA.distance(a, b, score_cutoff=k) <= k:
        return "typo"
    return "different"


def _first_level(a: str, b: str) -> str:
    if not a or not b:
        return ""
    if a == b:
        return "exact"
    if len(a) == 1 or len(b) == 1:
        return "initial" if a[0] == b[0] else "different"
    if b in name_variants(a) or a in name_variants(b):
        return "nickname"
    k = 1 if max(len(a), len(b)) <= 5 else 2
    if OSA.distance(a, b, score_cutoff=k) <= k or (a[:3] == b[:3] and (a.startswith(b) or b.startswith(a))):
        return "typo"
    return "different"


def _name_weight(
    q: PersonName, c: PersonName, kind: str, freq: Frequencies
) -> tuple[float, list[tuple[float, str]]]:
    parts: list[tuple[float, str]] = []
    lvl = _last_level(q.last, c.last)
    if lvl:
        if lvl == "exact":
            m = LAST["exact"] if kind == "legal" else LAST["other_name"]
            parts.append(
                (
                    w(m, freq.last(c.last)),
                    f"last_name: {'exact' if kind == 'legal' else 'other name'} ({c.last})",
                )
            )
        elif lvl == "part":
            parts.append((w(LAST["part"], freq.last(c.last)), f"last_name: part of {c.last}"))
        elif lvl == "typo":
            parts.append((w(LAST["typo"], freq.last_typo(q.last)), f"last_name: close ({q.last} / {c.last})"))
        else:
            parts.append((w(LAST["different"], 1.0), f"last_name: different ({c.last})"))
    lvl = _first_level(q.first, c.first)
    if lvl:
        if lvl == "exact":
            parts.append((w(FIRST["exact"], freq.first(c.first)), f"first_name: exact ({c.first})"))
        elif lvl == "nickname":
            u = freq.nickname(q.first)
            parts.append((w(FIRST["nickname"], u), f"first_name: nickname ({q.first} / {c.first})"))
        elif lvl == "initial":
            parts.append(
                (w(FIRST["initial"], U_FIRST_INITIAL), f"first_name: initial ({q.first} / {c.first})")
            )
        elif lvl == "typo":
            parts.append(
                (w(FIRST["typo"], freq.first_typo(q.first)), f"first_name: close ({q.first} / {c.first})")
            )
        else:
            parts.append((w(FIRST["different"], 1.0), f"first_name: different ({c.first})"))
    if q.middle and c.middle:
        if q.middle[0] == c.middle[0] and (len(q.middle) == 1 or len(c.middle) == 1 or q.middle == c.middle):
            parts.append((w(*MIDDLE["agree"]), f"middle_name: agrees ({c.middle})"))
        else:
            parts.append((w(*MIDDLE["different"]), f"middle_name: different ({c.middle})"))
    return sum(p for p, _ in parts), parts


def score_person_name(q: PersonName, f: Facts, freq: Frequencies, s: Score) -> None:
    best: tuple[float, list[tuple[float, str]]] | None = None
    for kind, c in f.names:
        for swapped in (False, True):
            qq = PersonName(q.first, q.last, q.middle) if swapped else q
            total, parts = _name_weight(qq, c, kind, freq)
            if swapped:
                if not (q.first and q.last):
                    continue
                total += SWAPPED
                parts = [*parts, (SWAPPED, "name: first and last swapped")]
            if best is None or total > best[0]:
                best = (total, parts)
    if best is None:
        if q.last or q.first:
            s.add(0.0, "name: not on record (deactivated NPIs keep only the NPI and date)")
        return
    for weight, what in best[1]:
        s.add(weight, what)


def score_org_name(q: Parsed, f: Facts, freq: Frequencies, s: Score, same_key: int) -> None:
    """``same_key``: how many organizations have the record's key (its frequency)."""
    if not f.orgs:
        s.add(0.0, "organization_name: not on record")
        return
    u_exact = max(same_key, 1) / freq.n_orgs
    best: tuple[float, str] | None = None
    for kind, key, text in f.orgs:
        if key == q.org_key:
            m = ORG["exact"] if kind == "legal" else ORG[kind]
            label = {
                "legal": "exact",
                "other_name": "other name (DBA or former)",
                "parent": "parent organization",
            }
            cand = (w(float(m), u_exact), f"organization_name: {label[kind]} ({text})")  # type: ignore[arg-type]
        else:
            ratio = max(fuzz.token_set_ratio(q.org_key, key), fuzz.ratio(q.org_key, key))
            if ratio >= 90:
                cand = (w(*ORG["close"]), f"organization_name: close ({text})")  # type: ignore[misc]
            elif ratio >= 80:
                cand = (w(*ORG["partial"]), f"organization_name: partly ({text})")  # type: ignore[misc]
            else:
                cand = (w(*ORG["different"]), f"organization_name: different ({text})")  # type: ignore[misc]
        if best is None or cand[0] > best[0]:
            best = cand
    assert best is not None
    s.add(*best)


def score_location(q: Parsed, f: Facts, s: Score) -> None:
    if not f.locations:
        return
    if not (q.address or q.zip5 or q.city_key):
        if q.state:
            if any(st == q.state for *_, st in f.locations):
                s.add(w(*STATE_ONLY["state"]), f"state: agrees ({q.state})")
            else:
                s.add(w(*STATE_ONLY["different"]), "state: different")
        return
    rank = {"street": 4, "zip": 3, "city": 2, "state": 1, "different": 0}
    best, where = "different", ""
    for purpose, line1, zip5, city, st in f.locations:
        if (
            q.address
            and line1
            and q.address.line1 == line1
            and ((q.zip5 and q.zip5 == zip5) or (city == q.city_key and st == q.state))
        ):
            lvl = "street"
        elif q.zip5 and q.zip5 == zip5:
            lvl = "zip"
        elif q.city_key and city == q.city_key and st == q.state:
            lvl = "city"
        elif q.state and st == q.state:
            lvl = "state"
        else:
            lvl = "different"
        if rank[lvl] > rank[best]:
            best, where = lvl, purpose
    text = {
        "street": f"address: same street address ({where})",
        "zip": f"address: same ZIP ({where})",
        "city": f"address: same city ({where})",
        "state": "address: same state only",
        "different": "address: another state (moved?)",
    }[best]
    s.add(w(*LOCATION[best]), text)


def score_phone(q: Parsed, f: Facts, s: Score) -> None:
    if not q.phone or not (f.phones or f.faxes):
        return
    if q.phone in f.phones:
        s.add(w(*PHONE["practice"]), f"phone: the registry's {f.phones[q.phone]} phone")
    elif q.phone in f.faxes:
        s.add(w(*PHONE["fax"]), f"phone: the registry's {f.faxes[q.phone]} fax")
    else:
        s.add(w(*PHONE["different"]), "phone: not on record")


def score_specialty(q: Parsed, f: Facts, s: Score, freq: Frequencies) -> None:
    if not q.specialty or not f.codes:
        return
    if not q.codes:
        s.add(0.0, f"specialty: {q.specialty!r} not recognized")
    elif same := q.codes & set(f.codes):
        s.add(w(SPECIALTY["agree"][0], freq.code(same)), "specialty: agrees")
    elif any(related(a, b) for a in q.codes for b in f.codes):
        s.add(w(*SPECIALTY["related"]), "specialty: same field")
    else:
        s.add(w(*SPECIALTY["different"]), "specialty: different")


def score_credential(q: Parsed, f: Facts, s: Score, freq: Frequencies) -> None:
    if not q.credentials or not f.credentials:
        return
    if same := set(q.credentials) & f.credentials:
        s.add(w(CREDENTIAL["agree"][0], freq.credential(same)), "credential: agrees")
    else:
        s.add(w(*CREDENTIAL["different"]), f"credential: different ({', '.join(sorted(f.credentials))})")


def score_license(q: Parsed, f: Facts, s: Score) -> None:
    if not q.license or not f.licenses:
        return
    mine = set(license_forms(q.license))
    same = [st for key, st in f.licenses if mine & set(license_forms(key))]
    if same and (not q.license_state or q.license_state in same):
        lvl = "agree" if q.license_state else "number_only"
        s.add(w(*LICENSE[lvl]), "license: agrees" + (f" ({q.license_state})" if q.license_state else ""))
    elif same:
        s.add(w(*LICENSE["other_state"]), f"license: same number, other state ({', '.join(same)})")
    else:
        s.add(w(*LICENSE["different"]), "license: different")


def score(q: Parsed, f: Facts, freq: Frequencies, *, npi_weight: float, org_same_key: int = 1) -> Score:
    """Every comparison of the record with one candidate."""
    s = Score()
    if q.npi:
        if q.npi == f"{f.npi:010d}":
            s.add(npi_weight, "npi: agrees")
        elif npi_weight:
            s.add(NPI_DIFFERENT, "npi: different")
    if q.entity_type and f.entity_type and q.entity_type != f.entity_type:
        kind = "an organization" if f.entity_type == 2 else "an individual"
        s.add(ENTITY_DIFFERENT, f"entity_type: the registry has {kind}")
    elif q.entity_type == 2:
        score_org_name(q, f, freq, s, org_same_key)
    elif q.entity_type == 1:
        score_person_name(q.person, f, freq, s)
        score_credential(q, f, s, freq)
    score_license(q, f, s)
    score_location(q, f, s)
    score_phone(q, f, s)
    score_specialty(q, f, s, freq)
    return s
