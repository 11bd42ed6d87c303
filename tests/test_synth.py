"""The synthetic NPPES bundle: CMS's exact file format, realistic content, determinism, broken rows."""

from __future__ import annotations

import csv
import zipfile
from datetime import date, datetime
from importlib import resources
from pathlib import Path

import phonenumbers
import pytest

from npistack.normalize.geo import zip_table
from npistack.nppes.layout import header_file_text
from npistack.nppes.npi import is_valid_npi
from npistack.nppes.synth import SynthStats, write_bundle
from npistack.nppes.synth import bundle as synth_bundle
from npistack.nppes.taxonomy import load_nucc

KINDS = ("npidata", "pl", "othername", "endpoint")
END = "20261108"  # the default release, 2026-11-09, minus one day
N = 3000
PHONE_COLS = (26, 27, 34, 35, 46)
BROKEN_DATE = "02/30/2019"


def split_line(line: str) -> list[str]:
    """Split one CMS line: every field quoted, no escapes; fails on anything else."""
    assert line.startswith('"') and line.endswith('"\n'), line[:80]
    fields = line[1:-2].split('","')
    assert not any('"' in f for f in fields), line[:80]
    return fields


def read_members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rows_of(data: bytes) -> list[list[str]]:
    lines = data.decode("utf-8").splitlines(keepends=True)
    return [split_line(line) for line in lines[1:]]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthStats, dict[str, bytes]]:
    stats = write_bundle(tmp_path_factory.mktemp("synth"), N, seed=11)
    return stats, read_members(stats.path)


@pytest.fixture(scope="module")
def tables(bundle: tuple[SynthStats, dict[str, bytes]]) -> dict[str, list[list[str]]]:
    members = bundle[1]
    return {k: rows_of(members[f"{k}_pfile_20050523-{END}.csv"]) for k in KINDS}


def test_zip_members_and_headers(bundle: tuple[SynthStats, dict[str, bytes]]) -> None:
    stats, members = bundle
    assert stats.path.name == "NPPES_Data_Dissemination_November_2026_V2.zip"
    expected = set()
    for kind in KINDS:
        data_name = f"{kind}_pfile_20050523-{END}.csv"
        header_name = f"{kind}_pfile_20050523-{END}_fileheader.csv"
        expected |= {data_name, header_name}
        assert members[header_name] == header_file_text(kind).encode()
        assert members[data_name].startswith(members[header_name])
    assert set(members) == expected
    with zipfile.ZipFile(stats.path) as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    assert not list(stats.path.parent.glob(".synth-*"))  # the spool directory is gone


def test_format_facts(bundle: tuple[SynthStats, dict[str, bytes]]) -> None:
    for name, data in bundle[1].items():
        assert not data.startswith(b"\xef\xbb\xbf"), name
        assert b"\r" not in data and data.endswith(b"\n"), name
        text = data.decode("utf-8")
        lines = text.splitlines(keepends=True)
        parsed = list(csv.reader(lines))
        assert [split_line(line) for line in lines] == parsed, name  # quoted, no "" escapes, no newlines


def test_npidata_rows(
    bundle: tuple[SynthStats, dict[str, bytes]], tables: dict[str, list[list[str]]]
) -> None:
    stats, rows = bundle[0], tables["npidata"]
    assert len(rows) == stats.providers == N
    assert all(len(r) == 330 for r in rows)
    npis = [r[0] for r in rows]
    assert all(is_valid_npi(n) and n[0] == "1" for n in npis)
    assert len(set(npis)) == N
    types = [r[1] for r in rows]
    assert types.count("1") == stats.individuals
    assert types.count("2") == stats.organizations
    assert types.count("") == stats.deactivated
    assert stats.individuals + stats.organizations + stats.deactivated == N
    assert 0.72 < stats.individuals / N < 0.80
    assert 0.18 < stats.organizations / N < 0.24
    assert 0.015 < stats.deactivated / N < 0.045
    assert 0 < stats.reactivated < 0.015 * N
    assert sum(1 for r in rows if r[40]) == stats.reactivated


def test_deactivated_stubs(tables: dict[str, list[list[str]]]) -> None:
    stubs = [r for r in tables["npidata"] if not r[1]]
    assert stubs
    for r in stubs:
        assert [i for i, v in enumerate(r) if v] == [0, 39]
        datetime.strptime(r[39], "%m/%d/%Y")


def test_dates(tables: dict[str, list[list[str]]]) -> None:
    def day(s: str) -> date:
        return datetime.strptime(s, "%m/%d/%Y").date()

    active = [r for r in tables["npidata"] if r[1]]
    first = sum(1 for r in active if r[36] == "05/23/2005")
    assert 0.05 < first / len(active) < 0.25
    for r in active:
        enum, update = day(r[36]), day(r[37])
        assert date(2005, 5, 23) <= enum <= update <= date(2026, 11, 8)
        if r[329]:
            day(r[329])
        if r[40]:
            assert enum <= day(r[39]) < day(r[40]) <= update
        else:
            assert not r[39]


def test_individuals_and_organizations(tables: dict[str, list[list[str]]]) -> None:
    rows = tables["npidata"]
    people = [r for r in rows if r[1] == "1"]
    orgs = [r for r in rows if r[1] == "2"]
    assert all(r[5] and r[6] and r[41] in ("M", "F", "") and r[307] in "YNX" and r[307] for r in people)
    assert all(not r[4] and not r[3] and not r[308] for r in people)
    assert {r[8] for r in people} <= {"", "DR.", "MS.", "MRS.", "MR."}
    assert len({r[10] for r in people}) > 40  # credentials of real-world variety
    other = [r for r in people if r[19]]
    assert {r[19] for r in other} == {"1", "2"}
    assert 0.02 < len(other) / len(people) < 0.12
    assert all(r[3] == "<UNAVAIL>" and r[4] and not r[5] and not r[41] and not r[307] for r in orgs)
    assert all(r[42] and r[43] and r[45] and r[46] and r[308] in "YNX" and r[308] for r in orgs)
    unavail = sum(1 for r in orgs if r[11] == "<UNAVAIL>" and r[12] == "6")
    assert 0.38 < unavail / len(orgs) < 0.52
    assert any(r[12] == "3" and r[11] != "<UNAVAIL>" for r in orgs)
    assert all(r[309] and len(r[310]) == 9 for r in orgs if r[308] == "Y")
    groups = [g for r in orgs for g in r[314:329] if g]
    assert groups and all(g.split(" ", 1)[0] in ("193200000X", "193400000X") for g in groups)
    assert "193400000X SINGLE SPECIALTY  GROUP" in groups


def test_taxonomies_and_identifiers(tables: dict[str, list[list[str]]]) -> None:
    nucc = load_nucc()
    active = [r for r in tables["npidata"] if r[1]]
    one_primary = 0
    for r in active:
        slots = [r[47 + 4 * n : 51 + 4 * n] for n in range(15)]
        used = [s for s in slots if s[0]]
        assert 1 <= len(used) <= 4 and all(s[0] in nucc for s in used)
        assert all(s[3] in ("Y", "N", "X") for s in used) and not any(any(s) for s in slots[len(used) :])
        one_primary += [s[3] for s in used].count("Y") == 1
    assert one_primary / len(active) > 0.95
    codes = {r[47] for r in active}
    assert {"207R00000X", "207Q00000X", "363LF0000X", "183500000X", "3336C0003X", "251E00000X"} <= codes
    ids = [(r[107 + 4 * n], r[108 + 4 * n]) for r in active for n in range(50) if r[107 + 4 * n]]
    assert ids and {t for _, t in ids} == {"01", "05"}


def test_phones_valid(tables: dict[str, list[list[str]]]) -> None:
    phones = [r[c] for r in tables["npidata"] for c in PHONE_COLS if r[c]]
    phones += [r[c] for r in tables["pl"] for c in (7, 9) if r[c]]
    assert len(phones) > 5000
    for p in set(phones):
        assert len(p) == 10 and p.isdigit(), p
        assert phonenumbers.is_valid_number(phonenumbers.parse(p, "US")), p


def test_addresses_are_real_zip_city_state(tables: dict[str, list[list[str]]]) -> None:
    zips = zip_table()
    triples = [(r[c + 4], r[c + 2], r[c + 3]) for r in tables["npidata"] if r[1] for c in (20, 28)]
    triples += [(r[5], r[3], r[4]) for r in tables["pl"]]
    triples += [(r[18], r[15], r[16]) for r in tables["endpoint"]]
    for postal, city, state in triples:
        assert len(postal) in (5, 9) and postal.isdigit()
        info = zips[postal[:5]]
        assert (info.state, info.city) == (state, city.upper())
    lines = [r[28] for r in tables["npidata"] if r[1]]
    assert any(" STE " in line or " SUITE " in line for line in lines)  # suite in line 1
    assert any(line != line.upper() for line in lines)  # some mixed or lower case
    assert any(r[20].startswith("PO BOX ") for r in tables["npidata"])


def test_child_files(bundle: tuple[SynthStats, dict[str, bytes]], tables: dict[str, list[list[str]]]) -> None:
    stats = bundle[0]
    main = {r[0]: r for r in tables["npidata"]}
    active = {npi for npi, r in main.items() if r[1] in ("1", "2")}
    widths = {"pl": 10, "othername": 3, "endpoint": 19}
    for kind, width in widths.items():
        rows = tables[kind]
        assert rows and all(len(r) == width for r in rows)
        assert {r[0] for r in rows} <= active
    assert (len(tables["pl"]), len(tables["othername"]), len(tables["endpoint"])) == (
        stats.pl_rows,
        stats.othername_rows,
        stats.endpoint_rows,
    )
    pl_npis = {r[0] for r in tables["pl"]}
    assert 0.05 < len(pl_npis) / len(active) < 0.11
    names = {(r[0], r[1], r[2]) for r in tables["othername"]}
    assert {r[2] for r in tables["othername"]} == {"3", "4", "5"}
    assert all(main[npi][1] == "2" for npi, _, _ in names)
    for r in main.values():
        if r[12] == "3":
            assert (r[0], r[11], "3") in names
    endpoints = tables["endpoint"]
    assert {r[1] for r in endpoints} == {"DIRECT", "FHIR", "REST"}
    for r in endpoints:
        if r[1] == "DIRECT":
            assert r[2] == "Direct Messaging Address" and "@direct.example-" in r[3]
        elif r[1] == "FHIR":
            assert r[2] == "FHIR URL" and r[3].startswith("https://fhir.example.org/")
        assert r[4] in ("Y", "N") and bool(r[6]) == (r[4] == "Y")


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = write_bundle(tmp_path / "a", 600, seed=5, broken_rows=3)
    b = write_bundle(tmp_path / "b", 600, seed=5, broken_rows=3)
    c = write_bundle(tmp_path / "c", 600, seed=6, broken_rows=3)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.read_bytes() != c.path.read_bytes()
    folder = write_bundle(tmp_path / "d", 600, seed=5, broken_rows=3, as_folder=True)
    assert folder.path.is_dir() and folder.path.name == "NPPES_Data_Dissemination_November_2026_V2"
    files = {p.name: p.read_bytes() for p in folder.path.iterdir()}
    assert files == read_members(a.path)


@pytest.mark.parametrize(
    ("variant", "width", "sex_column"),
    [
        ("current", 330, "Provider Sex Code"),
        ("pre2025", 330, "Provider Gender Code"),
        ("329", 329, "Provider Gender Code"),
    ],
)
def test_variants(tmp_path: Path, variant: str, width: int, sex_column: str) -> None:
    stats = write_bundle(tmp_path, 500, seed=2, variant=variant)
    members = read_members(stats.path)
    header = members[f"npidata_pfile_20050523-{END}_fileheader.csv"]
    columns = split_line(header.decode())
    assert len(columns) == width and columns[41] == sex_column
    assert (columns[-1] == "Certification Date") == (width == 330)
    if variant == "pre2025":
        shipped = resources.files("npistack.nppes").joinpath(
            "data", "npidata_pfile_header_pre2025_gender.csv"
        )
        assert header == shipped.read_bytes()
    data = members[f"npidata_pfile_20050523-{END}.csv"]
    assert data.startswith(header)
    assert all(len(r) == width for r in rows_of(data))
    assert members[f"othername_pfile_20050523-{END}_fileheader.csv"] == header_file_text("othername").encode()


def test_broken_rows(tmp_path: Path) -> None:
    stats = write_bundle(tmp_path, 2000, seed=9, broken_rows=12)
    rows = rows_of(read_members(stats.path)[f"npidata_pfile_20050523-{END}.csv"])
    assert len(rows) == stats.providers == 2000 and stats.broken_rows == 12
    assert stats.individuals + stats.organizations + stats.deactivated + stats.broken_rows == 2000
    problems = {
        "width": [i for i, r in enumerate(rows) if len(r) != 330],
        "luhn": [i for i, r in enumerate(rows) if not is_valid_npi(r[0])],
        "date": [i for i, r in enumerate(rows) if len(r) > 36 and r[36] == BROKEN_DATE],
        "entity": [i for i, r in enumerate(rows) if r[1] not in ("1", "2", "")],
    }
    assert all(len(found) == 3 for found in problems.values()), problems
    bad = sorted(i for found in problems.values() for i in found)
    assert len(set(bad)) == 12 and bad[0] > 0 and bad[-1] < 1999  # spread through the file
    assert max(b - a for a, b in zip(bad, bad[1:], strict=False)) < 400
    assert rows[problems["entity"][0]][1] == "3"


def test_release_and_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth_bundle, "_PROGRESS_EVERY", 100)
    calls: list[int] = []
    stats = write_bundle(tmp_path, 1050, seed=1, release=date(2024, 3, 11), progress=calls.append)
    assert calls == [100] * 10 + [50]
    assert stats.path.name == "NPPES_Data_Dissemination_March_2024_V2.zip"
    names = read_members(stats.path)
    assert "npidata_pfile_20050523-20240310.csv" in names
    assert "endpoint_pfile_20050523-20240310_fileheader.csv" in names


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="variant"):
        write_bundle(tmp_path, 10, variant="v3")
    with pytest.raises(ValueError, match="broken_rows"):
        write_bundle(tmp_path, 10, broken_rows=11)
    assert not list(tmp_path.glob("*.zip"))
