"""A specialty as people write it ("cardiologist", "Family Practice", "OB/GYN", "207RC0000X") to
the NUCC taxonomy codes it can mean, for record matching.

:func:`specialty_codes` reads, in order:

1. a taxonomy code itself (10 characters ending in ``X``);
2. the NUCC texts (classification, specialization, display name, "Classification,
   Specialization") equal to the text or to a practitioner word turned into its field
   ("cardiologist" -> "cardiology", "pediatrician" -> "pediatrics", "surgeon" -> "surgery"),
   or containing it as whole words, with ``npistack.services.search.taxonomy_codes``;
3. common names NUCC does not use (``SYNONYMS``: "family doctor", "OB/GYN", "GP", "NP", "PA");
4. failing all that, the NUCC texts closest to it (RapidFuzz token set ratio >= 90).

:func:`related` says whether two codes are the same field: they share their NUCC
classification ("Internal Medicine" holds Cardiovascular Disease, Gastroenterology ...).
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from rapidfuzz import fuzz, process

from npistack.nppes.taxonomy import load_nucc
from npistack.settings import get_settings

CODE = re.compile(r"^[0-9A-Z]{9}X$")

# Words NUCC does not use for a field, to the NUCC text they mean.
SYNONYMS: dict[str, str] = {
    "family doctor": "family medicine",
    "family practice": "family medicine",
    "family practitioner": "family medicine",
    "general practice": "family medicine",
    "general practitioner": "family medicine",
    "gp": "family medicine",
    "primary care": "family medicine",
    "pcp": "family medicine",
    "internist": "internal medicine",
    "ob/gyn": "obstetrics & gynecology",
    "obgyn": "obstetrics & gynecology",
    "ob gyn": "obstetrics & gynecology",
    "obstetrician": "obstetrics & gynecology",
    "gynecologist": "obstetrics & gynecology",
    "gynecology": "obstetrics & gynecology",
    "ent": "otolaryngology",
    "ear nose and throat": "otolaryngology",
    "cardiology": "cardiovascular disease",
    "cardiologist": "cardiovascular disease",
    "heart doctor": "cardiovascular disease",
    "oncologist": "medical oncology",
    "oncology": "medical oncology",
    "np": "nurse practitioner",
    "pa": "physician assistant",
    "pa-c": "physician assistant",
    "rn": "registered nurse",
    "pt": "physical therapist",
    "physiotherapist": "physical therapist",
    "ot": "occupational therapist",
    "slp": "speech-language pathologist",
    "speech therapist": "speech-language pathologist",
    "dentist": "dentist",
    "dental": "dentist",
    "general dentistry": "general practice",
    "orthodontist": "orthodontics and dentofacial orthopedics",
    "orthodontics": "orthodontics and dentofacial orthopedics",
    "oral surgeon": "oral and maxillofacial surgery",
    "orthopedics": "orthopaedic surgery",
    "orthopedic surgery": "orthopaedic surgery",
    "orthopedist": "orthopaedic surgery",
    "orthopaedist": "orthopaedic surgery",
    "orthopedic surgeon": "orthopaedic surgery",
    "ophthalmologist": "ophthalmology",
    "eye doctor": "optometrist",
    "psychiatrist": "psychiatry",
    "therapist": "counselor",
    "counselor": "counselor",
    "social worker": "social worker",
    "lcsw": "clinical",
    "chiropractor": "chiropractor",
    "podiatrist": "podiatrist",
    "foot doctor": "podiatrist",
    "pharmacist": "pharmacist",
    "pharmacy": "pharmacy",
    "anesthesiologist": "anesthesiology",
    "crna": "nurse anesthetist, certified registered",
    "nurse anesthetist": "nurse anesthetist, certified registered",
    "emergency medicine physician": "emergency medicine",
    "er doctor": "emergency medicine",
    "hospitalist": "hospitalist",
    "midwife": "midwife",
}

# Practitioner words to their fields: "-ologist" -> "-ology", "-ician" -> "-ics", "-ist" -> "-y".
_ENDINGS = (("ologist", "ology"), ("iatrician", "iatrics"), ("ician", "ics"), ("geon", "gery"), ("ist", "y"))


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("&", " & ").split())


@cache
def _texts(path: str | None) -> tuple[list[str], list[str]]:
    """Every NUCC text (lower case) and the code it belongs to, in parallel lists."""
    texts: list[str] = []
    codes: list[str] = []
    for code, t in sorted(load_nucc(path).items()):
        for text in {t.classification, t.specialization, t.display_name, t.description}:
            if text:
                texts.append(_norm(text))
                codes.append(code)
    return texts, codes


def _exact(text: str) -> frozenset[str]:
    from npistack.services.search import taxonomy_codes

    try:
        return frozenset(taxonomy_codes(text))
    except ValueError:
        return frozenset()


@lru_cache(maxsize=4096)
def specialty_codes(text: str) -> frozenset[str]:
    """The NUCC codes a specialty text can mean (empty when nothing is close)."""
    raw = text.strip()
    if not raw:
        return frozenset()
    if CODE.match(raw.upper()):
        return frozenset({raw.upper()})
    norm = _norm(raw).strip(" .")
    forms = [SYNONYMS.get(norm, norm)]
    for end, field in _ENDINGS:
        if norm.endswith(end):
            forms.append(norm[: -len(end)] + field)
            break
    for form in forms:
        found = _exact(form)
        if found:
            return found
    texts, codes = _texts(get_settings().nucc_csv or None)
    best = process.extract(forms[-1], texts, scorer=fuzz.token_set_ratio, score_cutoff=90, limit=20)
    return frozenset(codes[i] for _, _, i in best)


@cache
def _classifications(path: str | None) -> dict[str, str]:
    return {code: t.classification.lower() for code, t in load_nucc(path).items()}


def related(a: str, b: str) -> bool:
    """Two codes of the same NUCC classification (the same field, e.g. internal medicine)."""
    table = _classifications(get_settings().nucc_csv or None)
    ca, cb = table.get(a), table.get(b)
    return ca is not None and ca == cb


def describe(code: str) -> str:
    """A code's NUCC display name (or description), the code itself when NUCC does not know it."""
    t = load_nucc(get_settings().nucc_csv or None).get(code)
    return (t.display_name or t.description) if t else code
