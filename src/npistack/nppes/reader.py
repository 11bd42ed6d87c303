"""Open an NPPES bundle (the CMS zip, its extracted folder, or one CSV) and stream its data files.

A bundle is read in line-aligned byte blocks, so memory stays flat whatever the file size; each
block is decoded and split into rows by ``parse_lines`` (pure, run in worker processes).

One record is one physical line: CMS files have no embedded newlines and replace embedded double
quotes with single quotes (nppes_format.md §1). A line whose quoting is broken is not guessed at:
it is reported as a bad row with its raw text.
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO

from npistack.errors import SourceError
from npistack.nppes.layout import (
    DATA_FILE_RE,
    FILE_KINDS,
    FileKind,
    kind_from_filename,
    kind_from_header,
)

BLOCK_BYTES = 1 << 20
FULL_START = "20050523"  # every full replacement file starts its date range here
_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        1,
    )
}
_ZIP_MONTH_RE = re.compile(r"_(?P<month>[A-Za-z]+)_(?P<year>\d{4})(?:_V\d)?\.zip$")


@dataclass(frozen=True)
class DataFile:
    """One data CSV of a bundle: where it is, how big, and its CRC-32 (content fingerprint)."""

    kind: FileKind
    name: str
    size: int
    crc32: int
    start: str = ""  # date range in the file name, YYYYMMDD ('' when the name has none)
    end: str = ""
    opener: Callable[[], IO[bytes]] = field(repr=False, compare=False, default=lambda: io.BytesIO())

    def open(self) -> IO[bytes]:
        return self.opener()


@dataclass(frozen=True)
class Bundle:
    source: Path
    files: dict[FileKind, DataFile]
    release_date: date | None
    kind: str  # "full" or "weekly"

    @property
    def checksum(self) -> str:
        """A content checksum: the same data files give the same value, zipped or extracted."""
        import hashlib

        h = hashlib.sha256()
        for kind in FILE_KINDS:
            f = self.files.get(kind)
            if f:
                h.update(f"{kind}:{f.size}:{f.crc32:08x}\n".encode())
        return h.hexdigest()


def _crc_of_path(path: Path) -> int:
    crc = 0
    with path.open("rb") as fh:
        while chunk := fh.read(BLOCK_BYTES * 4):
            crc = zlib.crc32(chunk, crc)
    return crc


def _dates(name: str) -> tuple[str, str]:
    m = DATA_FILE_RE.search(name.replace("\\", "/").rsplit("/", 1)[-1])
    return (m.group("start"), m.group("end")) if m else ("", "")


def _read_first_line(fh: IO[bytes]) -> bytes:
    return fh.readline(1 << 20)


def _header_kind(first_line: bytes) -> FileKind | None:
    try:
        header = next(csv.reader([first_line.decode("utf-8-sig", "replace").rstrip("\r\n")]))
    except (csv.Error, StopIteration):
        return None
    return kind_from_header(header)


def open_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Recognise a bundle at ``path``: a CMS zip, a folder of CSVs, or a single data CSV."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder")
    files: dict[FileKind, DataFile] = {}

    def add(df: DataFile) -> None:
        if df.kind in files:
            raise SourceError(f"{p}: two {df.kind} data files ({files[df.kind].name} and {df.name})")
        files[df.kind] = df

    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if not f.is_file() or f.suffix.lower() != ".csv":
                continue
            kind = kind_from_filename(f.name)
            if kind is None and "fileheader" not in f.name.lower():
                with f.open("rb") as fh:
                    kind = _header_kind(_read_first_line(fh))
            if kind:
                start, end = _dates(f.name)
                add(
                    DataFile(
                        kind,
                        str(f.relative_to(p)),
                        f.stat().st_size,
                        _crc_of_path(f),
                        start,
                        end,
                        opener=_path_opener(f),
                    )
                )
    elif zipfile.is_zipfile(p):
        try:
            zf = zipfile.ZipFile(p)
        except (zipfile.BadZipFile, OSError) as e:
            raise SourceError(f"{p}: not a readable zip ({e})") from None
        with zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                kind = kind_from_filename(info.filename)
                if kind:
                    start, end = _dates(info.filename)
                    add(
                        DataFile(
                            kind,
                            info.filename,
                            info.file_size,
                            info.CRC,
                            start,
                            end,
                            opener=_zip_opener(p, info.filename),
                        )
                    )
    elif p.suffix.lower() == ".csv" or p.is_file():
        kind = kind_from_filename(p.name)
        if kind is None:
            with p.open("rb") as fh:
                kind = _header_kind(_read_first_line(fh))
        if kind is None:
            raise SourceError(f"{p}: not an NPPES data file (unrecognised name and header)")
        start, end = _dates(p.name)
        add(DataFile(kind, p.name, p.stat().st_size, _crc_of_path(p), start, end, opener=_path_opener(p)))
    if not files:
        raise SourceError(f"{p}: no NPPES data files found (expected npidata_pfile_*.csv and friends)")
    main = files.get("npidata")
    any_file = main or next(iter(files.values()))
    bundle_kind = "weekly" if any_file.start and any_file.start != FULL_START else "full"
    return Bundle(source=p, files=files, release_date=_release_date(p, any_file), kind=bundle_kind)


def _release_date(p: Path, f: DataFile) -> date | None:
    if f.end:
        try:
            return date(int(f.end[:4]), int(f.end[4:6]), int(f.end[6:]))
        except ValueError:
            return None
    m = _ZIP_MONTH_RE.search(p.name)
    if m and m.group("month").lower() in _MONTHS:
        return date(int(m.group("year")), _MONTHS[m.group("month").lower()], 1)
    return None


def _path_opener(path: Path) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        return path.open("rb")

    return opener


def _zip_opener(zpath: Path, member: str) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        zf = zipfile.ZipFile(zpath)
        fh = zf.open(member)
        # Keep the ZipFile alive as long as the member stream.
        fh._npistack_zip = zf  # type: ignore[attr-defined]
        return fh

    return opener


def read_header(fh: IO[bytes], name: str) -> list[str]:
    """Read and parse the header line of a data file."""
    line = _read_first_line(fh)
    if not line:
        raise SourceError(f"{name}: the file is empty (no header line)")
    text = decode_block(line).rstrip("\r\n")
    try:
        return next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise SourceError(f"{name}: the header line is not valid CSV") from None


def iter_blocks(fh: IO[bytes], block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, block)`` for line-aligned blocks after the header line.

    Line numbers are 1-based physical lines of the file (the header is line 1). A final line
    without a newline is yielded too.
    """
    line_no = 2
    rest = b""
    while True:
        chunk = fh.read(block_bytes)
        if not chunk:
            break
        buf = rest + chunk if rest else chunk
        cut = buf.rfind(b"\n")
        if cut < 0:
            rest = buf
            continue
        block, rest = buf[: cut + 1], buf[cut + 1 :]
        yield line_no, block
        line_no += block.count(b"\n")
    if rest:
        yield line_no, rest


def decode_block(block: bytes) -> str:
    """UTF-8, falling back per line to cp1252 and then latin-1 (lossless) for older files."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        out = []
        for line in block.split(b"\n"):
            try:
                out.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                try:
                    out.append(line.decode("cp1252"))
                except UnicodeDecodeError:
                    out.append(line.decode("latin-1"))
        return "\n".join(out)


def split_lines(text: str) -> list[str]:
    """Physical lines of a decoded block (LF or CRLF), without the final empty piece."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def parse_line(line: str) -> list[str] | None:
    """Split one CMS CSV line into fields; ``None`` when its quoting is broken.

    Fast path: a conformant line is ``"f1","f2",...`` with no quotes inside fields, so it splits
    on ``","`` exactly; the quote count proves it. Anything else goes through the csv module.
    """
    if len(line) >= 2 and line[0] == '"' and line[-1] == '"':
        fields = line[1:-1].split('","')
        if line.count('"') == 2 * len(fields):
            return fields
    if line.count('"') % 2:
        return None
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None
