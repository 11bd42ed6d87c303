"""Load a full NPPES bundle into a store: source → parse/transform (worker processes) → store.

The main process reads line-aligned byte blocks and writes results to the store; worker processes
decode, parse and transform blocks (``transform_block``). At most a few blocks are in flight, so
memory does not grow with the file. Every header is checked before anything is written, so an
unknown layout is refused without touching the store.

Accounting is exact per file: rows read = rows loaded + rows quarantined.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from npistack.errors import LoadError
from npistack.ingest.deactivations import apply_deactivations
from npistack.ingest.pool import INLINE_BELOW_BYTES, BlockPool, start_fork_server
from npistack.ingest.reconcile import reconcile_full
from npistack.ingest.reports import FileReport, LoadLimits, LoadSummary, ProgressFn
from npistack.ingest.weekly import apply_weekly
from npistack.nppes.layout import FILE_KINDS, FileKind
from npistack.nppes.reader import iter_blocks, open_bundle, read_header, read_layouts, read_lines
from npistack.records.rows import Context
from npistack.storage.base import SqlStore


def ingest(
    path: str | os.PathLike[str],
    store: SqlStore,
    *,
    workers: int = 0,
    nucc_csv: str | None = None,
    block_bytes: int = 1 << 20,
    force: bool = False,
    progress: ProgressFn | None = None,
    limits: LoadLimits | None = None,
) -> LoadSummary:
    """Load what ``path`` holds into ``store``, atomically: a monthly full replacement bundle (zip,
    folder or CSV), a weekly update bundle, or a deactivation report (``npistack.ingest.weekly``, ``npistack.ingest.deactivations``).

    A full bundle loaded into a store that has data is reconciled with it: the changes it makes are
    recorded (history, change feed, webhook outbox) in the same transaction as the swap. Before
    that, it is refused when it would remove or quarantine too much (``LoadLimits.check_full_load``,
    skipped with ``force``); any load stops past ``limits.max_quarantine_rows`` quarantined rows.
    ``limits``: the settings' (``LoadLimits.from_settings``) unless given.
    """
    from npistack.nppes.deactivation import is_deactivation_report

    t_start = time.perf_counter()
    limits = limits or LoadLimits.from_settings()
    if is_deactivation_report(Path(path)):
        return apply_deactivations(Path(path), store, progress=progress)
    bundle = open_bundle(path)
    if bundle.kind == "weekly":
        if workers != 1 and sum(df.size for df in bundle.files.values()) >= INLINE_BELOW_BYTES:
            start_fork_server()
        return apply_weekly(
            bundle,
            store,
            workers=workers,
            nucc_csv=nucc_csv,
            block_bytes=block_bytes,
            force=force,
            progress=progress,
            limits=limits,
        )
    if "npidata" not in bundle.files:
        raise LoadError(f"{bundle.source}: a full load needs the npidata_pfile data file")
    layouts = read_layouts(bundle)
    release = bundle.release_date.isoformat() if bundle.release_date else None
    checksum = bundle.checksum
    current = store.current_load()
    if current is not None and current.checksum == checksum and not force:
        load_id = store.record_unchanged(
            source=str(bundle.source),
            kind=bundle.kind,
            release_date=release,
            checksum=checksum,
            same_as=current.id,
        )
        return LoadSummary(
            load_id,
            "unchanged",
            str(bundle.source),
            release,
            checksum,
            seconds=time.perf_counter() - t_start,
            message=f"already loaded: same content as load #{current.id}; nothing changed",
        )

    data_release = store.data_release()
    if release and data_release and release < data_release and not force:
        raise LoadError(
            f"{bundle.source}: this monthly file (data to {release}) is older than the data in the store"
            f" (current to {data_release}); nothing was changed (use --force to load it anyway)"
        )
    reconcile = current is not None
    reports = [
        FileReport(kind, df.name, layouts[kind][1].variant, df.size, f"{df.crc32:08x}")
        for kind, df in ((k, bundle.files[k]) for k in FILE_KINDS if k in bundle.files)
    ]
    load_id = store.begin_load(
        source=str(bundle.source),
        kind=bundle.kind,
        release_date=release,
        checksum=checksum,
        files=[r.as_dict() for r in reports],
    )
    ctx = Context(load_id=load_id, release_date=release, nucc_csv=nucc_csv)
    total = sum(df.size for df in bundle.files.values())
    n_workers = workers or (os.cpu_count() or 1)
    runner = BlockPool(n_workers if total >= INLINE_BELOW_BYTES else 1, nucc_csv)
    timings: dict[str, float] = {}
    try:
        for report in reports:
            kind: FileKind = report.kind  # type: ignore[assignment]
            t0 = time.perf_counter()
            header = layouts[kind][0]
            df = bundle.files[kind]
            deferred: list[tuple[int, str]] = []
            with df.open() as fh:
                read_header(fh, df.name)
                for result, size in runner.map(kind, header, iter_blocks(fh, block_bytes), ctx):
                    written = store.write_block(load_id, df.name, result)
                    deferred.extend(written.deferred)
                    report.rows_read += written.rows_read
                    report.rows_loaded += written.rows_loaded
                    report.rows_quarantined += written.rows_quarantined
                    limits.check_quarantine_rows(str(bundle.source), sum(r.rows_quarantined for r in reports))
                    if progress:
                        progress(kind, written.rows_read, size)
            if deferred:
                store.add_quarantine(load_id, df.name, read_lines(df, deferred))
            report.seconds = round(time.perf_counter() - t0, 3)
            timings[f"{kind}_s"] = report.seconds

        def guard(providers: int, removed: int) -> None:
            # Inside the swap transaction, before any change or webhook delivery is recorded: a
            # refusal rolls it back, the old data keeps serving.
            if not force:
                limits.check_full_load(
                    str(bundle.source),
                    providers=providers,
                    removed=removed,
                    rows_read=sum(r.rows_read for r in reports),
                    rows_quarantined=sum(r.rows_quarantined for r in reports),
                )

        outcome = store.finish_load(
            load_id,
            [r.as_dict() for r in reports],
            timings,
            before_swap=(lambda: reconcile_full(store, load_id, release, guard=guard)) if reconcile else None,
            release_date=release,
        )
    except BaseException as e:
        msg = str(e) or type(e).__name__
        if isinstance(e, KeyboardInterrupt):
            msg = "interrupted by the user"
        store.fail_load(load_id, msg, [r.as_dict() for r in reports])
        raise
    finally:
        runner.close()
    message = ""
    if reconcile:
        kinds = outcome.get("changes") or {}
        order = ("created", "updated", "deactivated", "reactivated", "removed")
        message = ", ".join(f"{kinds[k]:,} {k}" for k in order if k in kinds) or "no changes"
        if outcome.get("deliveries"):
            message += f"; {outcome['deliveries']:,} webhook deliveries queued"
    return LoadSummary(
        load_id,
        "succeeded",
        str(bundle.source),
        release,
        checksum,
        reports,
        time.perf_counter() - t_start,
        message=message,
    )
