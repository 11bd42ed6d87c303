"""The NUCC Health Care Provider Taxonomy code set.

npistack ships NUCC v25.1 (``data/nucc_taxonomy.csv``); any NUCC release with the same columns
(``Code,Grouping,Classification,Specialization,Definition,Notes,Display Name,Section``) can be
dropped in with the ``NPISTACK_NUCC_CSV`` setting. Older releases without "Display Name" or
"Section" are accepted too: the display name is then built from classification and specialization.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from npistack.errors import ConfigError

REQUIRED = ("Code", "Grouping", "Classification", "Specialization")


@dataclass(frozen=True, slots=True)
class Taxonomy:
    code: str
    grouping: str
    classification: str
    specialization: str
    display_name: str
    section: str  # "Individual" or "Non-Individual" ("" in releases without the column)

    @property
    def description(self) -> str:
        """The CMS registry style description: "Classification, Specialization"."""
        if self.specialization:
            return f"{self.classification}, {self.specialization}"
        return self.classification


def parse_nucc(text: str, source: str = "NUCC CSV") -> dict[str, Taxonomy]:
    """Parse a NUCC taxonomy CSV into ``{code: Taxonomy}``."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in fields]
    if missing:
        raise ConfigError(f"{source}: not a NUCC taxonomy CSV (missing columns: {', '.join(missing)})")
    out: dict[str, Taxonomy] = {}
    for row in reader:
        code = (row.get("Code") or "").strip().upper()
        if not code:
            continue
        classification = (row.get("Classification") or "").strip()
        specialization = (row.get("Specialization") or "").strip()
        display = (row.get("Display Name") or "").strip()
        if not display:
            display = f"{specialization} {classification}".strip() if specialization else classification
        out[code] = Taxonomy(
            code=code,
            grouping=(row.get("Grouping") or "").strip(),
            classification=classification,
            specialization=specialization,
            display_name=display,
            section=(row.get("Section") or "").strip(),
        )
    if not out:
        raise ConfigError(f"{source}: the NUCC taxonomy CSV holds no codes")
    return out


@cache
def load_nucc(path: str | None = None) -> dict[str, Taxonomy]:
    """The taxonomy set: the shipped release, or the CSV at ``path``."""
    if path:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise ConfigError(f"cannot read NUCC taxonomy CSV {p}: {e.strerror}") from None
        return parse_nucc(text, str(p))
    text = resources.files("npistack.nppes").joinpath("data", "nucc_taxonomy.csv").read_text(encoding="utf-8")
    return parse_nucc(text, "shipped NUCC v25.1")
