"""Issue 14 item 9: one key cannot starve the enrichment job queue.

After many tiny jobs of key A (scaled down from the ~2,000 of the report), key B's job is the next
one claimed; keys take turns; a key never runs more than ``max_running`` jobs at once (the others
wait while other keys' jobs run); a key cannot queue more than ``NPISTACK_JOBS_MAX_QUEUED_PER_KEY``
jobs (429 ``too_many_jobs``, nothing stored, nothing charged). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from npistack.services.jobs import JobRunner, JobsConfig
from npistack.storage.jobs import Job, JobsDb, KeyJobs
from tests.api_support import ACTIVE_NPI, bearer, client, make_key, sample_store

A, B, C = 1, 2, 3
TEXT_CSV = {"Content-Type": "text/csv"}
BODY = f"NPI\n{ACTIVE_NPI}\n".encode()


@pytest.fixture
def db(store_url: str) -> Iterator[JobsDb]:
    d = JobsDb(store_url)
    try:
        yield d
    finally:
        d.close()


def queue(db: JobsDb, key_id: int, n: int = 1, **kw: Any) -> list[Job]:
    jobs = []
    for _ in range(n):
        job = db.create(key_id=key_id, options={}, columns={}, rows_total=1, credits=1, **kw)
        assert job is not None
        jobs.append(job)
    return jobs


def claim(db: JobsDb, owner: str = "r1", max_running: int = 0) -> Job | None:
    return db.claim(owner, lease_s=30, max_running=max_running)


def run_one(db: JobsDb, max_running: int = 0) -> int:
    """Claim a job, finish it; the key whose job it was."""
    job = claim(db, max_running=max_running)
    assert job is not None
    assert db.finish(job.id, "r1", status="succeeded", rows_done=1, counts={})
    return job.key_id


def test_after_many_jobs_of_one_key_another_keys_job_is_next(db: JobsDb) -> None:
    queue(db, A, 300)
    (b,) = queue(db, B)
    assert run_one(db) == A  # the oldest job first: nobody was served yet
    nxt = claim(db)
    assert nxt is not None and nxt.id == b.id, "B's job waits behind one of A's, not 300"
    assert db.counts_of(A).queued == 299 and db.counts_of(B).running == 1


def test_keys_take_turns(db: JobsDb) -> None:
    queue(db, A, 4)
    queue(db, B, 3)
    queue(db, C, 1)
    order = [run_one(db) for _ in range(8)]
    assert order == [A, B, C, A, B, A, B, A]
    assert claim(db) is None


def test_a_key_with_fewer_running_jobs_goes_first(db: JobsDb) -> None:
    queue(db, A, 5)
    first = claim(db, "r1")  # A's, running on runner 1
    assert first is not None and first.key_id == A
    queue(db, B, 1)
    second = claim(db, "r2")  # runner 2: B runs nothing, A one
    assert second is not None and second.key_id == B


def test_a_key_at_its_running_cap_waits_while_others_run(db: JobsDb) -> None:
    queue(db, A, 5)
    got = [claim(db, f"r{i}", max_running=2) for i in range(3)]
    assert [j.key_id if j else None for j in got] == [A, A, None], "A's third job waits: 2 running"
    queue(db, B, 1)
    j = claim(db, "r9", max_running=2)
    assert j is not None and j.key_id == B, "B still runs"
    first = got[0]
    assert first is not None and db.finish(first.id, "r0", status="succeeded", rows_done=1, counts={})
    again = claim(db, "r0", max_running=2)
    assert again is not None and again.key_id == A, "A's next job runs once one of its two ended"


def test_a_key_cannot_queue_past_its_cap(db: JobsDb) -> None:
    queue(db, A, 3, max_queued=3)
    assert db.create(key_id=A, options={}, columns={}, rows_total=1, credits=1, max_queued=3) is None
    assert queue(db, B, 1, max_queued=3), "the cap is per key"
    assert db.counts_of(A) == (3, 0)
    run_one(db)  # A's oldest runs and ends: a place is free
    assert queue(db, A, 1, max_queued=3)


def test_a_full_queue_is_429_with_the_error_envelope_and_costs_nothing(tmp_path: Path) -> None:
    url = sample_store(tmp_path / "store.db")
    key, other = make_key(url), make_key(url, name="other")
    headers = {**bearer(key), **TEXT_CSV}
    with client(url, jobs_runner=False, jobs_dir=str(tmp_path / "jobs"), jobs_max_queued_per_key=2) as c:
        for _ in range(2):
            assert c.post("/api/v1/jobs/enrich", content=BODY, headers=headers).status_code == 202
        left = c.post("/api/v1/jobs/enrich", content=BODY, headers=bearer(other) | TEXT_CSV)
        assert left.status_code == 202, "another key is not held back"
        r = c.post("/api/v1/jobs/enrich", content=BODY, headers=headers)
        assert r.status_code == 429, r.text
        body = r.json()
        assert body["error"]["code"] == "too_many_jobs" and body["meta"]["requestId"]
        assert "2 enrichment jobs queued" in body["error"]["message"]
        assert "NPISTACK_JOBS_MAX_QUEUED_PER_KEY" in body["error"]["message"]
        assert r.headers["retry-after"] and "x-quota-remaining" not in r.headers, "refused: not charged"
        got = c.get(f"/api/v1/jobs/{left.json()['data']['id']}", headers=bearer(other))
        assert got.status_code == 200
    assert len(list((tmp_path / "jobs").glob("job_*"))) == 3, "nothing stored for the refused upload"


class RecordingRunner(JobRunner):
    """The real runner loop (claims, caps from its config), each job finished at once, in order."""

    def __init__(self, config: JobsConfig, stop_after: int) -> None:
        super().__init__(config)
        self.order: list[int] = []
        self.stop_after = stop_after
        self.done = threading.Event()

    def _run(self, db: JobsDb, job: Job) -> None:
        self.order.append(job.key_id)
        assert db.finish(job.id, self.owner, status="succeeded", rows_done=1, counts={})
        if len(self.order) >= self.stop_after:
            self.done.set()


def test_the_runner_serves_the_second_key_after_one_job_of_the_first(store_url: str, tmp_path: Path) -> None:
    db = JobsDb(store_url)
    try:
        queue(db, A, 50)
        queue(db, B, 2)
        runner = RecordingRunner(
            JobsConfig(store_url, tmp_path / "jobs", poll_s=0.05, max_running_per_key=1), 6
        )
        runner.start()
        try:
            assert runner.done.wait(60), runner.order
        finally:
            runner.stop()
        assert runner.order[:6] == [A, B, A, B, A, A]
    finally:
        db.close()


def test_uploads_of_one_key_at_once_never_pass_the_cap(store_url: str) -> None:
    """Eight connections (as eight server processes) queue for one key at the same moment."""
    conns = [JobsDb(store_url) for _ in range(8)]
    barrier = threading.Barrier(len(conns))
    made: list[Job | None] = []
    lock = threading.Lock()

    def upload(d: JobsDb) -> None:
        barrier.wait(30)
        for _ in range(3):
            job = d.create(key_id=A, options={}, columns={}, rows_total=1, credits=1, max_queued=5)
            with lock:
                made.append(job)

    threads = [threading.Thread(target=upload, args=(d,)) for d in conns]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(made) == 24
        assert sum(j is not None for j in made) == 5
        assert conns[0].counts_of(A).queued == 5
    finally:
        for d in conns:
            d.close()


def test_losing_the_last_place_to_a_concurrent_upload_is_429_refunded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before the body passed, but another upload of the key was queued meanwhile: the
    insert's own count refuses it, the credits come back, its files go."""
    url = sample_store(tmp_path / "store.db")
    key = make_key(url)
    headers = {**bearer(key), **TEXT_CSV}
    with client(url, jobs_runner=False, jobs_dir=str(tmp_path / "jobs"), jobs_max_queued_per_key=1) as c:
        first = c.post("/api/v1/jobs/enrich", content=BODY, headers=headers)
        assert first.status_code == 202
        remaining = first.headers["x-quota-remaining"]
        monkeypatch.setattr(JobsDb, "counts_of", lambda self, key_id: KeyJobs(0, 0))  # the race
        r = c.post("/api/v1/jobs/enrich", content=BODY, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (429, "too_many_jobs"), r.text
        assert r.headers["x-quota-remaining"] == remaining, "the reserved credit was given back"
    assert len(list((tmp_path / "jobs").glob("job_*"))) == 1
