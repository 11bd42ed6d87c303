"""Reading a CSV whatever wrote it: the encoding (UTF-8 with or without a BOM, else Windows-1252),
delimiter (comma, semicolon, tab, pipe) and line ending are detected (``sniff_format``), and every
record is accounted for (``read_records``): one that cannot be read (wrong field count, undecodable
bytes, a NUL byte, a quote that never closes) comes with its line number and the reason, and one
unclosed quote never swallows the rows after it. List enrichment (``services.enrich.file``) reads its
input with it.

Lines are split in one pass over the bytes (each byte looked at once, whatever the line length), and
a line longer than ``NPISTACK_CSV_MAX_LINE_BYTES`` is never held whole: it is skipped to its end and
reported as one unreadable row, like a value longer than ``NPISTACK_CSV_MAX_FIELD_CHARS``.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

from npistack.errors import NpistackError
from npistack.settings import Settings

MAX_RECORD_LINES = 1000  # a quoted field still open after this many lines is taken as unclosed
DELIMITERS = (",", ";", "\t", "|")
READ_BYTES = 1 << 20
KEEP_CHARS = 2000  # of a row that cannot be read, the text kept for errors.csv
SNIFF_LINE_CHARS = 65536  # of each sample line, what delimiter sniffing looks at


@dataclass(frozen=True)
class CsvLimits:
    """How long a line (bytes) and one field's value (characters) may be."""

    max_line_bytes: int = 1 << 20
    max_field_chars: int = 65536

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> CsvLimits:
        """``NPISTACK_CSV_MAX_LINE_BYTES`` and ``NPISTACK_CSV_MAX_FIELD_CHARS`` (the environment's by default)."""
        st = settings if settings is not None else Settings()
        return cls(st.csv_max_line_bytes, st.csv_max_field_chars)


class EnrichError(NpistackError):
    """A file or an option enrichment cannot use; the message says which and why."""


@dataclass(frozen=True)
class CsvFormat:
    encoding: str  # "utf-8" or "cp1252"
    delimiter: str
    bom: bool = False
    newline: bytes = b"\n"

    @property
    def label(self) -> str:
        enc = "UTF-8" if self.encoding == "utf-8" else "Windows-1252"
        names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
        return f"{enc}{' with BOM' if self.bom else ''}, {names.get(self.delimiter, repr(self.delimiter))}"


def sniff_format(path: Path, sample_bytes: int = 1 << 20) -> CsvFormat:
    """The encoding, delimiter and line ending of a CSV, from its first megabyte."""
    with path.open("rb") as fh:
        head = fh.read(sample_bytes)
    return sniff_bytes(head)


def sniff_bytes(head: bytes) -> CsvFormat:
    bom = head.startswith(codecs.BOM_UTF8)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE)):
        raise EnrichError("the file is UTF-16 text: save it as 'CSV UTF-8' (or Windows-1252 CSV)")
    body = head[3:] if bom else head
    if not body.strip():
        raise EnrichError("the file is empty")
    encoding = "utf-8" if bom or _mostly_utf8(body) else "cp1252"
    newline = b"\r" if b"\n" not in body and b"\r" in body else b"\n"
    text = body.decode(encoding, "replace")
    lines = [ln for ln in re.split("\r\n|\n|\r", text)[:50] if ln.strip()]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may end mid-line
    return CsvFormat(encoding, _sniff_delimiter(lines), bom, newline)


def _mostly_utf8(data: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
        return True
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "surrogateescape")
    bad = sum(1 for c in text if "\udc80" <= c <= "\udcff")
    good = sum(1 for c in text if ord(c) > 127) - bad
    return good > bad


def _sniff_delimiter(lines: list[str]) -> str:
    best, best_score = ",", (0, 0)
    lines = [ln[:SNIFF_LINE_CHARS] for ln in lines]  # a huge first line never trips csv's field limit
    for d in DELIMITERS:
        try:
            counts = [len(r) for r in csv.reader(lines, delimiter=d)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        consistent = sum(1 for c in counts if c == counts[0]) / len(counts)
        score = (int(consistent >= 0.8), counts[0])
        if score > best_score:
            best, best_score = d, score
    return best


@dataclass
class Row:
    """One record of the input: its first physical line, values, and the problem if unreadable."""

    line: int
    values: list[str]
    error: str | None = None
    raw: str = ""


class _Runaway(NpistackError):
    """A quoted field that never ends (private: caught where the row is read)."""


class _TooLong(NpistackError):
    """A row longer than the cap (private: caught where the row is read)."""


@dataclass(frozen=True)
class LongLine:
    """A line longer than the cap: its start (for errors.csv) and its length, the rest skipped."""

    head: bytes
    length: int


class LineSplitter:
    """The lines of a byte stream, in time linear in its size: each chunk read is searched for the
    newline once (``scanned`` counts those bytes), a line is joined once, and a line past
    ``max_line_bytes`` is skipped to its end (a ``LongLine``) instead of being buffered."""

    def __init__(self, fh: IO[bytes], newline: bytes, max_line_bytes: int, *, bom: bool = False) -> None:
        assert len(newline) == 1
        self.fh = fh
        self.newline = newline
        self.max_line_bytes = max_line_bytes
        self.bom = bom
        self.scanned = 0
        self.peak_buffer = 0  # the most bytes held for a line that has not ended yet

    def __iter__(self) -> Iterator[bytes | LongLine]:
        nl, cap = self.newline, self.max_line_bytes
        buf = bytearray()  # the line so far (at most cap bytes)
        long_head: bytes | None = None  # set while skipping a line past the cap
        long_len = 0
        first = True
        while chunk := self.fh.read(READ_BYTES):
            if first and self.bom and chunk.startswith(codecs.BOM_UTF8):
                chunk = chunk[3:]
            first = False
            self.scanned += len(chunk)
            pos = 0
            while pos < len(chunk):
                end = chunk.find(nl, pos)
                stop = len(chunk) if end < 0 else end
                if long_head is None and len(buf) + stop - pos > cap:
                    long_head = bytes(buf[:KEEP_CHARS]) + chunk[pos : pos + max(0, KEEP_CHARS - len(buf))]
                    long_len = len(buf)
                    buf = bytearray()
                if long_head is not None:
                    long_len += stop - pos
                else:
                    buf += chunk[pos:stop]
                    self.peak_buffer = max(self.peak_buffer, len(buf))
                if end < 0:
                    break
                if long_head is not None:
                    yield LongLine(long_head, long_len)
                    long_head = None
                else:
                    yield bytes(buf)
                    buf = bytearray()
                pos = end + 1
        if long_head is not None:
            yield LongLine(long_head, long_len)
        elif buf:
            yield bytes(buf)


class _Line(NamedTuple):
    number: int
    text: str
    problem: str | None
    too_long: bool = False


class _Feed:
    """Decoded physical lines for ``csv.reader``, numbered, with push-back (to re-read the lines
    after one whose quote never closes) and a per-line problem (undecodable bytes, NUL, too long)."""

    def __init__(self, fh: IO[bytes], fmt: CsvFormat, limits: CsvLimits) -> None:
        self.fh = fh
        self.fmt = fmt
        self.limits = limits
        self.pending: deque[_Line] = deque()
        self.taken: list[_Line] = []
        self.number = 0
        self._lines = iter(LineSplitter(fh, fmt.newline, limits.max_line_bytes, bom=fmt.bom))

    def _decode(self, b: bytes) -> tuple[str, str | None]:
        problem = None
        if b.endswith(b"\r"):
            b = b[:-1]
        nul = b.find(b"\x00")
        if nul >= 0:
            problem = f"a NUL byte at byte {nul + 1}"
            b = b.replace(b"\x00", b"")
        try:
            text = b.decode(self.fmt.encoding)
        except UnicodeDecodeError as e:
            text = b.decode(self.fmt.encoding, "replace")
            enc = "UTF-8" if self.fmt.encoding == "utf-8" else "Windows-1252"
            problem = problem or f"bytes that are not {enc} text at byte {e.start + 1}"
        return text + "\n", problem

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_RECORD_LINES:
            raise _Runaway
        if self.pending:
            item = self.pending.popleft()
        else:
            b = next(self._lines)
            self.number += 1
            if isinstance(b, LongLine):
                text, _ = self._decode(b.head)
                problem: str | None = (
                    f"the line is {b.length:,} bytes long, longer than the {self.limits.max_line_bytes:,} a line "
                    "may have (NPISTACK_CSV_MAX_LINE_BYTES)"
                )
                item = _Line(self.number, text, problem, too_long=True)
            else:
                text, problem = self._decode(b)
                item = _Line(self.number, text, problem)
        self.taken.append(item)
        if item.too_long:
            raise _TooLong
        return item.text

    def push_back(self, items: Sequence[_Line]) -> None:
        self.pending.extendleft(reversed(items))


def _clean(text: str) -> str:
    return text.rstrip("\n")[:KEEP_CHARS]


def _long_field(values: Sequence[str], limit: int) -> str | None:
    for i, v in enumerate(values):
        if len(v) > limit:
            return (
                f"field {i + 1} is {len(v):,} characters long, longer than the {limit:,} a field may have "
                "(NPISTACK_CSV_MAX_FIELD_CHARS)"
            )
    return None


def read_records(fh: IO[bytes], fmt: CsvFormat, limits: CsvLimits | None = None) -> Iterator[Row]:
    """Every record of the file (the header first), blank lines left out. A record whose fields
    cannot be read comes with ``error`` set; only its first line is taken when it spans lines, so
    one unclosed quote never swallows the rows after it. ``limits``: the environment's by default."""
    limits = limits if limits is not None else CsvLimits.from_settings()
    feed = _Feed(fh, fmt, limits)
    make = lambda: csv.reader(feed, delimiter=fmt.delimiter, strict=False)  # noqa: E731
    reader = make()
    expected: int | None = None
    while True:
        feed.taken = []
        try:
            values = next(reader)
        except StopIteration:
            return
        except (_Runaway, _TooLong, csv.Error) as e:
            lines = feed.taken
            feed.push_back(lines[1:])
            reader = make()
            if not lines:
                continue
            first = lines[0]
            if first.too_long:
                reason = first.problem or "the line is too long"
            elif isinstance(e, _Runaway):
                reason = f"a quoted field opened here is still open {MAX_RECORD_LINES} lines later"
            elif isinstance(e, _TooLong):
                reason = f"a quoted field opened here runs into line {lines[-1].number}, which is too long"
            elif "field larger than field limit" in str(e):
                reason = (
                    f"a field is longer than the {limits.max_field_chars:,} characters a field may have "
                    "(NPISTACK_CSV_MAX_FIELD_CHARS)"
                )
            else:
                reason = f"cannot be read as CSV: {e}"
            yield Row(first.number, _split_plain(first.text, fmt), reason, _clean(first.text))
            continue
        lines = feed.taken
        if not lines:
            return
        if len(lines) == 1 and (not values or (len(values) == 1 and not values[0].strip())):
            continue  # a blank line
        problem = next((ln.problem for ln in lines if ln.problem), None) or _long_field(
            values, limits.max_field_chars
        )
        if expected is None:  # the header
            expected = len(values)
            yield Row(lines[0].number, values, problem, _clean("".join(ln.text for ln in lines)))
            continue
        if len(values) > expected and not any(v.strip() for v in values[expected:]):
            values = values[:expected]  # trailing empty fields
        if len(values) != expected and len(lines) > 1:
            # Most likely a quote that does not close: report its line, read the next ones again.
            feed.push_back(lines[1:])
            reader = make()
            head = lines[0].text
            yield Row(
                lines[0].number,
                _split_plain(head, fmt),
                f"an unclosed quote: the record read from here has {len(values)} fields "
                f"over {len(lines)} lines, the header {expected}",
                _clean(head),
            )
            continue
        raw = _clean("".join(ln.text for ln in lines))
        if len(values) != expected:
            problem = problem or f"{len(values)} fields where the header has {expected}"
        yield Row(lines[0].number, values, problem, raw if problem else "")


def _split_plain(text: str, fmt: CsvFormat) -> list[str]:
    return text.rstrip("\n").split(fmt.delimiter)


def open_records(fh: IO[bytes], fmt: CsvFormat, limits: CsvLimits | None = None) -> tuple[Iterator[Row], Row]:
    """The header record and an iterator over the records after it (EnrichError without a header)."""
    records = read_records(fh, fmt, limits)
    header = next(records, None)
    if header is None:
        raise EnrichError("the file has no header line")
    if header.error and ("NPISTACK_CSV_MAX_" in header.error or "field limit" in header.error):
        raise EnrichError(f"the header (line {header.line}) cannot be used: {header.error}")
    return records, header
