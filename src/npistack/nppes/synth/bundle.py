"""Synthetic NPPES "Full Replacement" monthly bundles, byte-for-byte in CMS's format.

``write_bundle(out_dir, n, seed)`` writes ``NPPES_Data_Dissemination_<Month>_<YYYY>_V2.zip`` (or the same
files in a folder) holding the four ``*_pfile_20050523-YYYYMMDD.csv`` data files and their
``_fileheader.csv`` files. Output is a pure function of the arguments (and of the installed reference
data): the same call writes the same bytes. Rows are streamed, so memory does not grow with ``n``;
child files are spooled to temporary files beside the zip and copied in after ``npidata``.

What the rows look like (shares are per ``npidata`` row, drawn independently):

- ~76% individuals (Entity Type 1): physicians of many specialties (~30% of individuals), nurse
  practitioners, PAs, RNs, dentists, pharmacists, therapists, counselors and social workers, ... with
  1-4 taxonomy slots, licences, usually exactly one primary switch "Y" (a few rows have none, or "X").
  Names follow the 1990 US Census frequencies (``data/census_names.txt.gz``, its header says how):
  88,799 surnames with a long tail (SMITH ~1.1% of individuals, the top 200 ~27%; in a 1M-row bundle
  ~70% of individuals share their first + last name with nobody), O'BRIEN, VAN DYKE, DE LA CRUZ and
  ST. JOHN spelled as written, ~2% hyphenated double last names; 1,222 male and 4,276 female first
  names, about two thirds of people's with nicknames (the ``nicknames`` package). ~7% carry an "other
  name": a former (maiden) last name, type 1, or a nickname as professional name, type 2.
- ~21% organizations (Entity Type 2): clinics, group practices (with ``Taxonomy Group`` columns such as
  ``193400000X SINGLE SPECIALTY  GROUP``), pharmacies, hospitals, labs, home health, DME, nursing
  facilities, ambulance services, ... EIN is ``<UNAVAIL>``; ~45% have ``<UNAVAIL>``/``6`` as other
  name (as CMS's files do), ~15% a real DBA (type 3); ~12% are subparts naming their parent.
- ~3% deactivated stubs: only NPI and NPI Deactivation Date filled.
- ~0.5% reactivated: full rows (counted as individuals or organizations) with both dates.

Realistic detail: NPIs are Luhn-valid, start with 1 and are unique (an affine permutation of the
9-digit body, in a scattered order like CMS's); ZIP/city/state triples are real USPS STANDARD ZIPs
(``normalize.geo.zip_table``) picked by state population; phones use an area code of that ZIP and an
exchange that ``phonenumbers`` accepts; taxonomy codes come from the shipped NUCC set (plus a long
tail of random NUCC codes); ~12% of enumeration dates are 05/23/2005. Some mess is kept on purpose:
suites in address line 1, lower or mixed case, doubled spaces, odd credentials, missing phones.

Child files: ~8% of providers have 1-5 secondary practice locations (``pl``); every organization
with a real other name (types 3/4/5; ``<UNAVAIL>`` is not copied, as in CMS's files) has ``othername``
rows; ~5% have ``endpoint`` rows (DIRECT addresses, FHIR and REST URLs on example domains). Child rows
only name active NPIs present in ``npidata``. ``broken_rows`` injects bad rows (wrong column count,
failed check digit, 02/30/2019 enumeration date, Entity Type "3") spread evenly through the file.

``variant`` picks the npidata layout: "current" (330 columns, "Provider Sex Code"), "pre2025"
("Provider Gender Code") or "329" (Gender and no trailing "Certification Date"); the child files keep
their single layout (``othername`` has 3 columns).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO

from npistack.nppes.layout import CERTIFICATION_DATE, FILE_KINDS, GENDER, SEX, FileKind, canonical_columns
from npistack.nppes.synth.rows import _DEACT, _ENUM, _Gen

VARIANTS = ("current", "pre2025", "329")
CHILD_KINDS: tuple[FileKind, ...] = ("pl", "othername", "endpoint")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
ZIP_LEVEL = 1
_CHUNK = 2000  # rows buffered before a write
_PROGRESS_EVERY = 10_000


@dataclass
class SynthStats:
    """What ``write_bundle`` wrote. ``providers`` = individuals + organizations + deactivated + broken;
    reactivated rows are also counted as individuals or organizations."""

    path: Path
    providers: int = 0
    individuals: int = 0
    organizations: int = 0
    deactivated: int = 0
    reactivated: int = 0
    pl_rows: int = 0
    othername_rows: int = 0
    endpoint_rows: int = 0
    broken_rows: int = 0


# ---- writing -----------------------------------------------------------------------------------------


def bundle_name(release: date) -> str:
    """``NPPES_Data_Dissemination_<Month>_<YYYY>_V2`` for a release date."""
    return f"NPPES_Data_Dissemination_{MONTHS[release.month - 1]}_{release.year}_V2"


def data_file_name(kind: FileKind, release: date) -> str:
    """``<kind>_pfile_20050523-YYYYMMDD.csv``, ending the Sunday (day) before the release."""
    return f"{kind}_pfile_20050523-{release - timedelta(days=1):%Y%m%d}.csv"


def variant_columns(kind: FileKind, variant: str) -> tuple[str, ...]:
    """The column names written for one file kind and npidata variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    cols = canonical_columns(kind)
    if kind != "npidata" or variant == "current":
        return cols
    cols = tuple(GENDER if c == SEX else c for c in cols)
    return cols[:-1] if variant == "329" and cols[-1] == CERTIFICATION_DATE else cols


def _header_line(cols: Sequence[str]) -> bytes:
    return ('"' + '","'.join(cols) + '"\n').encode()


def _zip_info(name: str, when: date) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(when.year, when.month, when.day, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = ZIP_LEVEL  # type: ignore[attr-defined]  # the only knob before Python 3.13
    info.external_attr = 0o644 << 16
    return info


def _flush(buf: list[str], raw: IO[bytes]) -> None:
    raw.write("".join(buf).encode())
    buf.clear()


def write_bundle(
    out_dir: Path,
    n: int,
    seed: int = 0,
    *,
    release: date = date(2026, 11, 9),
    as_folder: bool = False,
    variant: str = "current",
    broken_rows: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SynthStats:
    """Write a synthetic monthly bundle of ``n`` npidata rows into ``out_dir``; see the module docstring."""
    if n < 0 or not 0 <= broken_rows <= n:
        raise ValueError(f"need 0 <= broken_rows <= n, got n={n}, broken_rows={broken_rows}")
    headers = {k: _header_line(variant_columns(k, variant)) for k in FILE_KINDS}
    gen = _Gen(seed, release, len(variant_columns("npidata", variant)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {k: data_file_name(k, release) for k in FILE_KINDS}
    header_names = {k: names[k].removesuffix(".csv") + "_fileheader.csv" for k in FILE_KINDS}
    base = bundle_name(release)
    stats = SynthStats(path=out_dir / (base if as_folder else base + ".zip"), providers=n)

    if as_folder:
        stats.path.mkdir(exist_ok=True)
        with ExitStack() as stack:
            files: dict[FileKind, IO[bytes]] = {}
            for k in FILE_KINDS:
                files[k] = stack.enter_context(open(stats.path / names[k], "wb"))
            _generate(gen, n, broken_rows, stats, files, headers, progress)
        for k in FILE_KINDS:
            (stats.path / header_names[k]).write_bytes(headers[k])
        return stats

    # npidata streams straight into the zip; the child files are spooled beside it and copied in after.
    try:
        with (
            tempfile.TemporaryDirectory(dir=out_dir, prefix=".synth-") as tmp,
            zipfile.ZipFile(stats.path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf,
        ):
            spool = Path(tmp)
            with ExitStack() as stack:
                info = _zip_info(names["npidata"], release)
                files = {"npidata": stack.enter_context(zf.open(info, "w", force_zip64=True))}
                for k in CHILD_KINDS:
                    files[k] = stack.enter_context(open(spool / names[k], "wb"))
                _generate(gen, n, broken_rows, stats, files, headers, progress)
            for k in FILE_KINDS:
                if k in CHILD_KINDS:
                    info = _zip_info(names[k], release)
                    info.file_size = (spool / names[k]).stat().st_size  # lets zipfile pick zip64 itself
                    with open(spool / names[k], "rb") as src, zf.open(info, "w") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                zf.writestr(_zip_info(header_names[k], release), headers[k])
    except BaseException:
        stats.path.unlink(missing_ok=True)  # never leave a truncated zip behind
        raise
    return stats


def _generate(
    gen: _Gen,
    n: int,
    broken: int,
    stats: SynthStats,
    files: dict[FileKind, IO[bytes]],
    headers: dict[FileKind, bytes],
    progress: Callable[[int], None] | None,
) -> None:
    """The hot loop: one npidata line per row, child lines as they come, written in chunks."""
    rnd, days, width, blank = gen.rnd, gen.days, gen.width, gen.blank
    for k, raw in files.items():
        raw.write(headers[k])
    main: list[str] = []
    pl: list[str] = []
    other: list[str] = []
    endp: list[str] = []
    bufs = (
        (main, files["npidata"]),
        (pl, files["pl"]),
        (other, files["othername"]),
        (endp, files["endpoint"]),
    )
    next_broken = n // (2 * broken) if broken else n
    k_broken = 0
    reported = 0
    for i in range(n):
        npi = gen.npi(i)
        r = blank.copy()
        r[0] = npi
        u = rnd()
        if i == next_broken:  # the k-th broken row sits at (k + 1/2) * n / broken
            gen.individual(r)
            r = r[:width]
            kind = k_broken % 4
            if kind == 0:  # wrong column count: 3 short, or 1 extra
                r = r[: width - 3] if k_broken // 4 % 2 == 0 else [*r, ""]
            elif kind == 1:
                r[0] = npi[:9] + str((int(npi[9]) + 1 + int(rnd() * 9)) % 10)
            elif kind == 2:
                r[_ENUM] = "02/30/2019"
            else:
                r[1] = "3"
            stats.broken_rows += 1
            k_broken += 1
            next_broken = (2 * k_broken + 1) * n // (2 * broken) if k_broken < broken else n
            main.append('"' + '","'.join(r) + '"\n')
        elif u < 0.03:
            stats.deactivated += 1
            r[_DEACT] = days[400 + int(rnd() * (gen.span - 400))]
            main.append('"' + '","'.join(r[:width]) + '"\n')
        else:
            if u < 0.03 + 0.76:
                loc, first, last = gen.individual(r)
                local = first[0] + last
                stats.individuals += 1
            else:
                loc, local, names = gen.organization(r)
                stats.organizations += 1
                for name, code in names:
                    other.append(f'"{npi}","{name}","{code}"\n')
                stats.othername_rows += len(names)
            if rnd() < 0.005 / 0.97:
                gen.reactivate(r)
                stats.reactivated += 1
            main.append('"' + '","'.join(r[:width]) + '"\n')
            if rnd() < 0.08:
                stats.pl_rows += gen.locations(npi, loc[3], pl)
            if rnd() < 0.05:
                stats.endpoint_rows += gen.endpoints(npi, local, loc, endp)
        if len(main) >= _CHUNK:
            for buf, raw in bufs:
                _flush(buf, raw)
        if progress is not None and i + 1 - reported >= _PROGRESS_EVERY:
            progress(i + 1 - reported)
            reported = i + 1
    for buf, raw in bufs:
        _flush(buf, raw)
    if progress is not None and n > reported:
        progress(n - reported)
