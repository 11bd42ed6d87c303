"""List enrichment (``services.enrich``: ``file``, ``input``, ``columns``): columns found by their
names, files read whatever their encoding and delimiter, every row written back (unreadable ones
reported with their line number), ambiguous rows in the review file, and the NPPES fields of real
sample rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from npistack.services.enrich import columns as csv_columns
from npistack.services.enrich import file as ec
from npistack.services.enrich import input as csv_input
from npistack.services.enrich.columns import detect_columns, parse_overrides
from npistack.services.enrich.file import enrich_file
from npistack.services.enrich.input import EnrichError
from tests.api_support import ACTIVE_NPI, ORG_NPI, sample_store

STUB_NPI = "1306849450"  # deactivated (a stub row in the sample)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sample_store(tmp_path_factory.mktemp("enrich") / "store.db")


@dataclass
class Run:
    summary: ec.EnrichSummary
    header: list[str]
    rows: list[dict[str, str]]
    review: list[dict[str, str]]
    errors: list[dict[str, str]]
    raw: bytes = b""
    input_rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def read_csv(path: Path, delimiter: str = ",") -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader)
        return header, [dict(zip(header, r, strict=True)) for r in reader]


def run(tmp_path: Path, url: str, data: str | bytes, **kw: Any) -> Run:
    src = tmp_path / "in.csv"
    src.write_bytes(data.encode() if isinstance(data, str) else data)
    out = tmp_path / "out.csv"
    review, errors = ec.default_side_paths(out)
    kw.setdefault("workers", 0)
    summary = enrich_file(src, out, store_url=url, review_path=review, errors_path=errors, **kw)
    d = summary.format.delimiter
    header, rows = read_csv(out, d)
    return Run(summary, header, rows, read_csv(review, d)[1], read_csv(errors, d)[1], out.read_bytes())


# -- columns ------------------------------------------------------------------------------------


def test_fields_are_the_matchers() -> None:
    from npistack.services.match import FIELDS

    assert tuple(FIELDS) == csv_columns.FIELDS


@pytest.mark.parametrize(
    "header, expected",
    [
        (["NPI", "First Name", "Last Name"], {"npi": "NPI", "first_name": "First Name", "last_name": "Last Name"}),
        (["NPI Number", "FirstName", "Surname"], {"npi": "NPI Number", "first_name": "FirstName", "last_name": "Surname"}),
        (["npi #", "fname", "Last", "MI"], {"npi": "npi #", "first_name": "fname", "last_name": "Last", "middle_name": "MI"}),
        (["Provider Name", "Specialty", "Credential"], {"name": "Provider Name", "specialty": "Specialty", "credential": "Credential"}),
        (["Full Name", "Degree"], {"name": "Full Name", "credential": "Degree"}),
        (["Organization", "Phone"], {"organization_name": "Organization", "phone": "Phone"}),
        (["Practice Name", "Telephone"], {"organization_name": "Practice Name", "phone": "Telephone"}),
        (["Company", "Address", "Suite", "City", "State", "ZIP Code"],
         {"organization_name": "Company", "address_1": "Address", "address_2": "Suite", "city": "City",
          "state": "State", "postal_code": "ZIP Code"}),
        (["Last Name", "Address 1", "Address 2", "Zip", "Postal"],
         {"last_name": "Last Name", "address_1": "Address 1", "address_2": "Address 2", "postal_code": "Zip"}),
        (["LAST_NAME", "Street", "ST", "Postal Code"],
         {"last_name": "LAST_NAME", "address_1": "Street", "state": "ST", "postal_code": "Postal Code"}),
        (["License #", "License State", "State", "Surname"],
         {"license_number": "License #", "license_state": "License State", "state": "State", "last_name": "Surname"}),
        (["Provider First Name", "Provider Last Name", "Practice City", "Practice Address", "Email"],
         {"first_name": "Provider First Name", "last_name": "Provider Last Name", "city": "Practice City",
          "address_1": "Practice Address"}),
        (["NPI", "Group NPI", "npi"], {"npi": "NPI"}),  # the first of several wins
    ],
)  # fmt: skip
def test_columns_are_detected_by_their_names(header: list[str], expected: dict[str, str]) -> None:
    cols = detect_columns(header)
    assert cols.as_dict() == expected
    assert set(cols.unused()) == {h for i, h in enumerate(header) if i not in cols.fields.values()}


def test_overrides_replace_detection_and_leave_fields_out() -> None:
    header = ["NPI", "Doc", "Family", "Town", "Surname"]
    cols = detect_columns(header, parse_overrides(["last_name=Family", "npi=", "City = town"]))
    assert cols.as_dict() == {"last_name": "Family", "city": "Town"}
    assert cols.overridden == {"last_name", "city"}
    # case and punctuation do not matter; the detected column of an overridden field is left alone
    assert detect_columns(["N.P.I.", "Surname"], {"npi": "npi"}).as_dict() == {
        "npi": "N.P.I.",
        "last_name": "Surname",
    }


@pytest.mark.parametrize(
    "specs, header, words",
    [
        (["lastname"], ["Surname"], "write FIELD=HEADER"),
        (["surname=Surname"], ["Surname"], "unknown field 'surname'"),
        (["last_name=A", "last_name=B"], ["A", "B"], "more than once"),
        (["last_name=Nope"], ["NPI", "Surname"], "no such column (its columns: 'NPI', 'Surname')"),
        ([], ["Email", "Owner"], "no column to match on"),
        (["npi=", "last_name="], ["NPI", "Last Name"], "no column to match on"),
    ],
)
def test_bad_overrides_and_unusable_headers_say_what_to_do(
    specs: list[str], header: list[str], words: str
) -> None:
    with pytest.raises(EnrichError) as e:
        detect_columns(header, parse_overrides(specs))
    assert words in str(e.value)


# -- reading ------------------------------------------------------------------------------------


def records(data: bytes) -> tuple[csv_input.CsvFormat, list[csv_input.Row]]:
    fmt = csv_input.sniff_bytes(data)
    return fmt, list(csv_input.read_records(io.BytesIO(data), fmt))


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_sniffed(delimiter: str) -> None:
    text = delimiter.join(["NPI", "Last Name", "City"]) + "\n"
    text += (
        delimiter.join([ACTIVE_NPI, "Dubose", "Tarboro, NC" if delimiter != "," else '"Tarboro, NC"']) + "\n"
    )
    fmt, rows = records(text.encode())
    assert fmt.delimiter == delimiter and fmt.encoding == "utf-8" and not fmt.bom
    assert rows[1].values == [ACTIVE_NPI, "Dubose", "Tarboro, NC"] and rows[1].error is None


def test_one_column_files_and_mac_line_endings() -> None:
    fmt, rows = records(f"NPI\n{ACTIVE_NPI}\n{ORG_NPI}\n".encode())
    assert [r.values for r in rows] == [["NPI"], [ACTIVE_NPI], [ORG_NPI]]
    fmt, rows = records(f"NPI;Surname\r{ACTIVE_NPI};Dubose\r".encode())
    assert fmt.newline == b"\r" and rows[1].values == [ACTIVE_NPI, "Dubose"]


def test_windows_1252_and_utf8_with_bom() -> None:
    text = "NPI;Nom;Ville\n;Müller;Besançon\n;Peña;São Paulo – “centre”\n"
    fmt, rows = records(text.encode("cp1252"))
    assert (fmt.encoding, fmt.delimiter, fmt.bom) == ("cp1252", ";", False)
    assert [r.values for r in rows[1:]] == [["", "Müller", "Besançon"], ["", "Peña", "São Paulo – “centre”"]]
    fmt, rows = records(codecs_bom() + text.encode("utf-8"))
    assert (fmt.encoding, fmt.bom) == ("utf-8", True)
    assert rows[0].values == ["NPI", "Nom", "Ville"]  # no BOM glued to the first header
    assert rows[2].values[2] == "São Paulo – “centre”"


def codecs_bom() -> bytes:
    import codecs

    return codecs.BOM_UTF8


def test_utf16_is_refused_with_advice() -> None:
    with pytest.raises(EnrichError, match="UTF-16"):
        csv_input.sniff_bytes("NPI,Name\n".encode("utf-16"))


BAD = (
    b"NPI,First Name,Last Name,City\n"  # 1
    b"1114920162,Jon,Dubose,Tarbor\xc3\xb3\n"  # 2: UTF-8 "ó" (more of it than bad bytes)
    b"1497758544,too,many,fields,here\n"  # 3: wrong field count
    b"\n"  # 4: blank, skipped
    b",Jo\x00n,Dubose,Tarboro\n"  # 5: a NUL byte
    b",J\xffon,Dubose,Tarboro\n"  # 6: not UTF-8
    b',"Jon\nJunior",Dubose,Tarbor\xc3\xb3\n'  # 7-8: a quoted newline, fine
    b',"unclosed,Dubose,Tarboro\n'  # 9: a quote that never closes
    b",Richard,Thacker,Tallahassee\n"  # 10: still read
    b",,,\n"  # 11: empty values, a row
    b",Cheryl,Rudnicke,Nashville,,\n"  # 12: trailing empty fields are fine
    b"short,row\n"  # 13: too few fields
)


def test_unreadable_lines_are_reported_with_their_line_and_the_rest_is_read() -> None:
    _, rows = records(BAD)
    got = [(r.line, r.error is not None) for r in rows[1:]]
    assert got == [(2, False), (3, True), (5, True), (6, True), (7, False), (9, True), (10, False),
                   (11, False), (12, False), (13, True)]  # fmt: skip
    by_line = {r.line: r for r in rows}
    assert "5 fields where the header has 4" in (by_line[3].error or "")
    assert "NUL" in (by_line[5].error or "")
    assert "not UTF-8" in (by_line[6].error or "")
    assert "unclosed quote" in (by_line[9].error or "")
    assert by_line[7].values == ["", "Jon\nJunior", "Dubose", "Tarboró"]
    assert by_line[10].values == ["", "Richard", "Thacker", "Tallahassee"]
    assert by_line[12].values == ["", "Cheryl", "Rudnicke", "Nashville"]
    assert by_line[3].raw == "1497758544,too,many,fields,here"


def test_a_quote_open_for_too_many_lines_costs_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_input, "MAX_RECORD_LINES", 3)
    data = b'NPI,Name\n1,"open\n' + b"".join(b"%d,row %d\n" % (i, i) for i in range(2, 12))
    _, rows = records(data)
    assert rows[1].line == 2 and "still open 3 lines later" in (rows[1].error or "")
    assert [r.values for r in rows[2:]] == [[str(i), f"row {i}"] for i in range(2, 12)]


# -- enriching, with the real matcher on the 50 real rows ------------------------------------------

INPUT = (
    "Record,NPI,First Name,Last Name,Organization,City,State,Zip,Phone\n"
    f"r1,{ACTIVE_NPI},Jon,Dubose,,Tarboro,NC,27886,(252) 641-7700\n"  # 2: matched by NPI and name
    "r2,,Jon,Dubois,,Tarboro,NC,,\n"  # 3: a typo, matched by name
    f"r3,,,,Cumberland County Hospital System,Fayetteville,NC,,\n"  # 4: an organization
    f"r4,{STUB_NPI},,,,,,,\n"  # 5: a deactivated NPI
    "r5,,Zebulon,Quackenbush,,Nowhere,WY,,\n"  # 6: nobody
    "r6,oops\n"  # 7: unreadable
    "r7,,,,,,,,\n"  # 8: nothing to match on
)


def test_a_csv_round_trips_with_enriched_fields(tmp_path: Path, url: str) -> None:
    r = run(tmp_path, url, INPUT)
    assert r.header[:9] == INPUT.splitlines()[0].split(",")
    assert r.header[9:] == ["nppes_" + c for c in ec.OUTPUT_COLUMNS]
    assert [row["Record"] for row in r.rows] == [f"r{i}" for i in range(1, 8)], "rows in = rows out, in order"
    assert r.summary.rows == 7
    dubose = r.rows[0]
    assert dubose["nppes_match_status"] == "matched" and float(dubose["nppes_match_confidence"]) >= 0.9
    expected = {
        "npi": ACTIVE_NPI, "status": "active", "deactivation_date": "", "name": "JON DUBOSE",
        "specialty_code": "207R00000X", "specialty": "Internal Medicine Physician", "credential": "MD",
        "address_1": "111 HOSPITAL DR", "address_2": "", "city": "TARBORO", "state": "NC", "zip": "27886-2011",
        "phone": "+12526417700", "fax": "+12526417313", "last_updated": "2022-10-12", "input_line": "2",
    }  # fmt: skip
    assert {k: dubose["nppes_" + k] for k in expected} == expected
    assert (
        abs(float(dubose["nppes_latitude"]) - 35.9) < 0.3
        and abs(float(dubose["nppes_longitude"]) + 77.55) < 0.3
    )
    assert (r.rows[1]["nppes_match_status"], r.rows[1]["nppes_npi"]) == ("matched", ACTIVE_NPI)
    org = r.rows[2]
    assert (org["nppes_match_status"], org["nppes_npi"], org["nppes_specialty_code"]) == (
        "matched",
        ORG_NPI,
        "251G00000X",
    )
    assert org["nppes_name"] == "CUMBERLAND COUNTY HOSPITAL SYSTEM, INC" and org["nppes_credential"] == ""
    stub = r.rows[3]
    assert (stub["nppes_match_status"], stub["nppes_npi"], stub["nppes_status"]) == (
        "matched",
        STUB_NPI,
        "deactivated",
    )
    assert stub["nppes_deactivation_date"]
    assert r.rows[4]["nppes_match_status"] == "no_match" and r.rows[4]["nppes_npi"] == ""
    bad = r.rows[5]
    assert (bad["Record"], bad["NPI"], bad["First Name"], bad["nppes_match_status"]) == (
        "r6",
        "oops",
        "",
        "error",
    )
    assert bad["nppes_input_line"] == "7" and "2 fields where the header has 9" in bad["nppes_match_notes"]
    assert r.rows[6]["nppes_match_status"] == "no_match"
    assert r.errors == [{"input_line": "7", "reason": "2 fields where the header has 9", "raw": "r6,oops"}]
    assert r.summary.counts == {"matched": 4, "ambiguous": 0, "no_match": 2, "error": 1}
    assert r.review == []
    assert not list(tmp_path.glob("*.part")), "no partial file left"


def test_ambiguous_rows_go_to_the_review_file_with_their_candidates(tmp_path: Path, url: str) -> None:
    data = "Line,First Name,Last Name\nx,Rich,Thacker\ny,Jon,Dubose\n"
    r = run(tmp_path, url, data, threshold=0.99999)
    amb = [row for row in r.rows if row["nppes_match_status"] == "ambiguous"]
    assert amb and len(r.review) == len(amb) == r.summary.counts["ambiguous"]
    assert all(row["nppes_npi"] == "" for row in amb)
    thacker = next(x for x in r.review if x["Line"] == "x")
    assert thacker["input_line"] == "2" and thacker["pick_npi"] == ""
    assert (thacker["First Name"], thacker["Last Name"]) == ("Rich", "Thacker")
    assert thacker["candidate_1_npi"] == "1114920261"
    assert "THACKER" in thacker["candidate_1_name"] and thacker["candidate_1_state"] == "FL"
    assert 0 < float(thacker["candidate_1_confidence"]) < 0.99999
    assert "agreed" in thacker["candidate_1_evidence"]


def test_output_columns_never_collide_with_the_inputs(tmp_path: Path, url: str) -> None:
    r = run(tmp_path, url, f"NPI,nppes_npi,NPPES_Status\n{ACTIVE_NPI},x,y\n")
    assert r.header[:3] == ["NPI", "nppes_npi", "NPPES_Status"]
    assert r.header[3] == "nppes2_match_status" and r.rows[0]["nppes2_npi"] == ACTIVE_NPI
    assert r.rows[0]["nppes_npi"] == "x"


def test_cp1252_semicolon_input_keeps_its_delimiter_and_opens_in_excel(tmp_path: Path, url: str) -> None:
    data = "NPI;Nom;Prénom\n1114920162;Dubosé;Jon\n".encode("cp1252")
    r = run(tmp_path, url, data)
    assert r.summary.format.label == "Windows-1252, semicolon"
    assert r.raw.startswith(codecs_bom()), "UTF-8 with a BOM, so Excel reads the accents"
    assert r.header[:3] == ["NPI", "Nom", "Prénom"] and r.rows[0]["Nom"] == "Dubosé"
    assert r.rows[0]["nppes_npi"] == ACTIVE_NPI


def test_the_output_never_overwrites_the_input(tmp_path: Path, url: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text(f"NPI\n{ACTIVE_NPI}\n")
    with pytest.raises(EnrichError, match="overwrite the input"):
        enrich_file(src, tmp_path / "." / "in.csv", store_url=url, workers=0)


# -- batches, workers, progress (a stand-in matcher: fast and deterministic) ---------------------


@dataclass
class FakeCandidate:
    npi: str
    confidence: float
    name: str
    status: str
    city: str
    state: str
    evidence: dict[str, list[str]]


@dataclass
class FakeResult:
    match_status: str
    match_confidence: float
    npi: str | None
    provider_status: str | None = None
    deactivation_date: str | None = None
    candidates: list[FakeCandidate] = field(default_factory=list)
    evidence: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class FakeMatcher:
    """Last name "Ambig": ambiguous between two sample NPIs; "Boom": raises; NPI given: matched."""

    def __init__(self, store: Any, threshold: float) -> None:
        self.threshold = threshold

    def match(self, records: list[Any]) -> list[FakeResult]:
        if any(r.last_name == "Boom" for r in records):
            raise RuntimeError("boom")
        out = []
        for r in records:
            if r.last_name == "Ambig":
                cands = [
                    FakeCandidate(ACTIVE_NPI, 0.6, "JON DUBOSE", "active", "TARBORO", "NC",
                                  {"agreed": ["last name"], "disagreed": ["first name"]}),
                    FakeCandidate("1114920261", 0.3, "RICHARD RANDALL THACKER", "active", "TALLAHASSEE", "FL",
                                  {"agreed": ["state"], "disagreed": []}),
                ]  # fmt: skip
                out.append(FakeResult("ambiguous", 0.6, None, candidates=cands, notes=["two close"]))
            elif r.npi:
                out.append(FakeResult("matched", 0.99, r.npi))
            else:
                out.append(FakeResult("no_match", 0.0, None))
        return out


def fake_matcher(store: Any, threshold: float) -> FakeMatcher:
    return FakeMatcher(store, threshold)


def test_review_file_lists_every_candidate(tmp_path: Path, url: str) -> None:
    r = run(tmp_path, url, "ID,Last Name,NPI\n1,Ambig,\n2,Nobody,\n", matcher_factory=fake_matcher)
    assert [x["nppes_match_status"] for x in r.rows] == ["ambiguous", "no_match"]
    assert r.rows[0]["nppes_match_confidence"] == "0.600" and r.rows[0]["nppes_match_notes"] == "two close"
    (rev,) = r.review
    assert {k: rev[k] for k in ("input_line", "pick_npi", "ID", "Last Name", "NPI")} == {
        "input_line": "2", "pick_npi": "", "ID": "1", "Last Name": "Ambig", "NPI": ""
    }  # fmt: skip
    assert [rev[f"candidate_{k}_npi"] for k in (1, 2, 3)] == [ACTIVE_NPI, "1114920261", ""]
    assert rev["candidate_1_evidence"] == "agreed: last name; disagreed: first name"
    assert (rev["candidate_2_city"], rev["candidate_2_state"], rev["candidate_2_confidence"]) == (
        "TALLAHASSEE",
        "FL",
        "0.300",
    )


def test_a_record_the_matcher_cannot_take_is_an_error_row_not_a_crash(tmp_path: Path, url: str) -> None:
    r = run(
        tmp_path,
        url,
        f"NPI,Last Name\n{ACTIVE_NPI},Dubose\n,Boom\n{ORG_NPI},X\n",
        matcher_factory=fake_matcher,
    )
    assert [x["nppes_match_status"] for x in r.rows] == ["matched", "error", "matched"]
    assert "the matcher failed: RuntimeError: boom" in r.rows[1]["nppes_match_notes"]
    assert r.errors[0]["input_line"] == "3"


def test_worker_processes_keep_the_order_and_report_progress(tmp_path: Path, url: str) -> None:
    lines = ["NPI,Last Name,Seq"]
    for i in range(2500):
        if i % 7 == 0:
            lines.append(f"{i},broken")
        else:
            lines.append(f"{ACTIVE_NPI if i % 3 else ''},{'Ambig' if i % 11 == 0 else 'Smith'},{i}")
    seen: list[ec.EnrichProgress] = []
    r = run(tmp_path, url, "\n".join(lines) + "\n", workers=2, batch_size=100, matcher_factory=fake_matcher,
            rows_total=2500, progress=seen.append)  # fmt: skip
    assert len(r.rows) == 2500
    assert [x["nppes_input_line"] for x in r.rows] == [str(i + 2) for i in range(2500)]
    assert [x["Seq"] for x in r.rows if x["nppes_match_status"] != "error"] == [
        str(i) for i in range(2500) if i % 7
    ]
    assert r.summary.counts["error"] == len([i for i in range(2500) if i % 7 == 0]) == len(r.errors)
    assert (
        r.summary.counts["ambiguous"]
        == len(r.review)
        == len([i for i in range(2500) if i % 7 and i % 11 == 0])
    )
    assert [p.rows_done for p in seen] == list(range(100, 2501, 100))
    assert seen[-1].rows_total == 2500 and seen[-1].counts == r.summary.counts


def test_stopping_midway_leaves_no_output(tmp_path: Path, url: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text("NPI\n" + "".join(f"{ACTIVE_NPI}\n" for _ in range(50)))
    calls = iter(range(100))
    with pytest.raises(ec.EnrichCancelled):
        enrich_file(src, tmp_path / "out.csv", store_url=url, workers=0, batch_size=10,
                    matcher_factory=fake_matcher, should_stop=lambda: next(calls) >= 2)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
