"""The state of a synthetic month (``synth.updates``): reading the base bundle, sampling whom to change,
and every provider the month touched.

The base is read in streaming passes so memory does not grow with its size:

- ``open_base`` recognises the bundle, its release (the end date in its file names) and keeps each data
  file's header line as it is, so the weeklies and the full file repeat the base's layout exactly.
- ``MonthState`` makes one pass over the base npidata: a bitmap of every 9-digit NPI body (25 MB, to
  keep new NPIs unique), the compact list of deactivated stubs (line index, NPI, date: candidates for
  reactivation and the report), and a seeded reservoir sample (Algorithm R) of the active rows that
  may be changed. One pass over each child file then keeps the child rows of the sampled NPIs only.
  Sampled rows that are not clean records (wrong column count, bad NPI or dates) are left alone.
- ``Entry`` holds a touched provider's current npidata line and complete child sets; ``state`` keeps
  them in touch order, which is the creation order of new NPIs.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from hashlib import sha256
from pathlib import Path
from random import Random

from npistack.errors import SourceError
from npistack.nppes.layout import FILE_KINDS, FileKind, detect_layout
from npistack.nppes.lines import decode_block, parse_line
from npistack.nppes.npi import make_npi, npi_problem
from npistack.nppes.reader import Bundle, DataFile, iter_blocks, open_bundle
from npistack.nppes.synth.bundle import CHILD_KINDS, _header_line, variant_columns
from npistack.nppes.synth.changes import Children, row_line
from npistack.nppes.synth.rows import _DEACT, _REACT, _Gen

Progress = Callable[[str, int], None]
SHARE_REUSED = 0.10  # changes that hit an NPI already changed this month
_BODY0, _BODIES = 100_000_000, 200_000_000  # 9-digit NPI bodies 1xxxxxxxx and 2xxxxxxxx
_PROGRESS_LINES = 100_000


@dataclass
class Entry:
    """A provider the month touched: its current npidata line (no newline) and complete child sets."""

    row: str
    children: Children
    order: int  # base line index, or after the base in creation order
    base_index: int  # -1 for NPIs created this month
    stub: bool


@dataclass
class Base:
    """The base bundle: its files, release (the Sunday its file names end on), and each file's header
    line as written (repeated in the weeklies and the full file) with its column count."""

    bundle: Bundle
    end: date
    headers: dict[FileKind, bytes]
    widths: dict[FileKind, int]


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 64-bit seed per purpose, so the month never replays the base's random draws.
    The key names the module this lived in before ``synth`` became a package: kept, so a seed still
    writes the same bytes."""
    return int.from_bytes(sha256(f"npistack.synth_updates:{seed}:{purpose}".encode()).digest()[:8], "big")


def ymd(text: str) -> date | None:
    """YYYYMMDD -> date, None for anything else."""
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:])) if len(text) == 8 else None
    except ValueError:
        return None


def mdy(text: str) -> date | None:
    """MM/DD/YYYY -> date, None for anything else."""
    if len(text) != 10 or text[2] != "/" or text[5] != "/":
        return None
    try:
        return date(int(text[6:]), int(text[:2]), int(text[3:5]))
    except ValueError:
        return None


def open_base(path: Path) -> Base:
    """Recognise the base bundle; raises ``SourceError`` (or ``LayoutError``) when it cannot be used."""
    bundle = open_bundle(path)
    main = bundle.files.get("npidata")
    if main is None:
        raise SourceError(f"{path}: the base bundle has no npidata file")
    end = ymd(main.end)
    if end is None:
        raise SourceError(f"{path}: cannot tell the base release (no YYYYMMDD-YYYYMMDD range in {main.name})")
    headers: dict[FileKind, bytes] = {}
    widths: dict[FileKind, int] = {}
    for kind in FILE_KINDS:
        f = bundle.files.get(kind)
        if f is None:
            headers[kind] = _header_line(variant_columns(kind, "current"))
        else:
            with f.open() as fh:
                line = fh.readline(1 << 20)
            headers[kind] = line if line.endswith(b"\n") else line + b"\n"
        cols = parse_line(decode_block(headers[kind]).lstrip("\ufeff").rstrip("\r\n")) or []
        detect_layout(kind, cols, f.name if f else kind)  # raises LayoutError for unknown headers
        widths[kind] = len(cols)
    return Base(bundle, end, headers, widths)


def blocks(df: DataFile) -> Iterator[tuple[int, list[bytes]]]:
    """(index of the first data line, the block's data lines without their newlines)."""
    index = 0
    with df.open() as fh:
        fh.readline(1 << 20)  # the header
        for _, block in iter_blocks(fh):
            lines = block.split(b"\n")
            if not lines[-1]:
                lines.pop()
            yield index, lines
            index += len(lines)


def npi_of(line: bytes) -> str:
    """The first field of a data line (the NPI), cheaply for CMS's quoting."""
    if line[:1] == b'"' and line[11:12] == b'"':
        return line[1:11].decode("latin-1")
    fields = parse_line(decode_block(line).rstrip("\r"))
    return fields[0] if fields else ""


class MonthState:
    """The month so far: the sampled base, the base's stubs, and every provider touched (``state``).

    All randomness after the reservoir comes from ``gen.rng``, in one fixed order, so one seed gives
    one month."""

    def __init__(self, base: Base, gen: _Gen, need: int, seed: int, progress: Progress | None) -> None:
        self.base, self.gen, self.rnd = base, gen, gen.rnd
        self.width = base.widths["npidata"]
        self.state: dict[str, Entry] = {}
        self.active: list[str] = []  # NPIs touched and active at the time (pruned lazily)
        self.stubbed: list[str] = []  # NPIs deactivated by a weekly (pruned lazily)
        self.bodies = bytearray(_BODIES // 8)
        self.stub_index, self.stub_npi, self.stub_day = array("q"), array("q"), array("l")
        self.stub_taken: set[int] = set()
        self.created = 0
        self.base_rows = 0
        pool = self._scan(need, Random(derive_seed(seed, "reservoir")), progress)
        gen.rng.shuffle(pool)
        self.fresh = pool
        self.base_children = self._children({npi_of(line) for _, line in pool}, progress)

    # -- reading the base

    def _scan(self, need: int, rng: Random, progress: Progress | None) -> list[tuple[int, bytes]]:
        """Mark every NPI body, list the stubs, and sample ``need`` active rows (Algorithm R)."""
        bodies, rnd = self.bodies, rng.random
        pool: list[tuple[int, bytes]] = []
        seen = reported = 0
        for first, lines in blocks(self.base.bundle.files["npidata"]):
            for j, line in enumerate(lines):
                if line[:1] == b'"' and line[11:14] == b'","':
                    body, kind = line[1:10], line[14:16]
                else:  # not CMS's quoting: parse it
                    fields = parse_line(decode_block(line).rstrip("\r")) or [""]
                    body = fields[0][:9].encode()
                    kind = (fields[1] + '"').encode() if len(fields) > 1 and fields[1] else b'",'
                if body.isdigit():
                    b = int(body) - _BODY0
                    if 0 <= b < _BODIES:
                        bodies[b >> 3] |= 1 << (b & 7)
                if kind == b'1"' or kind == b'2"':
                    seen += 1
                    if len(pool) < need:
                        pool.append((first + j, line))
                    else:
                        k = int(rnd() * seen)
                        if k < need:
                            pool[k] = (first + j, line)
                elif kind == b'",':
                    self._stub(first + j, line)
            self.base_rows = first + len(lines)
            if progress is not None and self.base_rows - reported >= _PROGRESS_LINES:
                progress("scan", self.base_rows)
                reported = self.base_rows
        if progress is not None:
            progress("scan", self.base_rows)
        return pool

    def _stub(self, index: int, line: bytes) -> None:
        fields = parse_line(decode_block(line).rstrip("\r"))
        if not fields or len(fields) != self.width or npi_problem(fields[0]) or fields[1]:
            return
        day = mdy(fields[_DEACT])
        if day is not None:
            self.stub_index.append(index)
            self.stub_npi.append(int(fields[0]))
            self.stub_day.append(day.toordinal())

    def _children(self, npis: set[str], progress: Progress | None) -> dict[str, Children]:
        out: dict[str, Children] = {}
        for kind in CHILD_KINDS:
            df = self.base.bundle.files.get(kind)
            if df is None:
                continue
            for first, lines in blocks(df):
                for line in lines:
                    npi = npi_of(line)
                    if npi in npis:
                        out.setdefault(npi, {}).setdefault(kind, []).append(decode_block(line).rstrip("\r"))
                if progress is not None:
                    progress(f"children {kind}", first + len(lines))
        return out

    def _fields(self, line: bytes) -> list[str] | None:
        """A sampled base row, if it is a clean active record (garbage is left alone)."""
        f = parse_line(decode_block(line).rstrip("\r"))
        if not f or len(f) != self.width or npi_problem(f[0]) or f[1] not in ("1", "2"):
            return None
        for col in (36, 37, _DEACT, _REACT, 329):
            if col < len(f) and f[col] and mdy(f[col]) is None:
                return None
        deact, react = mdy(f[_DEACT]), mdy(f[_REACT])
        if deact is not None and (react is None or react < deact):
            return None  # a full row that still reads as deactivated
        return f

    # -- choosing whom to change

    def new_npi(self) -> str:
        bodies, rnd = self.bodies, self.rnd
        while True:
            b = int(rnd() * (_BODIES // 2))  # bodies 1xxxxxxxx, like synth's
            if not bodies[b >> 3] & (1 << (b & 7)):
                bodies[b >> 3] |= 1 << (b & 7)
                return make_npi(str(_BODY0 + b))

    def add(self, npi: str, row: list[str], children: Children, base_index: int = -1) -> None:
        """Record ``npi``'s new row and child sets (it keeps its place if touched before)."""
        stub = not row[1]
        prev = self.state.get(npi)
        if prev is not None:
            order, base_index = prev.order, prev.base_index
        elif base_index >= 0:
            order = base_index
        else:
            self.created += 1
            order = 10**15 + self.created
        self.state[npi] = Entry(row_line(row), children, order, base_index, stub)
        if prev is None or prev.stub != stub:
            (self.stubbed if stub else self.active).append(npi)

    def take_fresh(self) -> tuple[list[str], Children, int] | None:
        """An untouched active base row, its children and its line index."""
        while self.fresh:
            index, line = self.fresh.pop()
            f = self._fields(line)
            if f is not None:
                return f, self.base_children.pop(f[0], {}), index
        return None

    def _reuse(self, pool: list[str], used: set[str], stub: bool) -> str | None:
        for _ in range(8):
            if not pool:
                return None
            j = int(self.rnd() * len(pool))
            npi = pool[j]
            if self.state[npi].stub != stub:
                pool[j] = pool[-1]
                pool.pop()
            elif npi not in used:
                return npi
        return None

    def pick_active(self, used: set[str]) -> tuple[str, list[str], Children, int] | None:
        """An active NPI not yet changed this week: (npi, fields, children, base index)."""
        if not self.fresh or self.rnd() < SHARE_REUSED:
            npi = self._reuse(self.active, used, stub=False)
            if npi is not None:
                e = self.state[npi]
                return npi, parse_line(e.row) or [], e.children, e.base_index
        got = self.take_fresh()
        return None if got is None else (got[0][0], got[0], got[1], got[2])

    def pick_stub(self, used: set[str]) -> tuple[str, str, int] | None:
        """A stub to reactivate: (npi, its deactivation date MM/DD/YYYY, base index)."""
        if self.stubbed and self.rnd() < 0.2:
            npi = self._reuse(self.stubbed, used, stub=True)
            if npi is not None:
                e = self.state[npi]
                return npi, (parse_line(e.row) or [""] * self.width)[_DEACT], e.base_index
        n = len(self.stub_npi)
        for _ in range(20 if n > len(self.stub_taken) else 0):
            j = int(self.rnd() * n)
            if j not in self.stub_taken:
                self.stub_taken.add(j)
                day = date.fromordinal(self.stub_day[j])
                return f"{self.stub_npi[j]:010d}", f"{day:%m/%d/%Y}", self.stub_index[j]
        return None

    def final_stubs(self) -> list[tuple[str, date]]:
        """Every NPI that is a stub at the end, with its deactivation date, by NPI."""
        out = [
            (f"{self.stub_npi[j]:010d}", date.fromordinal(self.stub_day[j]))
            for j in range(len(self.stub_npi))
            if j not in self.stub_taken
        ]
        for npi, e in self.state.items():
            if e.stub:
                day = mdy((parse_line(e.row) or [""] * self.width)[_DEACT])
                if day is not None:
                    out.append((npi, day))
        out.sort()
        return out
