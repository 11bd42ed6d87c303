"""Provider verification (``services.verify``): the name and credential checks. A person's name is
compared with the registry's legal and other names (nicknames, initials, hyphenated and former names,
typos as ``close``); an organization's with its legal, DBA and former names, without legal forms.
"""

from __future__ import annotations

from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein

from npistack.normalize.names import name_key, name_variants, normalize_credentials
from npistack.services.verify.model import CLOSE, FAIL, NOT_CHECKED, PASS, WARNING, Check, Claim

_PREFIXES = frozenset({"DR", "DOCTOR", "MR", "MRS", "MS", "MISS", "MX", "PROF", "PROFESSOR", "REV", "HON"})
_SUFFIXES = frozenset({"JR", "SR", "II", "III", "IV", "V", "2ND", "3RD"})
# Legal forms and filler words that do not tell organizations apart.
_ORG_NOISE = frozenset(
    {"INC", "INCORPORATED", "LLC", "PLLC", "PC", "PA", "LLP", "LP", "LLLP", "LTD", "LIMITED", "CORP"}
    | {"CORPORATION", "CO", "COMPANY", "PLC", "SC", "PSC", "APC", "APMC", "THE", "DBA"}
    | {"MD", "DDS", "DMD", "OD", "DPM"}  # trailing professional designations: "AZAR/FILIPOV MD PA"
)
_OTHER_NAME_MATCH = {
    "1": "former_name",
    "2": "professional_name",
    "3": "dba",
    "4": "former_legal_name",
    "5": "other_name",
}
_FORMER = frozenset({"former_name", "former_legal_name"})
_RANK = {"exact": 2, "close": 1, "none": 0}


def typo(a: str, b: str) -> bool:
    """One edit (transposition included) apart for names of 4+ letters, two for 8+."""
    n = max(len(a), len(b))
    d = DamerauLevenshtein.distance(a, b, score_cutoff=2)
    return (n >= 4 and d <= 1) or (n >= 8 and d <= 2)


def squash(key: str) -> str:
    return key.replace(" ", "")


def _person_key(value: str | None, *, first: bool = False, creds: frozenset[str] = frozenset()) -> str:
    """A claimed name's key without titles ("Dr."), suffixes ("Jr") and credentials ("MD")."""
    if not value:
        return ""
    head = value.split(",")[0] if not first else value  # "Dubose, MD"
    words = name_key(head).split()
    if first:
        while len(words) > 1 and words[0] in _PREFIXES:
            words = words[1:]
    else:
        while len(words) > 1 and (words[-1] in _SUFFIXES or words[-1] in creds):
            words = words[:-1]
    return " ".join(words)


def _last_agreement(claimed: str, registry: str) -> tuple[str, str | None]:
    if not registry:
        return "none", None
    c, r = squash(name_key(claimed)), squash(name_key(registry))
    if c == r:
        return "exact", None
    r_parts = [squash(name_key(p)) for p in registry.split("-") if p.strip()]
    c_parts = [squash(name_key(p)) for p in claimed.split("-") if p.strip()]
    if len(r_parts) > 1 and c in r_parts:
        return "exact", f"last name {claimed} is one part of the hyphenated {registry}"
    if len(c_parts) > 1 and r in c_parts:
        return "exact", f"the registry's last name {registry} is one part of {claimed}"
    if typo(c, r):
        return "close", f"last name {claimed} vs the registry's {registry}"
    return "none", None


def _first_agreement(claimed: str, first: str, middle: str) -> tuple[str, str | None]:
    if not first:
        return "none", None
    c, f, m = name_key(claimed), name_key(first), name_key(middle)
    if c == f:
        return "exact", None
    if m and squash(c) == squash(f + m):
        return "exact", "first and middle names given together"
    if len(c) == 1 and f.startswith(c):
        return "exact", f"first initial {c} of {f}"
    if c in name_variants(f) or f in name_variants(c):
        return "exact", f"{c} is a nickname of {f}"
    if " " in f and c == f.split()[0]:
        return "exact", f"{c} is the first part of {f}"
    if m and (c == m or (len(m) > 1 and c in name_variants(m))):
        return "exact", f"{c} is the registry's middle name (goes by the middle name)"
    if typo(squash(c), squash(f)):
        return "close", f"first name {c} vs the registry's {f}"
    return "none", None


def _person_agreement(claim: Claim, cand: dict[str, Any], creds: frozenset[str]) -> tuple[str, list[str]]:
    """How a claimed person's name agrees with one registry name: exact, close or none; and notes."""
    notes: list[str] = []
    grades: list[str] = []
    last = _person_key(claim.last_name, creds=creds)
    if last:
        grade, note = _last_agreement(last, cand.get("last") or "")
        grades.append(grade)
        notes += [note] if note else []
    first = _person_key(claim.first_name, first=True)
    if first:
        grade, note = _first_agreement(first, cand.get("first") or "", cand.get("middle") or "")
        grades.append(grade)
        notes += [note] if note else []
    middle, reg_middle = name_key(claim.middle_name or ""), name_key(cand.get("middle") or "")
    if middle and reg_middle:
        same = middle == reg_middle or (min(len(middle), len(reg_middle)) == 1 and middle[0] == reg_middle[0])
        if not same:
            grades.append("close")
            notes.append(f"middle name {middle} vs the registry's {reg_middle}")
    elif middle and not reg_middle:
        notes.append("the registry has no middle name")
    if not grades or "none" in grades:
        return "none", notes
    return ("close" if "close" in grades else "exact"), notes


def _person_full(n: dict[str, Any]) -> str:
    return " ".join(p for p in (n.get("first"), n.get("middle"), n.get("last"), n.get("suffix")) if p)


def check_name(claim: Claim, doc: dict[str, Any]) -> Check:
    person = any((claim.first_name, claim.middle_name, claim.last_name))
    if doc.get("entityType") == "NPI-2":
        return _org_name(claim, doc)
    reg = doc.get("name") or {}
    others = [o for o in doc.get("otherNames") or [] if o.get("last") or o.get("first")]
    registry = {k: reg.get(k) for k in ("prefix", "first", "middle", "last", "suffix", "credential")}
    registry["otherNames"] = [
        {"type": o.get("type"), **{k: o.get(k) for k in ("first", "middle", "last")}} for o in others
    ]
    claimed = {"first": claim.first_name, "middle": claim.middle_name, "last": claim.last_name}
    if not person:
        return Check(FAIL, "an individual's NPI (NPI-1) has no organization name: compare first and last name",
                     {"organizationName": claim.organization_name}, registry)  # fmt: skip
    creds = frozenset(reg.get("credentials") or ())
    legal = _person_full(reg)
    candidates: list[tuple[str, dict[str, Any]]] = [("legal", reg)]
    for o in others:
        merged = dict(o)
        if not o.get("first"):  # an other name with only a last name keeps the legal first name
            merged.update(first=reg.get("first"), middle=reg.get("middle"))
        candidates.append((_OTHER_NAME_MATCH.get(o.get("typeCode") or "", "other_name"), merged))
    best: tuple[int, int, str, str, list[str], dict[str, Any]] | None = None
    for order, (kind, cand) in enumerate(candidates):
        grade, notes = _person_agreement(claim, cand, creds)
        if grade == "none":
            continue
        rank = (_RANK[grade], -(order if kind not in _FORMER else order + 100))
        if best is None or rank > best[:2]:
            best = (*rank, grade, kind, notes, cand)
    if best is None:
        also = f" (other names: {'; '.join(_person_full(o) for o in others)})" if others else ""
        return Check(FAIL, f"does not agree with the registry's name {legal}{also}", claimed, registry)
    _, _, grade, kind, notes, cand = best
    detail = f" ({'; '.join(notes)})" if notes else ""
    if grade == "close":
        return Check(
            CLOSE, f"close to the registry's name {_person_full(cand)}{detail}", claimed, registry, kind
        )
    if kind in _FORMER:
        reason = f"agrees with a former name, {_person_full(cand)}; the current legal name is {legal}{detail}"
        return Check(WARNING, reason, claimed, registry, kind)
    what = "legal name" if kind == "legal" else kind.replace("_", " ")
    return Check(
        PASS, f"agrees with the registry's {what} {_person_full(cand)}{detail}", claimed, registry, kind
    )


def _org_key(value: str) -> str:
    """An organization's comparison key: no legal form ("INC", "P.C."), no leading "THE", & as AND."""
    joined: list[str] = []
    for part in value.replace("&", " AND ").split(","):  # "M.D., P.A." is two words, not "MDPA"
        run = ""  # single letters in a row are one word: "P C" -> "PC", "I V" -> "IV"
        for w in name_key(part).split():
            if len(w) == 1:
                run += w
                continue
            joined += [run, w] if run else [w]
            run = ""
        joined += [run] if run else []
    while joined and joined[0] == "THE":
        joined = joined[1:]
    while len(joined) > 1 and joined[-1] in _ORG_NOISE:
        joined = joined[:-1]
    return " ".join(joined)


def _org_name(claim: Claim, doc: dict[str, Any]) -> Check:
    legal = doc.get("organizationName") or ""
    others = [o for o in doc.get("otherNames") or [] if o.get("organizationName")]
    ao = doc.get("authorizedOfficial") or {}
    registry = {
        "organizationName": legal,
        "otherNames": [{"type": o.get("type"), "organizationName": o["organizationName"]} for o in others],
        "authorizedOfficial": {k: ao.get(k) for k in ("first", "middle", "last")} if ao else None,
    }
    if not claim.organization_name:
        claimed = {"first": claim.first_name, "middle": claim.middle_name, "last": claim.last_name}
        if ao and _person_agreement(claim, ao, frozenset())[0] == "exact":
            reason = f"an organization's NPI (NPI-2): {_person_full(ao)} is its authorized official, not the provider"
            return Check(WARNING, reason, claimed, registry, "authorized_official")
        reason = f"an organization's NPI (NPI-2), {legal}: compare organization_name, not a person's name"
        return Check(FAIL, reason, claimed, registry)
    claimed_org = {"organizationName": claim.organization_name}
    c = _org_key(claim.organization_name)
    candidates = [("legal", legal)] + [
        (_OTHER_NAME_MATCH.get(o.get("typeCode") or "", "other_name"), o["organizationName"]) for o in others
    ]
    close: tuple[str, str] | None = None
    for kind, name in candidates:
        r = _org_key(name)
        if squash(c) == squash(r):
            if kind in _FORMER:
                reason = f"agrees with a former legal name, {name}; the current legal name is {legal}"
                return Check(WARNING, reason, claimed_org, registry, kind)
            what = {"legal": "legal business name", "dba": "doing-business-as name"}.get(
                kind, kind.replace("_", " ")
            )
            return Check(PASS, f"agrees with the registry's {what} {name}", claimed_org, registry, kind)
        if close is None and c and r and (fuzz.token_sort_ratio(c, r) >= 90 or typo(squash(c), squash(r))):
            close = (kind, name)
    if close is not None:
        return Check(CLOSE, f"close to the registry's name {close[1]}", claimed_org, registry, close[0])
    also = f" (other names: {'; '.join(n for _, n in candidates[1:])})" if others else ""
    return Check(FAIL, f"does not agree with the registry's name {legal}{also}", claimed_org, registry)


def check_credential(claimed: str, doc: dict[str, Any]) -> Check:
    tokens = normalize_credentials(claimed)
    if doc.get("entityType") == "NPI-2":
        return Check(NOT_CHECKED, "an organization has no credential in the registry", list(tokens))
    reg = (doc.get("name") or {}).get("credentials") or []
    text = (doc.get("name") or {}).get("credential")
    if not reg:
        return Check(NOT_CHECKED, "the registry has no credential for this provider", list(tokens))
    found = [t for t in tokens if t in reg]
    if tokens and len(found) == len(tokens):
        return Check(PASS, f"agrees with the registry's credential {text}", list(tokens), reg)
    if found:
        missing = ", ".join(t for t in tokens if t not in reg)
        return Check(
            CLOSE, f"the registry's credential is {text}; it does not list {missing}", list(tokens), reg
        )
    return Check(FAIL, f"the registry's credential is {text}, not {claimed}", list(tokens), reg)
