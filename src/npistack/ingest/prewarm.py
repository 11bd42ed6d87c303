"""Imported by the fork server of the transform's worker processes (``load._Runner``): builds the
default lookup tables (ZIP centroids, the bundled NUCC taxonomy) once, in the server, so that every
worker forked from it starts with them instead of building them before its first block (0.13 s
each, on the critical path of a weekly apply). A load with its own NUCC file builds that one in each
worker (``load._warm``).

It also ties the server and its workers to the process that runs the load (issue 14, item 11):
when that process dies, even by ``kill -9``, they exit too. Without this they lived on forever
under PID 1: each worker holds both ends of the task queue's pipe (so it never reads EOF) and the
write end of the server's "alive" pipe (so the server never stops either).

- The server watches the load's process (its parent; a pidfd on Linux, else its parent pid
  polled) from a thread, and exits when it is gone. A thread, not ``PR_SET_PDEATHSIG``: that
  signal comes when the parent *thread* that started the server ends, and the load may run in a
  thread that ends before the process does.
- Each worker, as soon as the server forks it, asks Linux (``prctl(PR_SET_PDEATHSIG, SIGKILL)``)
  to be killed when the server's forking thread ends, which is when the server ends (it forks from
  its only thread besides the watcher); elsewhere a thread polls its parent pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
from multiprocessing import forkserver

from npistack.normalize.geo import zip_table
from npistack.nppes.taxonomy import load_nucc

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
zip_table()
load_nucc(None)
