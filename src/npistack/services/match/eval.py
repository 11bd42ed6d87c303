"""Evaluation of record matching on a labeled set made from the store itself.

:func:`labeled_set` samples providers and writes each the way CRM data gets it wrong: the NPI
missing (mostly) or mistyped, typos in names, nicknames, the middle name dropped, the credential
glued to the name ("Dr. ... , MD"), first and last swapped, a moved practice, an old phone, the
specialty in other words (NUCC texts instead of the code), organizations under a DBA name. It also
adds records of people the registry does not have (name pairs it holds nowhere), whose right
answer is "no match". :func:`evaluate` matches them and reports precision and recall of
"matched", the ambiguous and wrong-match rates, recall per kind of error, and the observed
accuracy of the best candidate per confidence band (calibration). :func:`fit_calibration` fits
the logistic map ``services.match.result.CALIBRATION`` from a run.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from npistack.normalize.names import name_key, name_variants
from npistack.nppes.taxonomy import load_nucc
from npistack.services.match.engine import Matcher
from npistack.services.match.input import MatchInput
from npistack.services.match.result import MatchResult
from npistack.settings import get_settings
from npistack.storage.base import SqlStore
from npistack.storage.match import active_npis, names_by_key

BANDS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 0.99), (0.99, 1.0001))
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Labeled:
    record: MatchInput
    npi: str | None  # the right answer (None: not in the registry)
    errors: list[str]


@dataclass
class Report:
    records: int
    in_registry: int
    matched: int
    matched_right: int
    ambiguous: int
    no_match: int
    wrong: int  # matched to the wrong NPI, or matched when the provider is not in the registry
    seconds: float
    bands: list[tuple[str, int, float, float]] = field(default_factory=list)  # band, n, mean conf, accuracy
    by_error: dict[str, tuple[int, float]] = field(default_factory=dict)  # error -> (n, recall)
    points: list[tuple[float, bool]] = field(default_factory=list)  # (best confidence, best is right)

    @property
    def precision(self) -> float:
        return self.matched_right / self.matched if self.matched else 1.0

    @property
    def recall(self) -> float:
        return self.matched_right / self.in_registry if self.in_registry else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "inRegistry": self.in_registry,
            "matched": self.matched,
            "precision": round(self.precision, 5),
            "recall": round(self.recall, 5),
            "ambiguousRate": round(self.ambiguous / self.records, 5) if self.records else 0.0,
            "noMatchRate": round(self.no_match / self.records, 5) if self.records else 0.0,
            "wrongMatchRate": round(self.wrong / self.records, 5) if self.records else 0.0,
            "recordsPerSecond": round(self.records / self.seconds, 1) if self.seconds else None,
            "bands": [{"band": b, "n": n, "meanConfidence": m, "accuracy": a} for b, n, m, a in self.bands],
            "recallByError": {k: {"n": n, "recall": r} for k, (n, r) in sorted(self.by_error.items())},
        }


# -- perturbations -------------------------------------------------------------------------------
def typo(rng: random.Random, word: str) -> str:
    """One keyboard-style error: a letter replaced, dropped, doubled or two swapped (rarely the first)."""
    if len(word) < 4:
        return word
    i = rng.randrange(1 if rng.random() < 0.9 else 0, len(word) - 1)
    kind = rng.choice(("replace", "drop", "double", "swap"))
    if kind == "replace":
        return word[:i] + rng.choice([c for c in LETTERS if c != word[i]]) + word[i + 1 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[: i + 1] + word[i] + word[i + 1 :]
    return (
        word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if word[i] != word[i + 1]
        else word[:i] + word[i + 1 :]
    )


def _nickname(rng: random.Random, first: str) -> str | None:
    options = sorted(v for v in name_variants(first) if v != first.upper() and len(v) > 1)
    return rng.choice(options) if options else None


def _other_phone(rng: random.Random) -> str:
    return f"{rng.randint(2, 9)}{rng.randint(0, 8)}{rng.randint(0, 9)}{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}{rng.randint(0, 9999):04d}"


def _nucc_words(code: str) -> str | None:
    t = load_nucc(get_settings().nucc_csv or None).get(code)
    if t is None:
        return None
    return t.specialization or t.classification


def _bad_npi(rng: random.Random, npi: str) -> str:
    i = rng.randrange(1, 9)
    return npi[:i] + str((int(npi[i]) + rng.randint(1, 9)) % 10) + npi[i + 1 :]


def _sample(store: SqlStore, rng: random.Random, n: int) -> list[dict[str, Any]]:
    ids = active_npis(store)
    picked = rng.sample(ids, min(n, len(ids)))
    docs = []
    for i in range(0, len(picked), 500):
        docs += [sp.doc | {"_extras": sp.extras} for sp in store.get_stored(picked[i : i + 500])]
    return docs


def _record_of(
    rng: random.Random, d: dict[str, Any], movers: list[dict[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    errors: list[str] = []
    out: dict[str, str] = {}
    if rng.random() < 0.25:
        if rng.random() < 0.12:
            out["npi"] = _bad_npi(rng, d["npi"])
            errors.append("npi_mistyped")
        else:
            out["npi"] = d["npi"]
            errors.append("with_npi")
    else:
        errors.append("no_npi")
    if d.get("entityType") == "NPI-1":
        nm = d.get("name") or {}
        first, last, middle = nm.get("first") or "", nm.get("last") or "", nm.get("middle") or ""
        r = rng.random()
        if r < 0.12:
            last = typo(rng, last)
            errors.append("last_name_typo")
        elif r < 0.20:
            first = typo(rng, first)
            errors.append("first_name_typo")
        elif r < 0.38:
            nick = _nickname(rng, first)
            if nick:
                first = nick.title()
                errors.append("nickname")
        if middle and rng.random() < 0.6:
            middle = ""
            errors.append("middle_missing")
        cred = nm.get("credential") or ""
        if rng.random() < 0.05:
            first, last = last, first
            errors.append("first_last_swapped")
        if rng.random() < 0.15:
            out["name"] = f"Dr. {first} {middle + ' ' if middle else ''}{last}" + (
                f", {cred}" if cred else ""
            )
            errors.append("full_name_field")
        else:
            out |= {"first_name": first, "last_name": last}
            if middle:
                out["middle_name"] = middle
            if cred and rng.random() < 0.4:
                out["credential"] = cred
    else:
        org = d.get("organizationName") or ""
        dbas = [
            x.get("organizationName")
            for k, x in d["_extras"]
            if k == "other_name" and x.get("organizationName")
        ]
        if dbas and rng.random() < 0.4:
            org = rng.choice(dbas)
            errors.append("organization_dba")
        elif rng.random() < 0.1:
            org = typo(rng, org)
            errors.append("organization_typo")
        out["organization_name"] = org.title()
    loc = d.get("practiceLocation") or d.get("mailingAddress") or {}
    if rng.random() < 0.15 and movers:
        # most moves stay in the state (another city); some cross state lines
        near = [m for m in movers if m.get("state") == loc.get("state") and m.get("city") != loc.get("city")]
        loc = rng.choice(near if near and rng.random() < 0.7 else movers)
        errors.append("moved_practice")
    r = rng.random()
    if r < 0.65:
        out |= {
            "address_1": loc.get("line1") or "",
            "city": loc.get("city") or "",
            "state": loc.get("state") or "",
        }
        if loc.get("line2"):
            out["address_2"] = loc["line2"]
        out["postal_code"] = (loc.get("postalCode") or "")[:5]
    elif r < 0.95:
        out |= {"city": loc.get("city") or "", "state": loc.get("state") or ""}
    phone = (d.get("practiceLocation") or {}).get("phoneRaw")
    r = rng.random()
    if phone and r < 0.4:
        out["phone"] = f"({phone[:3]}) {phone[3:6]}-{phone[6:]}"
    elif r < 0.6:
        out["phone"] = _other_phone(rng)
        errors.append("old_phone")
    taxo = next((t for t in d.get("taxonomies") or [] if t.get("primary")), None)
    if taxo and rng.random() < 0.5:
        words = _nucc_words(taxo["code"])
        if words and rng.random() < 0.7:
            out["specialty"] = words
            errors.append("specialty_in_words")
        else:
            out["specialty"] = taxo["code"]
    if taxo and taxo.get("license") and rng.random() < 0.1:
        out["license_number"] = f"{taxo.get('licenseState', '')}-{taxo['license'].lstrip('0')}"
        errors.append("license_state_prefix")
    return out, errors


def _strangers(store: SqlStore, rng: random.Random, docs: list[dict[str, Any]], n: int) -> list[Labeled]:
    """Records of people the registry does not have: first/last pairs it holds nowhere."""
    people = [d for d in docs if d.get("entityType") == "NPI-1"]
    firsts = sorted({(d.get("name") or {}).get("first") or "" for d in people} - {""})
    lasts = sorted({(d.get("name") or {}).get("last") or "" for d in people} - {""})
    out: list[Labeled] = []
    tries = 0
    while len(out) < n and tries < n * 20 and firsts and lasts:
        tries += 1
        first, last = rng.choice(firsts), rng.choice(lasts)
        if names_by_key(store, 1, [name_key(last)], sorted(name_variants(first) | {name_key(first)})):
            continue
        loc = (rng.choice(people).get("practiceLocation")) or {}
        rec = {
            "first_name": first.title(),
            "last_name": last.title(),
            "city": loc.get("city") or "",
            "state": loc.get("state") or "",
        }
        if rng.random() < 0.5:
            rec["phone"] = _other_phone(rng)
        out.append(Labeled(MatchInput.from_mapping(rec), None, ["not_in_registry"]))
    return out


def labeled_set(store: SqlStore, n: int, *, seed: int = 7, strangers: float = 0.1) -> list[Labeled]:
    """``n`` records of registry providers written the way CRM data is wrong, plus
    ``strangers * n`` records of people the registry does not have."""
    rng = random.Random(seed)
    docs = _sample(store, rng, n + n // 5)
    movers = [d.get("practiceLocation") or {} for d in docs[n:]]
    out = []
    for d in docs[:n]:
        rec, errors = _record_of(rng, d, movers)
        out.append(Labeled(MatchInput.from_mapping(rec), d["npi"], errors))
    out += _strangers(store, rng, docs, int(n * strangers))
    rng.shuffle(out)
    return out


# -- evaluation ------------------------------------------------------------------------------------
def evaluate(
    store: SqlStore,
    labeled: list[Labeled],
    *,
    matcher: Matcher | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Report, list[MatchResult]]:
    m = matcher or Matcher(store)
    t0 = time.perf_counter()
    results: list[MatchResult] = []
    for i in range(0, len(labeled), 200):
        results += m.match([x.record for x in labeled[i : i + 200]])
        if progress:
            progress(len(results))
    rep = Report(len(labeled), sum(1 for x in labeled if x.npi), 0, 0, 0, 0, 0, time.perf_counter() - t0)
    per_error: dict[str, list[int]] = {}
    for x, r in zip(labeled, results, strict=True):
        right = r.npi is not None and r.npi == x.npi
        if r.match_status == "matched":
            rep.matched += 1
            rep.matched_right += right
            rep.wrong += not right
        elif r.match_status == "ambiguous":
            rep.ambiguous += 1
        else:
            rep.no_match += 1
        best = r.candidates[0] if r.candidates else None
        rep.points.append((best.confidence if best else 0.0, bool(best and best.npi == x.npi)))
        for e in x.errors:
            hit = per_error.setdefault(e, [0, 0])
            hit[0] += 1
            hit[1] += right if x.npi else r.match_status != "matched"
    rep.by_error = {k: (n, round(h / n, 4)) for k, (n, h) in per_error.items()}
    for lo, hi in BANDS:
        pts = [(c, ok) for c, ok in rep.points if lo <= c < hi]
        if pts:
            label = f"{lo:.2f}-{min(hi, 1.0):.2f}"
            rep.bands.append(
                (
                    label,
                    len(pts),
                    round(sum(c for c, _ in pts) / len(pts), 4),
                    round(sum(ok for _, ok in pts) / len(pts), 4),
                )
            )
    return rep, results


def fit_calibration(points: list[tuple[float, bool]], a: float = 1.0, b: float = 0.0) -> tuple[float, float]:
    """(A, B) of ``sigmoid(A * logit(p) + B)`` by logistic regression (Newton's method) on
    (uncalibrated best confidence, right) points; confidences at 0 or 1 are clipped."""
    xs = []
    for p, ok in points:
        p = min(max(p, 1e-9), 1 - 1e-9)
        xs.append((math.log(p / (1 - p)), 1.0 if ok else 0.0))
    for _ in range(50):
        ga = gb = haa = hab = hbb = 0.0
        for x, y in xs:
            z = a * x + b
            pr = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
            ga += (y - pr) * x
            gb += y - pr
            v = pr * (1 - pr) + 1e-12
            haa += v * x * x
            hab += v * x
            hbb += v
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a + da, b + db
        if abs(da) < 1e-9 and abs(db) < 1e-9:
            break
    return round(a, 4), round(b, 4)
