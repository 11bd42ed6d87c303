"""The column layouts of the four NPPES dissemination files, and their known variants.

The canonical layouts are the current (V2, 2025+) headers shipped in ``data/``, byte-identical to
CMS's ``*_fileheader.csv`` files. Every accepted variant is read by remapping its columns onto the
canonical order, so the rest of the code only ever sees canonical rows:

- ``npidata``: "Provider Sex Code" (2025+) or "Provider Gender Code" (before 2025); with or
  without the trailing "Certification Date" (330 or 329 columns).
- ``othername``: 3 columns, or 4 with a trailing "Created Date".
- ``pl`` and ``endpoint``: one layout each.

Header names are compared case-insensitively and ignoring whitespace (CMS's pl header has odd
double spaces); anything else is refused with a ``LayoutError`` naming the missing and unexpected
columns.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from npistack.errors import LayoutError

FileKind = Literal["npidata", "pl", "othername", "endpoint"]
FILE_KINDS: tuple[FileKind, ...] = ("npidata", "pl", "othername", "endpoint")

TAXONOMY_SLOTS = 15
IDENTIFIER_SLOTS = 50

SEX = "Provider Sex Code"
GENDER = "Provider Gender Code"
CERTIFICATION_DATE = "Certification Date"
OTHERNAME_CREATED = "Created Date"

_HEADER_FILES: dict[FileKind, str] = {
    "npidata": "npidata_pfile_header.csv",
    "pl": "pl_pfile_header.csv",
    "othername": "othername_pfile_header.csv",
    "endpoint": "endpoint_pfile_header.csv",
}

# Data file names as CMS publishes them, e.g. npidata_pfile_20050523-20260809.csv.
DATA_FILE_RE = re.compile(
    r"(?P<kind>npidata|pl|othername|endpoint)_pfile_(?P<start>\d{8})-(?P<end>\d{8})\.csv$", re.IGNORECASE
)


def _read_header(name: str) -> tuple[str, ...]:
    text = resources.files("npistack.nppes").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(next(csv.reader([text.strip()])))


@cache
def canonical_columns(kind: FileKind) -> tuple[str, ...]:
    """The canonical (current CMS) column names of one file kind."""
    return _read_header(_HEADER_FILES[kind])


def header_file_text(kind: FileKind) -> str:
    """The exact bytes CMS ships as ``<kind>_pfile_..._fileheader.csv`` (quoted, LF-terminated)."""
    return ",".join(f'"{c}"' for c in canonical_columns(kind)) + "\n"


def _key(name: str) -> str:
    return re.sub(r"\s+", "", name).casefold()


@dataclass(frozen=True)
class Layout:
    """A recognised header: its variant name and how to turn its rows into canonical rows."""

    kind: FileKind
    variant: str
    width: int  # number of columns in the file
    remap: Callable[[list[str]], list[str]] | None  # None when the file is already canonical

    def to_canonical(self, row: list[str]) -> list[str]:
        return row if self.remap is None else self.remap(row)


def _remapper(source: Sequence[str], canonical: Sequence[str]) -> Callable[[list[str]], list[str]]:
    """Build a row remapper: canonical column i takes source column idx[i], or '' if absent."""
    pos = {_key(c): i for i, c in enumerate(source)}
    aliases = {_key(SEX): _key(GENDER)}
    width = len(source)
    idx = []
    for c in canonical:
        k = _key(c)
        if k in pos:
            idx.append(pos[k])
        elif k in aliases and aliases[k] in pos:
            idx.append(pos[aliases[k]])
        else:
            idx.append(width)  # points at the '' we append

    def remap(row: list[str]) -> list[str]:
        row.append("")
        return [row[i] for i in idx]

    return remap


def detect_layout(kind: FileKind, header: Sequence[str], filename: str) -> Layout:
    """Recognise the header of one data file, or raise ``LayoutError`` saying what is wrong."""
    canonical = canonical_columns(kind)
    got = [_key(h) for h in header]
    want = [_key(c) for c in canonical]
    if got == want:
        return Layout(kind, "current", len(canonical), None)

    optional: set[str] = set()
    renamed: dict[str, str] = {}
    if kind == "npidata":
        optional = {_key(CERTIFICATION_DATE)}
        renamed = {_key(SEX): _key(GENDER)}
    elif kind == "othername":
        optional = set()
    extra_allowed = {_key(OTHERNAME_CREATED)} if kind == "othername" else set()

    got_set = set(got)
    missing = []
    for c, k in zip(canonical, want, strict=True):
        if k in got_set or k in optional:
            continue
        if k in renamed and renamed[k] in got_set:
            continue
        missing.append(c)
    known = set(want) | set(renamed.values()) | extra_allowed
    unexpected = [h for h, k in zip(header, got, strict=True) if k not in known]
    duplicated = sorted({h for h, k in zip(header, got, strict=True) if got.count(k) > 1})
    if missing or unexpected or duplicated:
        parts = []
        if missing:
            parts.append("missing columns: " + ", ".join(repr(c) for c in missing))
        if unexpected:
            parts.append("unexpected columns: " + ", ".join(repr(c) for c in unexpected))
        if duplicated:
            parts.append("duplicated columns: " + ", ".join(repr(c) for c in duplicated))
        raise LayoutError(f"{filename}: unknown {kind} layout ({len(header)} columns); " + "; ".join(parts))

    # The order must follow CMS's order: a shuffled header is a different file, not a variant.
    canonical_order = [k for k in want if k in got_set or (k in renamed and renamed[k] in got_set)]
    observed_order = [k for k in got if k not in extra_allowed]
    observed_canon = [next((c for c, r in renamed.items() if r == k), k) for k in observed_order]
    if observed_canon != canonical_order:
        raise LayoutError(f"{filename}: {kind} columns are in an unexpected order")

    notes = []
    if kind == "npidata":
        notes.append("gender" if _key(GENDER) in got_set else "sex")
        notes.append("330" if _key(CERTIFICATION_DATE) in got_set else "329-no-certification-date")
    if kind == "othername" and _key(OTHERNAME_CREATED) in got_set:
        notes.append("with-created-date")
    # Known optional extra columns (othername's Created Date) ride along after the canonical ones.
    extras = [h for h, k in zip(header, got, strict=True) if k in extra_allowed]
    return Layout(kind, "+".join(notes) or "reordered", len(header), _remapper(header, [*canonical, *extras]))


def kind_from_filename(filename: str) -> FileKind | None:
    """The file kind of a CMS data file name (``None`` for header files and anything else)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if "fileheader" in base.lower():
        return None
    m = DATA_FILE_RE.search(base)
    if m:
        return m.group("kind").lower()  # type: ignore[return-value]
    low = base.lower()
    for kind in FILE_KINDS:
        if low.startswith(f"{kind}_pfile") and low.endswith(".csv"):
            return kind
    return None


def kind_from_header(header: Sequence[str]) -> FileKind | None:
    """Guess a file kind from its header, for CSVs renamed by the user."""
    keys = {_key(h) for h in header}
    if _key("Entity Type Code") in keys:
        return "npidata"
    if _key("Endpoint Type") in keys:
        return "endpoint"
    if _key("Provider Other Organization Name Type Code") in keys:
        return "othername"
    if any("secondarypracticelocation" in k for k in keys):
        return "pl"
    return None


class Col:
    """Indexes of the canonical ``npidata`` columns used by the transform."""

    def __init__(self) -> None:
        cols = canonical_columns("npidata")
        self.index = {c: i for i, c in enumerate(cols)}
        self.width = len(cols)

    def __getitem__(self, name: str) -> int:
        return self.index[name]


@cache
def npidata_columns() -> Col:
    return Col()
