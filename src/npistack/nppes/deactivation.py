"""CMS's monthly NPPES deactivation report: an Excel workbook of deactivated NPIs and their dates.

CMS publishes it beside the monthly full file (nppes_format.md §3) as
``NPPES_Deactivated_NPI_Report_MMDDYY.zip`` (or ``..._MMDDYY_V2.zip``) holding one workbook,
``NPPES Deactivated NPI Report YYYYMMDD.xlsx``, sheet ``DeactivatedNPIs``. The sheet has one title row,
then a header row with the columns ``NPI`` and ``NPPES Deactivation Date``, then one row per NPI that is
deactivated as of the release (about 300,000 rows). There is no reason code.

Reading (``open_report`` → ``DeactivationReport.rows``) streams the sheet with openpyxl's read-only mode,
so memory does not grow with the row count. The header row is the first of the first 10 rows holding a
cell ``NPI``; the date column is the one whose header contains "Deactivation Date". Every data row comes
back as a ``ReportRow`` with the worksheet row number Excel shows and, when the row cannot be used, a
one-line ``problem``; fully blank rows are skipped.

Before openpyxl parses anything, the workbook's size (and its ratio, inside the zip) and each part of
the workbook (``xl/sharedStrings.xml``, every worksheet: an .xlsx is itself a zip) are checked against
``NPISTACK_XLSX_MAX_PART_BYTES`` and the zip limits of ``npistack.nppes.reader.ZipLimits``, so a small
file that expands to gigabytes is refused in one line instead of filling memory. ``write_report`` writes the same layout (used by the
synthetic month in ``synth.updates``); its content is a pure function of the arguments.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from npistack.errors import SourceError
from npistack.nppes.npi import npi_problem
from npistack.nppes.reader import (
    ZipLimits,
    check_zip_members,
    corrupt_zip,
    open_member,
    ratio_problem,
    zip_damage,
)

SHEET = "DeactivatedNPIs"
TITLE = "NPPES Deactivated NPI Report"
NPI_HEADER = "NPI"
DATE_HEADER = "NPPES Deactivation Date"
DATE_FORMAT = "mm/dd/yyyy"
HEADER_SEARCH_ROWS = 10
_BATCH = 2000  # rows read per visit inside the warnings filter

_ZIP_NAME_RE = re.compile(r"NPPES_Deactivated_NPI_Report_(?P<mmddyy>\d{6})(?:_V\d+)?\.zip$", re.IGNORECASE)
_XLSX_DATE_RE = re.compile(r"(?<!\d)(?P<ymd>\d{8})(?!\d)")
_US_DATE_RE = re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})")
_ISO_DATE_RE = re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})")


@dataclass(frozen=True)
class ReportRow:
    """One data row of the report.

    ``line`` is the 1-based worksheet row number (as Excel shows it); ``npi`` the NPI as read (stripped;
    numeric cells are turned into digit strings); ``date`` the deactivation date as ISO ``YYYY-MM-DD``
    when it could be read; ``problem`` says why the row cannot be used (``None`` when it can); ``raw`` is
    the row's cell values joined with "," (for quarantine).
    """

    line: int
    npi: str
    date: str | None
    problem: str | None
    raw: str


@dataclass
class DeactivationReport:
    """An opened report: where it came from, its release date, a checksum, and its rows on demand.

    ``member`` is the workbook's file name (inside the zip, or the file itself); ``release_date`` comes
    from the ``YYYYMMDD`` in the workbook name, else the ``MMDDYY`` in the zip name; ``checksum`` is the
    sha256 of the workbook bytes. ``rows()`` reopens the workbook and streams it each time it is called.
    """

    source: Path
    member: str
    release_date: date | None
    checksum: str
    sheet: str = field(default=SHEET, repr=False)
    header_line: int = field(default=2, repr=False)
    npi_col: int = field(default=0, repr=False)
    date_col: int = field(default=1, repr=False)

    def rows(self) -> Iterator[ReportRow]:
        """Every non-blank row after the header, in sheet order."""
        book = _load(_workbook_bytes(self.source, self.member), f"{self.source}")
        try:
            ws = book[self.sheet]
            ws.reset_dimensions()  # do not trust the stored dimension: read every row there is
            line = self.header_line
            for values in _batched_rows(ws, self.header_line + 1, f"{self.source}"):
                line += 1
                row = _report_row(line, values, self.npi_col, self.date_col)
                if row is not None:
                    yield row
        finally:
            book.close()


# -- recognising and opening ----------------------------------------------------------------------------


def _xlsx_members(zf: zipfile.ZipFile) -> list[str]:
    return [
        i.filename
        for i in zf.infolist()
        if not i.is_dir()
        and i.filename.lower().endswith(".xlsx")
        and not i.filename.startswith("__MACOSX/")
        and not i.filename.rsplit("/", 1)[-1].startswith("~$")
    ]


def is_deactivation_report(path: Path) -> bool:
    """True for an .xlsx file, or a zip holding exactly one .xlsx that is named like the report (or sits
    in a zip named like the report). NPPES data bundles and anything unreadable give False."""
    try:
        p = Path(path)
        if not p.is_file():
            return False
        if p.suffix.lower() == ".xlsx":
            return True
        if not zipfile.is_zipfile(p):
            return False
        with zipfile.ZipFile(p) as zf:
            members = _xlsx_members(zf)
            if any(n.lower().endswith(".csv") and "_pfile" in n.lower() for n in zf.namelist()):
                return False  # an NPPES data bundle
        if len(members) != 1:
            return False
        return "deactivat" in members[0].lower() or _ZIP_NAME_RE.search(p.name) is not None
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _pick_member(p: Path, zf: zipfile.ZipFile) -> str:
    members = _xlsx_members(zf)
    if not members:
        raise SourceError(f"{p}: the zip holds no .xlsx workbook (expected {TITLE} YYYYMMDD.xlsx)")
    if len(members) > 1:
        named = [m for m in members if "deactivat" in m.lower()]
        if len(named) != 1:
            raise SourceError(f"{p}: the zip holds {len(members)} workbooks; cannot tell which is the report")
        return named[0]
    return members[0]


_PART_SETTING = "NPISTACK_XLSX_MAX_PART_BYTES"


def _max_part_bytes() -> int:
    from npistack.settings import get_settings

    return get_settings().xlsx_max_part_bytes


def _workbook_bytes(p: Path, member: str) -> bytes:
    """The workbook's bytes, refused (SourceError) when it or one of its parts is past the caps."""
    cap = _max_part_bytes()
    limits = ZipLimits.from_settings()
    too_big = f"past the cap of {cap:,} bytes ({_PART_SETTING}); refused before parsing it"
    try:
        if p.suffix.lower() == ".xlsx" or not zipfile.is_zipfile(p):
            if p.stat().st_size > cap:
                raise SourceError(f"{p}: the workbook is {p.stat().st_size:,} bytes, {too_big}")
            data = p.read_bytes()
        else:
            with zipfile.ZipFile(p) as zf:
                info = zf.getinfo(member)
            check_zip_members(p, [info], limits)
            if info.file_size > cap:
                raise SourceError(
                    f"{p}: the workbook {member} expands to {info.file_size:,} bytes, {too_big}"
                )
            with open_member(p, member, limits) as fh:
                data = fh.read(cap + 1)
            if len(data) > cap:
                raise SourceError(f"{p}: the workbook {member} expands past {cap:,} bytes, {too_big}")
    except (OSError, zipfile.BadZipFile, KeyError) as e:
        raise SourceError(f"{p}: cannot read the workbook ({e})") from None
    _check_parts(data, f"{p}" if member == p.name else f"{p}: {member}", cap, limits)
    return data


def _check_parts(data: bytes, where: str, cap: int, limits: ZipLimits) -> None:
    """Every part of the workbook (an .xlsx is a zip) within ``cap`` and the ratio limit, from its
    directory; zipfile never inflates a part past the size its directory declares (it stops there and
    fails the CRC check), so this bounds what openpyxl can be made to hold."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            parts = book.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # not a zip: _load says it is not an Excel workbook
    for info in parts:
        if info.file_size > cap:
            raise SourceError(
                f"{where}: the workbook's part {info.filename} expands to {info.file_size:,} bytes, "
                f"past the cap of {cap:,} bytes ({_PART_SETTING}); refused before parsing it"
            )
        problem = ratio_problem(
            f"{where}: the workbook", info.filename, info.file_size, info.compress_size, limits
        )
        if problem:
            raise SourceError(problem)


def _load(data: bytes, where: str) -> Any:
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            # openpyxl warns about parts it drops (styles, extensions, drawings); the values are intact.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\.|$)")
            return load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types (KeyError, BadZipFile, InvalidFileException...)
        raise SourceError(f"{where}: not an Excel workbook ({type(e).__name__}: {e})") from None


def _batched_rows(ws: Any, min_row: int, where: str) -> Iterator[tuple[Any, ...]]:
    """Rows as value tuples; openpyxl's reading warnings are silenced without holding a filter across
    yields (a generator suspended inside ``catch_warnings`` would leak the filter). A worksheet whose
    compressed bytes are damaged is a one-line SourceError."""
    rows = ws.iter_rows(min_row=min_row, values_only=True)
    while True:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\.|$)")
            try:
                batch = [r for _, r in zip(range(_BATCH), rows, strict=False)]
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise SourceError(f"{where}: the workbook is corrupt ({type(e).__name__}: {e})") from None
        yield from batch
        if len(batch) < _BATCH:
            return


def _find_header(ws: Any) -> tuple[int, int, int] | None:
    """(header row number, NPI column, date column), 0-based columns, or None."""
    ws.reset_dimensions()  # a wrong stored dimension would cut rows or columns off
    for line, values in enumerate(ws.iter_rows(min_row=1, max_row=HEADER_SEARCH_ROWS, values_only=True), 1):
        texts = [str(v).strip() if v is not None else "" for v in values]
        if NPI_HEADER not in (t.upper() for t in texts):
            continue
        npi_col = next(i for i, t in enumerate(texts) if t.upper() == NPI_HEADER)
        date_col = next((i for i, t in enumerate(texts) if "deactivation date" in t.lower()), None)
        if date_col is None:
            return None
        return line, npi_col, date_col
    return None


def _release_from_names(p: Path, member: str) -> date | None:
    m = _XLSX_DATE_RE.search(member.rsplit("/", 1)[-1])
    if m:
        ymd = m.group("ymd")
        try:
            return date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]))
        except ValueError:
            pass
    m = _ZIP_NAME_RE.search(p.name)
    if m:
        s = m.group("mmddyy")
        try:
            return date(2000 + int(s[4:]), int(s[:2]), int(s[2:4]))
        except ValueError:
            return None
    return None


def open_report(path: Path) -> DeactivationReport:
    """Open a report (.xlsx, or the zip CMS ships it in) and find its header; raises ``SourceError``."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{p}: no such file")
    if p.suffix.lower() == ".xlsx":
        member = p.name
    else:
        try:
            with zipfile.ZipFile(p) as zf:
                member = _pick_member(p, zf)
        except (zipfile.BadZipFile, EOFError, ValueError):
            damage = zip_damage(p) or "it cannot be opened"
            if p.suffix.lower() != ".zip" and damage.startswith("not a zip"):
                raise SourceError(f"{p}: not a workbook or a zip holding one") from None
            raise corrupt_zip(p, damage) from None
        except OSError as e:
            raise SourceError(f"{p}: cannot read it ({e})") from None
    data = _workbook_bytes(p, member)
    book = _load(data, f"{p}" if member == p.name else f"{p}: {member}")
    try:
        found: tuple[str, tuple[int, int, int]] | None = None
        names = book.sheetnames
        for name in sorted(names, key=lambda n: n != SHEET):  # the CMS sheet first, then the others
            try:
                header = _find_header(book[name])
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise SourceError(f"{p}: the workbook is corrupt ({type(e).__name__}: {e})") from None
            if header is not None:
                found = (name, header)
                break
    finally:
        book.close()
    if found is None:
        raise SourceError(
            f"{p}: no sheet has a header row with {NPI_HEADER!r} and {DATE_HEADER!r} "
            f"in its first {HEADER_SEARCH_ROWS} rows (sheets: {', '.join(names) or 'none'})"
        )
    sheet, (line, npi_col, date_col) = found
    return DeactivationReport(
        source=p,
        member=member,
        release_date=_release_from_names(p, member),
        checksum=hashlib.sha256(data).hexdigest(),
        sheet=sheet,
        header_line=line,
        npi_col=npi_col,
        date_col=date_col,
    )


# -- one row -------------------------------------------------------------------------------------------


def _npi_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def _date_value(value: Any) -> tuple[str | None, str | None]:
    """(ISO date, problem) for a date cell."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, f"{DATE_HEADER} is missing"
    if isinstance(value, datetime):
        return value.date().isoformat(), None
    if isinstance(value, date):
        return value.isoformat(), None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 20_000 <= value <= 80_000:  # an Excel serial date (1954..2119) in a cell without a date format
            from openpyxl.utils.datetime import from_excel

            return from_excel(value).date().isoformat(), None
        return None, f"{DATE_HEADER} {value!r} is not a date"
    text = str(value).strip()
    m = _US_DATE_RE.fullmatch(text) or _ISO_DATE_RE.fullmatch(text)
    if not m:
        return None, f"{DATE_HEADER} {text!r} is not a date (expected MM/DD/YYYY or YYYY-MM-DD)"
    try:
        return date(int(m.group("y")), int(m.group("m")), int(m.group("d"))).isoformat(), None
    except ValueError:
        return None, f"impossible {DATE_HEADER} {text!r}"


def _raw_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _report_row(line: int, values: tuple[Any, ...], npi_col: int, date_col: int) -> ReportRow | None:
    if len(values) == 2 and npi_col == 0 and date_col == 1:  # the usual row: text NPI, date cell
        npi, when = values
        if type(npi) is str and type(when) is datetime and not when.time():
            text, day = npi.strip(), when.date().isoformat()
            return ReportRow(line, text, day, npi_problem(text), f"{npi},{day}")
    cells = [_raw_text(v) for v in values]
    while cells and not cells[-1].strip():
        cells.pop()
    if not cells or not any(c.strip() for c in cells):
        return None  # a blank row
    npi = _npi_text(values[npi_col] if npi_col < len(values) else None)
    iso, problem = _date_value(values[date_col] if date_col < len(values) else None)
    problem = npi_problem(npi) or problem
    return ReportRow(line=line, npi=npi, date=iso, problem=problem, raw=",".join(cells))


# -- writing -------------------------------------------------------------------------------------------


def report_names(release: date, *, v2: bool = True) -> tuple[str, str]:
    """(zip name, workbook name) as CMS names them for a release date."""
    suffix = "_V2" if v2 else ""
    return (
        f"NPPES_Deactivated_NPI_Report_{release:%m%d%y}{suffix}.zip",
        f"{TITLE} {release:%Y%m%d}.xlsx",
    )


def _workbook(release: date, entries: Iterable[tuple[str, date]]) -> bytes:
    """The workbook bytes, with fixed timestamps so the same entries give the same bytes."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    stamp = datetime(release.year, release.month, release.day)
    wb.properties.created = stamp
    ws = wb.create_sheet(SHEET)
    ws.append([TITLE])
    ws.append([NPI_HEADER, DATE_HEADER])
    for npi, when in entries:
        cell = WriteOnlyCell(ws, value=when)
        cell.number_format = DATE_FORMAT
        ws.append([str(npi), cell])
    buf = io.BytesIO()
    wb.save(buf)
    # openpyxl stamps "now" into docProps/core.xml and the zip entries; pin both to the release.
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>" + f"{stamp:%Y-%m-%dT%H:%M:%SZ}".encode() + rb"\g<2>",
                    data,
                )
            fixed = zipfile.ZipInfo(
                info.filename, date_time=(release.year, release.month, release.day, 0, 0, 0)
            )
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, data)
    return out.getvalue()


def write_report(
    out_dir: Path,
    release: date,
    entries: Iterable[tuple[str, date]],
    *,
    zipped: bool = True,
    v2: bool = True,
) -> Path:
    """Write the report for ``release`` listing ``entries`` (NPI, deactivation date) in the given order:
    ``NPPES_Deactivated_NPI_Report_MMDDYY[_V2].zip`` holding the workbook, or the bare workbook when
    ``zipped`` is False. NPIs are text cells, dates real Excel dates shown as mm/dd/yyyy. Returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_name, xlsx_name = report_names(release, v2=v2)
    data = _workbook(release, entries)
    if not zipped:
        path = out_dir / xlsx_name
        path.write_bytes(data)
        return path
    path = out_dir / zip_name
    info = zipfile.ZipInfo(xlsx_name, date_time=(release.year, release.month, release.day, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    try:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(info, data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
