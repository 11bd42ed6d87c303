"""npistack's settings: environment variables with the ``NPISTACK_`` prefix (or a ``.env`` file).

Every field carries a description; ``npistack settings`` prints them and docs/settings.md lists them
(a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
import os
from functools import cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/npistack`` (``~/.local/share/npistack``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "npistack"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NPISTACK_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="",
        description=(
            "Where the provider store lives: 'sqlite:///PATH' (the embedded default) or "
            "'postgresql://user@host:port/db'. Empty means sqlite at DATA_DIR/npistack.db."
        ),
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder for the default SQLite store, downloads and demo bundles.",
    )
    nucc_csv: str = Field(
        default="",
        description="Path of a NUCC taxonomy CSV to use instead of the shipped v25.1 release.",
    )
    ingest_workers: int = Field(
        default=0,
        description="Processes that parse and transform rows during ingest; 0 means one per CPU core.",
    )
    ingest_block_bytes: int = Field(
        default=1 << 20,
        ge=4096,
        description="Bytes of a data file handed to a transform worker at a time (its rows are committed together).",
    )
    zip_max_uncompressed_bytes: int = Field(
        default=32 << 30,
        ge=1,
        description=(
            "Largest total uncompressed size of the files npistack reads from one zip (monthly, weekly "
            "or deactivation bundle; the real monthly file is ~11 GiB), from the zip's directory and "
            "again while decompressing; a larger zip is refused as a zip bomb."
        ),
    )
    zip_max_ratio: float = Field(
        default=100.0,
        gt=1,
        description=(
            "Largest uncompressed:compressed ratio of a zip member over 1 MiB that npistack reads (CMS's "
            "files are about 10:1); a member past it is refused as a zip bomb."
        ),
    )
    xlsx_max_part_bytes: int = Field(
        default=128 << 20,
        ge=1024,
        description=(
            "Largest uncompressed part of a deactivation workbook (the .xlsx itself, "
            "xl/sharedStrings.xml, each worksheet; CMS's are tens of MB), checked in the workbook's zip "
            "directory before it is parsed."
        ),
    )

    load_max_removed_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description=(
            "Largest share of the store's providers a monthly full file may remove (NPIs it no longer "
            "holds); past it the load is refused, nothing changed, unless `ingest --force`. CMS keeps "
            "deactivated NPIs in the monthly file, so a real one removes almost none."
        ),
    )
    load_max_quarantine_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description=(
            "Largest share of a monthly full file's rows that may be quarantined when it replaces a store "
            "that has providers; past it the load is refused, nothing changed, unless `ingest --force`."
        ),
    )
    load_max_quarantine_rows: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Most rows one load (monthly full file or weekly bundle) may quarantine; past it the load "
            "stops with an error and the store is left as it was (even with --force)."
        ),
    )

    redis_url: str = Field(
        default="",
        description=(
            "redis://host:port/db for quota and rate-limit counters shared by every server process. "
            "Empty keeps the counters in the database (exact too, but slower under load)."
        ),
    )
    redis_timeout_s: float = Field(
        default=0.25,
        gt=0,
        le=30,
        description=(
            "Seconds every Redis call (connect, then each command) may take. A Redis that is down or slower "
            "makes metered requests answer 503 service_unavailable with Retry-After (never wait longer), "
            "and opens a short circuit breaker so a hung Redis costs one timeout per interval."
        ),
    )
    api_host: str = Field(default="127.0.0.1", description="Address `npistack serve` listens on.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port `npistack serve` listens on.")
    api_workers: int = Field(
        default=1, ge=1, description="Server processes `npistack serve` starts (they share counters exactly)."
    )
    upstream_url: str = Field(
        default="https://npiregistry.cms.hhs.gov/api/",
        description=(
            "A CMS-compatible registry API (`?version=2.1`) asked for NPIs missing from the store and to "
            "revalidate stale ones. Empty means offline: the store alone answers."
        ),
    )
    offline: bool | None = Field(
        default=None,
        description=(
            "true: never call the upstream; false: always may; unset: offline when the upstream's host "
            "does not resolve at start-up (a machine without network)."
        ),
    )
    upstream_timeout_s: float = Field(
        default=5.0, gt=0, description="Seconds before an upstream request counts as failed (502)."
    )
    upstream_concurrency: int = Field(
        default=8,
        ge=1,
        description=(
            "Upstream registry requests one server process has in flight at most; the others wait for a "
            "slot (up to NPISTACK_UPSTREAM_QUEUE_S)."
        ),
    )
    upstream_rate_per_s: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Upstream registry requests per second one server process may start (a token bucket holding "
            "one second's worth); 0 means no rate limit."
        ),
    )
    upstream_queue_s: float = Field(
        default=2.0,
        gt=0,
        description=(
            "Seconds an NPI waits for an upstream slot or token before it is answered as upstream_error "
            "(a large bulk request ends quickly instead of queueing)."
        ),
    )
    upstream_not_found_ttl_s: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "Seconds an NPI the upstream does not have is remembered as not found (and not asked again); "
            "0 turns this negative cache off."
        ),
    )
    upstream_max_response_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Largest upstream answer read, in bytes; a larger one counts as an upstream failure.",
    )
    cache_ttl_days: int = Field(
        default=40,
        ge=0,
        description=(
            "Age (days since the NPPES release it came from, or since it was fetched) under which a "
            "provider is a cache `hit`; older is `stale`."
        ),
    )
    cms_require_key: bool = Field(
        default=False,
        description="Require an API key (and meter credits) on the CMS-compatible endpoint `/api/`.",
    )
    access_log: bool = Field(
        default=True, description="Write one JSON line per request to stderr (never contains keys)."
    )
    api_request_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description=(
            "Seconds a request may take before its response starts; past it the answer is 503 "
            "deadline_exceeded. 0 means no deadline."
        ),
    )
    api_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds `npistack serve` gives a client to send a request's line and headers (from the "
            "connection's start or the previous response) before it closes the connection."
        ),
    )
    api_max_header_bytes: int = Field(
        default=65536,
        ge=1024,
        description=(
            "Largest request line and headers `npistack serve` reads, in bytes; a larger request gets 431 "
            "and the connection is closed."
        ),
    )
    api_keep_alive_s: int = Field(
        default=5, ge=1, description="Seconds `npistack serve` keeps an idle keep-alive connection open."
    )
    api_limit_concurrency: int = Field(
        default=1000,
        ge=0,
        description=(
            "Connections and requests one server process handles at once; past it a new request gets 503 "
            "at once. 0 means no limit."
        ),
    )
    api_tune_gc: bool = Field(
        default=False,
        description=(
            "Tune Python's garbage collector for serving: freeze the heap built at start-up and make full "
            "collections rare (a full collection walks every long-lived table and held the event loop "
            "~100 ms under load). `npistack serve` turns it on for its processes unless the variable is set."
        ),
    )
    api_anonymous_per_minute: int = Field(
        default=300,
        ge=0,
        description=(
            "Requests per minute one client address may make without a valid API key (answered 401, or "
            "the keyless CMS endpoint `/api/`), counted per server process; past it 429 "
            "client_rate_limited. 0 turns the limit off."
        ),
    )
    metrics_token: str = Field(
        default="",
        description=(
            "When set, `GET /metrics` needs `Authorization: Bearer <this token>` (or an admin key). "
            "Empty: /metrics is open."
        ),
    )
    readyz_check_s: float = Field(
        default=30.0,
        ge=0,
        description=(
            "Seconds between the deep store checks of `GET /readyz` (a fresh connection reads the current "
            "load and a provider); in between the last result is reused. 0 checks on every request."
        ),
    )

    cms_files_url: str = Field(
        default="https://download.cms.gov/nppes/NPI_Files.html",
        description=(
            "The CMS download page `npistack sync` reads to find the newest monthly, weekly and "
            "deactivation bundles (links are resolved against it)."
        ),
    )
    download_dir: str = Field(
        default="",
        description="Folder `npistack sync` downloads bundles into; empty means DATA_DIR/downloads.",
    )
    download_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds without progress before a `npistack sync` download is retried.",
    )
    sync_max_page_bytes: int = Field(
        default=4 << 20,
        ge=1024,
        description=(
            "Largest download page (or error answer) `npistack sync` reads, in bytes, counted while it "
            "streams in; CMS's page is tens of KB. A larger one is refused."
        ),
    )
    sync_max_file_bytes: int = Field(
        default=4 << 30,
        ge=1,
        description=(
            "Largest bundle `npistack sync` downloads, in bytes (the monthly zip is ~1.1 GiB), counted "
            "while it streams in whatever Content-Length says; a larger one is refused and its partial "
            "file deleted."
        ),
    )
    webhook_max_attempts: int = Field(
        default=8,
        ge=1,
        description="Delivery attempts before a webhook delivery is dead-lettered (replay brings it back).",
    )
    webhook_backoff_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "First retry delay of a failed webhook delivery; each later retry doubles it (capped at 6 h), "
            "with random jitter."
        ),
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Total seconds of one webhook delivery attempt (DNS, connect, TLS, send and the answer's "
            "headers, however slowly they trickle): past it the connection is closed and the attempt fails."
        ),
    )
    webhook_allow_hosts: str = Field(
        default="",
        description=(
            "Comma-separated host names, addresses and CIDRs webhook URLs may reach although they are "
            "loopback, private or link-local (refused otherwise): for tests and private deployments only."
        ),
    )
    webhook_per_subscription: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Deliveries of one subscription in flight at once (across all workers).",
    )
    webhook_breaker_failures: int = Field(
        default=5,
        ge=1,
        description=(
            "Consecutive failed attempts after which a subscription's circuit breaker opens (its "
            "deliveries wait for the cool-down)."
        ),
    )
    webhook_breaker_cooldown_s: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds an open circuit breaker waits before one probe delivery; success closes it, failure "
            "opens it again."
        ),
    )
    webhook_lease_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds a worker holds the deliveries it claimed; a worker that dies loses them after this "
            "and another worker (or its restart) sends them."
        ),
    )
    verify_email_dns: bool = Field(
        default=False,
        description=(
            "Provider verification (`POST /api/v1/verify`) also asks DNS whether an email's domain accepts "
            "mail (MX, else A/AAAA; needs the network). Off: syntax and a plausible domain only."
        ),
    )

    jobs_dir: str = Field(
        default="",
        description=(
            "Folder for list enrichment jobs (`POST /api/v1/jobs/enrich`): uploads and results. Empty means "
            "a folder beside the SQLite store (npistack.jobs), or DATA_DIR/jobs with PostgreSQL."
        ),
    )
    jobs_max_upload_bytes: int = Field(
        default=1 << 30,
        ge=1,
        description="Largest CSV an enrichment job accepts, in bytes (a larger upload gets 413 upload_too_large).",
    )
    jobs_workers: int = Field(
        default=2,
        ge=0,
        description="Matching processes each enrichment job uses (0: in the job's own process).",
    )
    jobs_runner: bool = Field(
        default=True,
        description=(
            "Run queued enrichment jobs in this server process. false: only accept them (another server "
            "process on the same state database and jobs folder runs them)."
        ),
    )
    jobs_max_queued_per_key: int = Field(
        default=100,
        ge=0,
        description=(
            "Enrichment jobs one key may have queued at once; past it a new upload gets 429 too_many_jobs "
            "before any of it is read. 0 means no limit."
        ),
    )
    jobs_max_running_per_key: int = Field(
        default=2,
        ge=0,
        description=(
            "Enrichment jobs of one key that run at once, over every server process; its other jobs wait "
            "while other keys' jobs run (runners take keys in turn). 0 means no limit."
        ),
    )
    jobs_retention_days: float = Field(
        default=30.0,
        ge=0,
        description=(
            "Days a finished enrichment job (its uploaded CSV, results and record) is kept; each server's "
            "job runner deletes older ones (at start, then hourly), `npistack jobs purge` at once. 0 keeps "
            "them until purged with --older-than."
        ),
    )
    csv_max_line_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description=(
            "Longest line of an enrichment CSV (`npistack enrich`, `POST /api/v1/jobs/enrich`), in bytes; a longer "
            "line is one row in errors.csv with the reason, and is never held in memory whole."
        ),
    )
    csv_max_field_chars: int = Field(
        default=65536,
        ge=16,
        le=131072,
        description=(
            "Longest value of one field of an enrichment CSV, in characters; a row with a longer value goes to "
            "errors.csv with the reason."
        ),
    )
    changes_page_max_bytes: int = Field(
        default=16 << 20,
        ge=1024,
        description=(
            "Bytes of events one change feed page (`GET /api/v1/changes`, JSON or NDJSON) holds at most: "
            "the page ends early past it, with the cursor to continue."
        ),
    )

    @field_validator("webhook_allow_hosts")
    @classmethod
    def _allow_list(cls, value: str) -> str:
        """Every entry a host name, an address or a CIDR (refused at start-up, not on a webhook call)."""
        for raw in value.split(","):
            entry = raw.strip().strip("[]")
            if not entry:
                continue
            looks_numeric = "/" in entry or ":" in entry or entry.replace(".", "").isdigit()
            if looks_numeric:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not an address or a CIDR (e.g. 10.0.0.0/8)") from None
            elif not all(part.isalnum() or "-" in part or "_" in part for part in entry.split(".")):
                raise ValueError(f"{entry!r} is not a host name, an address or a CIDR")
        return value

    def resolved_download_dir(self) -> Path:
        return Path(self.download_dir) if self.download_dir else self.data_dir / "downloads"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'npistack.db'}"


@cache
def get_settings() -> Settings:
    return Settings()
