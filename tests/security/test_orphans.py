"""Issue 14, item 11: killing ``npistack ingest`` (kill -9 of the parent) must not orphan its fork
server and worker processes.

Before the fix, they stayed alive under PID 1 forever: each worker holds both ends of the task
queue's pipe (so it never reads EOF) and the write end of the fork server's "alive" pipe (so the
server never stops either). A real ``npistack ingest`` of a synthetic bundle large enough for worker
processes runs in its own session; once its fork server has workers, the parent is killed with
SIGKILL and every process of that session must be gone (or a zombie waiting to be reaped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from npistack.nppes.synth import write_bundle

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _group(pgid: int) -> dict[int, tuple[str, int]]:
    """Processes of the process group ``pgid`` that are not zombies: pid -> (state, parent pid)."""
    out: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[2] == pgid and st[0] not in ("Z", "X"):
                out[int(entry)] = (st[0], st[1])
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic monthly bundle (folder) of ~12 MB: past the size under which loads run inline."""
    stats = write_bundle(tmp_path_factory.mktemp("orphans"), 10_000, seed=3, as_folder=True)
    return stats.path


def test_kill_9_of_ingest_leaves_no_worker_behind(bundle: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NPISTACK_")}
    env.update(NPISTACK_DATA_DIR=str(tmp_path / "data"), NO_COLOR="1")
    store = f"sqlite:///{tmp_path / 'store.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "npistack.cli", "ingest", "-d", store, "--workers", "2", str(bundle)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: its descendants are found after it died
    )
    pgid = proc.pid
    try:

        def workers() -> list[int]:
            group = _group(pgid)
            servers = {p for p in group if p != proc.pid and "forkserver" in _cmdline(p)}
            return [p for p, (_, ppid) in group.items() if ppid in servers]

        _until("the fork server's workers", lambda: len(workers()) >= 1 or proc.poll() is not None, 60)
        assert proc.poll() is None, "the load ended before its workers were seen; use a bigger bundle"
        assert workers()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        left: dict[int, str] = {}

        def all_gone() -> bool:
            left.clear()
            left.update({p: _cmdline(p)[:120] for p in _group(pgid)})
            return not left

        try:
            _until("the killed ingest's descendants to exit", all_gone, 30)
        except AssertionError as e:
            raise AssertionError(f"{e}; still alive: {left}") from None
    finally:
        if _group(pgid):
            os.killpg(pgid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_fork_server_started_from_a_thread_outlives_the_thread() -> None:
    """The server watches the load's *process*: started from a thread that has ended (a load run in
    a thread), it still serves workers (``PR_SET_PDEATHSIG`` on the server would have killed it)."""
    code = (
        "import os, threading\n"
        "from multiprocessing import forkserver\n"
        "from npistack.ingest.pool import BlockPool\n"
        "def load():  # a load in a thread: its pool's first worker makes the server run its preload\n"
        "    runner = BlockPool(2, None)\n"
        "    try:\n"
        "        assert list(runner.pool.map(abs, [-1], timeout=60)) == [1]\n"
        "    finally:\n"
        "        runner.close()\n"
        "t = threading.Thread(target=load); t.start(); t.join()\n"
        "server = forkserver._forkserver._forkserver_pid\n"
        "runner = BlockPool(2, None)\n"
        "try:\n"
        "    print(sorted(runner.pool.map(abs, [-1, -2, -3], timeout=60)))\n"
        "finally:\n"
        "    runner.close()\n"
        "assert forkserver._forkserver._forkserver_pid == server  # the same server, never restarted\n"
        "assert os.waitpid(server, os.WNOHANG) == (0, 0)  # and still running\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[1, 2, 3]"
