"""The lines of the CMS CSV files: decode a block, split it into lines, split a line into fields.
Pure functions (the transform runs them on every line; ``nppes.reader`` reads the files)."""

from __future__ import annotations

import csv


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
