"""Enrichment jobs over the API (``/api/v1/jobs``): upload, poll, download; jobs belong to their key;
files only when done; credits per row (given back when a job fails); jobs survive a restart."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from npistack.storage.jobs import JobsDb
from tests.api_support import ACTIVE_NPI, ORG_NPI, bearer, client, make_key, sample_store, set_plan

CSV = (
    "ID,NPI,First Name,Last Name,Organization,City,State\n"
    f"1,{ACTIVE_NPI},Jon,Dubose,,Tarboro,NC\n"
    "2,,Rich,Thacker,,Houston,TX\n"  # moved? ambiguous
    "3,,,,Cumberland County Hospital System,Fayetteville,NC\n"
    "4,broken\n"
    "5,,Zebulon,Quackenbush,,Nowhere,WY\n"
).encode()
TEXT_CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sample_store(tmp_path / "store.db")


@pytest.fixture
def key(url: str) -> str:
    return make_key(url, "growth")


def post(c: TestClient, key: str, body: bytes = CSV, **params: Any) -> Any:
    return c.post("/api/v1/jobs/enrich", content=body, params=params, headers={**bearer(key), **TEXT_CSV})


def wait_done(c: TestClient, key: str, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get(f"/api/v1/jobs/{job_id}", headers=bearer(key))
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        if data["status"] in ("succeeded", "failed"):
            return data
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not done after {timeout} s: {data}")


def all_jobs(url: str) -> list[Any]:
    db = JobsDb(url)
    try:
        return db.jobs()
    finally:
        db.close()


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_upload_poll_download(url: str, key: str) -> None:
    with client(url, jobs_workers=2) as c:
        r = post(c, key, threshold="0.95")
        assert r.status_code == 202, r.text
        job = r.json()["data"]
        assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
        assert job["status"] == "queued" and job["rows"] == {"total": 5, "done": 0}
        assert job["credits"] == 5 and r.headers["x-quota-remaining"] == str(50_000 - 5)
        assert job["columns"] == {"npi": "NPI", "first_name": "First Name", "last_name": "Last Name",
                                  "organization_name": "Organization", "city": "City", "state": "State"}  # fmt: skip
        assert job["threshold"] == 0.95
        done = wait_done(c, key, job["id"])
        assert done["status"] == "succeeded" and done["error"] is None, done
        assert done["rows"] == {"total": 5, "done": 5} and done["attempts"] == 1
        counts = done["counts"]
        assert sum(counts.values()) == 5 and counts["error"] == 1 and counts["ambiguous"] >= 1
        assert done["startedAt"] and done["finishedAt"] and done["rowsPerSecond"] > 0

        r = c.get(done["links"]["result"], headers=bearer(key))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert f'filename="{job["id"]}.csv"' in r.headers["content-disposition"]
        rows = csv_rows(r.text)
        assert [x["ID"] for x in rows] == ["1", "2", "3", "4", "5"], "rows in = rows out"
        assert [x["nppes_npi"] for x in rows] == [ACTIVE_NPI, "", ORG_NPI, "", ""]
        assert rows[3]["nppes_match_status"] == "error" and rows[4]["nppes_match_status"] == "no_match"
        assert rows[0]["nppes_specialty_code"] == "207R00000X" and rows[0]["nppes_zip"] == "27886-2011"

        review = csv_rows(c.get(done["links"]["review"], headers=bearer(key)).text)
        assert [x["ID"] for x in review] == ["2"] and review[0]["candidate_1_npi"] == "1114920261"
        errors = csv_rows(c.get(done["links"]["errors"], headers=bearer(key)).text)
        assert errors == [{"input_line": "5", "reason": "2 fields where the header has 7", "raw": "4,broken"}]
        # polling and downloads are free
        assert c.get(f"/api/v1/jobs/{job['id']}", headers=bearer(key)).headers["x-quota-remaining"] == "49995"


def test_jobs_belong_to_their_key(url: str, key: str) -> None:
    other = make_key(url, "growth", name="other")
    admin = make_key(url, admin=True)
    with client(url, jobs_runner=False) as c:
        job_id = post(c, key).json()["data"]["id"]
        for suffix in ("", "/result", "/review", "/errors"):
            r = c.get(f"/api/v1/jobs/{job_id}{suffix}", headers=bearer(other))
            assert (r.status_code, r.json()["error"]["code"]) == (404, "job_not_found")
            assert job_id in r.json()["error"]["message"]
            r = c.get(f"/api/v1/jobs/{job_id}{suffix}", headers=bearer(admin))
            assert (r.status_code, r.json()["error"]["code"]) == (403, "subscription_inactive")
            assert c.get(f"/api/v1/jobs/{job_id}{suffix}").status_code == 401
        for bad in ("job_0000000000000000", "nope", "job_" + "a" * 300):
            assert c.get(f"/api/v1/jobs/{bad}", headers=bearer(key)).status_code == 404


def test_files_are_not_ready_before_the_job_is_done(url: str, key: str) -> None:
    with client(url, jobs_runner=False) as c:
        job_id = post(c, key).json()["data"]["id"]
        for what in ("result", "review", "errors"):
            r = c.get(f"/api/v1/jobs/{job_id}/{what}", headers=bearer(key))
            assert (r.status_code, r.json()["error"]["code"]) == (409, "job_not_ready")
            assert "is queued" in r.json()["error"]["message"]
        assert c.get(f"/api/v1/jobs/{job_id}", headers=bearer(key)).json()["data"]["status"] == "queued"


def test_a_queued_job_survives_a_restart(url: str, key: str, tmp_path: Path) -> None:
    jobs_dir = str(tmp_path / "jobs")
    with client(url, jobs_runner=False, jobs_dir=jobs_dir) as c:
        job_id = post(c, key).json()["data"]["id"]
    # the server is gone; a new one on the same state database and jobs folder runs the job
    with client(url, jobs_dir=jobs_dir, jobs_workers=0) as c:
        done = wait_done(c, key, job_id)
        assert done["status"] == "succeeded" and done["rows"]["done"] == 5
        assert len(csv_rows(c.get(f"/api/v1/jobs/{job_id}/result", headers=bearer(key)).text)) == 5
    assert (tmp_path / "jobs" / job_id / "result.csv").is_file()


def test_a_running_job_whose_server_died_runs_again(url: str, key: str) -> None:
    with client(url, jobs_runner=False) as c:
        job_id = post(c, key).json()["data"]["id"]
    db = JobsDb(url)
    try:
        claimed = db.claim("dead-server:1:x", lease_s=0.0)  # a runner that died at once
        assert claimed is not None and claimed.id == job_id and claimed.status == "running"
        assert db.claim("another", lease_s=60) is not None  # an expired lease is free for the taking
        assert db.claim("a third", lease_s=60) is None  # a live lease is not
        db.requeue(job_id, "another")  # (as a server stopping does)
        assert db.get(job_id) is not None and db.get(job_id).status == "queued"  # type: ignore[union-attr]
        assert db.claim("dead-again", lease_s=0.0) is not None
    finally:
        db.close()
    with client(url, jobs_workers=0) as c:
        done = wait_done(c, key, job_id)
        assert done["status"] == "succeeded" and done["attempts"] == 3  # the requeue did not count


def test_a_failed_job_gives_its_credits_back(url: str, key: str, tmp_path: Path) -> None:
    jobs_dir = tmp_path / "jobs"
    with client(url, jobs_runner=False, jobs_dir=str(jobs_dir)) as c:
        job_id = post(c, key).json()["data"]["id"]
        assert post(c, key).headers["x-quota-remaining"] == str(50_000 - 10)
    (jobs_dir / job_id / "input.csv").unlink()
    with client(url, jobs_dir=str(jobs_dir), jobs_workers=0) as c:
        done = wait_done(c, key, job_id)
        assert done["status"] == "failed" and done["error"] == "the uploaded file is gone"
        r = c.get(f"/api/v1/jobs/{job_id}/result", headers=bearer(key))
        assert r.status_code == 409 and "failed: the uploaded file is gone" in r.json()["error"]["message"]
        # the other job runs too; then only its 5 credits are used
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = c.get(f"/api/v1/jobs/{job_id}", headers=bearer(key))
            if r.headers["x-quota-remaining"] == str(50_000 - 5):
                break
            time.sleep(0.2)
        assert r.headers["x-quota-remaining"] == str(50_000 - 5)


@pytest.mark.parametrize(
    "body, headers, params, status, code, words",
    [
        (b"", TEXT_CSV, {}, 400, "invalid_csv", "The body is empty"),
        (b"NPI,Last Name\n", TEXT_CSV, {}, 400, "invalid_csv", "no data rows"),
        (b"Email,Owner\na@b.c,me\n", TEXT_CSV, {}, 400, "invalid_csv", "no column to match on"),
        ("NPI,Name\n1,x\n".encode("utf-16"), TEXT_CSV, {}, 400, "invalid_csv", "UTF-16"),
        (CSV, {"Content-Type": "multipart/form-data; boundary=x"}, {}, 400, "invalid_csv", "--data-binary"),
        (CSV, TEXT_CSV, {"column": "last_name=Family"}, 400, "invalid_csv", "no such column"),
        (CSV, TEXT_CSV, {"column": "surname=Last Name"}, 400, "invalid_request", "unknown field"),
        (CSV, TEXT_CSV, {"column": "<>"}, 400, "invalid_request", "FIELD=HEADER"),
        (CSV, TEXT_CSV, {"threshold": "2"}, 400, "invalid_request", "threshold"),
        (CSV, TEXT_CSV, {"threshold": "abc"}, 400, "invalid_request", "threshold"),
    ],
)
def test_unusable_uploads_are_400_with_the_reason(
    url: str, key: str, body: bytes, headers: dict[str, str], params: dict[str, str], status: int, code: str,
    words: str,
) -> None:  # fmt: skip
    with client(url, jobs_runner=False) as c:
        r = c.post("/api/v1/jobs/enrich", content=body, params=params, headers={**bearer(key), **headers})
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
        assert words in r.json()["error"]["message"]
        assert "x-quota-remaining" not in r.headers, "a refused upload costs nothing"
    assert all_jobs(url) == []


def test_uploads_over_the_limit_are_413(url: str, key: str, tmp_path: Path) -> None:
    with client(url, jobs_runner=False, jobs_max_upload_bytes=100, jobs_dir=str(tmp_path / "j")) as c:
        r = post(c, key)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "upload_too_large")
        assert "100 bytes" in r.json()["error"]["message"]

        def chunks() -> Any:  # no Content-Length: counted while streaming
            yield CSV[:60]
            yield CSV[60:]

        r = c.post("/api/v1/jobs/enrich", content=chunks(), headers={**bearer(key), **TEXT_CSV})
        assert (r.status_code, r.json()["error"]["code"]) == (413, "upload_too_large")
    assert list((tmp_path / "j" / ".uploads").iterdir()) == [], "no upload left behind"


def test_a_job_needs_credits_for_every_row(url: str) -> None:
    set_plan(url, "tiny", 4)
    key = make_key(url, "tiny")
    with client(url, jobs_runner=False) as c:
        r = post(c, key)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "quota_exceeded")
        r = post(c, key, body=b"NPI\n" + f"{ACTIVE_NPI}\n".encode() * 4)
        assert r.status_code == 202 and r.headers["x-quota-remaining"] == "0"
    assert len(all_jobs(url)) == 1


def test_jobs_table_on_every_backend(store_url: str) -> None:
    db = JobsDb(store_url)
    try:
        a = db.create(key_id=1, options={"columns": {}, "threshold": None}, columns={"npi": "NPI"}, rows_total=3,
                      credits=3)  # fmt: skip
        b = db.create(key_id=2, options={}, columns={}, rows_total=1, credits=1)
        assert db.get(a.id, key_id=2) is None and db.get(a.id, key_id=1) == a
        got = db.claim("r1", lease_s=30)
        assert got is not None and (got.id, got.status, got.lease_owner, got.attempts) == (
            a.id,
            "running",
            "r1",
            1,
        )
        assert db.progress(a.id, "r1", rows_done=2, rows_per_s=10.5, counts={"matched": 2})
        assert not db.progress(a.id, "r2", rows_done=3, rows_per_s=1, counts={})
        assert db.renew(a.id, "r1", 30) and not db.renew(a.id, "r2", 30)
        assert db.finish(a.id, "r1", status="succeeded", rows_done=3, counts={"matched": 3})
        done = db.get(a.id)
        assert done is not None and done.done and done.counts == {"matched": 3} and done.lease_owner is None
        assert not db.finish(a.id, "r1", status="failed")  # no longer running
        nxt = db.claim("r1", lease_s=30)
        assert nxt is not None and nxt.id == b.id and db.claim("r1", lease_s=30) is None
        assert [j.id for j in db.jobs()] == [a.id, b.id] and [j.id for j in db.jobs("running")] == [b.id]
    finally:
        db.close()


def test_a_server_stopping_mid_job_puts_it_back_in_the_queue(url: str, key: str, tmp_path: Path) -> None:
    jobs_dir = tmp_path / "jobs"
    body = b"NPI,First Name,Last Name,State\n" + b"".join(
        f",Jon{'athan' if i % 2 else ''},Dubose,NC\n".encode() for i in range(20_000)
    )
    with client(url, jobs_dir=str(jobs_dir), jobs_workers=0) as c:
        job_id = post(c, key, body=body).json()["data"]["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            data = c.get(f"/api/v1/jobs/{job_id}", headers=bearer(key)).json()["data"]
            if data["status"] == "running" and data["rows"]["done"] > 0:
                break
            time.sleep(0.1)
        assert data["status"] == "running" and 0 < data["rows"]["done"] < 20_000, data
    (job,) = all_jobs(url)
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
    assert sorted(p.name for p in (jobs_dir / job_id).iterdir()) == ["input.csv", "log.txt"], (
        "no partial files"
    )
    with client(url, jobs_dir=str(jobs_dir), jobs_workers=2) as c:
        done = wait_done(c, key, job_id, timeout=180)
        assert done["status"] == "succeeded" and done["counts"]["matched"] == 20_000 and done["attempts"] == 1
