"""Find the CMS bundles on the download page, decide which a store needs, and download them safely.

- ``parse_download_page(html, base_url)``: the monthly, weekly and deactivation zips the page links to
  (nppes_format.md §3), one per release, V2 preferred over V1.
- ``plan_sync(remote, data_release=..., deactivation_release=...)``: which of them to apply, in order
  (pure; see its docstring for the rules).
- ``download(client, remote, dest_dir)``: resumable (``<name>.part`` + ``Range``), retried on transient
  errors, size- and zip-checked (CRC, and the zip-bomb limits of ``nppes.reader.ZipLimits``), renamed
  into place atomically.

A monthly file's name carries only its month, not the date its data runs through (the Sunday before
its release). Until the zip is on disk that date is *estimated*: the day before the same month's
deactivation report (CMS releases both the same day) when the page lists one, else the Sunday before the
month's second Monday (the observed release pattern: 2023-04-10, 2024-03-11, 2026-08-10). Once the zip is
downloaded, ``exact_monthly`` reads the real date from its data file names, and the sync re-plans.
"""

from __future__ import annotations

import html as html_lib
import os
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from npistack.errors import NpistackError, SourceError
from npistack.nppes.reader import ZipLimits, check_zip_members, zip_damage

Kind = Literal["monthly", "weekly", "deactivation"]
Progress = Callable[[int, int | None], None]

FULL_START = date(2005, 5, 23)
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")  # fmt: skip
_HREF_RE = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_MONTHLY_RE = re.compile(r"^NPPES_Data_Dissemination_([A-Za-z]+)_(\d{4})(?:_V(\d))?\.zip$", re.IGNORECASE)
_WEEKLY_RE = re.compile(r"^NPPES_Data_Dissemination_(\d{6})_(\d{6})_Weekly(?:_V(\d))?\.zip$", re.IGNORECASE)
_DEACT_RE = re.compile(r"^NPPES_Deactivated_NPI_Report_(\d{6})(?:_V(\d))?\.zip$", re.IGNORECASE)
_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)
_KIND_ORDER = {"monthly": 0, "weekly": 1, "deactivation": 2}


@dataclass(frozen=True)
class RemoteFile:
    """One bundle linked from the download page.

    ``start``/``end`` is the date range of its data: ``start`` is 2005-05-23 for a monthly file, the
    Monday of the week for a weekly one, None for a deactivation report, whose ``end`` is its report
    date. ``estimated`` is True while a monthly file's ``end`` is a guess (see the module docstring).
    """

    kind: Kind
    name: str
    url: str
    start: date | None
    end: date
    version: int = 1
    estimated: bool = False

    def describe(self) -> str:
        """A short human description: kind and dates."""
        if self.kind == "monthly":
            return f"monthly, data through {self.end}{' (estimated)' if self.estimated else ''}"
        if self.kind == "weekly":
            return f"weekly, {self.start} to {self.end}"
        return f"deactivation report of {self.end}"


# -- the download page -------------------------------------------------------------------------


def _mmddyy(text: str) -> date | None:
    try:
        return date(2000 + int(text[4:6]), int(text[:2]), int(text[2:4]))
    except ValueError:
        return None


def estimated_monthly_end(year: int, month: int) -> date:
    """The Sunday before the month's second Monday: where CMS's monthly files have ended so far."""
    first = date(year, month, 1)
    first_monday = first + timedelta(days=(7 - first.weekday()) % 7)
    return first_monday + timedelta(days=6)


def _classify(name: str, url: str) -> tuple[tuple[str, date], RemoteFile] | None:
    """The release key and RemoteFile of a bundle name, or None for anything else."""
    if m := _WEEKLY_RE.match(name):
        start, end = _mmddyy(m.group(1)), _mmddyy(m.group(2))
        if start is None or end is None or end < start:
            return None
        rf = RemoteFile("weekly", name, url, start, end, int(m.group(3) or 1))
        return ("weekly", start), rf
    if m := _MONTHLY_RE.match(name):
        month = m.group(1).lower()
        if month not in _MONTHS:
            return None
        year, mon = int(m.group(2)), _MONTHS.index(month) + 1
        end = estimated_monthly_end(year, mon)
        rf = RemoteFile("monthly", name, url, FULL_START, end, int(m.group(3) or 1), estimated=True)
        return ("monthly", date(year, mon, 1)), rf
    if m := _DEACT_RE.match(name):
        day = _mmddyy(m.group(1))
        if day is None:
            return None
        return ("deactivation", day), RemoteFile("deactivation", name, url, None, day, int(m.group(2) or 1))
    return None


def parse_download_page(html: str, base_url: str) -> list[RemoteFile]:
    """The NPPES bundles linked from the CMS download page, oldest first.

    Reads every ``<a href=...>`` (any quoting or case, relative or absolute; resolved against
    ``base_url``) whose file name is a monthly, weekly or deactivation zip, and ignores every other
    link. When a release is linked in two versions the higher one (V2, the current layout) is kept.
    A monthly file's ``end`` is estimated (see the module docstring).
    """
    best: dict[tuple[str, date], RemoteFile] = {}
    for m in _HREF_RE.finditer(html):
        href = html_lib.unescape(next(g for g in m.groups() if g is not None)).strip()
        url = urljoin(base_url, href)
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        found = _classify(name, url)
        if found is None:
            continue
        key, rf = found
        if key not in best or rf.version > best[key].version:
            best[key] = rf
    reports = {(r.end.year, r.end.month): r.end for r in best.values() if r.kind == "deactivation"}
    files = []
    for rf in best.values():
        if rf.kind == "monthly" and (day := reports.get((rf.end.year, rf.end.month))):
            rf = replace(rf, end=day - timedelta(days=1))  # released the same day as the report
        files.append(rf)
    return sorted(files, key=lambda r: (r.end, _KIND_ORDER[r.kind], r.name))


def exact_monthly(remote: RemoteFile, path: Path) -> RemoteFile:
    """``remote`` with the real end date of its data, read from the data file names in ``path``."""
    from npistack.nppes.reader import open_bundle

    bundle = open_bundle(path)
    main = bundle.files.get("npidata") or next(iter(bundle.files.values()))
    if not main.end or bundle.release_date is None:
        return remote  # no dates in the file names: keep the estimate
    return replace(remote, end=bundle.release_date, estimated=False)


def fetch_page(client: httpx.Client, url: str, *, retries: int = 3, backoff_s: float = 1.0) -> str:
    """The download page's HTML; transient errors are retried, others are one-line SourceErrors."""
    for attempt in range(retries + 1):
        try:
            resp = client.get(url)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
            problem = f"{type(e).__name__}: {e}"
        except httpx.HTTPError as e:
            raise SourceError(f"cannot read the download page {url}: {type(e).__name__}: {e}") from None
        else:
            if resp.status_code < 300:
                return resp.text
            problem = f"HTTP {resp.status_code} {resp.reason_phrase}"
            if resp.status_code < 500 and resp.status_code != 429:
                break
        if attempt < retries:
            time.sleep(backoff_s * 2**attempt)
    raise SourceError(f"cannot read the download page {url}: {problem}")


# -- downloading -------------------------------------------------------------------------------


class _Transient(NpistackError):
    """A failure worth retrying (network error, timeout, 5xx)."""


def zip_bomb_problem(path: Path, limits: ZipLimits | None = None) -> str | None:
    """Why the zip at ``path`` is refused as a bomb (its directory declares more than ``limits``
    allow: default the settings), or None. A zip whose directory cannot be read is ``zip_problem``'s."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
        check_zip_members(path.name, members, limits or ZipLimits.from_settings())
    except SourceError as e:
        return str(e)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        return None
    return None


def zip_problem(path: Path) -> str | None:
    """None if ``path`` is a readable zip whose members all pass their CRC check, else why not."""
    try:
        with zipfile.ZipFile(path) as zf:
            if not zf.infolist():
                return "the zip is empty"
            bad = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        return f"not a readable zip: {zip_damage(path) or e}"
    except Exception as e:  # zlib.error and friends from a damaged member
        return f"damaged zip: {type(e).__name__}: {e}"
    return f"member {bad} fails its CRC check" if bad else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fetch_once(client: httpx.Client, url: str, part: Path, progress: Progress | None) -> bool:
    """One GET into ``part``, resuming from its size. True if bytes were appended to an earlier part.

    Raises _Transient for what a retry may fix, SourceError for what it cannot.
    """
    for _restart in range(3):
        offset = _size(part)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with client.stream("GET", url, headers=headers) as resp:
                code = resp.status_code
                if code == 416 and offset:
                    m = _UNSATISFIED_RE.search(resp.headers.get("content-range", ""))
                    if m and int(m.group(1)) == offset:
                        return True  # the part is already complete
                    part.unlink()  # longer than the file (or unknowable): start over
                    continue
                if code >= 500 or code == 429:
                    raise _Transient(f"HTTP {code} {resp.reason_phrase}")
                if code not in (200, 206):
                    raise SourceError(f"{url}: HTTP {code} {resp.reason_phrase}")
                total: int | None
                if code == 206:
                    m2 = _RANGE_RE.search(resp.headers.get("content-range", ""))
                    if not m2 or int(m2.group(1)) != offset:
                        part.unlink(missing_ok=True)  # not the range asked for: start over
                        continue
                    total = int(m2.group(3)) if m2.group(3) != "*" else None
                    done, mode = offset, "ab"
                else:  # 200: the whole file (a server that ignores Range lands here too)
                    length = resp.headers.get("content-length")
                    total = int(length) if length and length.isdigit() else None
                    done, mode = 0, "wb"
                with part.open(mode) as fh:
                    for chunk in resp.iter_raw():
                        fh.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                    fh.flush()
                    os.fsync(fh.fileno())
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
            raise _Transient(f"{type(e).__name__}: {e or 'no detail'}") from None
        except httpx.HTTPError as e:
            raise SourceError(f"{url}: {type(e).__name__}: {e}") from None
        size = _size(part)
        if total is not None and size != total:
            part.unlink(missing_ok=True)
            raise SourceError(
                f"{url}: downloaded {size:,} bytes but the server announced {total:,}; "
                "deleted the partial file"
            )
        return code == 206
    raise SourceError(f"{url}: the server does not answer range requests consistently")


def download(
    client: httpx.Client,
    remote: RemoteFile,
    dest_dir: Path,
    *,
    progress: Progress | None = None,
    retries: int = 3,
    backoff_s: float = 1.0,
) -> Path:
    """Download ``remote`` into ``dest_dir`` and return the path of the verified zip.

    - A file of that name already in ``dest_dir`` that is a valid zip is returned as is.
    - Bytes go to ``<name>.part``; an existing ``.part`` is resumed with ``Range: bytes=N-`` (a 206 is
      appended, a 200 from a server that ignores Range restarts from 0, a 416 for a ``.part`` that is
      already whole is accepted).
    - Network errors, timeouts and 5xx answers are retried ``retries`` times, ``backoff_s`` doubling
      each time, resuming from the ``.part``. After the last, SourceError (the ``.part`` is kept for
      the next run).
    - The size must match the server's Content-Length or Content-Range total, the zip's directory must
      stay within the zip-bomb limits (``zip_bomb_problem``: refused and deleted at once, not retried),
      and the zip must open and pass ``testzip()``. A result stitched from several responses that fails is downloaded once
      more from 0 (the file may have changed on the server); a whole download that fails is deleted
      and raises SourceError.
    - ``progress(done_bytes, total_bytes_or_None)`` is called as bytes arrive.
    - The verified ``.part`` is renamed to the final name atomically (``os.replace``).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / remote.name
    if final.exists():
        if zip_bomb_problem(final) is None and zip_problem(final) is None:
            return final
        final.unlink()
    part = dest_dir / f"{remote.name}.part"
    failures = 0
    stitched = restarted = False
    while True:
        try:
            stitched |= _fetch_once(client, remote.url, part, progress)
        except _Transient as e:
            failures += 1
            if failures > retries:
                raise SourceError(
                    f"{remote.name}: download failed {failures} times, last: {e} "
                    f"({_size(part):,} bytes kept in {part.name}; the next run resumes)"
                ) from None
            time.sleep(backoff_s * 2 ** (failures - 1))
            continue
        bomb = zip_bomb_problem(part)
        if bomb is not None:
            part.unlink(missing_ok=True)
            raise SourceError(f"{remote.name} from {remote.url} is refused ({bomb}); deleted it")
        problem = zip_problem(part)
        if problem is None:
            break
        part.unlink(missing_ok=True)
        if stitched and not restarted:
            stitched, restarted = False, True
            continue
        raise SourceError(f"{remote.name} from {remote.url} is corrupt ({problem}); deleted it")
    os.replace(part, final)
    return final


# -- planning ----------------------------------------------------------------------------------


def _chain(after: date, weeklies: list[RemoteFile]) -> tuple[list[RemoteFile], RemoteFile | None]:
    """Weeklies that continue data ending ``after`` without a gap, and the first one past a gap."""
    taken: list[RemoteFile] = []
    cursor = after
    for w in weeklies:
        if w.end <= cursor:
            continue  # already covered
        assert w.start is not None
        if w.start > cursor + timedelta(days=1):
            return taken, w
        taken.append(w)
        cursor = w.end
    return taken, None


def explain_plan(
    remote: list[RemoteFile], *, data_release: date | None, deactivation_release: date | None
) -> tuple[list[RemoteFile], list[str]]:
    """``plan_sync``'s plan and one line per file or rule that left something out, and why."""
    monthlies = sorted((r for r in remote if r.kind == "monthly"), key=lambda r: r.end)
    weeklies = sorted((r for r in remote if r.kind == "weekly"), key=lambda r: (r.start, r.end))
    reports = sorted((r for r in remote if r.kind == "deactivation"), key=lambda r: r.end)
    monthly = monthlies[-1] if monthlies else None
    why: list[str] = []
    plan: list[RemoteFile] = []
    gap: RemoteFile | None = None
    if data_release is None:
        if monthly is None:
            why.append("the store has no data and the page lists no monthly file to start from")
        else:
            chain, gap = _chain(monthly.end, weeklies)
            plan = [monthly, *chain]
    else:
        chain, gap = _chain(data_release, weeklies)
        reach = chain[-1].end if chain else data_release
        if monthly is not None and monthly.end > reach:
            if gap is not None:
                why.append(
                    f"{gap.name}: weekly files stop chaining at {reach} (it starts {gap.start}); "
                    f"starting over from the monthly file"
                )
            chain, gap = _chain(monthly.end, weeklies)
            plan = [monthly, *chain]
        else:
            plan = chain
    if gap is not None:
        last = plan[-1].end if plan else data_release
        why.append(
            f"{gap.name}: starts {gap.start}, leaving a gap after {last} that no newer monthly "
            "file covers; it waits for the next monthly file"
        )
    if reports:
        plan = _place_report(reports[-1], plan, data_release, deactivation_release, why)
    return plan, why


def _place_report(
    report: RemoteFile,
    plan: list[RemoteFile],
    data_release: date | None,
    deactivation_release: date | None,
    why: list[str],
) -> list[RemoteFile]:
    if deactivation_release is not None and report.end <= deactivation_release:
        return plan  # already applied: nothing to say
    if data_release is None and not plan:
        why.append(f"{report.name}: no provider data to apply it to yet")
    elif data_release is not None and report.end < data_release:
        why.append(
            f"{report.name}: older ({report.end}) than the store's data ({data_release}), "
            "whose files already carry those deactivations"
        )
    elif any(r.kind == "monthly" and r.end > report.end for r in plan):
        why.append(f"{report.name}: older ({report.end}) than the monthly file being applied")
    else:
        at = sum(1 for r in plan if r.end <= report.end)
        return [*plan[:at], report, *plan[at:]]
    return plan


def plan_sync(
    remote: list[RemoteFile], *, data_release: date | None, deactivation_release: date | None
) -> list[RemoteFile]:
    """The files to apply to a store, in apply order. Pure: decided from the dates alone.

    ``data_release`` is the date the store's provider data runs through (None: no data yet) and
    ``deactivation_release`` the date of the newest deactivation report applied (None: none yet).

    1. No data yet: the newest monthly file, then the weekly files that chain after it.
    2. Data: the weekly files that end after ``data_release``, in date order, as long as they chain
       without a gap (each starts no later than the day after the data so far ends; a weekly file
       wholly covered already is passed over).
    3. If the newest monthly file ends later than those weeklies reach (because they stop at a gap, or
       there are none yet), it replaces them: the monthly file, then the weeklies that chain after it.
    4. Weekly files past a gap that no monthly file covers are left out (they wait for the next
       monthly file).
    5. The newest deactivation report, if newer than ``deactivation_release``, goes right after the
       planned files that end on or before its date, so that it is never applied over newer data. It
       is left out when the store's data is already newer than it, when it is older than a monthly
       file in the plan, or when there is no data to apply it to.

    ``explain_plan`` gives the same plan plus the reasons files were left out.
    """
    return explain_plan(remote, data_release=data_release, deactivation_release=deactivation_release)[0]
