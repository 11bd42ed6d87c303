"""Incremental loads: weekly update bundles and monthly deactivation reports, and the
reconciliation of a new monthly full file with the store.

**Weekly bundles** hold complete rows for every NPI created, changed, deactivated or reactivated
that week (the same four files as a monthly). Each NPI in the weekly ``npidata`` file is replaced as
a whole: its document and *all* its child sets (secondary practice locations, other names,
endpoints) become exactly what the bundle holds, so anything CMS removed is gone. A child row whose
NPI has no ``npidata`` row in the same bundle is quarantined (weekly child rows travel with their
provider). Only real changes are written: an NPI whose content is unchanged is left alone.

**Deactivation reports** list deactivated NPIs with their dates. A listed NPI becomes a deactivated
record exactly as CMS publishes one (the NPI and its deactivation date only), unless the store
already has it deactivated on that date, or reactivated on or after that date (the report is
older than that reactivation).

**Order.** Weekly bundles apply in release order: a bundle is refused when its week ends on or
before the release the data is current to (``data_release``), and when weeks are missing between
the two (``--force`` applies it anyway). Applying the same bundle again is a no-op. A deactivation
report older than the last one applied is refused.

**Atomicity.** An incremental load writes its data, the provider versions, the change feed and the
webhook outbox in one transaction: a failure or a kill leaves the store as it was, and the
interrupted load is recorded as failed by the next run.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from npistack.errors import LoadError
from npistack.ingest.changeset import Incoming, Release, decide, load_stored, record, removals, replace_rows
from npistack.ingest.diff import strip_release
from npistack.ingest.load import (
    INLINE_BELOW_BYTES,
    FileReport,
    LoadSummary,
    ProgressFn,
    _read_back,
    _Runner,
    check_layouts,
)
from npistack.ingest.transform import NPIDATA_WIDTH, BlockResult, Context, transform_provider
from npistack.nppes.layout import FILE_KINDS
from npistack.nppes.reader import Bundle, iter_blocks, read_header
from npistack.storage.base import SqlStore

DEACTIVATED = 39  # canonical npidata column of the NPI Deactivation Date


def _collect(
    bundle: Bundle, results: list[tuple[str, str, BlockResult]]
) -> tuple[dict[int, Incoming], dict[str, list[tuple[int, str]]]]:
    """Group transformed rows by NPI. Returns the providers and, per file, lines refused afterwards."""
    incoming: dict[int, Incoming] = {}
    refused: dict[str, list[tuple[int, str]]] = {}
    for kind, name, res in results:
        if kind != "npidata":
            continue
        # transform_block refuses duplicates within a block; here, those of an earlier block.
        dups = {int(p[0]) for p in res.providers if int(p[0]) in incoming}
        for p in res.providers:
            npi = int(p[0])
            if npi in dups:
                refused.setdefault(name, []).append(
                    (int(p[-1]), f"duplicate NPI {npi:010d} (an earlier row of this file has it)")
                )
            else:
                incoming[npi] = Incoming(p)
        for attr in ("names", "taxonomies", "locations"):
            for row in getattr(res, attr):
                if int(row[0]) not in dups:
                    getattr(incoming[int(row[0])], attr).append(row)
    for kind, name, res in results:
        if kind == "npidata":
            continue
        orphans = sorted({int(e[0]) for e in res.extras if int(e[0]) not in incoming})
        for e in res.extras:
            npi = int(e[0])
            if npi in incoming:
                incoming[npi].extras.append(e)
            else:
                refused.setdefault(name, []).append(
                    (
                        int(e[2]),
                        f"NPI {npi:010d} has no npidata row in this weekly bundle"
                        " (weekly child rows are applied with their provider)",
                    )
                )
        skip = set(orphans)
        for attr in ("names", "locations"):
            for row in getattr(res, attr):
                if int(row[0]) not in skip:
                    getattr(incoming[int(row[0])], attr).append(row)
    return incoming, refused


def _transform(
    bundle: Bundle,
    layouts: dict[Any, Any],
    reports: list[FileReport],
    ctx: Context,
    workers: int,
    nucc_csv: str | None,
    block_bytes: int,
    progress: ProgressFn | None,
) -> list[tuple[str, str, BlockResult]]:
    total = sum(df.size for df in bundle.files.values())
    n_workers = workers or (os.cpu_count() or 1)
    runner = _Runner(n_workers if total >= INLINE_BELOW_BYTES else 1, nucc_csv)
    out: list[tuple[str, str, BlockResult]] = []
    try:
        for report in reports:
            kind = report.kind
            t0 = time.perf_counter()
            df = bundle.files[kind]  # type: ignore[index]
            with df.open() as fh:
                read_header(fh, df.name)
                for res, size in runner.map(kind, layouts[kind][0], iter_blocks(fh, block_bytes), ctx):  # type: ignore[arg-type]
                    out.append((kind, df.name, res))
                    report.rows_read += res.rows_read
                    if progress:
                        progress(kind, res.rows_read, size)
            report.seconds = round(time.perf_counter() - t0, 3)
    finally:
        runner.close()
    return out


def _already_applied(
    store: SqlStore, kind: str, what: str, source: str, release: str | None, checksum: str, t_start: float
) -> LoadSummary | None:
    """A no-op summary (recorded as an unchanged load) when the same content was applied before."""
    same = store.find_load(checksum, kind)
    if same is None:
        return None
    load_id = store.record_unchanged(
        source=source, kind=kind, release_date=release, checksum=checksum, same_as=same.id
    )
    return LoadSummary(
        load_id,
        "unchanged",
        source,
        release,
        checksum,
        seconds=time.perf_counter() - t_start,
        message=f"already applied: same {what} as load #{same.id}; nothing changed",
    )


def apply_weekly(
    bundle: Bundle,
    store: SqlStore,
    *,
    workers: int = 0,
    nucc_csv: str | None = None,
    block_bytes: int = 1 << 20,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> LoadSummary:
    """Apply one weekly update bundle (see the module docstring for the rules)."""
    t_start = time.perf_counter()
    source = str(bundle.source)
    layouts = check_layouts(bundle)
    release = bundle.release_date.isoformat() if bundle.release_date else None
    if release is None:
        raise LoadError(f"{source}: cannot tell the week of this bundle (no date range in its file names)")
    done = _already_applied(store, "weekly", "bundle", source, release, bundle.checksum, t_start)
    if done is not None:
        return done
    if store.current_load() is None:
        raise LoadError(f"{source}: this is a weekly update; load a monthly full file first")
    current = store.data_release()
    if current and release <= current:
        raise LoadError(
            f"{source}: this weekly bundle (week ending {release}) is not newer than the data"
            f" (current to {current}); weekly bundles apply in release order, so nothing was changed"
        )
    main = bundle.files.get("npidata") or next(iter(bundle.files.values()))
    if current and main.start and not force:
        start = date(int(main.start[:4]), int(main.start[4:6]), int(main.start[6:]))
        if start > date.fromisoformat(current) + timedelta(days=1):
            raise LoadError(
                f"{source}: weeks are missing between the data ({current}) and this bundle (from"
                f" {start.isoformat()}); apply the missing weekly bundles first, load a newer monthly"
                " file, or use --force"
            )
    reports = [
        FileReport(kind, df.name, layouts[kind][1].variant, df.size, f"{df.crc32:08x}")
        for kind, df in ((k, bundle.files[k]) for k in FILE_KINDS if k in bundle.files)
    ]
    files = [r.as_dict() for r in reports]
    load_id = store.begin_apply(
        source=source, kind="weekly", release_date=release, checksum=bundle.checksum, files=files
    )
    try:
        ctx = Context(load_id=load_id, release_date=release, nucc_csv=nucc_csv)
        results = _transform(bundle, layouts, reports, ctx, workers, nucc_csv, block_bytes, progress)
        t0 = time.perf_counter()
        incoming, refused = _collect(bundle, results)
        quarantine: list[tuple[str, int, str, str]] = []
        for _kind, name, res in results:
            quarantine += [(name, ln, reason, raw) for ln, reason, raw in res.quarantine]
        for name, lines in refused.items():
            df = next(f for f in bundle.files.values() if f.name == name)
            quarantine += [(name, ln, reason, raw) for ln, reason, raw in _read_back(df, lines)]
        by_file: dict[str, int] = {}
        for name, *_ in quarantine:
            by_file[name] = by_file.get(name, 0) + 1
        for r in reports:
            r.rows_quarantined = by_file.get(r.name, 0)
            r.rows_loaded = r.rows_read - r.rows_quarantined
        timings = {"transform_s": round(t0 - t_start, 3)}
        outcome = _write(store, load_id, incoming, Release(load_id, release, "weekly"), quarantine, timings)
        store.set_meta("data_release", release)
        store.mark_applied(
            load_id,
            files=[r.as_dict() for r in reports],
            timings=timings,
            rows_read=sum(r.rows_read for r in reports),
            rows_loaded=sum(r.rows_loaded for r in reports),
            rows_quarantined=len(quarantine),
            message=outcome,
        )
        store._commit()
    except BaseException as e:
        msg = "interrupted by the user" if isinstance(e, KeyboardInterrupt) else (str(e) or type(e).__name__)
        store.fail_apply(load_id, msg, [r.as_dict() for r in reports])
        raise
    store.end_apply()
    return LoadSummary(
        load_id,
        "succeeded",
        source,
        release,
        bundle.checksum,
        reports,
        time.perf_counter() - t_start,
        message=outcome,
    )


def _write(
    store: SqlStore,
    load_id: int,
    incoming: dict[int, Incoming],
    release: Release,
    quarantine: list[tuple[str, int, str, str]],
    timings: dict[str, float],
) -> str:
    """Inside one transaction (left open for the caller to commit): decide, write, record."""
    t0 = time.perf_counter()
    store._begin()
    npis = sorted(incoming)
    old = load_stored(store, npis)
    decisions = decide(old, (incoming[n] for n in npis))
    t1 = time.perf_counter()
    replace_rows(store, decisions)
    t2 = time.perf_counter()
    counts = record(store, decisions, release)
    if quarantine:
        store._bulk_insert(
            "quarantine",
            ("load_id", "file", "line", "reason", "raw"),
            ((load_id, f, ln, reason, raw) for f, ln, reason, raw in quarantine),
        )
    timings.update(
        decide_s=round(t1 - t0, 3), write_s=round(t2 - t1, 3), record_s=round(time.perf_counter() - t2, 3)
    )
    kinds: dict[str, int] = {}
    for d in decisions:
        kinds[d.change_type] = kinds.get(d.change_type, 0) + 1
    parts = [f"{kinds[k]:,} {k}" for k in ("created", "updated", "deactivated", "reactivated") if k in kinds]
    unchanged = len(incoming) - len(decisions)
    summary = ", ".join(parts) or "no changes"
    if unchanged:
        summary += f", {unchanged:,} unchanged"
    if counts.deliveries:
        summary += f"; {counts.deliveries:,} webhook deliveries queued"
    return summary


def stub_row(npi: str, deactivated_iso: str) -> list[str]:
    """A canonical npidata row as CMS publishes a deactivated NPI: the NPI and the date only."""
    row = [""] * NPIDATA_WIDTH
    y, m, d = deactivated_iso.split("-")
    row[0], row[DEACTIVATED] = npi, f"{m}/{d}/{y}"
    return row


def apply_deactivations(path: Path, store: SqlStore, *, progress: ProgressFn | None = None) -> LoadSummary:
    """Apply a monthly deactivation report (see the module docstring for the rules)."""
    from npistack.nppes.deactivation import open_report

    t_start = time.perf_counter()
    report = open_report(path)
    source = str(report.source)
    release = report.release_date.isoformat() if report.release_date else None
    done = _already_applied(store, "deactivation", "report", source, release, report.checksum, t_start)
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
        ctx = Context(load_id=load_id, release_date=release)
        out = BlockResult("npidata")
        quarantine: list[tuple[str, int, str, str]] = []
        listed: dict[int, str] = {}
        for row in report.rows():
            file_report.rows_read += 1
            if row.problem or not row.date:
                quarantine.append((report.member, row.line, row.problem or "no deactivation date", row.raw))
                continue
            if int(row.npi) in listed:
                quarantine.append(
                    (report.member, row.line, f"duplicate NPI {row.npi} in the report", row.raw)
                )
                continue
            listed[int(row.npi)] = row.date
            transform_provider(stub_row(row.npi, row.date), row.line, ctx, out)
            if progress and file_report.rows_read % 10_000 == 0:
                progress("deactivation", 10_000, 0)
        incoming = {int(p[0]): Incoming(p) for p in out.providers}
        store._begin()
        stale = _reactivated_since(store, listed)
        for npi in stale:
            incoming.pop(npi, None)
        timings: dict[str, float] = {"read_s": round(time.perf_counter() - t_start, 3)}
        outcome = _write(
            store, load_id, incoming, Release(load_id, release, "deactivation"), quarantine, timings
        )
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
        store._commit()
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
    npis = sorted(listed)
    for i in range(0, len(npis), 500):
        part = npis[i : i + 500]
        marks = ",".join("?" * len(part))
        active = [
            int(r[0])
            for r in store._query(
                f"SELECT npi FROM providers WHERE npi IN ({marks}) AND status <> 'deactivated'", part
            )
        ]
        for sp in store.get_stored(active):
            reactivated = sp.doc.get("reactivationDate")
            if reactivated and reactivated >= listed[int(sp.doc["npi"])]:
                out.add(int(sp.doc["npi"]))
    return out


def content_keys(store: SqlStore, prefix: str = "") -> dict[int, bytes]:
    """A content fingerprint per NPI of the live (or ``stage_``) tables, read in one pass each."""
    keys: dict[int, bytes] = {}
    for rows in store._stream(f"SELECT npi, doc FROM {prefix}provider_docs"):
        for npi, doc in rows:
            keys[int(npi)] = hashlib.blake2b(strip_release(doc).encode(), digest_size=16).digest()
    extras: dict[int, list[tuple[str, str]]] = {}
    for rows in store._stream(f"SELECT npi, kind, doc FROM {prefix}provider_extras"):
        for npi, kind, doc in rows:
            extras.setdefault(int(npi), []).append((kind, doc))
    for npi, items in extras.items():
        h = hashlib.blake2b(keys.get(npi, b""), digest_size=16)
        for kind, text in sorted(items):
            h.update(b"\x00" + kind.encode() + b"\x01" + text.encode())
        keys[npi] = h.digest()
    return keys


def reconcile_full(store: SqlStore, load_id: int, release: str | None) -> dict[str, Any]:
    """The changes a new monthly full file (staged, not yet swapped in) makes to the live data.

    Runs inside the swap transaction (``finish_load(before_swap=...)``): the versions, changes and
    webhook deliveries it records commit with the swap. NPIs the new file no longer has are
    ``removed``.
    """
    old_keys = content_keys(store)
    new_keys = content_keys(store, "stage_")
    changed = sorted(n for n, k in new_keys.items() if old_keys.get(n) != k)
    gone = sorted(n for n in old_keys if n not in new_keys)
    del old_keys, new_keys
    old = load_stored(store, changed + gone)
    incoming: list[Incoming] = []
    for i in range(0, len(changed), 500):
        for sp in store.get_stored(changed[i : i + 500], prefix="stage_"):
            npi = int(sp.doc["npi"])
            doc_json = orjson.dumps(sp.doc).decode()
            extras = [(npi, kind, seq, orjson.dumps(d).decode()) for seq, (kind, d) in enumerate(sp.extras)]
            incoming.append(Incoming((npi, None, None, None, None, None, doc_json, 0), extras=extras))
    decisions = decide(old, incoming) + removals(old, gone)
    counts = record(store, decisions, Release(load_id, release, "full"))
    kinds: dict[str, int] = {}
    for d in decisions:
        kinds[d.change_type] = kinds.get(d.change_type, 0) + 1
    return {"changes": kinds, "deliveries": counts.deliveries}
