"""Issue 14 item 2: an upload to ``/api/v1/jobs/enrich`` is refused before a byte of it is read or
stored (no key, no credit, a full queue, a declared size past the cap), is cut off once past the cap
while streaming, and a CSV line or field of any length is split in linear time, in bounded memory,
and reported as one row of errors.csv.

The HTTP tests go to a real server on loopback over a raw socket (``post_raw``): a request announcing
1 GiB gets its answer after a few KiB were sent, so the server never read (or waited for) the rest.
"""

from __future__ import annotations

import csv
import io
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import orjson
import pytest

from npistack.api import create_app
from npistack.services.enrich import input as csv_input
from npistack.services.enrich.file import default_side_paths, enrich_file
from npistack.services.enrich.input import CsvFormat, CsvLimits, LineSplitter, read_records
from npistack.storage.jobs import JobsDb
from tests.api_support import ACTIVE_NPI, app_server, make_key, sample_store, set_plan, settings
from tests.security.test_bodies import GIB, post_raw

PATH = "/api/v1/jobs/enrich"
MIB = 1 << 20
CAP = 256 * 1024  # the servers' NPISTACK_JOBS_MAX_UPLOAD_BYTES


class Server(NamedTuple):
    base: str
    url: str
    jobs: Path
    key: str  # a client key with credits
    broke: str  # a client key whose month has no credit left


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("jobs_upload")
    url = sample_store(root / "store.db")
    set_plan(url, "none", 0)
    key, broke = make_key(url), make_key(url, "none")
    app = create_app(
        settings(
            url,
            api_anonymous_per_minute=0,
            jobs_runner=False,
            jobs_dir=str(root / "jobs"),
            jobs_max_upload_bytes=CAP,
            jobs_max_queued_per_key=1000,
        )
    )
    with app_server(app) as base:
        yield Server(base, url, root / "jobs", key, broke)


def stored(srv: Server) -> list[Path]:
    """Every file the server keeps for uploads (none until a job is accepted)."""
    return [p for p in srv.jobs.rglob("*") if p.is_file()] if srv.jobs.exists() else []


def jobs_of(url: str) -> int:
    db = JobsDb(url)
    try:
        return len(db.jobs())
    finally:
        db.close()


def error_of(ans: object) -> str:
    body = orjson.loads(ans.body)  # type: ignore[attr-defined]
    assert body["meta"]["requestId"]
    return str(body["error"]["code"])


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_keyless_1_gib_upload_gets_its_401_after_a_few_kib(server: Server, chunked: bool) -> None:
    started = time.monotonic()
    ans = post_raw(server.base, PATH, declared=None if chunked else GIB, chunked=chunked, offer=64 * MIB)
    assert ans.status == 401 and error_of(ans) == "invalid_api_key", ans.body
    assert ans.sent < 4 * MIB, ans.sent  # socket buffers hold a few MiB: the server never waited for more
    assert time.monotonic() - started < 10  # a hang guard; the answer takes milliseconds
    assert stored(server) == [], "nothing of a keyless upload is stored"


def test_a_key_without_credit_gets_403_before_the_body(server: Server) -> None:
    ans = post_raw(server.base, PATH, key=server.broke, declared=CAP, offer=CAP)
    assert ans.status == 403 and error_of(ans) == "quota_exceeded", ans.body
    assert stored(server) == [] and jobs_of(server.url) == 0


def test_a_declared_size_past_the_cap_is_413_before_a_byte_is_sent(server: Server) -> None:
    ans = post_raw(server.base, PATH, key=server.key, declared=GIB, offer=0)
    assert ans.status == 413 and error_of(ans) == "upload_too_large", ans.body
    assert f"{CAP:,} bytes" in orjson.loads(ans.body)["error"]["message"]
    assert ans.headers["connection"] == "close"


def test_a_chunked_upload_is_cut_off_with_413_once_past_the_cap(server: Server) -> None:
    ans = post_raw(server.base, PATH, key=server.key, chunked=True, offer=CAP + 48 * MIB)
    assert ans.status == 413 and error_of(ans) == "upload_too_large", ans.body
    assert ans.sent < CAP + 8 * MIB, ans.sent  # far from all of it was read
    assert stored(server) == [], "the partial upload was removed"
    assert jobs_of(server.url) == 0


def test_a_full_queue_is_429_before_the_body(tmp_path: Path) -> None:
    url = sample_store(tmp_path / "store.db")
    key = make_key(url)
    app = create_app(
        settings(url, api_anonymous_per_minute=0, jobs_runner=False, jobs_dir=str(tmp_path / "jobs"),
                 jobs_max_queued_per_key=1)
    )  # fmt: skip
    with app_server(app) as base:
        body = f"NPI\n{ACTIVE_NPI}\n".encode()
        r = httpx.post(f"{base}{PATH}", content=body, headers={"Authorization": f"Bearer {key}",
                                                                "Content-Type": "text/csv"})  # fmt: skip
        assert r.status_code == 202, r.text
        ans = post_raw(base, PATH, key=key, declared=GIB, offer=64 * MIB)
        assert ans.status == 429 and error_of(ans) == "too_many_jobs", ans.body
        assert "1 enrichment jobs queued" in orjson.loads(ans.body)["error"]["message"]
        assert ans.headers["retry-after"]
        assert ans.sent < 4 * MIB, ans.sent
    assert jobs_of(url) == 1


# -- line splitting -------------------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A file that hands out at most ``size`` bytes a read (many small chunks for one long line)."""

    def __init__(self, data: bytes, size: int = 64 * 1024) -> None:
        self.data, self.pos, self.size = data, 0, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.size if n < 0 else min(n, self.size)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def test_a_20_mb_line_is_split_looking_at_each_byte_once() -> None:
    line = b"2," + b"x" * (20 * MIB)
    data = b"NPI,Name\n1,a\n" + line + b"\n3,c\n"
    splitter = LineSplitter(Trickle(data), b"\n", max_line_bytes=32 * MIB)  # a cap above the line
    lines = list(splitter)
    assert [len(x) for x in lines if isinstance(x, bytes)] == [8, 3, len(line), 3]
    # Linear: every byte searched for the newline once (the old ``buf += chunk; buf.split()`` searched
    # the whole line so far after each of the 320 chunks: ~3.4 GB of work for this line).
    assert splitter.scanned == len(data)
    assert splitter.peak_buffer == len(line)


def test_a_line_past_the_cap_is_skipped_in_bounded_memory() -> None:
    data = b"NPI,Name\n1,a\n2," + b"x" * (20 * MIB) + b"\n3,c\n"
    tracemalloc.start()
    try:
        splitter = LineSplitter(Trickle(data), b"\n", max_line_bytes=MIB)
        lines = list(splitter)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert splitter.scanned == len(data)
    assert splitter.peak_buffer <= MIB
    assert peak < 4 * MIB, peak  # never the 20 MB line
    long = lines[2]
    assert isinstance(long, csv_input.LongLine) and long.length == 2 + 20 * MIB
    assert long.head.startswith(b"2,xxx") and len(long.head) <= csv_input.KEEP_CHARS
    assert lines[3] == b"3,c"


def test_over_long_lines_and_fields_are_one_error_row_each_and_nothing_is_lost() -> None:
    fmt = CsvFormat("utf-8", ",")
    data = (
        b"NPI,Name\n1,a\n2," + b"x" * (3 * MIB) + b"\n3,c\n4," + b"y" * 5000 + b"\n"
        b'5,"an open quote\n' + b"z" * (2 * MIB) + b"\n6,d\n"
    )
    rows = list(read_records(Trickle(data), fmt, CsvLimits(max_line_bytes=MIB, max_field_chars=4096)))
    got = [(r.line, r.error) for r in rows]
    assert [line for line, _ in got] == [1, 2, 3, 4, 5, 6, 7, 8], got
    errors = {r.line: r.error or "" for r in rows if r.error}
    assert sorted(errors) == [3, 5, 6, 7]
    assert "3,145,730 bytes long" in errors[3] and "NPISTACK_CSV_MAX_LINE_BYTES" in errors[3]
    assert "field 2 is 5,000 characters" in errors[5] and "NPISTACK_CSV_MAX_FIELD_CHARS" in errors[5]
    assert "runs into line 7" in errors[6]
    assert "2,097,152 bytes long" in errors[7]
    assert [r.values for r in rows if not r.error] == [["NPI", "Name"], ["1", "a"], ["3", "c"], ["6", "d"]]
    assert all(len(r.raw) <= csv_input.KEEP_CHARS for r in rows)


def test_an_enrichment_reports_the_over_long_row_in_errors_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPISTACK_CSV_MAX_LINE_BYTES", str(64 * 1024))
    url = sample_store(tmp_path / "store.db")
    src = tmp_path / "in.csv"
    src.write_bytes(
        f"ID,NPI\n1,{ACTIVE_NPI}\n2,".encode() + b"9" * (5 * MIB) + f"\n3,{ACTIVE_NPI}\n".encode()
    )
    out = tmp_path / "out.csv"
    review, errors = default_side_paths(out)
    summary = enrich_file(src, out, store_url=url, review_path=review, errors_path=errors, workers=0)
    assert summary.rows == 3
    with out.open(newline="", encoding="utf-8-sig") as fh:
        result = list(csv.DictReader(fh))
    assert [r["ID"] for r in result] == ["1", "2", "3"], "every row is written back"
    assert result[0]["nppes_npi"] == ACTIVE_NPI and result[2]["nppes_npi"] == ACTIVE_NPI
    with errors.open(newline="", encoding="utf-8-sig") as fh:
        bad = list(csv.reader(fh))
    assert len(bad) == 2, bad  # its header and the one row
    assert "5,242,882 bytes long" in ",".join(bad[1]) and "NPISTACK_CSV_MAX_LINE_BYTES" in ",".join(bad[1])


def test_an_over_long_header_field_is_400_with_the_reason_never_a_500(server: Server) -> None:
    r = httpx.post(
        f"{server.base}{PATH}",
        content=b"NPI," + b"H" * 200_000 + b"\n1,a\n",  # also past csv's own 131,072 field limit
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "text/csv"},
        timeout=30,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_csv"), r.text
    message = r.json()["error"]["message"]
    assert "NPISTACK_CSV_MAX_FIELD_CHARS" in message and "header" in message


def test_an_upload_with_an_over_long_row_is_accepted_and_counts_it(tmp_path: Path) -> None:
    url = sample_store(tmp_path / "store.db")
    key = make_key(url)
    body = f"NPI,Name\n{ACTIVE_NPI},a\n2,".encode() + b"x" * (3 * MIB) + b"\n3,c\n"
    with app_server(create_app(settings(url, jobs_runner=False, jobs_dir=str(tmp_path / "jobs")))) as base:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
        r = httpx.post(f"{base}{PATH}", content=body, headers=headers, timeout=30)
        assert r.status_code == 202, r.text
        assert r.json()["data"]["rows"]["total"] == 3 and r.json()["data"]["credits"] == 3
        r = httpx.post(
            f"{base}{PATH}", content=b"NPI," + b"H" * (2 * MIB) + b"\n1\n", headers=headers, timeout=30
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_csv"), r.text
        assert "NPISTACK_CSV_MAX_LINE_BYTES" in r.json()["error"]["message"]
