"""Issue 14, items 13 and 14 (the enrichment jobs' part): no secret in a job child's command line;
uploaded CSVs and results are their owner's only; finished jobs are purged after their retention,
with their files, by the runner and by ``npistack jobs purge``.

Real jobs run through the API (an in-process server and its runner, real child processes) under the
common umask 022, which used to give 0644 files and 0755 folders.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from npistack.services import jobs as service_jobs
from npistack.services.jobs import (
    STORE_URL_ENV,
    JobRunner,
    JobsConfig,
    child_command,
    job_dir,
    private_dir,
    purge_jobs,
)
from npistack.storage.jobs import Job, JobsDb, new_job_id
from tests.api_support import ACTIVE_NPI, bearer, client, make_key, sample_store
from tests.storage_sql import jobs_execute

CSV = f"NPI,First Name,Last Name,State\n{ACTIVE_NPI},Jon,Dubose,NC\n,Zebulon,Quackenbush,WY\n4,broken,x\n"
SECRET_URL = "postgresql://postgres:SuperSecretPw@db.internal:5432/npi"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def open_to_others(root: Path) -> dict[str, str]:
    """Every path under ``root`` (and ``root``) that its group or others may read, write or enter."""
    found = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found[str(path.relative_to(root.parent))] = oct(mode)
    return found


def wait_done(c: Any, key: str, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    data: dict[str, Any] = {}
    while time.monotonic() < deadline:
        data = c.get(f"/api/v1/jobs/{job_id}", headers=bearer(key)).json()["data"]
        if data["status"] in ("succeeded", "failed"):
            return data
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not done after {timeout} s: {data}")


# -- item 13: the store URL is not on the child's command line -----------------------------------


def test_the_child_command_line_holds_no_store_url(tmp_path: Path) -> None:
    cfg = JobsConfig(store_url=SECRET_URL, jobs_dir=tmp_path / "jobs", workers=1)
    args, env = child_command("job_0123456789abcdef", "host:1:ab", cfg)
    assert not any("SuperSecretPw" in a or "postgres:" in a for a in args), args
    assert "--store-url" not in args
    assert env[STORE_URL_ENV] == SECRET_URL, "the child learns the store from its environment"


def test_a_real_job_child_reads_the_store_from_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sample_store(tmp_path / "store.db")
    key = make_key(url)
    seen: list[list[str]] = []
    real_popen = subprocess.Popen

    def recording_popen(args: list[str], **kw: Any) -> Any:
        seen.append(list(args))
        assert kw["env"][STORE_URL_ENV] == url
        return real_popen(args, **kw)

    monkeypatch.setattr(service_jobs.subprocess, "Popen", recording_popen)
    monkeypatch.delenv(STORE_URL_ENV, raising=False)  # only what the runner gives the child
    with client(url, jobs_workers=0, jobs_dir=str(tmp_path / "jobs")) as c:
        r = c.post(
            "/api/v1/jobs/enrich", content=CSV.encode(), headers={**bearer(key), "Content-Type": "text/csv"}
        )
        assert r.status_code == 202, r.text
        done = wait_done(c, key, r.json()["data"]["id"])
    assert done["status"] == "succeeded", done  # so the child found the store
    assert len(seen) == 1
    assert url not in " ".join(seen[0]) and str(tmp_path / "store.db") not in seen[0], seen[0]


def test_the_child_without_a_store_url_says_how_to_give_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != STORE_URL_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "npistack.worker.jobs", "job_x", "--owner", "o", "--jobs-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and f"set {STORE_URL_ENV}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# -- item 14: private files ------------------------------------------------------------------------


def test_uploads_and_results_are_owner_only(tmp_path: Path, umask_022: None) -> None:
    url = sample_store(tmp_path / "store.db")
    key = make_key(url)
    jobs = tmp_path / "deep" / "jobs"  # not there yet: the server creates it and its parent
    with client(url, jobs_workers=0, jobs_dir=str(jobs)) as c:
        r = c.post(
            "/api/v1/jobs/enrich", content=CSV.encode(), headers={**bearer(key), "Content-Type": "text/csv"}
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["data"]["id"]
        assert wait_done(c, key, job_id)["status"] == "succeeded"
        assert c.get(f"/api/v1/jobs/{job_id}/errors", headers=bearer(key)).text.count("broken") == 1
    made = {p.name for p in (jobs / job_id).iterdir()}
    assert {"input.csv", "result.csv", "review.csv", "errors.csv", "log.txt"} <= made, made
    assert open_to_others(tmp_path / "deep") == {}


def test_private_dir_tightens_what_it_is_given(tmp_path: Path, umask_022: None) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    private_dir(loose / "a" / "b")
    assert stat.S_IMODE(loose.stat().st_mode) == 0o755, "a folder above that existed is left alone"
    assert stat.S_IMODE((loose / "a").stat().st_mode) == 0o700
    private_dir(loose, tighten=False)  # the jobs folder a user named (it may be shared): left alone
    assert stat.S_IMODE(loose.stat().st_mode) == 0o755
    private_dir(loose)  # a job's own folder: made private
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


# -- item 14: retention and purge ----------------------------------------------------------------


def _job(db: JobsDb, jobs_dir: Path, key_id: int = 1, *, finish: str | None = None) -> Job:
    """A job with a folder holding an upload, optionally run to ``finish`` (succeeded / failed)."""
    job = db.create(key_id=key_id, options={}, columns={}, rows_total=1, credits=1)
    assert job is not None
    folder = private_dir(job_dir(jobs_dir, job.id))
    (folder / "input.csv").write_bytes(b"NPI\n1114920162\n" * 100)
    if finish:
        claimed = db.claim("test-runner", lease_s=60)
        assert claimed is not None and claimed.id == job.id
        assert db.finish(job.id, "test-runner", status=finish)
    return job


def test_purge_deletes_finished_jobs_past_retention_with_their_files(store_url: str, tmp_path: Path) -> None:
    jobs_dir = tmp_path / "jobs"
    db = JobsDb(store_url)
    try:
        ok = _job(db, jobs_dir, finish="succeeded")
        bad = _job(db, jobs_dir, finish="failed")
        running = _job(db, jobs_dir)
        assert db.claim("another-runner", lease_s=600) is not None  # running now
        queued = _job(db, jobs_dir)
        now = datetime.now(UTC)

        early = purge_jobs(db, jobs_dir, older_than_days=30, now=now + timedelta(days=29))
        assert (early.jobs, early.failed) == (0, [])
        assert all(job_dir(jobs_dir, j.id).is_dir() for j in (ok, bad, running, queued))

        done = purge_jobs(db, jobs_dir, older_than_days=30, now=now + timedelta(days=31))
        assert (done.jobs, done.failed) == (2, []) and done.bytes == 2 * 1500
        for gone in (ok, bad):
            assert db.get(gone.id) is None and not job_dir(jobs_dir, gone.id).exists()
        for kept in (running, queued):
            assert db.get(kept.id) is not None and (job_dir(jobs_dir, kept.id) / "input.csv").is_file()
        assert purge_jobs(db, jobs_dir, older_than_days=0, now=now + timedelta(days=400)).jobs == 0
    finally:
        db.close()


def test_purge_removes_what_crashes_left_once_a_day_old(tmp_path: Path) -> None:
    jobs_dir = tmp_path / "jobs"
    db = JobsDb(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        live = _job(db, jobs_dir)  # a queued job: its folder stays however old
        uploads = private_dir(jobs_dir / ".uploads")
        dead, busy, orphan = new_job_id(), new_job_id(), new_job_id()
        (uploads / f"{dead}.csv").write_bytes(b"x" * 10)  # an upload a crash interrupted
        (uploads / f"{busy}.csv").write_bytes(b"x" * 10)  # one being received now
        (uploads / "notes.txt").write_bytes(b"x")  # not npistack's: never touched
        private_dir(jobs_dir / orphan)  # a folder whose record is gone
        private_dir(jobs_dir / "job_mine")  # not a job id: never touched
        two_days_ago = time.time() - 2 * 86400
        for p in (uploads / f"{dead}.csv", uploads / "notes.txt", jobs_dir / orphan, jobs_dir / "job_mine",
                  job_dir(jobs_dir, live.id)):  # fmt: skip
            os.utime(p, (two_days_ago, two_days_ago))
        done = purge_jobs(db, jobs_dir, older_than_days=30)
        assert (done.jobs, done.leftovers, done.bytes) == (0, 2, 10)
        assert sorted(p.name for p in uploads.iterdir()) == sorted([f"{busy}.csv", "notes.txt"])
        assert sorted(p.name for p in jobs_dir.iterdir()) == sorted([".uploads", "job_mine", live.id])
    finally:
        db.close()


def test_a_folder_that_cannot_be_deleted_keeps_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs_dir = tmp_path / "jobs"
    db = JobsDb(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        job = _job(db, jobs_dir, finish="succeeded")

        def refuse(path: Any, *a: Any, **kw: Any) -> None:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(shutil, "rmtree", refuse)
        done = purge_jobs(db, jobs_dir, older_than_days=0)
        assert done.jobs == 0 and len(done.failed) == 1 and job.id in done.failed[0]
        assert db.get(job.id) is not None, "the next purge tries again"
        monkeypatch.undo()
        again = purge_jobs(db, jobs_dir, older_than_days=0)
        assert again.jobs == 1 and db.get(job.id) is None
    finally:
        db.close()


def test_the_runner_purges_by_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    jobs_dir = tmp_path / "jobs"
    db = JobsDb(url)
    try:
        old = _job(db, jobs_dir, finish="succeeded")
        fresh = _job(db, jobs_dir, finish="succeeded")
        long_ago = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="seconds")
        jobs_execute(db, "UPDATE enrich_jobs SET finished_at = ? WHERE id = ?", (long_ago, old.id))
        runner = JobRunner(JobsConfig(store_url=url, jobs_dir=jobs_dir, retention_days=30, poll_s=0.05))
        runner.start()
        try:
            deadline = time.monotonic() + 30
            while db.get(old.id) is not None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            runner.stop()
        assert db.get(old.id) is None and not job_dir(jobs_dir, old.id).exists()
        assert db.get(fresh.id) is not None and job_dir(jobs_dir, fresh.id).is_dir()
    finally:
        db.close()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **env}
    full.pop("NPISTACK_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "npistack.cli", *args], env=full, capture_output=True, text=True, timeout=60
    )


def test_cli_jobs_purge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    jobs_dir = tmp_path / "store.jobs"  # the default beside a SQLite store
    db = JobsDb(url)
    try:
        done = _job(db, jobs_dir, finish="failed")
        queued = _job(db, jobs_dir)
    finally:
        db.close()
    env = {"NPISTACK_JOBS_DIR": "", "NPISTACK_JOBS_RETENTION_DAYS": "0"}
    proc = _cli("jobs", "purge", "-d", url, env=env)
    assert (
        proc.returncode == 1 and "--older-than" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    )
    proc = _cli("jobs", "purge", "--older-than", "30", "-d", url, env=env)
    assert proc.returncode == 0 and "deleted 0 enrichment jobs" in proc.stdout, proc.stderr
    proc = _cli("jobs", "purge", "--older-than", "0", "-d", url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "deleted 1 enrichment jobs that finished over 0 days ago (1.5 KB of files in" in proc.stdout
    assert not job_dir(jobs_dir, done.id).exists() and job_dir(jobs_dir, queued.id).is_dir()
    proc = _cli("jobs", "purge", "--older-than", "-1", "-d", url, env=env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
