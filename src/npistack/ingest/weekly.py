"""Weekly update bundles.

**Weekly bundles** hold complete rows for every NPI created, changed, deactivated or reactivated
that week (the same four files as a monthly). Each NPI in the weekly ``npidata`` file is replaced as
a whole: its document and *all* its child sets (secondary practice locations, other names,
endpoints) become exactly what the bundle holds, so anything CMS removed is gone. A child row whose
NPI has no ``npidata`` row in the same bundle is quarantined (weekly child rows travel with their
provider). Only real changes are written: an NPI whose content is unchanged is left alone.

**Order.** Weekly bundles apply in release order: a bundle is refused when its week ends on or
before the release the data is current to (``data_release``), and when weeks are missing between
the two (``--force`` applies it anyway). Applying the same bundle again is a no-op. A deactivation
report older than the last one applied is refused.

**Speed** (docs/benchmarks.md). A weekly bundle's cost is CPU on both cores, then SQLite's writes.
While worker processes transform the rows, read the stored documents and compare each new one with
the stored one (which also tells which index rows change, ``records.index.rows_change``), this process
adds the child files' rows and completes the decisions (``_Gather``), and a thread makes room
in the WAL for the writes (``SqlStore.log_room``); then the changed providers
are written table by table in NPI order, with their versions, changes and webhook deliveries, and
committed. The transaction holds the write lock from the start, so what was read is what is
replaced.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import Any

from npistack.errors import LoadError
from npistack.ingest.apply import already_applied, commit_freeing, write_decisions
from npistack.ingest.changeset import (
    Decision,
    DocSide,
    Release,
    StoredJson,
    StoredRead,
    complete,
    doc_side,
    read_doc_sides,
    read_stored,
    record,
)
from npistack.ingest.pool import INLINE_BELOW_BYTES, BlockPool, gc_paused
from npistack.ingest.reports import FileReport, LoadLimits, LoadSummary, ProgressFn
from npistack.nppes.layout import FILE_KINDS
from npistack.nppes.reader import Bundle, iter_blocks, read_header, read_layouts, read_lines
from npistack.records.rows import BlockResult, Context, ExtraRow, ProviderRows
from npistack.storage.base import SqlStore
from npistack.storage.changes import ChangeCounts, active_subscriptions

# The log (WAL) a weekly apply writes, per byte of its npidata file: 763 MB for the 41.7 MB of a
# 35k-row weekly on a 1M store (docs/benchmarks.md). ``SqlStore.log_room`` makes room for it.
WAL_PER_INPUT_BYTE = 18


class _Gather:
    """Groups a weekly bundle's transformed rows by NPI and decides each provider as its
    ``npidata`` block arrives, while the worker processes transform the next blocks.

    The child files (secondary locations, other names, endpoints) are transformed first, so that a
    provider's content is complete when its ``npidata`` row arrives. Before an ``npidata`` block is
    sent to a worker, the NPIs it most likely holds (the first field of each line) are noted; the
    worker reads what the store holds of them (``changeset.read_doc_sides``: SQLite stores, with
    worker processes) or this process reads it and sends it along (PostgreSQL, or one process), and
    the worker compares each transformed document with the stored one, which tells the changes
    and which of the provider's index rows change. When the block is back, this process adds the
    child files' rows and completes the decisions (``complete``)."""

    def __init__(
        self,
        store: SqlStore,
        *,
        workers_read: bool = False,
        decided: Callable[[list[Decision]], None] | None = None,
    ) -> None:
        self.store = store
        self.workers_read = workers_read  # worker processes read the stored documents themselves
        self.decided = decided  # called with each npidata block's decisions
        self.children: dict[int, list[tuple[str, Any]]] = {}  # npi -> (attribute, row)
        self.child_lines: list[tuple[str, ExtraRow]] = []  # (file name, extras row)
        self.incoming: dict[int, ProviderRows] = {}
        self.refused: dict[str, list[tuple[int, str]]] = {}  # per file, lines refused afterwards
        self.decisions: list[Decision] = []
        self.read: set[int] = set()  # NPIs whose stored records were read (if they exist)
        self.stored: StoredJson = {}

    def prepare(self, kind: str, block: bytes) -> StoredRead | None:
        if kind != "npidata":
            return None
        npis = frozenset(_line_npis(block)) - self.read
        if self.workers_read:
            self.read.update(npis)
            return StoredRead(npis, None, self.store.url)
        return StoredRead(npis, self._read(npis), None)

    def _read(self, npis: Iterable[int]) -> StoredJson:
        ordered = sorted(npis)
        self.read.update(ordered)
        stored = read_stored(self.store, ordered)
        self.stored.update(stored)
        return stored

    def block(self, kind: str, name: str, res: BlockResult, sides: dict[int, DocSide] | None) -> None:
        if kind != "npidata":
            for e in res.extras:
                self.children.setdefault(e.npi, []).append(("extras", e))
                self.child_lines.append((name, e))
            for attr in ("names", "locations"):
                for row in getattr(res, attr):
                    self.children.setdefault(row.npi, []).append((attr, row))
            return
        # transform_block refuses duplicates within a block; here, those of an earlier block.
        block: dict[int, ProviderRows] = {}
        for p in res.providers:
            npi = p.npi
            if npi in self.incoming:
                self.refused.setdefault(name, []).append(
                    (p.line, f"duplicate NPI {npi:010d} (an earlier row of this file has it)")
                )
            else:
                block[npi] = ProviderRows(p)
        for attr in ("names", "taxonomies", "locations"):
            for row in getattr(res, attr):
                inc = block.get(row.npi)
                if inc is not None:
                    getattr(inc, attr).append(row)
        for npi, inc in block.items():
            for attr, row in self.children.get(npi, ()):
                getattr(inc, attr).append(row)
        self.incoming.update(block)
        self._read([n for n in block if n not in self.read])  # lines the guess missed
        sides = sides or {}
        decided: list[Decision] = []
        for npi, inc in block.items():
            side = sides.get(npi) or doc_side(self.stored.get(npi), inc.doc_json)
            d = complete(inc, side)
            if d is not None:
                decided.append(d)
            self.stored.pop(npi, None)
        self.decisions += decided
        if self.decided is not None and decided:
            self.decided(decided)

    def orphans(self) -> None:
        """Refuse the child rows whose NPI has no npidata row in the bundle."""
        for name, e in self.child_lines:
            npi = e.npi
            if npi not in self.incoming:
                self.refused.setdefault(name, []).append(
                    (
                        e.seq,
                        f"NPI {npi:010d} has no npidata row in this weekly bundle"
                        " (weekly child rows are applied with their provider)",
                    )
                )


def _line_npis(block: bytes) -> list[int]:
    """The NPIs a block of npidata lines most likely holds (each line's first field, if it is ten
    digits): a guess that is only used to read ahead."""
    out = []
    for line in block.split(b"\n"):
        npi = line[1:11] if line[:1] == b'"' else line[:10]
        if len(npi) == 10 and npi.isdigit():
            out.append(int(npi))
    return out


def _transform(
    bundle: Bundle,
    layouts: dict[Any, Any],
    reports: list[FileReport],
    ctx: Context,
    runner: BlockPool,
    block_bytes: int,
    progress: ProgressFn | None,
    gather: _Gather,
    quarantined: Callable[[int], None] | None = None,
) -> list[tuple[str, str, BlockResult]]:
    """Transform the files of ``reports``, in that order (worker processes), handing each block to
    ``gather`` as it is sent and as it comes back; ``quarantined(n)`` is told the rows refused so
    far after each block (it raises to stop)."""
    out: list[tuple[str, str, BlockResult]] = []
    refused = 0
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        files = []
        for report in reports:
            df = bundle.files[report.kind]  # type: ignore[index]
            fh = stack.enter_context(df.open())
            read_header(fh, df.name)
            files.append((report.kind, layouts[report.kind][0], iter_blocks(fh, block_bytes)))
        # A wide window: this process reads ahead for the blocks in flight while the workers start.
        blocks = runner.map_files(files, ctx, prepare=gather.prepare, then=read_doc_sides, window=16)  # type: ignore[arg-type]
        for i, res, sides, size in blocks:
            report = reports[i]
            out.append((report.kind, report.name, res))
            report.rows_read += res.rows_read
            gather.block(report.kind, report.name, res, sides)
            refused += res.rows_quarantined
            if quarantined is not None:
                quarantined(refused)
            if progress:
                progress(report.kind, res.rows_read, size)
            report.seconds = round(time.perf_counter() - t0, 3)  # until its last block was back
    return out


def apply_weekly(
    bundle: Bundle,
    store: SqlStore,
    *,
    workers: int = 0,
    nucc_csv: str | None = None,
    block_bytes: int = 1 << 20,
    force: bool = False,
    progress: ProgressFn | None = None,
    limits: LoadLimits | None = None,
) -> LoadSummary:
    """Apply one weekly update bundle (see the module docstring for the rules); it stops past
    ``limits.max_quarantine_rows`` refused rows (the settings' unless given)."""
    t_start = time.perf_counter()
    limits = limits or LoadLimits.from_settings()
    source = str(bundle.source)
    layouts = read_layouts(bundle)
    release = bundle.release_date.isoformat() if bundle.release_date else None
    if release is None:
        raise LoadError(f"{source}: cannot tell the week of this bundle (no date range in its file names)")
    done = already_applied(store, "weekly", "bundle", source, release, bundle.checksum, t_start)
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
        with store.mapped_reads(), store.write_behind(), gc_paused():
            outcome, timings, held = _apply_weekly(
                store,
                bundle,
                load_id,
                release,
                layouts,
                reports,
                workers,
                nucc_csv,
                block_bytes,
                progress,
                lambda n: limits.check_quarantine_rows(source, n),
            )
            store.set_meta("data_release", release)
            store.mark_applied(
                load_id,
                files=[r.as_dict() for r in reports],
                timings=timings,
                rows_read=sum(r.rows_read for r in reports),
                rows_loaded=sum(r.rows_loaded for r in reports),
                rows_quarantined=sum(r.rows_quarantined for r in reports),
                message=outcome,
            )
            commit_freeing(store, held)
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


def _apply_weekly(
    store: SqlStore,
    bundle: Bundle,
    load_id: int,
    release: str,
    layouts: dict[Any, Any],
    reports: list[FileReport],
    workers: int,
    nucc_csv: str | None,
    block_bytes: int,
    progress: ProgressFn | None,
    quarantined: Callable[[int], None] | None = None,
) -> tuple[str, dict[str, float], list[Any]]:
    """Transform, decide and write a weekly bundle in the store's open transaction (the caller
    commits; the third value holds what the load kept in memory, see ``commit_freeing``). The
    worker processes transform the files and compare the documents; meanwhile this process
    completes the decisions of each block (``_Gather``) and records them: versions, changes and
    webhook deliveries are appended to their tables, rows the write phase then need not write, by
    the one core it keeps busy. Then the data tables are written."""
    # The write lock first: what is read now is what the store holds until the commit.
    store.begin()
    npidata = bundle.files.get("npidata")
    with store.log_room(WAL_PER_INPUT_BYTE * (npidata.size if npidata else 0)):
        t_start = time.perf_counter()
        total = sum(df.size for df in bundle.files.values())
        runner = BlockPool((workers or os.cpu_count() or 1) if total >= INLINE_BELOW_BYTES else 1, nucc_csv)
        # Child files first (see _Gather); their progress is shown after npidata's, in file order.
        order = [r for r in reports if r.kind != "npidata"] + [r for r in reports if r.kind == "npidata"]
        later: list[tuple[str, int, int]] = []

        def report_progress(kind: str, rows: int, size: int) -> None:
            if kind != "npidata":
                later.append((kind, rows, size))
            elif progress is not None:
                progress(kind, rows, size)

        ctx = Context(load_id=load_id, release_date=release, nucc_csv=nucc_csv)
        release_ = Release(load_id, release, "weekly")
        subscriptions = active_subscriptions(store)
        counts = ChangeCounts()
        recording = [0.0]

        def record_block(decided: list[Decision]) -> None:
            t = time.perf_counter()
            block = record(store, sorted(decided, key=lambda d: d.npi), release_, subscriptions)
            counts.changes += block.changes
            counts.deliveries += block.deliveries
            recording[0] += time.perf_counter() - t

        gather = _Gather(
            store, workers_read=runner.pool is not None and store.dialect == "sqlite", decided=record_block
        )
        try:
            results = _transform(
                bundle, layouts, order, ctx, runner, block_bytes, report_progress, gather, quarantined
            )
        finally:
            runner.close()
        if progress is not None:
            for item in later:
                progress(*item)
        t0 = time.perf_counter()
        quarantine = _quarantined(bundle, results, gather, reports)
        timings = {"transform_s": round(t0 - t_start, 3), "record_s": round(recording[0], 3)}
        decisions = sorted(gather.decisions, key=lambda d: d.npi)
        outcome = write_decisions(
            store, load_id, len(gather.incoming), decisions, release_, quarantine, timings, recorded=counts
        )
        return outcome, timings, [gather, results, decisions]


def _quarantined(
    bundle: Bundle, results: list[tuple[str, str, BlockResult]], gather: _Gather, reports: list[FileReport]
) -> list[tuple[str, int, str, str]]:
    """The bundle's refused lines, (file, line, reason, raw): those the transform refused and those
    refused afterwards (orphan child rows, duplicate NPIs across blocks); counts them in ``reports``."""
    gather.orphans()
    quarantine: list[tuple[str, int, str, str]] = []
    for _kind, name, res in results:
        quarantine += [(name, ln, reason, raw) for ln, reason, raw in res.quarantine]
    for name, lines in gather.refused.items():
        df = next(f for f in bundle.files.values() if f.name == name)
        quarantine += [(name, ln, reason, raw) for ln, reason, raw in read_lines(df, lines)]
    by_file: dict[str, int] = {}
    for name, *_ in quarantine:
        by_file[name] = by_file.get(name, 0) + 1
    for r in reports:
        r.rows_quarantined = by_file.get(r.name, 0)
        r.rows_loaded = r.rows_read - r.rows_quarantined
    return quarantine
