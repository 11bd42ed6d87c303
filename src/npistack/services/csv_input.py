"""Reading a CSV whatever wrote it: the encoding (UTF-8 with or without a BOM, else Windows-1252),
delimiter (comma, semicolon, tab, pipe) and line ending are detected (``sniff_format``), and every
record is accounted for (``read_records``): one that cannot be read (wrong field count, undecodable
bytes, a NUL byte, a quote that never closes) comes with its line number and the reason, and one
unclosed quote never swallows the rows after it. List enrichment (``services.enrich_csv``) reads its
input with it.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from npistack.errors import NpistackError

MAX_RECORD_LINES = 1000  # a quoted field still open after this many lines is taken as unclosed
DELIMITERS = (",", ";", "\t", "|")


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
    for d in DELIMITERS:
        counts = [len(r) for r in csv.reader(lines, delimiter=d)]
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


class _Runaway(Exception):
    pass


class _Feed:
    """Decoded physical lines for ``csv.reader``, numbered, with push-back (to re-read the lines
    after one whose quote never closes) and a per-line problem (undecodable bytes, NUL)."""

    def __init__(self, fh: IO[bytes], fmt: CsvFormat) -> None:
        self.fh = fh
        self.fmt = fmt
        self.pending: deque[tuple[int, str, str | None]] = deque()
        self.taken: list[tuple[int, str, str | None]] = []
        self.number = 0
        self._lines = self._split()

    def _split(self) -> Iterator[bytes]:
        nl = self.fmt.newline
        buf = b""
        first = True
        while chunk := self.fh.read(1 << 20):
            if first and self.fmt.bom and chunk.startswith(codecs.BOM_UTF8):
                chunk = chunk[3:]
            first = False
            buf += chunk
            parts = buf.split(nl)
            buf = parts.pop()
            yield from parts
        if buf:
            yield buf

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
            text, problem = self._decode(b)
            item = (self.number, text, problem)
        self.taken.append(item)
        return item[1]

    def push_back(self, items: Sequence[tuple[int, str, str | None]]) -> None:
        self.pending.extendleft(reversed(items))


def _clean(text: str) -> str:
    return text.rstrip("\n")[:2000]


def read_records(fh: IO[bytes], fmt: CsvFormat) -> Iterator[Row]:
    """Every record of the file (the header first), blank lines left out. A record whose fields
    cannot be read comes with ``error`` set; only its first line is taken when it spans lines, so
    one unclosed quote never swallows the rows after it."""
    feed = _Feed(fh, fmt)
    make = lambda: csv.reader(feed, delimiter=fmt.delimiter, strict=False)  # noqa: E731
    reader = make()
    expected: int | None = None
    while True:
        feed.taken = []
        try:
            values = next(reader)
        except StopIteration:
            return
        except (_Runaway, csv.Error) as e:
            lines = feed.taken
            feed.push_back(lines[1:])
            reader = make()
            reason = (
                f"a quoted field opened here is still open {MAX_RECORD_LINES} lines later"
                if isinstance(e, _Runaway)
                else f"cannot be read as CSV: {e}"
            )
            if lines:
                yield Row(lines[0][0], _split_plain(lines[0][1], fmt), reason, _clean(lines[0][1]))
            continue
        lines = feed.taken
        if not lines:
            return
        if len(lines) == 1 and (not values or (len(values) == 1 and not values[0].strip())):
            continue  # a blank line
        problem = next((p for _, _, p in lines if p), None)
        if expected is None:  # the header
            expected = len(values)
            yield Row(lines[0][0], values, problem, _clean("".join(t for _, t, _ in lines)))
            continue
        if len(values) > expected and not any(v.strip() for v in values[expected:]):
            values = values[:expected]  # trailing empty fields
        if len(values) != expected and len(lines) > 1:
            # Most likely a quote that does not close: report its line, read the next ones again.
            feed.push_back(lines[1:])
            reader = make()
            first = lines[0][1]
            yield Row(
                lines[0][0],
                _split_plain(first, fmt),
                f"an unclosed quote: the record read from here has {len(values)} fields "
                f"over {len(lines)} lines, the header {expected}",
                _clean(first),
            )
            continue
        raw = _clean("".join(t for _, t, _ in lines))
        if len(values) != expected:
            problem = problem or f"{len(values)} fields where the header has {expected}"
        yield Row(lines[0][0], values, problem, raw if problem else "")


def _split_plain(text: str, fmt: CsvFormat) -> list[str]:
    return text.rstrip("\n").split(fmt.delimiter)


def open_records(fh: IO[bytes], fmt: CsvFormat) -> tuple[Iterator[Row], Row]:
    """The header record and an iterator over the records after it (EnrichError without a header)."""
    records = read_records(fh, fmt)
    header = next(records, None)
    if header is None:
        raise EnrichError("the file has no header line")
    return records, header
