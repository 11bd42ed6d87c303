"""The CLI end to end, as a user runs it (a real subprocess): synth → ingest → stats/show/loads/quarantine,
and every error is one clear line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nppes_files import COLS, write_bundle


def run(*args: str, db: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NPISTACK_DATABASE_URL=f"sqlite:///{db}", COLUMNS="200", NO_COLOR="1")
    env.pop("NPISTACK_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "npistack.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_synth_ingest_and_read(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    run("synth", str(tmp_path / "b"), "--rows", "3000", "--seed", "4", "--broken-rows", "5", db=db)
    (bundle,) = (tmp_path / "b").glob("NPPES_Data_Dissemination_*_V2.zip")
    out = run("ingest", str(bundle), db=db)
    assert "quarantined" in out.stdout and "5 quarantined" in out.stdout
    assert "rows/s" in out.stderr  # the progress bar shows throughput
    again = run("ingest", str(bundle), db=db)
    assert "already loaded" in again.stdout and "nothing changed" in again.stdout

    loads = json.loads(run("loads", "--json", db=db).stdout)
    assert [ld["status"] for ld in loads] == ["unchanged", "succeeded"]
    first = loads[1]
    assert first["is_current"] and first["rows_read"] == first["rows_loaded"] + first["rows_quarantined"]
    assert {f["kind"] for f in first["files"]} == {"npidata", "pl", "othername", "endpoint"}
    assert all(
        len(f["crc32"]) == 8 and f["rows_read"] == f["rows_loaded"] + f["rows_quarantined"]
        for f in first["files"]
    )
    assert "index_s" in first["timings"] and len(first["checksum"]) == 64

    stats = run("stats", db=db).stdout
    assert "individual (NPI-1)" in stats and "top primary specialties" in stats and "top states" in stats

    q = run("quarantine", db=db).stdout
    assert q.count("npidata_pfile_") == 5

    from npistack.storage import open_store

    store = open_store(f"sqlite:///{db}", read_only=True)
    npi = store.find_by_name("A", limit=1)[0]
    store.close()
    doc = json.loads(run("show", npi, db=db).stdout)
    assert doc["npi"] == npi and doc["status"] in ("active", "deactivated")


def test_worker_processes_under_python_m(tmp_path: Path) -> None:
    """``python -m npistack.cli ingest`` with worker processes: multiprocessing would have each worker run
    the main module again first; the command line hides it from them (``pool._main_not_needed``), so
    the user sees the progress and the summary only, and the workers do not import the command line."""
    db = tmp_path / "w.db"
    run("synth", str(tmp_path / "b"), "--rows", "6000", "--seed", "5", db=db)
    (bundle,) = (tmp_path / "b").glob("NPPES_Data_Dissemination_*_V2.zip")
    from npistack.ingest.pool import INLINE_BELOW_BYTES
    from npistack.nppes.reader import open_bundle

    assert sum(df.size for df in open_bundle(bundle).files.values()) >= INLINE_BELOW_BYTES  # the pool runs
    out = run("ingest", str(bundle), "--workers", "2", db=db)
    assert "loaded 6,000" in out.stdout or "6,000" in out.stdout, out.stdout
    assert "Warning" not in out.stderr and "Traceback" not in out.stderr, out.stderr


def _main_of_worker() -> tuple[str | None, bool]:
    """(Run in a worker process.) The name its main module was run by, and whether it imported Typer
    (the command line's first import)."""
    return getattr(sys.modules["__main__"].__spec__, "name", None), "typer" in sys.modules


def test_workers_do_not_run_the_main_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """As under ``python -m npistack.cli``: the main module has a name, which multiprocessing would have
    every worker run again (as ``__mp_main__``) before its first block; the runner hides it."""
    import importlib.util

    from npistack.ingest.pool import BlockPool

    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__spec__", importlib.util.find_spec("npistack.cli"), raising=False)
    runner = BlockPool(2, None)
    try:
        assert runner.pool is not None
        assert main.__spec__ is None  # hidden while the pool runs
        futures = [runner.pool.submit(_main_of_worker) for _ in range(4)]
        assert [f.result(timeout=60) for f in futures] == [(None, False)] * 4
    finally:
        runner.close()
    assert main.__spec__ is not None and main.__spec__.name == "npistack.cli"  # restored


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("show", "123"), "error: NPI '123' is not 10 digits"),
        (("show", "1234567890"), "error: NPI 1234567890 fails the check digit"),
        (("ingest", "/nonexistent/bundle.zip"), "error: /nonexistent/bundle.zip: no such file or folder"),
        (("synth", "/tmp/x", "--variant", "v9"), "error: unknown --variant 'v9'"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    line = one_line_error(run(*args, db=tmp_path / "s.db", check=False))
    assert line.startswith(expected), line


def test_show_before_any_load_and_unknown_npi(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    assert "no store at" in one_line_error(run("show", "1679576722", db=db, check=False))
    run("ingest", str(Path(__file__).parent / "data" / "npidata_sample.csv"), db=db)
    assert (
        one_line_error(run("show", "1234567893", db=db, check=False))
        == "error: NPI 1234567893 is not in the store"
    )


def test_unknown_layout_is_one_line(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", [], header=[*COLS[:-1], "Something Else"])
    line = one_line_error(run("ingest", str(bundle), db=tmp_path / "s.db", check=False))
    assert "npidata_pfile_20050523-20261108.csv: unknown npidata layout" in line
    assert "unexpected columns: 'Something Else'" in line


def test_weekly_bundle_on_an_empty_store_is_refused_clearly(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "w", [], end="20261115")
    weekly = folder / "npidata_pfile_20261109-20261115.csv"
    next(folder.glob("npidata_pfile_*")).rename(weekly)
    line = one_line_error(run("ingest", str(weekly), db=tmp_path / "s.db", check=False))
    assert line.endswith("this is a weekly update; load a monthly full file first")


def test_demo(tmp_path: Path) -> None:
    """The demo synthesizes, ingests, shows, creates a key and serves; its three curl commands work."""
    import shlex
    import signal
    import time

    import httpx

    from tests.api_support import free_port

    port = free_port()
    env = dict(
        os.environ,
        NPISTACK_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}",
        COLUMNS="400",
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        NPISTACK_OFFLINE="true",
        NPISTACK_ACCESS_LOG="false",
    )
    args = ["demo", "--rows", "3000", "--dir", str(tmp_path / "demo"), "--port", str(port)]
    log = tmp_path / "demo.out"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "npistack.cli", *args], env=env, stdout=fh, stderr=fh)
        try:
            deadline = time.monotonic() + 120
            while "5. serving" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            out = log.read_text()
            curls = [shlex.split(ln.strip()) for ln in out.splitlines() if ln.strip().startswith("curl ")]
            assert len(curls) == 3, out
            for cmd in curls:
                headers = dict(cmd[i + 1].split(": ", 1) for i, a in enumerate(cmd) if a == "-H")
                r = httpx.get(cmd[-1], headers=headers, timeout=10)
                assert r.status_code == 200, (cmd, r.text)
                body = r.json()
                assert body.get("data") or body.get("results"), (cmd, body)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
    for step in (
        "1. synthesize",
        "2. ingest",
        "3. ask the store",
        "lookup",
        "by license",
        "name prefix",
        "within 25 miles",
        "quarantine",
        "4. an API key",
    ):
        assert step in out, step
    # The demo loads the default store (here NPISTACK_DATABASE_URL, not there yet), which every other
    # command uses (issue 14, item 20); its bundle stays in --dir.
    assert (tmp_path / "store.db").exists()
    assert not (tmp_path / "demo" / "npistack-demo.db").exists()
    assert "the default store" in out
