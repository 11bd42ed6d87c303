"""Load a full NPPES bundle into a store: source → parse/transform (worker processes) → store.

The main process reads line-aligned byte blocks and writes results to the store; worker processes
decode, parse and transform blocks (``transform_block``). At most a few blocks are in flight, so
memory does not grow with the file. Every header is checked before anything is written, so an
unknown layout is refused without touching the store.

Accounting is exact per file: rows read = rows loaded + rows quarantined.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from npistack.errors import LoadError
from npistack.ingest.transform import BlockResult, Context, transform_block
from npistack.nppes.layout import FILE_KINDS, FileKind, Layout, detect_layout
from npistack.nppes.reader import Bundle, decode_block, iter_blocks, open_bundle, read_header
from npistack.storage.base import SqlStore

ProgressFn = Callable[[str, int, int], None]  # (file kind, rows done in this call, bytes done)
INLINE_BELOW_BYTES = 4 << 20  # small bundles are transformed in-process (no worker start-up)


@dataclass
class FileReport:
    kind: str
    name: str
    layout: str
    size: int
    crc32: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LoadSummary:
    load_id: int
    status: str  # succeeded, unchanged
    source: str
    release_date: str | None
    checksum: str
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)


@dataclass(frozen=True)
class LoadLimits:
    """What one load may do before it is refused or stopped (docs/ingest.md, "Guards").

    ``max_removed_share`` and ``max_quarantine_share``: a monthly full file replacing a store that
    has providers is refused (nothing changed) when it would remove more than this share of them, or
    when more than this share of its rows is quarantined, unless forced (``check_full_load``).
    ``max_quarantine_rows``: a load that quarantines more rows than this is stopped, forced or not.
    """

    max_removed_share: float = 0.05
    max_quarantine_share: float = 0.01
    max_quarantine_rows: int = 100_000

    @classmethod
    def from_settings(cls) -> LoadLimits:
        from npistack.settings import get_settings

        s = get_settings()
        return cls(
            max_removed_share=s.load_max_removed_share,
            max_quarantine_share=s.load_max_quarantine_share,
            max_quarantine_rows=s.load_max_quarantine_rows,
        )

    def check_quarantine_rows(self, source: str, quarantined: int) -> None:
        """Stop a load that has quarantined more than ``max_quarantine_rows`` rows (LoadError)."""
        if quarantined > self.max_quarantine_rows:
            raise LoadError(
                f"{source}: more than {self.max_quarantine_rows:,} rows quarantined"
                " (NPISTACK_LOAD_MAX_QUARANTINE_ROWS); the load was stopped and nothing was changed"
                " (is this really an NPPES file?)"
            )

    def check_full_load(
        self, source: str, *, providers: int, removed: int, rows_read: int, rows_quarantined: int
    ) -> None:
        """Refuse (LoadError, one line) a full load over a store holding ``providers`` providers
        that would remove ``removed`` of them, or quarantine ``rows_quarantined`` of its
        ``rows_read`` rows, past this guard's shares. A store without providers is never refused."""
        if providers <= 0:
            return
        why: list[str] = []
        if removed / providers > self.max_removed_share:
            why.append(
                f"it would remove {removed:,} of the store's {providers:,} providers"
                f" ({_pct(removed / providers)}; NPISTACK_LOAD_MAX_REMOVED_SHARE allows"
                f" {_pct(self.max_removed_share)})"
            )
        if rows_read and rows_quarantined / rows_read > self.max_quarantine_share:
            why.append(
                f"{rows_quarantined:,} of its {rows_read:,} rows were quarantined"
                f" ({_pct(rows_quarantined / rows_read)}; NPISTACK_LOAD_MAX_QUARANTINE_SHARE allows"
                f" {_pct(self.max_quarantine_share)})"
            )
        if why:
            raise LoadError(
                f"{source}: refused this monthly file: {' and '.join(why)}; nothing was changed;"
                " use --force to load it anyway"
            )


def _pct(share: float) -> str:
    return f"{share * 100:.{0 if share * 100 == int(share * 100) else 2}f}%"


# -- worker side -------------------------------------------------------------------------------


@cache
def _layout_for(kind: FileKind, header: tuple[str, ...]) -> Layout:
    return detect_layout(kind, header, kind)


def _work(
    kind: FileKind, header: tuple[str, ...], start_line: int, block: bytes, ctx: Context
) -> BlockResult:
    layout = _layout_for(kind, header)
    return transform_block(kind, layout.remap, layout.width, start_line, decode_block(block), ctx)


def _work_then(
    kind: FileKind,
    header: tuple[str, ...],
    start_line: int,
    block: bytes,
    ctx: Context,
    then: Callable[[list[tuple[Any, ...]], Any], Any] | None,
    extra: Any,
) -> tuple[BlockResult, Any]:
    res = _work(kind, header, start_line, block, ctx)
    return res, (then(res.providers, extra) if then is not None and extra is not None else None)


def _warm(nucc_csv: str | None) -> None:
    """Build per-process lookup tables before the first block arrives, then turn the cyclic
    garbage collector off for the worker's life (one load): transforming a block creates no
    reference cycles (its objects are freed by reference counting as soon as the result is sent),
    and the collections walked the lookup tables and each block's rows for nothing, 10-15% of a
    worker's CPU. ``tests/test_ingest.py`` checks that a block leaves nothing to collect."""
    from npistack.normalize.geo import zip_table
    from npistack.nppes.taxonomy import load_nucc

    zip_table()
    load_nucc(nucc_csv or None)
    gc.freeze()
    gc.disable()


# -- main side ---------------------------------------------------------------------------------


def _fork_server() -> Any:
    """The worker processes' context: forked from a server that imports the transform and builds its
    default lookup tables once, for every worker (``npistack.ingest.prewarm``)."""
    context = get_context("forkserver")
    context.set_forkserver_preload(["npistack.ingest.prewarm", __name__])
    return context


@contextlib.contextmanager
def _main_not_needed() -> Iterator[None]:
    """While worker processes start: the main module's name and path hidden from multiprocessing.

    A process forked from the server runs the parent's main module again first (as ``__mp_main__``,
    by name for ``python -m npistack.cli``, by path for the ``npistack`` script, which the server
    then imports ahead), for pickled objects that might live there. The workers need nothing
    from it (what they run is in this package), and the command line's imports cost ~0.35 s of
    CPU per worker, or as much before the server forks its first worker. Restored afterwards."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)


def start_fork_server() -> None:
    """Start the workers' fork server now: it takes ~0.2 s to import what it preloads, time this
    process spends opening the bundle and the store meanwhile. A no-op when it runs already."""
    from multiprocessing import forkserver

    _fork_server()
    with _main_not_needed():
        forkserver.ensure_running()


class _Runner:
    """Runs ``_work`` inline or on a process pool, keeping results in order and in bounded flight."""

    def __init__(self, workers: int, nucc_csv: str | None) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.workers = workers
        self._hidden = contextlib.ExitStack()
        if workers > 1:
            # Workers start at the first submits, and again if one dies: the main module stays hidden
            # until the pool is shut down.
            self._hidden.enter_context(_main_not_needed())
            self.pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=_fork_server(), initializer=_warm, initargs=(nucc_csv,)
            )

    def map(
        self, kind: FileKind, header: tuple[str, ...], blocks: Iterator[tuple[int, bytes]], ctx: Context
    ) -> Iterator[tuple[BlockResult, int]]:
        if self.pool is None:
            for start, block in blocks:
                yield _work(kind, header, start, block, ctx), len(block)
            return
        window: deque[tuple[Future[BlockResult], int]] = deque()
        limit = self.workers * 2 + 1
        for start, block in blocks:
            window.append((self.pool.submit(_work, kind, header, start, block, ctx), len(block)))
            if len(window) >= limit:
                fut, size = window.popleft()
                yield fut.result(), size
        while window:
            fut, size = window.popleft()
            yield fut.result(), size

    def map_files(
        self,
        files: Sequence[tuple[FileKind, tuple[str, ...], Iterator[tuple[int, bytes]]]],
        ctx: Context,
        *,
        prepare: Callable[[FileKind, bytes], Any] | None = None,
        then: Callable[[list[tuple[Any, ...]], Any], Any] | None = None,
        window: int = 0,
    ) -> Iterator[tuple[int, BlockResult, Any, int]]:
        """``map`` over several files in turn, with one window across them (the first blocks of a
        file are sent while the last ones of the file before are transformed); ``window``: at most
        this many blocks in flight (at least two per worker, and one).

        ``prepare(kind, block)`` runs in this process before a block is sent; when it returns
        something, the worker calls ``then(providers, it)`` on the transformed block's providers
        (``then`` must be importable, a module's function). Yields (index of the file, result,
        what ``then`` returned or None, block size).
        """
        jobs = (
            (i, kind, header, start, block)
            for i, (kind, header, blocks) in enumerate(files)
            for start, block in blocks
        )
        if self.pool is None:
            for i, kind, header, start, block in jobs:
                extra = prepare(kind, block) if prepare is not None else None
                res, after = _work_then(kind, header, start, block, ctx, then, extra)
                yield i, res, after, len(block)
            return
        sent: deque[tuple[int, Future[tuple[BlockResult, Any]], int]] = deque()
        limit = max(window, self.workers * 2 + 1)
        for i, kind, header, start, block in jobs:
            extra = prepare(kind, block) if prepare is not None else None
            sent.append(
                (i, self.pool.submit(_work_then, kind, header, start, block, ctx, then, extra), len(block))
            )
            if len(sent) >= limit:
                j, fut, size = sent.popleft()
                yield j, *fut.result(), size
        while sent:
            j, fut, size = sent.popleft()
            yield j, *fut.result(), size

    def close(self) -> None:
        try:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._hidden.close()


def check_layouts(bundle: Bundle) -> dict[FileKind, tuple[tuple[str, ...], Layout]]:
    """Read and recognise every data file's header (raises LayoutError before any write)."""
    out: dict[FileKind, tuple[tuple[str, ...], Layout]] = {}
    for kind in FILE_KINDS:
        df = bundle.files.get(kind)
        if df is None:
            continue
        with df.open() as fh:
            header = tuple(read_header(fh, df.name))
        out[kind] = (header, detect_layout(kind, header, df.name))
    return out


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
    folder or CSV), a weekly update bundle, or a deactivation report (``npistack.ingest.apply``).

    A full bundle loaded into a store that has data is reconciled with it: the changes it makes are
    recorded (history, change feed, webhook outbox) in the same transaction as the swap. Before
    that, it is refused when it would remove or quarantine too much (``LoadLimits.check_full_load``,
    skipped with ``force``); any load stops past ``limits.max_quarantine_rows`` quarantined rows.
    ``limits``: the settings' (``LoadLimits.from_settings``) unless given.
    """
    from npistack.ingest import apply
    from npistack.nppes.deactivation import is_deactivation_report

    t_start = time.perf_counter()
    limits = limits or LoadLimits.from_settings()
    if is_deactivation_report(Path(path)):
        return apply.apply_deactivations(Path(path), store, progress=progress)
    bundle = open_bundle(path)
    if bundle.kind == "weekly":
        if workers != 1 and sum(df.size for df in bundle.files.values()) >= INLINE_BELOW_BYTES:
            start_fork_server()
        return apply.apply_weekly(
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
    layouts = check_layouts(bundle)
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
    runner = _Runner(n_workers if total >= INLINE_BELOW_BYTES else 1, nucc_csv)
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
                store.add_quarantine(load_id, df.name, _read_back(df, deferred))
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
            before_swap=(lambda: apply.reconcile_full(store, load_id, release, guard=guard))
            if reconcile
            else None,
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


def _read_back(df: Any, deferred: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """The raw text of the given lines, for quarantine rows decided after transformation."""
    wanted = dict(deferred)
    out: list[tuple[int, str, str]] = []
    with df.open() as fh:
        for line_no, raw in enumerate(fh, start=1):
            if line_no in wanted:
                out.append((line_no, wanted.pop(line_no), decode_block(raw).rstrip("\r\n")))
                if not wanted:
                    break
    return out
