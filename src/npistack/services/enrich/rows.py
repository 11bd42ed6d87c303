"""Matching for list enrichment, batch by batch (in worker processes, each with its own read-only
store connection): each record matched (``npistack.services.match``) and, for a match, the enriched
values read from its stored provider document (``enriched_values``); the candidates of an ambiguous
match as the review file shows them (``candidate_dict``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

# The columns added after the input's, without their prefix (``nppes_`` unless the input has one).
OUTPUT_COLUMNS = (
    "match_status",  # matched, ambiguous, no_match, error
    "match_confidence",
    "npi",
    "status",  # active, deactivated
    "deactivation_date",
    "name",
    "specialty_code",
    "specialty",
    "credential",
    "address_1",
    "address_2",
    "city",
    "state",
    "zip",
    "latitude",
    "longitude",
    "phone",
    "fax",
    "last_updated",
    "input_line",
    "match_notes",
)
# The OUTPUT_COLUMNS npistack computes as numbers: their plain numbers are written without the
# formula guard's quote (services.enrich.csv_safe); every other cell is neutralized.
NUMERIC_OUTPUT_COLUMNS = ("match_confidence", "latitude", "longitude", "phone", "fax", "input_line")
STATUSES = ("matched", "ambiguous", "no_match", "error")
MAX_CANDIDATES = 5
CANDIDATE_COLUMNS = ("npi", "confidence", "name", "status", "city", "state", "evidence")

# (status, confidence, values of OUTPUT_COLUMNS[2:-2], notes, candidates or None)
Outcome = tuple[str, float, list[str], str, list[dict[str, str]] | None]
MatcherFactory = Callable[[Any, float], Any]
EMPTY_VALUES = [""] * (len(OUTPUT_COLUMNS) - 4)


def default_matcher(store: Any, threshold: float) -> Any:
    from npistack.services.match import Matcher

    return Matcher(store, threshold=threshold)


class BatchMatcher:
    """Matches batches of records and reads the enriched fields of the matches."""

    def __init__(self, store_url: str, threshold: float, factory: MatcherFactory | None = None) -> None:
        from npistack.nppes.taxonomy import load_nucc
        from npistack.settings import get_settings
        from npistack.storage import open_store

        self.store = open_store(store_url, read_only=True)
        self.matcher = (factory or default_matcher)(self.store, threshold)
        self.nucc = load_nucc(get_settings().nucc_csv or None)

    def close(self) -> None:
        self.store.close()

    def run(self, records: Sequence[dict[str, str] | None]) -> list[Outcome | None]:
        from npistack.services.match import MatchInput

        todo = [(i, MatchInput.from_mapping(r)) for i, r in enumerate(records) if r]
        try:
            results = list(self.matcher.match([m for _, m in todo]))
        except Exception:  # isolate the record the matcher cannot take, keep the others
            results = []
            for _, m in todo:
                try:
                    results.append(self.matcher.match([m])[0])
                except Exception as e:
                    results.append(e)
        npis = [r.npi for r in results if not isinstance(r, Exception) and r.match_status == "matched"]
        docs = {int(sp.doc["npi"]): sp for sp in self.store.get_stored([n for n in npis if n])}
        out: list[Outcome | None] = [None] * len(records)
        for i, r in enumerate(records):
            if r is not None and not r:
                out[i] = ("no_match", 0.0, list(EMPTY_VALUES), "no values to match on", None)
        for (i, _), res in zip(todo, results, strict=True):
            out[i] = self._outcome(res, docs)
        return out

    def _outcome(self, res: Any, docs: dict[int, Any]) -> Outcome:
        if isinstance(res, Exception):
            return (
                "error",
                0.0,
                list(EMPTY_VALUES),
                f"the matcher failed: {type(res).__name__}: {res}",
                None,
            )
        notes = "; ".join(str(n) for n in (res.notes or []))
        confidence = float(res.match_confidence or 0.0)
        if res.match_status == "matched" and res.npi:
            sp = docs.get(int(res.npi))
            values = enriched_values(sp.doc, self.nucc) if sp else [res.npi, *EMPTY_VALUES[1:]]
            if sp is None:
                notes = "; ".join(filter(None, [notes, "the matched NPI is no longer in the store"]))
            return ("matched", confidence, values, notes, None)
        candidates = None
        if res.match_status == "ambiguous":
            candidates = [candidate_dict(c) for c in (res.candidates or [])[:MAX_CANDIDATES]]
        return (res.match_status, confidence, list(EMPTY_VALUES), notes, candidates)


def enriched_values(doc: Mapping[str, Any], nucc: Mapping[str, Any]) -> list[str]:
    """``OUTPUT_COLUMNS`` from npi to last_updated, from a stored provider document (the values
    ``npistack.services.providers.expand`` shows for it)."""
    from npistack.services.providers import expand_address, full_name

    name = doc.get("name") or {}
    if doc.get("entityType") == "NPI-1":
        shown = full_name(name.get("first"), name.get("middle"), name.get("last"), name.get("suffix"), None)
    else:
        shown = doc.get("organizationName") or ""
    primary = next((t for t in doc.get("taxonomies") or [] if t.get("primary")), None)
    code = (primary or {}).get("code") or ""
    tx = nucc.get(code) if code else None
    loc = expand_address(doc.get("practiceLocation"), "primary") or {}
    std = loc.get("standardized") or {}
    if std.get("line1"):
        line1, line2, city, state = std.get("line1"), std.get("line2"), std.get("city"), std.get("state")
        zip5, zip4 = std.get("zip5"), std.get("zip4")
    else:  # an address the standardizer could not read: as published
        line1, line2, city, state = loc.get("line1"), loc.get("line2"), loc.get("city"), loc.get("state")
        zip5, zip4 = loc.get("zip5") or loc.get("postalCode"), loc.get("zip4")
    return [
        f"{int(doc['npi']):010d}",
        doc.get("status") or "",
        doc.get("deactivationDate") or "",
        shown,
        code,
        (tx.display_name if tx else "") or "",
        name.get("credential") or "",
        line1 or "",
        line2 or "",
        city or "",
        state or "",
        f"{zip5}-{zip4}" if zip5 and zip4 else zip5 or "",
        _num(loc.get("latitude")),
        _num(loc.get("longitude")),
        loc.get("phone") or "",
        loc.get("fax") or "",
        doc.get("lastUpdated") or "",
    ]


def _num(v: Any) -> str:
    return "" if v is None else f"{float(v):.6f}".rstrip("0").rstrip(".")


def candidate_dict(c: Any) -> dict[str, str]:
    """A candidate of an ambiguous match, as the review file shows it."""
    ev = getattr(c, "evidence", None)
    if isinstance(ev, Mapping):
        evidence = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in ev.items() if v)
    elif isinstance(ev, list | tuple):
        evidence = ", ".join(map(str, ev))
    else:
        evidence = str(ev or "")
    conf = getattr(c, "confidence", None)
    return {
        "npi": str(getattr(c, "npi", "") or ""),
        "confidence": f"{float(conf):.3f}" if conf is not None else "",
        "name": str(getattr(c, "name", "") or ""),
        "status": str(getattr(c, "status", "") or ""),
        "city": str(getattr(c, "city", "") or ""),
        "state": str(getattr(c, "state", "") or ""),
        "evidence": evidence,
    }


_WORKER: dict[str, BatchMatcher] = {}


def init_worker(store_url: str, threshold: float, factory: MatcherFactory | None) -> None:
    _WORKER["m"] = BatchMatcher(store_url, threshold, factory)


def run_batch(records: list[dict[str, str] | None]) -> list[Outcome | None]:
    return _WORKER["m"].run(records)
