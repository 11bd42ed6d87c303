"""Keep a store current from the CMS download page: ``sync_once`` and ``run_every``.

One round (``sync_once``): read the page, plan from the store's state (``plan_sync``), then for the
first planned file: download it, apply it, re-read the store's state and plan again, until nothing is
left. Planning again after each file means every decision uses what the store really holds (a monthly
file's real end date, read from its zip, replaces the page's estimate). The round stops at the first
failure; what was applied before it stays applied, and the next round continues from there.

What a round fetches is fenced by ``new_client(page_url=...)`` (``GuardedTransport``): every request
and every redirect stays on the download page's scheme, host and port (or its https upgrade), the
page is read up to ``FetchLimits.max_page_bytes`` and a bundle up to ``FetchLimits.max_file_bytes``,
counted while the bytes stream in (a missing or false Content-Length changes nothing). A refused
download's partial file is deleted; nothing reaches its final name before it is whole and verified.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import httpx

from npistack import __version__
from npistack.errors import NpistackError, SourceError
from npistack.ingest.source import (
    RemoteFile,
    download,
    exact_monthly,
    explain_plan,
    fetch_page,
    parse_download_page,
)

DownloadProgress = Callable[[RemoteFile, int, int | None], None]
DEACTIVATION_META = "deactivation_release"
_REDIRECTS = (301, 302, 303, 307, 308)
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-\d+/(\d+|\*)", re.IGNORECASE)


class StoreState(Protocol):
    """What a sync reads from a store (``SqlStore`` has both)."""

    def data_release(self) -> str | None: ...

    def get_meta(self, key: str) -> str | None: ...


@dataclass
class Applied:
    """One file applied: its remote description, local path and what ``apply`` returned."""

    remote: RemoteFile
    path: Path
    result: Any

    @property
    def name(self) -> str:
        return self.remote.name


@dataclass
class SyncReport:
    """What one round found, planned, downloaded and applied; ``error`` is set if it stopped early."""

    page_url: str
    found: list[RemoteFile] = field(default_factory=list)
    planned: list[RemoteFile] = field(default_factory=list)
    downloaded: list[Path] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str | None = None
    failed: RemoteFile | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_error(self) -> None:
        """Raise the round's error as a one-line NpistackError, if there was one."""
        if self.error is not None:
            raise NpistackError(self.error)


def _log_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _iso(value: str | None) -> date | None:
    return date.fromisoformat(value[:10]) if value else None


def store_dates(store: StoreState) -> tuple[date | None, date | None]:
    """(data release, deactivation release) of a store, as dates."""
    return _iso(store.data_release()), _iso(store.get_meta(DEACTIVATION_META))


def _with_local_dates(remote: list[RemoteFile], download_dir: Path) -> list[RemoteFile]:
    """Monthly files already downloaded get their exact end date from the zip on disk."""
    out = []
    for r in remote:
        local = download_dir / r.name
        if r.kind == "monthly" and r.estimated and local.is_file():
            with contextlib.suppress(NpistackError):  # a damaged leftover: download() replaces it
                r = exact_monthly(r, local)
        out.append(r)
    return out


def _one_line(remote: RemoteFile, error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if remote.name in text else f"{remote.name}: {text}"


def _bind(progress: DownloadProgress | None, remote: RemoteFile) -> Callable[[int, int | None], None] | None:
    if progress is None:
        return None
    report = progress

    def one(done: int, total: int | None) -> None:
        report(remote, done, total)

    return one


@dataclass(frozen=True)
class FetchLimits:
    """Largest download page and largest bundle a sync reads, in bytes (the settings
    NPISTACK_SYNC_MAX_PAGE_BYTES and NPISTACK_SYNC_MAX_FILE_BYTES; CMS's page is tens of KB, its
    monthly zip ~1.1 GiB)."""

    max_page_bytes: int = 4 << 20
    max_file_bytes: int = 4 << 30


class FetchRefused(SourceError):
    """A request, redirect or response a sync refuses (another host, over a size cap). Not retried;
    the partial download it leaves is deleted."""


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


class _Capped(httpx.SyncByteStream):
    """A response body that raises ``refuse()`` as soon as more than ``cap`` bytes (counted from
    ``start``, the offset of a resumed range) have arrived."""

    def __init__(self, inner: httpx.SyncByteStream, start: int, cap: int, refuse: Callable[[], FetchRefused]):
        self.inner, self.start, self.cap, self.refuse = inner, start, cap, refuse

    def __iter__(self) -> Iterator[bytes]:
        seen = self.start
        for chunk in self.inner:
            seen += len(chunk)
            if seen > self.cap:
                raise self.refuse()
            yield chunk

    def close(self) -> None:
        self.inner.close()


class GuardedTransport(httpx.BaseTransport):
    """The transport of a sync's client: requests and redirects only to ``page_url``'s scheme, host
    and port (or https on port 443 when the page is http), bodies capped while streaming.

    A URL whose path ends in ``.zip`` is a bundle (``limits.max_file_bytes``), anything else a page
    (``limits.max_page_bytes``); a redirect's target keeps the kind of the request it answers, and an
    error status's body is capped as a page.
    """

    def __init__(self, page_url: str, limits: FetchLimits, inner: httpx.BaseTransport | None = None) -> None:
        home = httpx.URL(page_url)
        scheme, host, port = _origin(home)
        self.allowed = {(scheme, host, port)} | ({("https", host, 443)} if scheme == "http" else set())
        self.where = f"{scheme}://{host}:{port}"
        self.limits = limits
        self.inner = inner or httpx.HTTPTransport()
        self._hops: dict[str, str] = {}

    def _kind(self, url: httpx.URL) -> str:
        hop = self._hops.pop(str(url.copy_with(fragment=None)), None)
        return hop or ("file" if url.path.lower().endswith(".zip") else "page")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        kind = self._kind(url)
        if _origin(url) not in self.allowed:
            raise FetchRefused(
                f"refused {url}: sync fetches only from {self.where}, the download page's host "
                "(NPISTACK_CMS_FILES_URL or --page-url)"
            )
        resp = self.inner.handle_request(request)
        location = resp.headers.get("location")
        if resp.status_code in _REDIRECTS and location:
            try:
                target = url.join(location)
            except httpx.InvalidURL:
                return resp  # httpx reports the bad Location itself
            if _origin(target) not in self.allowed:
                resp.close()
                raise FetchRefused(
                    f"refused the redirect from {url} to {target}: sync follows redirects only within "
                    f"{self.where} (or its https upgrade), the download page's host"
                )
            self._hops[str(target.copy_with(fragment=None))] = kind
        file = kind == "file" and resp.status_code in (200, 206)
        cap = self.limits.max_file_bytes if file else self.limits.max_page_bytes
        start, declared = 0, None
        m = _CONTENT_RANGE_RE.search(resp.headers.get("content-range", ""))
        if resp.status_code == 206 and m:
            start = int(m.group(1))
            declared = int(m.group(2)) if m.group(2) != "*" else None
        length = resp.headers.get("content-length", "")
        if declared is None and length.isdigit():
            declared = start + int(length)

        def refuse() -> FetchRefused:
            if file:
                return FetchRefused(
                    f"refused {url}: the file is larger than {cap:,} bytes (NPISTACK_SYNC_MAX_FILE_BYTES); "
                    "deleted what was downloaded"
                )
            what = "the download page" if kind == "page" and resp.status_code < 300 else "the answer"
            return FetchRefused(
                f"refused {url}: {what} is larger than {cap:,} bytes (NPISTACK_SYNC_MAX_PAGE_BYTES)"
            )

        if declared is not None and declared > cap:
            resp.close()
            raise refuse()
        assert isinstance(resp.stream, httpx.SyncByteStream)
        resp.stream = _Capped(resp.stream, start, cap, refuse)
        return resp

    def close(self) -> None:
        self.inner.close()


def new_client(
    timeout_s: float = 60.0, *, page_url: str | None = None, limits: FetchLimits | None = None
) -> httpx.Client:
    """An HTTP client for the CMS site: ``timeout_s`` without progress fails; redirects followed.

    With ``page_url``, the client is fenced by ``GuardedTransport`` (same-host requests and
    redirects only, ``limits`` on what it reads); ``sync_once`` always builds it that way.
    """
    transport = GuardedTransport(page_url, limits or FetchLimits()) if page_url else None
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=True,
        transport=transport,
        headers={"User-Agent": f"npistack/{__version__} (+sync)"},
    )


def sync_once(
    store: StoreState,
    *,
    page_url: str,
    download_dir: Path,
    apply: Callable[[Path], Any],
    client: httpx.Client | None = None,
    progress: DownloadProgress | None = None,
    log: Callable[[str], None] = _log_stderr,
    dry_run: bool = False,
    timeout_s: float = 60.0,
    retries: int = 3,
    backoff_s: float = 1.0,
    limits: FetchLimits | None = None,
) -> SyncReport:
    """One sync round; see the module docstring.

    ``apply(path)`` applies one downloaded zip to the store (monthly, weekly or deactivation report);
    the store's state is read again after each. ``dry_run`` stops after planning. A page that cannot be
    read raises SourceError; a failure after that is recorded in ``SyncReport.error`` (one line) and
    ends the round, keeping what was applied.

    Without ``client``, the round's client is ``new_client(page_url=page_url, limits=limits)``: fenced
    to the page's host and size-capped (``GuardedTransport``). A ``client`` passed in is used as is.
    """
    own = client is None
    http = client or new_client(timeout_s, page_url=page_url, limits=limits)
    try:
        html = fetch_page(http, page_url, retries=retries, backoff_s=backoff_s)
        remote = _with_local_dates(parse_download_page(html, page_url), download_dir)
        report = SyncReport(page_url=page_url, found=list(remote))
        counts = {k: sum(r.kind == k for r in remote) for k in ("monthly", "weekly", "deactivation")}
        log(
            f"{page_url}: {counts['monthly']} monthly, {counts['weekly']} weekly, "
            f"{counts['deactivation']} deactivation files"
        )
        _run(report, remote, store, http, download_dir, apply, progress, log, dry_run, retries, backoff_s)
        return report
    finally:
        if own:
            http.close()


def _run(
    report: SyncReport,
    remote: list[RemoteFile],
    store: StoreState,
    http: httpx.Client,
    download_dir: Path,
    apply: Callable[[Path], Any],
    progress: DownloadProgress | None,
    log: Callable[[str], None],
    dry_run: bool,
    retries: int,
    backoff_s: float,
) -> None:
    applied: set[str] = set()
    local: dict[str, Path] = {}
    for step in range(2 * len(remote) + 2):
        data_release, deactivation_release = store_dates(store)
        plan, why = explain_plan(remote, data_release=data_release, deactivation_release=deactivation_release)
        for reason in why:
            if reason not in report.skipped:
                report.skipped.append(reason)
                log(f"skip: {reason}")
        if step == 0:
            report.planned = list(plan)
            state = f"data through {data_release or 'nothing yet'}, deactivations through {deactivation_release or 'none yet'}"
            log(f"store: {state}")
            for i, r in enumerate(plan, 1):
                log(f"plan {i}/{len(plan)}: {r.name} ({r.describe()})")
            if not plan:
                log("up to date: nothing to download")
            if dry_run:
                return
        if not plan:
            return
        nxt = plan[0]
        if nxt.name in applied:
            report.failed = nxt
            report.error = (
                f"{nxt.name} was applied but the store did not move past it (data through "
                f"{data_release}, deactivations through {deactivation_release}); stopping"
            )
            return
        try:
            path = local.get(nxt.name) or download(
                http,
                nxt,
                download_dir,
                progress=_bind(progress, nxt),
                retries=retries,
                backoff_s=backoff_s,
            )
            if nxt.name not in local:
                local[nxt.name] = path
                report.downloaded.append(path)
            if nxt.estimated:
                exact = exact_monthly(nxt, path)
                remote = [exact if r is nxt else r for r in remote]
                if exact.end != nxt.end:
                    log(f"{nxt.name}: data runs through {exact.end} (estimated {nxt.end}); planning again")
                    continue
                nxt = replace(nxt, estimated=False)
            log(f"applying {nxt.name} ({nxt.describe()})")
            result = apply(path)
        except FetchRefused as e:
            (download_dir / f"{nxt.name}.part").unlink(missing_ok=True)  # refused, not resumable
            report.failed = nxt
            report.error = _one_line(nxt, e)
            return
        except (NpistackError, OSError) as e:
            report.failed = nxt
            report.error = _one_line(nxt, e)
            return
        report.applied.append(Applied(nxt, path, result))
        applied.add(nxt.name)
        log(f"applied {nxt.name}")
    report.error = "sync did not settle (the plan kept changing); stopping"


def run_every(
    interval_s: float,
    fn: Callable[[], Any],
    *,
    stop: threading.Event,
    on_error: Callable[[BaseException], None],
) -> None:
    """Run ``fn`` now and then every ``interval_s`` seconds until ``stop`` is set.

    Rounds start on a fixed schedule (a round that overruns its slot skips the slots it missed). An
    exception in a round goes to ``on_error`` and the next round still runs; KeyboardInterrupt and
    SystemExit pass through.
    """
    if interval_s <= 0:
        raise ValueError(f"interval must be positive, got {interval_s}")
    next_run = time.monotonic()
    while not stop.is_set():
        try:
            fn()
        except Exception as e:
            on_error(e)
        next_run += interval_s
        now = time.monotonic()
        while next_run <= now:
            next_run += interval_s
        if stop.wait(next_run - now):
            return


_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_interval(text: str) -> float:
    """Seconds in ``"45s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` or a bare number of seconds."""
    m = _INTERVAL_RE.match(text)
    seconds = float(m.group(1)) * _UNIT_S[m.group(2).lower()] if m else 0.0
    if seconds <= 0:
        raise ValueError(
            f"invalid interval {text!r}: use a positive number of seconds, or a number followed by "
            "s, m, h, d or w (e.g. 30m, 12h, 7d)"
        )
    return seconds


__all__ = [
    "Applied",
    "FetchLimits",
    "FetchRefused",
    "GuardedTransport",
    "StoreState",
    "SyncReport",
    "new_client",
    "parse_interval",
    "run_every",
    "store_dates",
    "sync_once",
]
