"""List enrichment jobs (``/api/v1/jobs``): a CSV uploaded, matched in the background, downloaded.

``POST /api/v1/jobs/enrich`` takes the CSV as the request body (``Content-Type: text/csv``), streams
it to ``NPISTACK_JOBS_DIR``, reads its header (columns detected like ``npistack enrich``, overridable
with ``column=field=Header`` query parameters) and counts its rows, then queues a job and answers
202 with its id. ``GET /api/v1/jobs/{id}`` shows its progress; ``/result``, ``/review`` and
``/errors`` download its files once it succeeded (409 ``job_not_ready`` before). A job belongs to the
key that created it: any other key gets 404 ``job_not_found``.

Metering: one credit per data row of the upload (readable or not), reserved when the job is
accepted (all or nothing: 403 ``quota_exceeded`` if fewer credits are left), given back if the job
fails. Polling and downloads cost nothing but count against the requests per minute.

Nothing of an upload is read before it may be accepted: the key (401), its plan, a month with
credits left (403) and the key's queue (429 ``too_many_jobs`` past
``NPISTACK_JOBS_MAX_QUEUED_PER_KEY``) are checked first, then a ``Content-Length`` past
``NPISTACK_JOBS_MAX_UPLOAD_BYTES`` is 413 ``upload_too_large`` at once (and so is a body passing it
while it streams). The upload is written 0600 in 0700 folders.

Jobs run under ``npistack.services.jobs.JobRunner`` (a runner thread per server process, started and
stopped by this router's lifespan), each in a child process (``npistack.worker.jobs``); their records
live in the API's state database, so they survive restarts.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from npistack.api.body import declared_length
from npistack.api.deps import Access, State
from npistack.api.errors import ApiError, json_response, request_id
from npistack.api.metering import Caller
from npistack.api.schemas import error_responses
from npistack.api.state import ApiState, app_state
from npistack.services.enrich import FIELDS, STATUSES, EnrichError, inspect_csv, parse_overrides
from npistack.services.jobs import (
    ERRORS,
    INPUT,
    RESULT,
    REVIEW,
    UPLOADS,
    JobRunner,
    JobsConfig,
    job_dir,
    jobs_dir_of,
    open_private,
    private_dir,
)
from npistack.settings import Settings
from npistack.storage.jobs import Job, JobsDb, new_job_id

log = logging.getLogger("npistack.api")
PREFIX = "/api/v1/jobs"
FILES = {"result": (RESULT, ""), "review": (REVIEW, ".review"), "errors": (ERRORS, ".errors")}


@dataclass
class JobsState:
    db: JobsDb
    config: JobsConfig
    runner: JobRunner | None


def jobs_state(app: Any) -> JobsState:
    js: JobsState = app.state.jobs
    return js


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    st = app_state(app)
    url = st.settings.resolved_database_url()
    config = JobsConfig(
        store_url=url,
        jobs_dir=jobs_dir_of(st.settings, url),
        workers=st.settings.jobs_workers,
        nucc_csv=st.settings.nucc_csv,
        max_running_per_key=st.settings.jobs_max_running_per_key,
        retention_days=st.settings.jobs_retention_days,
    )
    db = JobsDb(url)
    runner = None
    if st.settings.jobs_runner:
        runner = JobRunner(config, on_failed=lambda job: _refund_job(st.settings, job))
        runner.start()
    app.state.jobs = JobsState(db, config, runner)
    try:
        yield
    finally:
        if runner is not None:
            await run_in_threadpool(runner.stop)
        db.close()


router = APIRouter(prefix=PREFIX, tags=["jobs"], lifespan=lifespan)


def _refund_job(settings: Settings, job: Job) -> None:
    """Give back the credits of a failed job (from the runner thread: its own connections)."""
    from npistack.services.accounts import open_meter
    from npistack.storage.accounts import AccountsDb

    if job.credits <= 0:
        return
    db = AccountsDb(settings.resolved_database_url())
    try:
        key = db.key(job.key_id)
        if key is not None:
            open_meter(db, settings.redis_url, timeout_s=settings.redis_timeout_s).refund(
                key, credits=job.credits, now=datetime.now(UTC)
            )
    finally:
        db.close()


# -- shapes (OpenAPI) -----------------------------------------------------------------------------


class JobRows(BaseModel):
    total: int = Field(description="Data rows of the upload (the header and blank lines not counted)")
    done: int = Field(description="Rows written so far")


class JobLinks(BaseModel):
    self: str
    result: str
    review: str
    errors: str


class JobOut(BaseModel):
    id: str
    status: str = Field(description="queued, running, succeeded or failed")
    rows: JobRows
    rowsPerSecond: float
    counts: dict[str, int] = Field(description="Rows by match status: matched, ambiguous, no_match, error")
    columns: dict[str, str] = Field(description="The column used for each field (field -> header)")
    threshold: float | None
    credits: int = Field(description="Credits charged (one per data row; given back if the job fails)")
    attempts: int
    error: str | None = Field(description="Why the job failed")
    createdAt: str
    startedAt: str | None
    finishedAt: str | None
    links: JobLinks


class JobMeta(BaseModel):
    requestId: str


class JobResponse(BaseModel):
    data: JobOut
    meta: JobMeta


def job_dict(job: Job) -> dict[str, Any]:
    base = f"{PREFIX}/{job.id}"
    return {
        "id": job.id,
        "status": job.status,
        "rows": {
            "total": job.rows_total,
            "done": job.rows_total if job.status == "succeeded" else job.rows_done,
        },
        "rowsPerSecond": job.rows_per_s,
        "counts": {s: int(job.counts.get(s, 0)) for s in STATUSES},
        "columns": job.columns,
        "threshold": job.options.get("threshold"),
        "credits": job.credits,
        "attempts": job.attempts,
        "error": job.error,
        "createdAt": job.created_at,
        "startedAt": job.started_at,
        "finishedAt": job.finished_at,
        "links": {
            "self": base,
            "result": f"{base}/result",
            "review": f"{base}/review",
            "errors": f"{base}/errors",
        },
    }


_CSV_EXAMPLE = "NPI,First Name,Last Name,City,State\n1114920162,Jon,Dubose,Tarboro,NC\n,Michael,Nagowski,,\n"
_UPLOAD = {
    "requestBody": {
        "required": True,
        "description": "The CSV file itself (UTF-8 or Windows-1252; comma, semicolon, tab or pipe).",
        "content": {"text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE}},
    }
}
_COLUMN_HELP = (
    "A column override, FIELD=HEADER (repeatable; FIELD= leaves a field out). Fields: " + ", ".join(FIELDS)
)
_THRESHOLD_HELP = "Confidence a match needs (default 0.9); rows below it are ambiguous or no_match"
_CSV_RESPONSE = {"content": {"text/csv": {"schema": {"type": "string"}}}}


# -- routes -----------------------------------------------------------------------------------------


@router.post(
    "/enrich",
    summary="Upload a CSV of providers to match and enrich (a background job)",
    status_code=202,
    response_model=None,
    responses={
        202: {"model": JobResponse, "description": "Queued: poll the job, download the result when done"},
        **error_responses(400, 401, 403, 413, 429, 500),
    },
    openapi_extra=_UPLOAD,
)
async def create_enrich_job(
    request: Request,
    st: State,
    access: Access,
    column: Annotated[list[str] | None, Query(description=_COLUMN_HELP)] = None,
    threshold: Annotated[float | None, Query(gt=0, le=1, description=_THRESHOLD_HELP)] = None,
) -> Response:
    js = jobs_state(request.app)
    # Nothing of the body is read before the key, its plan, its credits and its job caps say yes
    # (and after the query's validation: a dependency would check the key before it).
    caller = access.client()
    try:
        overrides = parse_overrides(column or [])
    except EnrichError as e:
        raise ApiError("invalid_request", str(e)) from None
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/"):
        raise ApiError(
            "invalid_csv",
            "Send the CSV file itself as the request body (Content-Type: text/csv), not a multipart form: "
            "curl --data-binary @file.csv -H 'Content-Type: text/csv'.",
        )
    limit = st.settings.jobs_max_upload_bytes
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    await run_in_threadpool(_admissible, st, js, caller)
    uploads = js.config.jobs_dir / UPLOADS
    job_id = new_job_id()
    tmp = uploads / f"{job_id}.csv"
    folder = job_dir(js.config.jobs_dir, job_id)
    try:
        await run_in_threadpool(private_dir, uploads)
        size = 0
        with open_private(tmp) as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                fh.write(chunk)
        if size == 0:
            raise ApiError("invalid_csv", "The body is empty: send the CSV file as the request body.")
        try:
            info = await run_in_threadpool(inspect_csv, tmp, overrides)
        except EnrichError as e:
            raise ApiError("invalid_csv", f"The CSV cannot be used: {e}.") from None
        if info.rows == 0:
            raise ApiError("invalid_csv", "The CSV has a header but no data rows.")
        adm = access.reserve(caller, units=info.rows)
        try:
            with adm.refund_on_error():
                job = await run_in_threadpool(
                    _queue,
                    js,
                    tmp,
                    folder,
                    job_id=job_id,
                    key_id=adm.key.id,
                    options={"columns": overrides, "threshold": threshold},
                    columns=info.columns.as_dict(),
                    rows=info.rows,
                    max_queued=st.settings.jobs_max_queued_per_key,
                )
        except BaseException:  # the refund first, then the folder
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if job is None:  # another upload of the key took the last place meanwhile
            adm.refund(info.rows)
            shutil.rmtree(folder, ignore_errors=True)
            raise _too_many(st.settings.jobs_max_queued_per_key, adm.headers())
    finally:
        tmp.unlink(missing_ok=True)
    if js.runner is not None:
        js.runner.wake()
    body = {"data": job_dict(job), "meta": {"requestId": request_id(request)}}
    return json_response(body, 202, {**adm.headers(), "Location": f"{PREFIX}/{job.id}"})


def _too_large(limit: int) -> ApiError:
    return ApiError(
        "upload_too_large", f"The upload is larger than {limit:,} bytes.", headers={"Connection": "close"}
    )


def _too_many(cap: int, headers: dict[str, str] | None = None) -> ApiError:
    return ApiError(
        "too_many_jobs",
        f"This key already has {cap:,} enrichment jobs queued (NPISTACK_JOBS_MAX_QUEUED_PER_KEY); "
        "upload again when some have finished.",
        headers={**(headers or {}), "Retry-After": "30"},
    )


def _queue(
    js: JobsState,
    upload: Path,
    folder: Path,
    *,
    job_id: str,
    key_id: int,
    options: dict[str, Any],
    columns: dict[str, str],
    rows: int,
    max_queued: int,
) -> Job | None:
    """The upload moved into its job's folder and the job queued (None: the key's queue is full)."""
    private_dir(folder)
    os.replace(upload, folder / INPUT)
    return js.db.create(
        job_id=job_id,
        key_id=key_id,
        options=options,
        columns=columns,
        rows_total=rows,
        credits=rows,
        max_queued=max_queued,
    )


def _admissible(st: ApiState, js: JobsState, caller: Caller) -> None:
    """Before the body: 403 for an inactive key or a month with no credit left, 429 for a key with
    its queue full (without counting the request: a refused upload costs nothing)."""
    if caller.key.status != "active":
        raise ApiError("subscription_inactive")
    limit = caller.plan.monthly_credits
    if st.meter.used(caller.key.id, st.now()) >= limit:
        raise ApiError(
            "quota_exceeded", f"No credit left this month (the plan has {limit:,}); a job needs one a row."
        )
    cap = st.settings.jobs_max_queued_per_key
    if cap > 0 and js.db.counts_of(caller.key.id).queued >= cap:
        raise _too_many(cap)


def _job_of(request: Request, access: Access, job_id: str) -> tuple[Job, dict[str, str]]:
    """The caller's job (404 for anyone else's), after the key and the minute window (free)."""
    adm = access.admit(cost=0)
    job = None
    if job_id.startswith("job_") and len(job_id) <= 40 and job_id.isascii() and job_id[4:].isalnum():
        job = jobs_state(request.app).db.get(job_id, key_id=adm.key.id)
    if job is None:
        raise ApiError("job_not_found", f"You have no enrichment job {job_id[:60]!r}.", headers=adm.headers())
    return job, adm.headers()


@router.get(
    "/{job_id}",
    summary="An enrichment job's status and progress",
    response_model=None,
    responses={200: {"model": JobResponse}, **error_responses(401, 403, 404, 429, 500)},
)
async def get_job(request: Request, access: Access, job_id: str) -> Response:
    job, headers = _job_of(request, access, job_id)
    body = {"data": job_dict(job), "meta": {"requestId": request_id(request)}}
    return json_response(body, 200, headers)


def _download(request: Request, access: Access, job_id: str, what: str) -> Response:
    job, headers = _job_of(request, access, job_id)
    if job.status != "succeeded":
        why = f"failed: {job.error}" if job.status == "failed" else f"is {job.status}"
        message = f"Job {job.id} {why}; its files are ready when its status is succeeded."
        raise ApiError("job_not_ready", message, headers=headers)
    name, suffix = FILES[what]
    path = job_dir(jobs_state(request.app).config.jobs_dir, job.id) / name
    if not path.is_file():
        raise ApiError("job_not_found", f"The files of job {job.id} are gone.", headers=headers)
    return FileResponse(
        path, media_type="text/csv; charset=utf-8", filename=f"{job.id}{suffix}.csv", headers=headers
    )


@router.get(
    "/{job_id}/result",
    summary="Download the enriched CSV (every input row, then the nppes_* columns)",
    response_model=None,
    responses={200: _CSV_RESPONSE, **error_responses(401, 403, 404, 409, 429, 500)},
)
async def get_result(request: Request, access: Access, job_id: str) -> Response:
    return _download(request, access, job_id, "result")


@router.get(
    "/{job_id}/review",
    summary="Download the review file: ambiguous rows with their candidates",
    response_model=None,
    responses={200: _CSV_RESPONSE, **error_responses(401, 403, 404, 409, 429, 500)},
)
async def get_review(request: Request, access: Access, job_id: str) -> Response:
    return _download(request, access, job_id, "review")


@router.get(
    "/{job_id}/errors",
    summary="Download the errors file: rows that could not be read, with their line numbers",
    response_model=None,
    responses={200: _CSV_RESPONSE, **error_responses(401, 403, 404, 409, 429, 500)},
)
async def get_errors(request: Request, access: Access, job_id: str) -> Response:
    return _download(request, access, job_id, "errors")
