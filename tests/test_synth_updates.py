"""The deactivation report (read and write) and the synthetic month: weeklies, report, month-end full file."""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest

from npistack.errors import SourceError
from npistack.nppes.deactivation import (
    DATE_HEADER,
    SHEET,
    TITLE,
    is_deactivation_report,
    open_report,
    write_report,
)
from npistack.nppes.npi import is_valid_npi, make_npi
from npistack.nppes.reader import open_bundle
from npistack.nppes.synth import MonthStats, WeekStats, write_bundle, write_month, write_weekly

KINDS = ("npidata", "pl", "othername", "endpoint")
CHILD_KINDS = ("pl", "othername", "endpoint")
BASE_END = date(2026, 11, 8)  # write_bundle's default release (2026-11-09) minus one day
WEEKS, WEEKLY_ROWS = 3, 400


def day(text: str) -> date:
    return datetime.strptime(text, "%m/%d/%Y").date()


def split_line(line: str) -> list[str]:
    """One CMS line (no newline): every field quoted, no escapes."""
    assert line.startswith('"') and line.endswith('"'), line[:80]
    fields = line[1:-1].split('","')
    assert not any('"' in f for f in fields), line[:80]
    return fields


def members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def data_lines(files: dict[str, bytes], kind: str) -> tuple[str, list[str]]:
    """(header line, data lines) of one kind's data file, without newlines."""
    (name,) = [n for n in files if n.startswith(f"{kind}_pfile_") and not n.endswith("_fileheader.csv")]
    text = files[name].decode("utf-8")
    assert text.endswith("\n") and "\r" not in text
    header, *lines = text[:-1].split("\n")
    return header, lines


@dataclass
class Month:
    base: dict[str, bytes]
    stats: MonthStats
    weeklies: list[dict[str, bytes]]
    full: dict[str, bytes]


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    tmp = tmp_path_factory.mktemp("month")
    base = write_bundle(tmp / "base", 2000, seed=5, broken_rows=4)
    stats = write_month(base.path, tmp / "out", weeks=WEEKS, weekly_rows=WEEKLY_ROWS, seed=2)
    assert stats.full is not None
    return Month(members(base.path), stats, [members(w.path) for w in stats.weeklies], members(stats.full))


# -- the deactivation report ------------------------------------------------------------------------------

ENTRIES = [
    (make_npi(str(100_000_000 + 7919 * i)), date(2010, 1, 1) + timedelta(days=37 * i)) for i in range(50)
]


def test_report_round_trip(tmp_path: Path) -> None:
    path = write_report(tmp_path, date(2026, 12, 7), ENTRIES)
    assert path.name == "NPPES_Deactivated_NPI_Report_120726_V2.zip"
    assert is_deactivation_report(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["NPPES Deactivated NPI Report 20261207.xlsx"]
        xlsx = zf.read(zf.namelist()[0])
    report = open_report(path)
    assert report.source == path and report.member == "NPPES Deactivated NPI Report 20261207.xlsx"
    assert report.release_date == date(2026, 12, 7)
    assert report.checksum == hashlib.sha256(xlsx).hexdigest()
    rows = list(report.rows())
    assert [(r.npi, r.date) for r in rows] == [(n, d.isoformat()) for n, d in ENTRIES]
    assert [r.line for r in rows] == list(range(3, 3 + len(ENTRIES)))
    assert all(r.problem is None for r in rows)
    assert rows[0].raw == f"{ENTRIES[0][0]},{ENTRIES[0][1].isoformat()}"
    assert list(report.rows()) == rows  # rows() can be read again

    bare = write_report(tmp_path / "bare", date(2026, 12, 7), ENTRIES, zipped=False, v2=False)
    assert bare.name == "NPPES Deactivated NPI Report 20261207.xlsx"
    assert write_report(tmp_path / "v1", date(2026, 12, 7), [], v2=False).name.endswith("_120726.zip")
    ws = openpyxl.load_workbook(bare)[SHEET]
    assert ws["A1"].value == TITLE and (ws["A2"].value, ws["B2"].value) == ("NPI", DATE_HEADER)
    assert ws["A3"].data_type == "s" and ws["A3"].value == ENTRIES[0][0]
    assert isinstance(ws["B3"].value, datetime) and ws["B3"].number_format == "mm/dd/yyyy"
    assert bare.read_bytes() == xlsx  # the same workbook, zipped or not: timestamps are pinned


def test_report_reads_cells_of_any_type(tmp_path: Path) -> None:
    good = make_npi("123456789")
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Sheet1"
    ws.append(["NPPES Deactivated NPI Report"])
    ws.append([])
    ws.append(["NPI", "NPPES Deactivation Date"])  # the header is found wherever it is in the first rows
    ws.append([int(good), datetime(2019, 12, 31)])  # 4
    ws.append([float(good), date(2020, 1, 2)])  # 5
    ws.append([f"  {good} ", "03/04/2021"])  # 6
    ws.append([good, "2021-03-05"])  # 7
    ws.append(["1234567890", "03/04/2021"])  # 8: check digit
    ws.append([good, None])  # 9: no date
    ws.append([good, "02/30/2019"])  # 10: impossible date
    ws.append([None, "03/04/2021"])  # 11: no NPI
    ws.append(["12345", "soon"])  # 12
    ws.append([])  # trailing blank rows are not rows
    ws.append([None, None])
    path = tmp_path / "report.xlsx"
    wb.save(path)

    assert is_deactivation_report(path)
    report = open_report(path)
    assert report.release_date is None  # no date in the name
    rows = list(report.rows())
    assert [r.line for r in rows] == list(range(4, 13))
    assert [r.date for r in rows[:4]] == ["2019-12-31", "2020-01-02", "2021-03-04", "2021-03-05"]
    assert all(r.npi == good and r.problem is None for r in rows[:4])
    problems = {r.line: r.problem for r in rows[4:]}
    assert "check digit" in (problems[8] or "")
    assert "missing" in (problems[9] or "")
    assert "impossible" in (problems[10] or "") and rows[6].raw == f"{good},02/30/2019"
    assert "empty" in (problems[11] or "")
    assert "not 10 digits" in (problems[12] or "")


def test_is_deactivation_report(tmp_path: Path, month: Month) -> None:
    def zip_of(name: str, *inner: str) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            for member in inner:
                zf.writestr(member, b"PK")
        return path

    assert is_deactivation_report(zip_of("NPPES_Deactivated_NPI_Report_041023.zip", "report.xlsx"))
    assert is_deactivation_report(zip_of("download.zip", "NPPES Deactivated NPI Report 20230410.xlsx"))
    assert not is_deactivation_report(zip_of("download.zip", "prices.xlsx"))
    assert not is_deactivation_report(
        zip_of("NPPES_Deactivated_NPI_Report_041023_V2.zip", "a.xlsx", "b.xlsx")
    )
    assert not is_deactivation_report(zip_of("empty.zip"))
    assert not is_deactivation_report(month.stats.weeklies[0].path)
    assert month.stats.full is not None and not is_deactivation_report(month.stats.full)
    assert not is_deactivation_report(tmp_path)  # a folder
    assert not is_deactivation_report(tmp_path / "missing.xlsx")
    (tmp_path / "notes.txt").write_text("NPI\n")
    assert not is_deactivation_report(tmp_path / "notes.txt")


def test_open_report_errors(tmp_path: Path) -> None:
    (tmp_path / "fake.xlsx").write_text("NPI,date\n")
    with pytest.raises(SourceError, match="not an Excel workbook"):
        open_report(tmp_path / "fake.xlsx")
    with pytest.raises(SourceError, match="no such file"):
        open_report(tmp_path / "missing.xlsx")
    with zipfile.ZipFile(tmp_path / "NPPES_Deactivated_NPI_Report_041023.zip", "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(SourceError, match="no .xlsx workbook"):
        open_report(tmp_path / "NPPES_Deactivated_NPI_Report_041023.zip")
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(SourceError, match="not a workbook"):
        open_report(tmp_path / "plain.txt")
    for header in (["Provider", "Date"], ["NPI", "Date"]):  # no NPI header; no deactivation date column
        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(["title"])
        ws.append(header)
        wb.save(tmp_path / "other.xlsx")
        with pytest.raises(SourceError, match="no sheet has a header row"):
            open_report(tmp_path / "other.xlsx")


# -- weeklies ---------------------------------------------------------------------------------------------


def test_weekly_names_and_recognition(month: Month) -> None:
    base_headers = {k: data_lines(month.base, k)[0] for k in KINDS}
    for k, (week, files) in enumerate(zip(month.stats.weeklies, month.weeklies, strict=True)):
        start = BASE_END + timedelta(days=1 + 7 * k)
        end = start + timedelta(days=6)
        assert (week.start, week.end) == (start, end) and start.weekday() == 0
        assert week.path.name == f"NPPES_Data_Dissemination_{start:%m%d%y}_{end:%m%d%y}_Weekly_V2.zip"
        bundle = open_bundle(week.path)
        assert bundle.kind == "weekly" and bundle.release_date == end
        expected = set()
        for kind in KINDS:
            name = f"{kind}_pfile_{start:%Y%m%d}-{end:%Y%m%d}"
            expected |= {f"{name}.csv", f"{name}_fileheader.csv"}
            assert files[f"{name}_fileheader.csv"].decode() == base_headers[kind] + "\n"
            header, lines = data_lines(files, kind)
            assert header == base_headers[kind]
            width = len(split_line(header))
            assert all(len(split_line(line)) == width for line in lines), kind
        assert set(files) == expected
        assert len(data_lines(files, "npidata")[1]) == week.rows == WEEKLY_ROWS


def test_weekly_shares(month: Month) -> None:
    for week in month.stats.weeklies:
        assert week.created == round(0.4 * WEEKLY_ROWS)
        assert week.deactivated == round(0.1 * WEEKLY_ROWS)
        assert 0 < week.reactivated <= round(0.05 * WEEKLY_ROWS)
        assert week.created + week.updates + week.deactivated + week.reactivated == WEEKLY_ROWS
        assert all(n > 0 for n in week.updated.values()), week.updated
        assert week.updated["address"] == max(week.updated.values())


def test_weekly_rows(month: Month) -> None:
    """Stubs, reactivations and new NPIs look as CMS's do, and the files agree with the stats."""
    _, base_lines = data_lines(month.base, "npidata")
    state = {split_line(line)[0]: split_line(line) for line in base_lines}
    seen_new: set[str] = set()
    for week, files in zip(month.stats.weeklies, month.weeklies, strict=True):
        rows = [split_line(line) for line in data_lines(files, "npidata")[1]]
        npis = [r[0] for r in rows]
        assert len(set(npis)) == len(npis)  # one row per NPI per week
        in_week = {week.start + timedelta(days=d) for d in range(7)}
        stubs = [r for r in rows if not r[1]]
        assert len(stubs) == week.deactivated
        for r in stubs:
            assert [i for i, v in enumerate(r) if v] == [0, 39] and day(r[39]) in in_week
            assert state[r[0]][1] in ("1", "2")  # only active providers get deactivated
        active = [r for r in rows if r[1]]
        assert all(r[1] in ("1", "2") and day(r[37]) in in_week for r in active)
        reactivated = [r for r in active if r[0] in state and not state[r[0]][1]]
        assert len(reactivated) == week.reactivated
        for r in reactivated:
            was = state[r[0]]
            assert not was[1] and r[39] == was[39]  # it was a stub; its deactivation date is kept
            assert day(r[36]) <= day(r[39]) < week.start and day(r[40]) in in_week
            assert day(r[40]) <= day(r[37])
        new = [r for r in active if r[0] not in state]
        assert len(new) == week.created
        for r in new:
            assert is_valid_npi(r[0]) and r[0] not in seen_new
            assert day(r[36]) in in_week and day(r[36]) <= day(r[37]) and not r[39] and not r[40]
        seen_new |= {r[0] for r in new}
        updated = [r for r in active if r[0] in state and state[r[0]][1]]
        assert len(updated) == week.updates
        assert all(r[36] == state[r[0]][36] for r in updated)  # the enumeration date never moves
        for r in rows:
            state[r[0]] = r


def base_children(files: dict[str, bytes]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {k: {} for k in CHILD_KINDS}
    for kind in CHILD_KINDS:
        for line in data_lines(files, kind)[1]:
            out[kind].setdefault(split_line(line)[0], []).append(line)
    return out


def test_weekly_child_files(month: Month) -> None:
    children = base_children(month.base)
    _, base_lines = data_lines(month.base, "npidata")
    active = {split_line(line)[0] for line in base_lines if split_line(line)[1]}
    changed = Counter[str]()
    for week, files in zip(month.stats.weeklies, month.weeklies, strict=True):
        rows = [split_line(line) for line in data_lines(files, "npidata")[1]]
        npis = {r[0] for r in rows}
        stubs = {r[0] for r in rows if not r[1]}
        sets = base_children({k: v for k, v in files.items()})
        for kind in CHILD_KINDS:
            assert set(sets[kind]) <= npis - stubs, kind  # only this week's NPIs, never a stub
            assert week.child_rows[kind] == sum(len(v) for v in sets[kind].values())
        for r in rows:
            if r[0] in active and r[1]:  # an update of an active provider
                # Endpoints never change in an update, so the weekly must repeat the whole set.
                assert sets["endpoint"].get(r[0], []) == children["endpoint"].get(r[0], [])
                for kind in ("pl", "othername"):
                    changed[kind] += sets[kind].get(r[0], []) != children[kind].get(r[0], [])
        for kind in CHILD_KINDS:
            for npi in npis:
                children[kind][npi] = sets[kind].get(npi, [])
        active = (active | npis) - stubs
    assert changed["pl"] > 0 and changed["othername"] > 0  # addresses and renames touch the child sets
    assert sum(sum(w.child_rows.values()) for w in month.stats.weeklies) > 0


# -- report and month-end full file -----------------------------------------------------------------------


def test_month_end_names(month: Month) -> None:
    stats = month.stats
    assert stats.base_release == BASE_END and stats.release == date(2026, 11, 30)
    assert stats.full is not None and stats.full.name == "NPPES_Data_Dissemination_November_2026_V2.zip"
    assert stats.report is not None and stats.report.name == "NPPES_Deactivated_NPI_Report_113026_V2.zip"
    bundle = open_bundle(stats.full)
    assert bundle.kind == "full" and bundle.release_date == date(2026, 11, 29)
    assert set(month.full) == {
        f"{k}_pfile_20050523-20261129{s}.csv" for k in KINDS for s in ("", "_fileheader")
    }
    assert open_report(stats.report).release_date == stats.release


def test_full_file_lines(month: Month) -> None:
    _, base = data_lines(month.base, "npidata")
    _, full = data_lines(month.full, "npidata")
    last: dict[str, str] = {}
    for files in month.weeklies:
        last.update((split_line(line)[0], line) for line in data_lines(files, "npidata")[1])
    report = {r.npi: r.date for r in open_report(month.stats.report or Path()).rows()}
    base_npis = [line[1:11] for line in base]
    base_active = {line[1:11] for line in base if split_line(line)[1]}
    extra = {npi for npi in report if npi in base_active and npi not in last}
    assert len(full) == month.stats.full_rows == len(base) + sum(w.created for w in month.stats.weeklies)
    replaced = 0
    for npi, old, new in zip(base_npis, base, full, strict=False):
        if npi in last:
            assert new == last[npi]
            replaced += 1
        elif npi in report and split_line(old)[1]:  # deactivated by the report only
            fields = split_line(new)
            assert fields[0] == npi and [i for i, v in enumerate(fields) if v] == [0, 39]
            assert day(fields[39]).isoformat() == report[npi]
        else:
            assert new == old  # untouched lines are byte-identical, garbage included
    appended = full[len(base) :]
    created = [
        ln for files in month.weeklies for ln in data_lines(files, "npidata")[1] if ln[1:11] not in base_npis
    ]
    assert [ln[1:11] for ln in appended] == list(dict.fromkeys(ln[1:11] for ln in created))  # creation order
    assert all(ln == last[ln[1:11]] for ln in appended)
    assert Counter(ln[1:11] for ln in full).most_common(1)[0][1] == 1
    assert replaced == len(set(last) & set(base_npis))
    assert 0 < month.stats.report_extra == len(extra)


def test_report_lists_exactly_the_final_stubs(month: Month) -> None:
    rows = list(open_report(month.stats.report or Path()).rows())
    assert all(r.problem is None for r in rows)
    assert len(rows) == month.stats.report_rows
    full = [split_line(line) for line in data_lines(month.full, "npidata")[1]]
    stubs = {r[0]: day(r[39]).isoformat() for r in full if not r[1] and len(r) == 330 and is_valid_npi(r[0])}
    assert {r.npi: r.date for r in rows} == stubs
    assert [r.npi for r in rows] == sorted(stubs)
    last_week = month.stats.weeklies[-1]
    weekly_npis = {ln[1:11] for files in month.weeklies for ln in data_lines(files, "npidata")[1]}
    _, base = data_lines(month.base, "npidata")
    base_active = {line[1:11] for line in base if split_line(line)[1]}
    extra = [r for r in rows if r.npi in base_active and r.npi not in weekly_npis]
    assert len(extra) == month.stats.report_extra
    assert all(last_week.start <= date.fromisoformat(r.date or "") <= last_week.end for r in extra)


def test_base_plus_updates_equals_full(month: Month) -> None:
    """Apply base, weeklies and report row by row: the result is the month-end full file."""

    def table(files: dict[str, bytes]) -> tuple[dict[str, str], dict[str, dict[str, list[str]]]]:
        rows = {line[1:11]: line for line in data_lines(files, "npidata")[1]}
        return rows, base_children(files)

    rows, children = table(month.base)
    for files in month.weeklies:
        week_rows, week_children = table(files)
        rows.update(week_rows)
        for kind in CHILD_KINDS:
            for npi in week_rows:
                children[kind][npi] = week_children[kind].get(npi, [])
    for r in open_report(month.stats.report or Path()).rows():
        if split_line(rows[r.npi])[1]:
            stub = [""] * 330
            stub[0], stub[39] = r.npi, f"{date.fromisoformat(r.date or ''):%m/%d/%Y}"
            rows[r.npi] = '"' + '","'.join(stub) + '"'
            for kind in CHILD_KINDS:
                children[kind][r.npi] = []
    full_rows, full_children = table(month.full)
    assert rows == full_rows
    for kind in CHILD_KINDS:
        assert {k: v for k, v in children[kind].items() if v} == full_children[kind], kind


def test_full_children_in_place(month: Month) -> None:
    """Child lines of NPIs the month did not touch are copied through, in base order."""
    touched = {ln[1:11] for files in month.weeklies for ln in data_lines(files, "npidata")[1]}
    touched |= {r.npi for r in open_report(month.stats.report or Path()).rows()}
    for kind in CHILD_KINDS:
        _, base = data_lines(month.base, kind)
        _, full = data_lines(month.full, kind)
        assert [ln for ln in base if ln[1:11] not in touched] == [
            ln for ln in full if ln[1:11] not in touched
        ]


def test_deterministic(tmp_path: Path, month: Month) -> None:
    base = write_bundle(tmp_path / "base", 2000, seed=5, broken_rows=4)
    a = write_month(base.path, tmp_path / "a", weeks=WEEKS, weekly_rows=WEEKLY_ROWS, seed=2)
    for ours, theirs in zip(a.weeklies, month.stats.weeklies, strict=True):
        assert ours.path.read_bytes() == theirs.path.read_bytes()
    assert a.full is not None and members(a.full) == month.full
    assert a.report is not None and a.report.read_bytes() == (month.stats.report or Path()).read_bytes()
    b = write_weekly(base.path, tmp_path / "b", WEEKLY_ROWS, seed=3)
    assert isinstance(b, WeekStats) and b.path.name == month.stats.weeklies[0].path.name
    assert members(b.path) != month.weeklies[0]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [b.path.name]  # no report, no full


@pytest.mark.parametrize("variant", ["pre2025", "329"])
def test_other_layouts_and_folders(tmp_path: Path, variant: str) -> None:
    base = write_bundle(tmp_path / "base", 600, seed=1, variant=variant, as_folder=True)
    stats = write_month(base.path, tmp_path / "out", weeks=2, weekly_rows=100, seed=1)
    header, _ = data_lines(members(stats.weeklies[0].path), "npidata")
    assert header == (base.path / "npidata_pfile_20050523-20261108_fileheader.csv").read_text().rstrip("\n")
    width = len(split_line(header))
    assert width == (329 if variant == "329" else 330)
    for path in [w.path for w in stats.weeklies] + [stats.full or Path()]:
        assert all(len(split_line(ln)) == width for ln in data_lines(members(path), "npidata")[1])


def test_bad_base(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        write_month(tmp_path, tmp_path / "out", weeks=1, weekly_rows=10)
    (tmp_path / "npidata_pfile.csv").write_text('"NPI","Entity Type Code"\n')
    with pytest.raises(SourceError):
        write_month(tmp_path / "npidata_pfile.csv", tmp_path / "out", weeks=1, weekly_rows=10)
    with pytest.raises(ValueError, match="weeks"):
        write_month(tmp_path, tmp_path / "out", weeks=0)
    base = write_bundle(tmp_path / "base", 50, seed=1)
    with pytest.raises(ValueError, match="overwrite the base"):  # one week later is still November 2026
        write_month(base.path, base.path.parent, weeks=1, weekly_rows=10)
    assert base.path.exists() and not list(base.path.parent.glob("*Weekly*"))
