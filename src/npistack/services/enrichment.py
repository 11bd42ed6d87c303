"""Enrichment: explainable completeness, quality and freshness scores for one provider document.

A request asks for enrichment with ``completeness``, ``quality_score``, ``freshness``, a
comma-separated list of them, or ``quality_freshness`` (all three); :func:`parse_enrichment` reads
that value. :func:`enrich` computes the requested factors from one expanded provider document
(``npistack.services.providers.expand``) and returns the object a front end attaches as
``doc["enrichment"]``. Everything here is a pure function of the document, the NUCC table and the
dates passed in; docs/enrichment.md has the full rules and a worked example.

Every score is in 0..1, rounded half up to 2 decimals, and comes with what it was computed from:

- **completeness** = present / applicable key fields, all weighted equally. The fields depend on the
  entity type (``NPI1_FIELDS``, ``NPI2_FIELDS``; a deactivated stub, which has no entity type, is
  scored on ``STUB_FIELDS``). ``primaryTaxonomy.license`` does not apply when NUCC knows the primary
  taxonomy and it is not licensed (see below).
- **qualityScore** = passed / applicable checks (``CHECKS``): not deactivated, primary taxonomy
  present, taxonomy codes known to NUCC, license present for licensed taxonomies, practice address
  standardizable, practice ZIP known, practice phone valid, mailing address present.
- **freshness**: ages in days of the provider's NPPES ``lastUpdated`` (the record) and of our copy
  of the data (the NPPES release date, else the load time). Each age maps to a component score
  (1.0 up to a "fresh" age, falling linearly to 0.0 at a "stale" age); the score is the mean of the
  components that are known, and the band follows the score (``fresh`` >= 0.75, ``aging`` >= 0.4,
  else ``stale``).

A taxonomy is *licensed* when the provider is an individual (NPI-1), NUCC files the code in its
"Individual" section (or the NUCC release has no Section column) and its grouping is not one of
``UNLICENSED_GROUPINGS`` (students, groups, "Other Service Providers", technicians and nursing-related
aides). Codes unknown to NUCC are not judged licensed or not: they fail ``taxonomy_codes_known``.
This is a screening rule, not a legal determination: licensure is decided state by state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from npistack.nppes.taxonomy import Taxonomy, load_nucc
from npistack.settings import get_settings

__all__ = [
    "ACCEPTED_VALUES",
    "CHECKS",
    "FACTORS",
    "NPI1_FIELDS",
    "NPI2_FIELDS",
    "STUB_FIELDS",
    "UNLICENSED_GROUPINGS",
    "age_score",
    "band",
    "completeness",
    "enrich",
    "freshness",
    "is_licensed",
    "parse_enrichment",
    "quality_score",
]

# --- request values -------------------------------------------------------------------------------

FACTORS = ("completeness", "quality_score", "freshness")
PRESETS: dict[str, tuple[str, ...]] = {"quality_freshness": FACTORS}
ACCEPTED_VALUES = (*FACTORS, *PRESETS)
# Output key of each factor (camelCase, like the rest of the document).
FACTOR_KEYS = {"completeness": "completeness", "quality_score": "qualityScore", "freshness": "freshness"}


def parse_enrichment(value: str) -> frozenset[str]:
    """The factors an ``enrichment`` value asks for: ``"completeness, Freshness"`` ->
    ``{"completeness", "freshness"}``; ``"quality_freshness"`` -> all three.

    Case and whitespace do not matter. Raises ``ValueError`` naming the accepted values for an
    empty value, an empty item (``"completeness,"``) or an unknown one.
    """
    accepted = ", ".join(ACCEPTED_VALUES)
    items = [part.strip().lower() for part in value.split(",")]
    if not any(items):
        raise ValueError(f"enrichment is empty; use one of {accepted} (or a comma-separated list of them)")
    factors: set[str] = set()
    for item in items:
        if item in PRESETS:
            factors.update(PRESETS[item])
        elif item in FACTORS:
            factors.add(item)
        else:
            shown = repr(item) if item else "an empty item"
            raise ValueError(
                f"unknown enrichment {shown} in {value!r}; use one of {accepted}"
                " (or a comma-separated list of them)"
            )
    return frozenset(factors)


# --- licensed taxonomies --------------------------------------------------------------------------

UNLICENSED_GROUPINGS = frozenset(
    {
        "Student, Health Care",
        "Group",
        "Other Service Providers",
        "Nursing Service Related Providers",
        "Technologists, Technicians & Other Technical Service Providers",
    }
)


def is_licensed(code: str | None, entity_type: str | None, nucc: dict[str, Taxonomy]) -> bool:
    """Whether a taxonomy code of a provider of ``entity_type`` needs a license (module docstring)."""
    if entity_type != "NPI-1" or not code:
        return False
    t = nucc.get(code)
    if t is None:
        return False
    return t.section in ("Individual", "") and t.grouping not in UNLICENSED_GROUPINGS


# --- completeness ---------------------------------------------------------------------------------


def _get(doc: dict[str, Any], *path: str) -> Any:
    value: Any = doc
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _address_present(address: Any) -> bool:
    return isinstance(address, dict) and bool(address.get("line1")) and bool(address.get("city"))


def _present(*path: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: bool(_get(doc, *path))


Field = tuple[str, Callable[[dict[str, Any]], bool]]

# A field is present when its value is non-empty; an address when it has line1 and city; a phone
# when a number is published (whether it is valid is the quality check practice_phone_valid).
_PRIMARY_TAXONOMY: Field = ("primaryTaxonomy", _present("primaryTaxonomy", "code"))
_LICENSE: Field = ("primaryTaxonomy.license", _present("primaryTaxonomy", "license"))
_PRACTICE: Field = ("practiceLocation", lambda d: _address_present(d.get("practiceLocation")))
_PRACTICE_PHONE: Field = ("practiceLocation.phone", _present("practiceLocation", "phoneRaw"))
_MAILING: Field = ("mailingAddress", lambda d: _address_present(d.get("mailingAddress")))

NPI1_FIELDS: tuple[Field, ...] = (
    ("name.first", _present("name", "first")),
    ("name.last", _present("name", "last")),
    ("name.credential", _present("name", "credential")),
    ("sex", _present("sex")),
    _PRIMARY_TAXONOMY,
    _LICENSE,
    _PRACTICE,
    _PRACTICE_PHONE,
    _MAILING,
)
NPI2_FIELDS: tuple[Field, ...] = (
    ("organizationName", _present("organizationName")),
    (
        "authorizedOfficial",
        lambda d: (
            bool(_get(d, "authorizedOfficial", "first")) and bool(_get(d, "authorizedOfficial", "last"))
        ),
    ),
    ("authorizedOfficial.phone", _present("authorizedOfficial", "phoneRaw")),
    _PRIMARY_TAXONOMY,
    _PRACTICE,
    _PRACTICE_PHONE,
    _MAILING,
)
STUB_FIELDS: tuple[Field, ...] = (
    ("name.full", _present("name", "full")),
    _PRIMARY_TAXONOMY,
    _PRACTICE,
    _PRACTICE_PHONE,
    _MAILING,
)


def _fields_for(entity_type: str | None) -> tuple[Field, ...]:
    if entity_type == "NPI-1":
        return NPI1_FIELDS
    if entity_type == "NPI-2":
        return NPI2_FIELDS
    return STUB_FIELDS


def round2(x: Decimal) -> float:
    """``x`` rounded half up to 2 decimals, as by hand (0.785 -> 0.79, where ``round`` on the
    float gives 0.78). Scores are computed in ``Decimal`` so that halves are exact."""
    return float(x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _share(numerator: int, denominator: int) -> float | None:
    return round2(Decimal(numerator) / Decimal(denominator)) if denominator else None


def completeness(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> dict[str, Any]:
    """``{score, present, missing, notApplicable, fields{field: bool}}`` (see the module docstring)."""
    entity = doc.get("entityType")
    spec = _fields_for(entity)
    primary_code = _get(doc, "primaryTaxonomy", "code")
    not_applicable = []
    if _LICENSE in spec and primary_code in nucc and not is_licensed(primary_code, entity, nucc):
        not_applicable.append(_LICENSE[0])
    fields = {name: test(doc) for name, test in spec if name not in not_applicable}
    present = [name for name, ok in fields.items() if ok]
    return {
        "score": _share(len(present), len(fields)),
        "present": present,
        "missing": [name for name, ok in fields.items() if not ok],
        "notApplicable": not_applicable,
        "fields": fields,
    }


# --- quality checks -------------------------------------------------------------------------------

# A check returns (applicable, passed, detail); passed is None when the check does not apply.
CheckResult = tuple[bool, bool | None, str]


def _check_not_deactivated(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> CheckResult:
    if doc.get("status") == "deactivated":
        return True, False, f"NPI deactivated on {doc.get('deactivationDate') or 'an unpublished date'}"
    if doc.get("reactivationDate"):
        return True, True, f"active (reactivated on {doc['reactivationDate']})"
    return True, True, "active"


def _check_primary_taxonomy(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> CheckResult:
    code = _get(doc, "primaryTaxonomy", "code")
    if code:
        return True, True, f"primary taxonomy {code}"
    return True, False, "no primary taxonomy"


def _codes(doc: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(t["code"] for t in doc.get("taxonomies") or [] if t.get("code")))


def _check_codes_known(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> CheckResult:
    codes = _codes(doc)
    if not codes:
        return False, None, "no taxonomy codes"
    unknown = [c for c in codes if c not in nucc]
    if unknown:
        return True, False, f"not in the NUCC code set: {', '.join(unknown)}"
    return True, True, f"all {len(codes)} code(s) in the NUCC code set"


def _check_license(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> CheckResult:
    entity = doc.get("entityType")
    licensed = [t for t in doc.get("taxonomies") or [] if is_licensed(t.get("code"), entity, nucc)]
    if not licensed:
        why = "not an individual (NPI-1)" if entity != "NPI-1" else "no licensed taxonomy"
        return False, None, why
    missing = list(dict.fromkeys(t["code"] for t in licensed if not t.get("license")))
    if missing:
        return True, False, f"no license number for {', '.join(missing)}"
    codes = list(dict.fromkeys(t["code"] for t in licensed))
    return True, True, f"license number for {', '.join(codes)}"


def _foreign(address: dict[str, Any]) -> bool:
    return (address.get("countryCode") or "US") != "US"


def _check_standardizable(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> CheckResult:
    loc = doc.get("practiceLocation")
    if not loc:
        return True, False, "no practice location"
    if _foreign(loc):
        return False, None, f"foreign address ({loc.get('countryCode')})"
    std = loc.get("standardized") or {}
    missing = [k for k in ("line1", "city", "state", "zip5") if not std.get(k)]
    if missing:
        return True, False, f"standardized form lacks {', '.join(missing)}"
    return True, True, f"{std['line1']}, {std['city']}, {std['state']} {std['zip5']}"


def _check_zip_known(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> CheckResult:
    loc = doc.get("practiceLocation")
    if not loc:
        return True, False, "no practice location"
    if _foreign(loc):
        return False, None, f"foreign address ({loc.get('countryCode')})"
    zip5 = loc.get("zip5")
    if not zip5:
        return True, False, "no ZIP code"
    if loc.get("latitude") is None:
        return True, False, f"ZIP {zip5} not in the ZIP geodata"
    return True, True, f"ZIP {zip5} ({loc.get('county') or 'county unknown'})"


def _check_phone(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> CheckResult:
    loc = doc.get("practiceLocation") or {}
    if loc.get("phone"):
        return True, True, loc["phone"]
    if loc.get("phoneRaw"):
        return True, False, f"{loc['phoneRaw']!r} is not a valid phone number"
    return True, False, "no practice phone"


def _check_mailing(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> CheckResult:
    if _address_present(doc.get("mailingAddress")):
        return True, True, "mailing address with line 1 and city"
    return True, False, "no mailing address (line 1 and city)"


CHECKS: tuple[tuple[str, Callable[[dict[str, Any], dict[str, Taxonomy]], CheckResult]], ...] = (
    ("not_deactivated", _check_not_deactivated),
    ("primary_taxonomy_present", _check_primary_taxonomy),
    ("taxonomy_codes_known", _check_codes_known),
    ("license_present", _check_license),
    ("practice_address_standardizable", _check_standardizable),
    ("practice_zip_known", _check_zip_known),
    ("practice_phone_valid", _check_phone),
    ("mailing_address_present", _check_mailing),
)


def quality_score(doc: dict[str, Any], nucc: dict[str, Taxonomy]) -> dict[str, Any]:
    """``{score, passed, applicable, checks[{name, applicable, passed, detail}]}``."""
    checks = []
    for name, check in CHECKS:
        applicable, passed, detail = check(doc, nucc)
        checks.append({"name": name, "applicable": applicable, "passed": passed, "detail": detail})
    applicable_count = sum(1 for c in checks if c["applicable"])
    passed_count = sum(1 for c in checks if c["passed"])
    return {
        "score": _share(passed_count, applicable_count),
        "passed": passed_count,
        "applicable": applicable_count,
        "checks": checks,
    }


# --- freshness ------------------------------------------------------------------------------------

DATASET_FRESH_DAYS = 35  # NPPES publishes a full file monthly: one cycle plus a few days
DATASET_STALE_DAYS = 185  # about six monthly releases missed
RECORD_FRESH_DAYS = 365  # the provider touched the record within a year
RECORD_STALE_DAYS = 1826  # five years, Medicare's revalidation cycle
FRESH_SCORE = 0.75
AGING_SCORE = 0.4


def age_score(days: int, fresh: int, stale: int) -> float:
    """1.0 up to ``fresh`` days, 0.0 from ``stale`` days, linear in between; rounded to 2 decimals."""
    if days <= fresh:
        return 1.0
    if days >= stale:
        return 0.0
    return round2(Decimal(stale - days) / Decimal(stale - fresh))


def band(score: float | None) -> str | None:
    if score is None:
        return None
    if score >= FRESH_SCORE:
        return "fresh"
    if score >= AGING_SCORE:
        return "aging"
    return "stale"


def _iso(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def freshness(
    doc: dict[str, Any], *, release_date: date | None, loaded_at: datetime | None, today: date
) -> dict[str, Any]:
    """Ages in days and the freshness score and band (module docstring)."""
    updated = _iso(doc.get("lastUpdated"))
    release = release_date or _iso(_get(doc, "release", "date"))
    days_update = (today - updated).days if updated else None
    days_release = (today - release).days if release else None
    days_load = (today - loaded_at.date()).days if loaded_at else None
    dataset_days = days_release if days_release is not None else days_load
    record_score = (
        age_score(days_update, RECORD_FRESH_DAYS, RECORD_STALE_DAYS) if days_update is not None else None
    )
    dataset_score = (
        age_score(dataset_days, DATASET_FRESH_DAYS, DATASET_STALE_DAYS) if dataset_days is not None else None
    )
    parts = [s for s in (record_score, dataset_score) if s is not None]
    score = round2(sum((Decimal(repr(p)) for p in parts), Decimal(0)) / len(parts)) if parts else None
    return {
        "providerLastUpdated": updated.isoformat() if updated else None,
        "daysSinceProviderUpdate": days_update,
        "releaseDate": release.isoformat() if release else None,
        "daysSinceRelease": days_release,
        "loadedAt": loaded_at.isoformat() if loaded_at else None,
        "daysSinceLoad": days_load,
        "recordScore": record_score,
        "datasetScore": dataset_score,
        "score": score,
        "band": band(score),
    }


# --- the enrichment object ------------------------------------------------------------------------


def enrich(
    doc: dict[str, Any],
    factors: Iterable[str],
    *,
    release_date: date | None,
    loaded_at: datetime | None,
    today: date,
    nucc: dict[str, Taxonomy] | None = None,
) -> dict[str, Any]:
    """The ``enrichment`` object for one expanded provider document, with only ``factors``.

    ``release_date`` is the NPPES release of the data being served (``None``: the document's own
    ``release.date``); ``loaded_at`` the time that data was loaded; ``today`` the date ages are
    counted to. ``nucc`` defaults to the configured NUCC table (``NPISTACK_NUCC_CSV``).
    """
    wanted = set(factors)
    unknown = wanted - set(FACTORS)
    if unknown:
        raise ValueError(f"unknown enrichment factor(s) {sorted(unknown)}; use {', '.join(FACTORS)}")
    if nucc is None:
        nucc = load_nucc(get_settings().nucc_csv or None)
    out: dict[str, Any] = {"factors": sorted(FACTOR_KEYS[f] for f in wanted)}
    if "completeness" in wanted:
        out["completeness"] = completeness(doc, nucc)
    if "quality_score" in wanted:
        out["qualityScore"] = quality_score(doc, nucc)
    if "freshness" in wanted:
        out["freshness"] = freshness(doc, release_date=release_date, loaded_at=loaded_at, today=today)
    return out
