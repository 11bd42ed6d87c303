"""Open an NPPES bundle (the CMS zip, its extracted folder, or one CSV) and stream its data files.

A bundle is read in line-aligned byte blocks, so memory stays flat whatever the file size; each
block is decoded and split into rows by ``parse_lines`` (pure, run in worker processes).

One record is one physical line: CMS files have no embedded newlines and replace embedded double
quotes with single quotes (nppes_format.md §1). A line whose quoting is broken is not guessed at:
it is reported as a bad row with its raw text.

Zips are distrusted (docs/ingest.md, "Zip bombs and corrupt zips"): every member npistack reads must stay
under ``ZipLimits`` (the total uncompressed size of the members read and each member's compression
ratio), checked in the zip's directory before anything is read and again on the bytes actually
decompressed; a zip that is truncated, is not a zip, or fails a CRC check is a one-line ``SourceError``
saying so.
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from npistack.errors import SourceError
from npistack.nppes.layout import (
    DATA_FILE_RE,
    FILE_KINDS,
    FileKind,
    Layout,
    detect_layout,
    kind_from_filename,
    kind_from_header,
)
from npistack.nppes.lines import decode_block

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
RATIO_FLOOR_BYTES = 1 << 20  # a member this small is not ratio-checked (tiny files compress oddly)


# -- zip limits and damage -------------------------------------------------------------------


@dataclass(frozen=True)
class ZipLimits:
    """What a zip npistack reads may expand to: ``max_bytes`` uncompressed over the members read, and
    ``max_ratio`` uncompressed:compressed for any member larger than ``RATIO_FLOOR_BYTES``."""

    max_bytes: int
    max_ratio: float

    @classmethod
    def from_settings(cls) -> ZipLimits:
        from npistack.settings import get_settings

        s = get_settings()
        return cls(max_bytes=s.zip_max_uncompressed_bytes, max_ratio=s.zip_max_ratio)


_BYTES_SETTING = "NPISTACK_ZIP_MAX_UNCOMPRESSED_BYTES"
_RATIO_SETTING = "NPISTACK_ZIP_MAX_RATIO"


def ratio_problem(where: str, name: str, size: int, compressed: int, limits: ZipLimits) -> str | None:
    """Why a member of ``size`` bytes from ``compressed`` is past ``limits.max_ratio``, or None."""
    if size <= RATIO_FLOOR_BYTES or size <= limits.max_ratio * max(compressed, 1):
        return None
    return (
        f"{where}: member {name} expands {size / max(compressed, 1):,.0f}:1 ({compressed:,} bytes to "
        f"{size:,}), past the cap of {limits.max_ratio:g}:1 ({_RATIO_SETTING}); refused as a zip bomb"
    )


def check_zip_members(where: str | os.PathLike[str], infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """Raise SourceError unless the members ``infos`` of the zip at ``where`` stay within ``limits``,
    judged by the sizes the zip's directory declares (``ZipStream`` counts the real bytes as they come)."""
    total = 0
    for info in infos:
        problem = ratio_problem(str(where), info.filename, info.file_size, info.compress_size, limits)
        if problem:
            raise SourceError(problem)
        total += info.file_size
        if total > limits.max_bytes:
            raise SourceError(
                f"{where}: its data files expand to more than {limits.max_bytes:,} bytes (the cap, "
                f"{_BYTES_SETTING}; {info.filename} alone is {info.file_size:,}); refused as a zip bomb"
            )


def zip_damage(path: Path) -> str | None:
    """Why ``path`` (which ``zipfile`` will not open) is no zip: empty, not a zip at all, or truncated.
    None when it opens after all."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
        if not head:
            return "not a zip: the file is empty"
        if head not in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
            return "not a zip: it does not start with a zip signature"
        with zipfile.ZipFile(path):
            return None
    except zipfile.BadZipFile as e:
        if "not a zip file" in str(e):
            return "truncated: it starts like a zip but has no zip directory at its end; download it again"
        return f"damaged: {e}; download it again"
    except (OSError, EOFError, ValueError) as e:
        return f"unreadable: {type(e).__name__}: {e}"


def corrupt_zip(path: str | os.PathLike[str], problem: str) -> SourceError:
    """The one-line error for a damaged zip."""
    return SourceError(f"{path}: the zip is corrupt ({problem})")


class ZipStream(io.RawIOBase):
    """One zip member's bytes, counted as they are decompressed: past the member's share of
    ``limits`` (``max_bytes``, and ``max_ratio`` times its compressed size) reading stops with a
    SourceError, whatever the directory declared; a bad CRC, a damaged deflate stream or a cut-off
    member is a one-line "the zip is corrupt" SourceError instead of zipfile's own exceptions.

    (CPython's zipfile already stops at the declared size and then fails the CRC; the count does not
    rely on that.) Wrap it in ``io.BufferedReader`` for ``readline`` and line iteration.
    """

    def __init__(self, zpath: Path, member: str, limits: ZipLimits) -> None:
        super().__init__()
        self._zf = zipfile.ZipFile(zpath)
        try:
            info = self._zf.getinfo(member)
            self._fh: IO[bytes] = self._zf.open(info)
        except BaseException:
            self._zf.close()
            raise
        self._where, self._name, self._limits = zpath, member, limits
        self._compressed = info.compress_size
        by_ratio = max(int(info.compress_size * limits.max_ratio), RATIO_FLOOR_BYTES)
        self._cap = min(limits.max_bytes, by_ratio)
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self._fh.read(len(b))
        except zipfile.BadZipFile as e:
            crc = "CRC" in str(e)
            raise corrupt_zip(
                self._where, f"member {self._name} fails its CRC check" if crc else f"{self._name}: {e}"
            ) from None
        except zlib.error as e:
            raise corrupt_zip(self._where, f"member {self._name} cannot be decompressed: {e}") from None
        except EOFError:
            raise corrupt_zip(self._where, f"member {self._name} is truncated") from None
        self.count += len(data)
        if self.count > self._cap:
            problem = ratio_problem(str(self._where), self._name, self.count, self._compressed, self._limits)
            raise SourceError(
                problem
                or f"{self._where}: member {self._name} expands past the cap of {self._cap:,} bytes "
                f"({_BYTES_SETTING}); refused as a zip bomb"
            )
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            if not self.closed:
                self._fh.close()
                self._zf.close()
        finally:
            super().close()


def open_member(zpath: Path, member: str, limits: ZipLimits, buffer_size: int = BLOCK_BYTES) -> IO[bytes]:
    """A buffered, counted, capped stream of one zip member (see ``ZipStream``)."""
    return io.BufferedReader(ZipStream(zpath, member, limits), buffer_size)


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


def open_bundle(path: str | os.PathLike[str], *, limits: ZipLimits | None = None) -> Bundle:
    """Recognise a bundle at ``path``: a CMS zip, a folder of CSVs, or a single data CSV.

    A zip's data files are checked against ``limits`` (default: the settings) before anything is read,
    and their streams count what they decompress; a damaged zip (or a ``.zip`` that is none) raises
    SourceError saying the zip is corrupt and why.
    """
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder")
    limits = limits or ZipLimits.from_settings()
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
    elif p.is_file() and (p.suffix.lower() == ".zip" or zipfile.is_zipfile(p)):
        try:
            zf = zipfile.ZipFile(p)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            raise corrupt_zip(p, zip_damage(p) or "it cannot be opened") from None
        with zf:
            read: list[zipfile.ZipInfo] = []
            for info in zf.infolist():
                if info.is_dir():
                    continue
                kind = kind_from_filename(info.filename)
                if kind:
                    read.append(info)
            check_zip_members(p, read, limits)
            for info in read:
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
                            opener=_zip_opener(p, info.filename, limits),
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


def _zip_opener(zpath: Path, member: str, limits: ZipLimits) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        return open_member(zpath, member, limits)

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


def read_layouts(bundle: Bundle) -> dict[FileKind, tuple[tuple[str, ...], Layout]]:
    """Read and recognise every data file's header (raises LayoutError before any write)."""
    out: dict[FileKind, tuple[tuple[str, ...], Layout]] = {}
    for kind in FILE_KINDS:
        df = bundle.files.get(kind)
        if df is None:
            continue
        with df.open() as fh:
            header = tuple(read_header(fh, df.name))
        out[kind] = (header, detect_layout(kind, header, df.name))
    return out


def read_lines(df: Any, deferred: Sequence[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """(line, reason, raw text) of the given (line, reason) of a data file: the raw text of lines
    refused after they were transformed, for their quarantine rows."""
    wanted = dict(deferred)
    out: list[tuple[int, str, str]] = []
    with df.open() as fh:
        for line_no, raw in enumerate(fh, start=1):
            if line_no in wanted:
                out.append((line_no, wanted.pop(line_no), decode_block(raw).rstrip("\r\n")))
                if not wanted:
                    break
    return out
