"""CSV cells a spreadsheet cannot run: every CSV npistack writes goes through ``SafeCsvWriter``.

Excel, LibreOffice and Google Sheets run a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a
formula (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``), and a cell that begins with a tab or a
carriage return can hide one. The text npistack writes comes from customers' files and from the
registry, so, per OWASP's rule for CSV injection:

- a cell beginning with one of those six characters gets a single quote ``'`` in front (the
  spreadsheet shows it as text; the original is the cell without its first character);
- every cell is quoted (``csv.QUOTE_ALL``), so a cell holding another delimiter (``a,=cmd`` in a
  semicolon file opened with commas) cannot split into a cell that begins with a formula.

The only cells left as they are: those of the numeric columns npistack computes itself (match
confidence, latitude, longitude, line numbers, phone and fax in E.164) when the value is a plain
decimal number (``-77.1234``, ``+12526417700``): a number cannot run anything, and a ``'`` would make
the spreadsheet read it as text. Such a column holding anything else is neutralized like the rest.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable
from typing import Any, Protocol

__all__ = ["FORMULA_TRIGGERS", "SafeCsvWriter", "is_plain_number", "neutralize"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


class _Writable(Protocol):
    def write(self, s: str, /) -> Any: ...


def neutralize(cell: str) -> str:
    """``cell``, with ``'`` in front when it begins with ``= + - @``, a tab or a carriage return."""
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


def is_plain_number(cell: str) -> bool:
    """True for a decimal number with an optional sign and nothing else (``-77.5``, ``+12525551234``)."""
    return _PLAIN_NUMBER.fullmatch(cell) is not None


class SafeCsvWriter:
    """``csv.writer`` with every cell quoted and neutralized (``neutralize``), except plain numbers in
    ``numeric_columns`` (0-based positions of the columns npistack computes as numbers)."""

    def __init__(self, fh: _Writable, *, delimiter: str = ",", numeric_columns: Collection[int] = ()) -> None:
        self._writer = csv.writer(fh, delimiter=delimiter, quoting=csv.QUOTE_ALL)
        self._numeric = frozenset(numeric_columns)

    def writerow(self, row: Iterable[object]) -> None:
        numeric = self._numeric
        cells: list[str] = []
        for i, value in enumerate(row):
            cell = "" if value is None else str(value)
            if cell and not (i in numeric and is_plain_number(cell)):
                cell = neutralize(cell)
            cells.append(cell)
        self._writer.writerow(cells)
