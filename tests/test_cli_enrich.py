"""``npistack enrich`` as a user runs it (a real subprocess, the real matcher, the 50 real rows): the
round trip, the detected columns and overrides, and one clear line for each mistake."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api_support import ACTIVE_NPI, ORG_NPI, sample_store

CRM = (
    "Contact ID;NPI Number;fname;Surname;Company;Town;ST;Telephone\n"
    f"c1;{ACTIVE_NPI};Jon;Dubose;;Tarboro;NC;252-641-7700\n"
    "c2;;Jonathan;Dubose;;Tarboro;NC;\n"
    "c3;;;;Cumberland County Hospital System;Fayetteville;NC;\n"
    "c4;broken\n"
    "c5;;Zebulon;Quackenbush;;Nowhere;WY;\n"
)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sample_store(tmp_path_factory.mktemp("cli-enrich") / "store.db")


def run(*args: str, db: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NPISTACK_DATABASE_URL=db, COLUMNS="200", NO_COLOR="1")
    env.pop("NPISTACK_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "npistack.cli", "enrich", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def test_round_trip(tmp_path: Path, db: str) -> None:
    src = tmp_path / "crm.csv"
    src.write_text(CRM)
    proc = run(str(src), "-o", str(tmp_path / "out.csv"), db=db)
    shown = proc.stdout
    assert "UTF-8, semicolon, 5 rows" in shown
    for field, header in [("npi", "NPI Number"), ("first_name", "fname"), ("last_name", "Surname"),
                          ("organization_name", "Company"), ("city", "Town"), ("state", "ST"),
                          ("phone", "Telephone")]:  # fmt: skip
        assert any(line.split() == [field, *header.split()] for line in shown.splitlines()), (field, shown)
    assert "not used: Contact ID" in shown
    assert "enriched 5 rows" in shown and "3 matched" in shown and "1 unreadable" in shown
    assert "rows/s" in proc.stderr  # the progress bar

    rows = rows_of(tmp_path / "out.csv")
    assert [r["Contact ID"] for r in rows] == ["c1", "c2", "c3", "c4", "c5"], "rows in = rows out"
    assert [r["nppes_match_status"] for r in rows] == ["matched", "matched", "matched", "error", "no_match"]
    assert [r["nppes_npi"] for r in rows[:3]] == [ACTIVE_NPI, ACTIVE_NPI, ORG_NPI]
    assert (
        rows[0]["nppes_specialty"] == "Internal Medicine Physician"
        and rows[0]["nppes_phone"] == "+12526417700"
    )
    errors = rows_of(tmp_path / "out.errors.csv")
    assert errors == [{"input_line": "5", "reason": "2 fields where the header has 8", "raw": "c4;broken"}]
    assert rows_of(tmp_path / "out.review.csv") == []


def test_column_overrides_and_side_files(tmp_path: Path, db: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text("Doctor,Where\nRich Thacker,FL\nJon Dubose,NC\n")
    review, errors = tmp_path / "r" / "review.csv", tmp_path / "e.csv"
    review.parent.mkdir()  # enrich writes into existing folders only (issue 14, item 21)
    out = tmp_path / "out.csv"
    proc = run(str(src), "-o", str(out), "--column", "name=Doctor", "-c", "state=where", "--review",
               str(review), "--errors", str(errors), "--threshold", "0.99999", "--workers", "0", db=db)  # fmt: skip
    assert "name      Doctor (--column)" in proc.stdout or "Doctor (--column)" in proc.stdout
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    with review.open(newline="", encoding="utf-8") as fh:
        flagged = list(csv.DictReader(fh))
    assert len(flagged) == sum(r["nppes_match_status"] == "ambiguous" for r in rows) >= 1
    assert flagged[0]["Doctor"] == "Rich Thacker" and flagged[0]["candidate_1_npi"] == "1114920261"
    assert errors.read_text().strip() == '"input_line","reason","raw"'  # every cell quoted (csv_safe)


def test_mistakes_are_one_clear_line(tmp_path: Path, db: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text(f"NPI,Last Name\n{ACTIVE_NPI},Dubose\n")
    out = str(tmp_path / "out.csv")
    cases = [
        ((str(tmp_path / "missing.csv"), "-o", out), "missing.csv: no such file"),
        ((str(src), "-o", out, "--column", "surname=Last Name"), "unknown field 'surname'"),
        ((str(src), "-o", out, "--column", "last_name"), "write FIELD=HEADER"),
        ((str(src), "-o", out, "--column", "last_name=Family"), "the header has no such column"),
        ((str(src), "-o", out, "--column", "npi=", "--column", "last_name="), "no column to match on"),
        ((str(src), "-o", out, "--threshold", "1.5"), "--threshold 1.5"),
        ((str(src), "-o", str(src)), "would overwrite the input"),
        ((str(src), "-o", out, "-d", f"sqlite:///{tmp_path / 'nostore.db'}"), "no store at"),
    ]
    for args, words in cases:
        line = one_line_error(run(*args, db=db, check=False))
        assert line.startswith("error: ") and words in line, (args, line)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "the file is empty" in one_line_error(run(str(empty), "-o", out, db=db, check=False))
    assert not (tmp_path / "out.csv").exists()
