"""The performance machinery of ingest, in one place: the worker processes that parse and
transform blocks, the fork server they start from, and what makes them cheap to start and run.

- **The pool** (``BlockPool``): blocks are transformed inline for a small bundle
  (``INLINE_BELOW_BYTES``), else on a process pool, keeping results in order and in bounded flight
  (``map``, ``map_files``: at most a few blocks in flight, so memory does not grow with the file).
- **The fork server**: workers are forked from a server that has imported this module, and
  through it the transform, and has built the default lookup tables (ZIP centroids, the bundled
  NUCC taxonomy) once, so that every worker starts with them instead of building them before its
  first block (0.13 s each, on the critical path of a weekly apply). A load with its own NUCC
  file builds that one in each worker (``_warm``). ``start_fork_server`` starts it ahead, while
  the caller opens the bundle and the store (``head_start``: the ingest command's first step).
- **The main module hidden** (``_main_not_needed``): a process forked from the server runs the
  parent's main module again first; the workers need nothing from it, and the command line's
  imports cost ~0.35 s of CPU per worker.
- **No cyclic garbage collector in workers** (``_warm``): transforming a block creates no
  reference cycles; collections walked the lookup tables and each block's rows for nothing,
  10-15% of a worker's CPU.
- **Tied to the load's process** (issue 14, item 11): when the process that runs the load dies,
  even by ``kill -9``, the server and its workers exit too. Without this they lived on forever
  under PID 1: each worker holds both ends of the task queue's pipe (so it never reads EOF) and
  the write end of the server's "alive" pipe (so the server never stops either).

  - The server watches the load's process (its parent; a pidfd on Linux, else its parent pid
    polled) from a thread, and exits when it is gone. A thread, not ``PR_SET_PDEATHSIG``: that
    signal comes when the parent *thread* that started the server ends, and the load may run in a
    thread that ends before the process does.
  - Each worker, as soon as the server forks it, asks Linux (``prctl(PR_SET_PDEATHSIG, SIGKILL)``)
    to be killed when the server's forking thread ends, which is when the server ends (it forks
    from its only thread besides the watcher); elsewhere a thread polls its parent pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import select
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from functools import cache
from multiprocessing import forkserver, get_context
from typing import Any

from npistack.nppes.layout import FileKind, Layout, detect_layout
from npistack.nppes.lines import decode_block
from npistack.records.npidata import transform_block
from npistack.records.rows import BlockResult, Context, PackedBlock, ProviderRow

INLINE_BELOW_BYTES = 4 << 20  # small bundles are transformed in-process (no worker start-up)
# Also preloaded by the fork server: the worker side of a weekly apply (``changeset.read_doc_sides``).
_PRELOAD = ["npistack.ingest.pool", "npistack.ingest.changeset"]


# -- worker side -------------------------------------------------------------------------------


@cache
def _layout_for(kind: FileKind, header: tuple[str, ...]) -> Layout:
    return detect_layout(kind, header, kind)


def _work(
    kind: FileKind, header: tuple[str, ...], start_line: int, block: bytes, ctx: Context
) -> BlockResult:
    layout = _layout_for(kind, header)
    return transform_block(kind, layout.remap, layout.width, start_line, decode_block(block), ctx)


def _work_packed(
    kind: FileKind, header: tuple[str, ...], start_line: int, block: bytes, ctx: Context
) -> PackedBlock:
    return _work(kind, header, start_line, block, ctx).pack()


def _work_then(
    kind: FileKind,
    header: tuple[str, ...],
    start_line: int,
    block: bytes,
    ctx: Context,
    then: Callable[[list[ProviderRow], Any], Any] | None,
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
    """The worker processes' context: forked from a server that imports this module, which builds
    the default lookup tables once, for every worker (see the module docstring)."""
    context = get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
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
    _fork_server()
    with _main_not_needed():
        forkserver.ensure_running()


class BlockPool:
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
    ) -> Iterator[tuple[PackedBlock, int]]:
        """Each block transformed and packed for a full load's writer (``records.rows.PackedBlock``),
        in order, with its size."""
        if self.pool is None:
            for start, block in blocks:
                yield _work_packed(kind, header, start, block, ctx), len(block)
            return
        window: deque[tuple[Future[PackedBlock], int]] = deque()
        limit = self.workers * 2 + 1
        for start, block in blocks:
            window.append((self.pool.submit(_work_packed, kind, header, start, block, ctx), len(block)))
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
        then: Callable[[list[ProviderRow], Any], Any] | None = None,
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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during an incremental load: its objects (rows, documents,
    diffs) live until its end anyway, and each full collection walks all of them (seconds in all)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def head_start() -> None:
    """Start the fork server ahead of a load (``start_fork_server``), with this process's private
    file mode first (the server and its workers inherit it). Only a head start: where it cannot
    start, the load says why when it needs it."""
    os.umask(os.umask(0o077) | 0o077)
    with contextlib.suppress(OSError, ValueError):
        start_fork_server()


# -- the fork server tied to the load's process ------------------------------------------------

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_S = 0.25  # how often the parent pid is polled where there is no pidfd / prctl


def _in_fork_server() -> bool:
    """Is this module being imported by ``multiprocessing.forkserver.main`` (the server's preload)?"""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _exit_when_gone(pid: int) -> None:
    """Block until process ``pid`` (this one's parent) has exited, then end this process at once."""
    fd = -1
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(pid)
    if fd >= 0 and os.getppid() == pid:
        select.select([fd], [], [])  # readable once the process has exited
    else:
        stop = threading.Event()
        while os.getppid() == pid:
            stop.wait(POLL_S)
    os._exit(1)


def _watch(pid: int, name: str) -> None:
    threading.Thread(target=_exit_when_gone, args=(pid,), name=name, daemon=True).start()


def _parent_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)`` for this process (Linux); False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _worker_forked(server: int) -> None:
    """In each process the server forks: die with the server."""
    if _parent_death_signal(signal.SIGKILL):
        if os.getppid() != server:  # the server died before the signal was asked for
            os._exit(1)
    else:
        _watch(server, "npistack-parent-watch")


def tie_to_parent() -> None:
    """In the fork server: exit when the load's process does, and make every worker die with the
    server (see the module docstring)."""
    server = os.getpid()
    _watch(os.getppid(), "npistack-parent-watch")
    os.register_at_fork(after_in_child=lambda: _worker_forked(server))


if _in_fork_server():
    tie_to_parent()
    from npistack.normalize.geo import zip_table
    from npistack.nppes.taxonomy import load_nucc

    zip_table()
    load_nucc(None)
