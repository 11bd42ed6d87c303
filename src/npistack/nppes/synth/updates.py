"""Synthetic weekly update bundles, a deactivation report and the month-end full file, made from a base
monthly bundle (a CMS zip or folder, real or from ``synth.bundle.write_bundle``).

``write_month(base, out_dir, weeks=4, weekly_rows=1000, seed=0)`` plays one month of NPPES changes on top
of ``base`` and writes what CMS would publish (nppes_format.md §3):

- **Weeklies.** The base's release is the end date in its file names (a Sunday). Week ``k`` (1-based) runs
  Monday to Sunday: ``start = base_end + 1 + 7(k-1)``. Each is ``NPPES_Data_Dissemination_MMDDYY_MMDDYY_
  Weekly_V2.zip`` holding the four ``<kind>_pfile_YYYYMMDD-YYYYMMDD.csv`` files of the week and their
  ``_fileheader.csv`` files, in the base's own headers and layout (so ``reader.open_bundle`` sees kind
  "weekly", released on the week's Sunday). Each week has ``weekly_rows`` npidata rows, each NPI at most
  once: ~40% new NPIs (Luhn-valid, in neither the base nor an earlier week), ~45% updates (see
  ``synth.changes.UPDATE_KINDS``), ~10% deactivations (CMS's stub row) and ~5% reactivations of NPIs
  that are stubs at the time (fewer if there are not enough stubs; updates fill the gap). About one
  change in ten hits an NPI changed in an earlier week. The child files hold the *complete* child sets
  (pl, othername, endpoint rows) of every NPI in that week's npidata and nothing else; a stub has none.
- **Deactivation report** (``report=True``), dated the Monday after the last week (the month-end
  release): every NPI that is a stub in the final state (the base's stubs and the weeks'
  deactivations, with their dates) plus ~0.5% of ``weekly_rows`` active base NPIs deactivated only by
  the report, dated within the last week. It never lists an NPI that is active at the end.
- **Month-end full file** (``full=True``), ``NPPES_Data_Dissemination_<Month>_<YYYY>_V2.zip`` released
  that Monday: the base's lines in base order, each changed NPI's line replaced by its final row (a
  report-only deactivation becomes a stub), new NPIs appended in creation order. Child files likewise:
  a changed NPI's final child set takes the place of its first old child line (its other old lines go),
  or is appended (base NPIs in base order, then new NPIs). Every other line, garbage included, is
  copied byte for byte.

So applying the base, then the weeklies in order, then the report, gives the same providers as the
month-end full file. Output is a pure function of the base and the arguments (same bytes every run).

Memory stays small whatever the base size: one streaming pass over the base npidata keeps a bitmap of
its NPIs, the compact list of its stubs and a seeded reservoir sample of the active rows that may be
changed; one pass over each child file keeps the child rows of the sampled NPIs. Only the providers
the month touches are held in memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import IO

from npistack.nppes.deactivation import write_report
from npistack.nppes.layout import FILE_KINDS, FileKind
from npistack.nppes.reader import DataFile
from npistack.nppes.synth.bundle import CHILD_KINDS, _zip_info, bundle_name, data_file_name
from npistack.nppes.synth.changes import UPDATE_KINDS, Changer
from npistack.nppes.synth.rows import _Gen
from npistack.nppes.synth.state import (
    Entry,
    MonthState,
    Progress,
    blocks,
    derive_seed,
    npi_of,
    open_base,
)

__all__ = ["MonthStats", "WeekStats", "write_month", "write_weekly"]
SHARE_NEW, SHARE_DEACTIVATED, SHARE_REACTIVATED = 0.40, 0.10, 0.05  # updates take the rest
SHARE_REPORT_ONLY = 0.005  # of weekly_rows: deactivations only the report carries
_WRITE_CHUNK = 1 << 20


@dataclass
class WeekStats:
    """One weekly bundle: its path, Monday..Sunday range, npidata rows and what they are."""

    path: Path
    start: date
    end: date
    rows: int = 0
    created: int = 0
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UPDATE_KINDS, 0))
    deactivated: int = 0
    reactivated: int = 0
    child_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHILD_KINDS, 0))

    @property
    def updates(self) -> int:
        return sum(self.updated.values())


@dataclass
class MonthStats:
    """What ``write_month`` wrote. ``release`` is the month-end release (the Monday after the last week),
    the date of the report and of the full file."""

    base: Path
    base_release: date
    release: date
    weeklies: list[WeekStats] = field(default_factory=list)
    report: Path | None = None
    report_rows: int = 0
    report_extra: int = 0  # deactivations that only the report carries
    full: Path | None = None
    full_rows: int = 0


# -- one week ---------------------------------------------------------------------------------------------


def _week(month: MonthState, changer: Changer, stats: WeekStats, n: int) -> list[str]:
    """Play one week; returns the NPIs of its npidata file, in file order."""
    rnd = month.rnd
    n_new, n_deact = round(SHARE_NEW * n), round(SHARE_DEACTIVATED * n)
    n_react = min(round(SHARE_REACTIVATED * n), n - n_new - n_deact)
    actions = ["new"] * n_new + ["deact"] * n_deact + ["react"] * n_react
    actions += ["update"] * (n - len(actions))
    month.gen.rng.shuffle(actions)
    used: set[str] = set()
    order: list[str] = []
    for action in actions:
        if action == "react":
            stub = month.pick_stub(used)
            if stub is not None:
                npi, deactivated, index = stub
                row, children = changer.reactivated(npi, deactivated)
                month.add(npi, row, children, index)
                stats.reactivated += 1
                used.add(npi)
                order.append(npi)
                continue
            action = "update"
        target = month.pick_active(used) if action != "new" else None
        if target is None:
            npi = month.new_npi()
            row, children = changer.created(npi)
            month.add(npi, row, children)
            stats.created += 1
        else:
            npi, fields, children, index = target
            if action == "deact":
                row, children = changer.stub(npi), {}
                stats.deactivated += 1
            else:
                kind = changer.pick_kind()
                if kind == "name" and fields[1] != "1" and rnd() < 0.5:
                    kind = "address"  # organizations rename less often than people
                row, children = changer.updated(fields, children, kind)
                stats.updated[kind] += 1
            month.add(npi, row, children, index)
        used.add(npi)
        order.append(npi)
    return order


def _write_weekly(month: MonthState, stats: WeekStats, order: list[str]) -> None:
    base, start, end = month.base, stats.start, stats.end
    stats.rows = len(order)
    try:
        with zipfile.ZipFile(stats.path, "w", zipfile.ZIP_DEFLATED) as zf:
            for kind in FILE_KINDS:
                name = f"{kind}_pfile_{start:%Y%m%d}-{end:%Y%m%d}.csv"
                with zf.open(_zip_info(name, end), "w", force_zip64=True) as out:
                    if kind == "npidata":
                        lines: Iterable[str] = (month.state[npi].row for npi in order)
                    else:
                        lines = (ln for npi in order for ln in month.state[npi].children.get(kind, ()))
                    count = _write_lines(out, base.headers[kind], lines)
                if kind != "npidata":
                    stats.child_rows[kind] = count
                zf.writestr(_zip_info(name.removesuffix(".csv") + "_fileheader.csv", end), base.headers[kind])
    except BaseException:
        stats.path.unlink(missing_ok=True)
        raise


def _write_lines(out: IO[bytes], header: bytes, lines: Iterable[str]) -> int:
    out.write(header)
    buf: list[str] = []
    size = count = 0
    for line in lines:
        buf.append(line)
        size += len(line)
        count += 1
        if size >= _WRITE_CHUNK:
            out.write(("\n".join(buf) + "\n").encode())
            buf.clear()
            size = 0
    if buf:
        out.write(("\n".join(buf) + "\n").encode())
    return count


# -- the month-end full file ------------------------------------------------------------------------------


def _write_full(
    month: MonthState, release: date, out_dir: Path, progress: Progress | None
) -> tuple[Path, int]:
    base = month.base
    path = out_dir / (bundle_name(release) + ".zip")
    by_index = {e.base_index: e for e in month.state.values() if e.base_index >= 0}
    touched = {npi.encode(): e for npi, e in month.state.items()}
    appended = sorted(month.state.values(), key=lambda e: e.order)
    rows = 0
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for kind in FILE_KINDS:
                name = data_file_name(kind, release)
                df = base.bundle.files.get(kind)
                with ExitStack() as stack:
                    out = stack.enter_context(zf.open(_zip_info(name, release), "w", force_zip64=True))
                    out.write(base.headers[kind])
                    if kind == "npidata":
                        rows = _copy_npidata(month, df, out, by_index, progress)
                    else:
                        _copy_children(kind, df, out, touched, appended)
                zf.writestr(
                    _zip_info(name.removesuffix(".csv") + "_fileheader.csv", release), base.headers[kind]
                )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, rows


def _copy_npidata(
    month: MonthState,
    df: DataFile | None,
    out: IO[bytes],
    by_index: dict[int, Entry],
    progress: Progress | None,
) -> int:
    """The base's lines with the changed ones replaced, then the new NPIs; returns the row count."""
    rows = 0
    if df is not None:
        indexes = sorted(by_index)
        at = 0
        for first, lines in blocks(df):
            rows = first + len(lines)
            while at < len(indexes) and indexes[at] < rows:
                lines[indexes[at] - first] = by_index[indexes[at]].row.encode()
                at += 1
            out.write(b"\n".join(lines) + b"\n")  # a last line without a newline gets one: rows follow
            if progress is not None:
                progress("full", rows)
    new = [e.row for e in month.state.values() if e.base_index < 0]
    return rows + _write_lines(out, b"", new)


def _copy_children(
    kind: FileKind, df: DataFile | None, out: IO[bytes], touched: dict[bytes, Entry], appended: list[Entry]
) -> None:
    done: set[int] = set()  # id() of entries whose final set is written
    if df is not None:
        for _, lines in blocks(df):
            kept: list[bytes] = []
            for line in lines:
                key = line[1:11] if line[:1] == b'"' and line[11:12] == b'"' else npi_of(line).encode()
                e = touched.get(key)
                if e is None:
                    kept.append(line)
                elif id(e) not in done:
                    done.add(id(e))
                    kept.extend(ln.encode() for ln in e.children.get(kind, ()))
            if kept:
                out.write(b"\n".join(kept) + b"\n")
    _write_lines(out, b"", (ln for e in appended if id(e) not in done for ln in e.children.get(kind, ())))


# -- public API -------------------------------------------------------------------------------------------


def write_month(
    base: Path,
    out_dir: Path,
    *,
    weeks: int = 4,
    weekly_rows: int = 1000,
    seed: int = 0,
    report: bool = True,
    full: bool = True,
    progress: Progress | None = None,
) -> MonthStats:
    """Write ``weeks`` weekly bundles, then (optionally) the deactivation report and the month-end full
    file, into ``out_dir``; see the module docstring. ``progress(stage, count)`` is called with stages
    "scan" (base npidata lines read), "children <kind>", "week <k>" (rows), "report" and "full"."""
    if weeks < 1 or weekly_rows < 1:
        raise ValueError(
            f"need weeks >= 1 and weekly_rows >= 1, got weeks={weeks}, weekly_rows={weekly_rows}"
        )
    b = open_base(Path(base))
    out_dir = Path(out_dir)
    release = b.end + timedelta(days=7 * weeks + 1)
    if full and (out_dir / (bundle_name(release) + ".zip")).resolve() == Path(base).resolve():
        raise ValueError(f"{base}: the month-end full file would overwrite the base; write to another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = _Gen(derive_seed(seed, "rows"), release, b.widths["npidata"])
    changer = Changer(gen, b.widths["npidata"], b.widths["othername"])
    n_extra = max(1, round(SHARE_REPORT_ONLY * weekly_rows))
    # The sample does not depend on ``report``/``full``: the weeklies are the same with or without them.
    need = weeks * (weekly_rows - round(SHARE_NEW * weekly_rows)) + n_extra + 16
    month = MonthState(b, gen, need, seed, progress)
    stats = MonthStats(base=b.bundle.source, base_release=b.end, release=release)

    for k in range(weeks):
        start = b.end + timedelta(days=1 + 7 * k)
        end = start + timedelta(days=6)
        name = f"NPPES_Data_Dissemination_{start:%m%d%y}_{end:%m%d%y}_Weekly_V2.zip"
        week = WeekStats(path=out_dir / name, start=start, end=end)
        changer.set_week(start)
        order = _week(month, changer, week, weekly_rows)
        _write_weekly(month, week, order)
        stats.weeklies.append(week)
        if progress is not None:
            progress(f"week {k + 1}", week.rows)

    if report:  # report-only deactivations, dated within the last week
        for _ in range(n_extra):
            got = month.take_fresh()
            if got is None:
                break
            fields, _children, index = got
            month.add(fields[0], changer.stub(fields[0]), {}, index)
            stats.report_extra += 1
    if report:
        entries = month.final_stubs()
        stats.report = write_report(out_dir, release, entries)
        stats.report_rows = len(entries)
        if progress is not None:
            progress("report", len(entries))
    if full:
        stats.full, stats.full_rows = _write_full(month, release, out_dir, progress)
    return stats


def write_weekly(base: Path, out_dir: Path, rows: int, seed: int = 0) -> WeekStats:
    """One weekly bundle of ``rows`` npidata rows after ``base`` (no report, no full file)."""
    return write_month(
        base, out_dir, weeks=1, weekly_rows=rows, seed=seed, report=False, full=False
    ).weeklies[0]
