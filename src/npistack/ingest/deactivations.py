"""Monthly deactivation reports.

**Deactivation reports** list deactivated NPIs with their dates. A listed NPI becomes a deactivated
record exactly as CMS publishes one (the NPI and its deactivation date only), unless the store
already has it deactivated on that date, or reactivated on or after that date (the report is
older than that reactivation).
"""

from __future__ import annotations

import time
from pathlib import Path

from npistack.errors import LoadError
from npistack.ingest.apply import already_applied, write_decisions
from npistack.ingest.changeset import Release, compare
from npistack.ingest.pool import gc_paused
from npistack.ingest.reports import FileReport, LoadSummary, ProgressFn
from npistack.records.document import add_deactivated, checked_npi
from npistack.records.rows import BlockResult, ProviderRows
from npistack.storage.base import SqlStore


def apply_deactivations(path: Path, store: SqlStore, *, progress: ProgressFn | None = None) -> LoadSummary:
    """Apply a monthly deactivation report (see the module docstring for the rules)."""
    from npistack.nppes.deactivation import open_report

    t_start = time.perf_counter()
    report = open_report(path)
    source = str(report.source)
    release = report.release_date.isoformat() if report.release_date else None
    done = already_applied(store, "deactivation", "report", source, release, report.checksum, t_start)
    if done is not None:
        return done
    if store.current_load() is None:
        raise LoadError(f"{source}: this is a deactivation report; load a monthly full file first")
    last = store.get_meta("deactivation_release")
    if last and release and release < last:
        raise LoadError(
            f"{source}: this deactivation report ({release}) is older than the last one applied ({last});"
            " nothing was changed"
        )
    file_report = FileReport("deactivation", report.member, "xlsx", 0, report.checksum[:8])
    load_id = store.begin_apply(
        source=source, kind="deactivation", release_date=release, checksum=report.checksum, files=[]
    )
    try:
        with store.mapped_reads(), gc_paused():
            out = BlockResult("npidata")
            quarantine: list[tuple[str, int, str, str]] = []
            listed: dict[int, str] = {}
            for row in report.rows():
                file_report.rows_read += 1
                if row.problem or not row.date:
                    quarantine.append(
                        (report.member, row.line, row.problem or "no deactivation date", row.raw)
                    )
                    continue
                if int(row.npi) in listed:
                    quarantine.append(
                        (report.member, row.line, f"duplicate NPI {row.npi} in the report", row.raw)
                    )
                    continue
                listed[int(row.npi)] = row.date
                add_deactivated(
                    out,
                    f"{checked_npi(row.npi):010d}",
                    deactivated=row.date,
                    reason="",
                    replacement="",
                    release={"date": release, "loadId": load_id, "line": row.line},
                    line=row.line,
                )
                if progress and file_report.rows_read % 10_000 == 0:
                    progress("deactivation", 10_000, 0)
            incoming = {p.npi: ProviderRows(p) for p in out.providers}
            store.begin()
            stale = _reactivated_since(store, listed)
            for npi in stale:
                incoming.pop(npi, None)
            timings: dict[str, float] = {"read_s": round(time.perf_counter() - t_start, 3)}
            t0 = time.perf_counter()
            decisions = compare(store, [incoming[n] for n in sorted(incoming)])
            timings["decide_s"] = round(time.perf_counter() - t0, 3)
            release_ = Release(load_id, release, "deactivation")
            outcome = write_decisions(store, load_id, len(incoming), decisions, release_, quarantine, timings)
            if stale:
                outcome += f"; {len(stale):,} skipped (reactivated on or after the report's date)"
            file_report.rows_quarantined = len(quarantine)
            file_report.rows_loaded = file_report.rows_read - len(quarantine)
            file_report.seconds = round(time.perf_counter() - t_start, 3)
            if release:
                store.set_meta("deactivation_release", release)
            store.mark_applied(
                load_id,
                files=[file_report.as_dict()],
                timings=timings,
                rows_read=file_report.rows_read,
                rows_loaded=file_report.rows_loaded,
                rows_quarantined=len(quarantine),
                message=outcome,
            )
        store.commit()
    except BaseException as e:
        msg = "interrupted by the user" if isinstance(e, KeyboardInterrupt) else (str(e) or type(e).__name__)
        store.fail_apply(load_id, msg, [file_report.as_dict()])
        raise
    store.end_apply()
    return LoadSummary(
        load_id,
        "succeeded",
        source,
        release,
        report.checksum,
        [file_report],
        time.perf_counter() - t_start,
        message=outcome,
    )


def _reactivated_since(store: SqlStore, listed: dict[int, str]) -> set[int]:
    """Listed NPIs the store has active with a reactivation on or after the listed date."""
    out: set[int] = set()
    active = store.active_among(sorted(listed))
    for i in range(0, len(active), 500):
        for sp in store.get_stored(active[i : i + 500]):
            reactivated = sp.doc.get("reactivationDate")
            if reactivated and reactivated >= listed[int(sp.doc["npi"])]:
                out.add(int(sp.doc["npi"]))
    return out
