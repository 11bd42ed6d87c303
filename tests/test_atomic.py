"""Loads are atomic and repeatable: a killed load leaves the earlier data readable and unchanged and a
re-run completes; a failed load changes nothing; the same bundle again is a recorded no-op."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from npistack.ingest.load import ingest
from npistack.nppes.synth import write_bundle as synth_bundle
from npistack.services.providers import get_provider
from npistack.storage import open_store
from tests.nppes_files import SAMPLE


def _snapshot(store) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    return store.count_providers(), get_provider(store, "1114920162")


def test_killed_load_leaves_old_data_and_rerun_completes(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    first = ingest(SAMPLE, store)
    before = _snapshot(store)
    big = synth_bundle(tmp_path, 60_000, seed=3).path

    env = dict(os.environ, NPISTACK_DATABASE_URL=store_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "npistack.cli", "ingest", str(big), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    reader = open_store(store_url)
    try:
        deadline = time.monotonic() + 60
        running = None
        while time.monotonic() < deadline:
            running = next(iter(reader.loads(status="running")), None)
            if running and running.rows_read >= 10_000:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        assert running is not None and running.rows_read >= 10_000, "the load never got going"
        # While the load runs, the earlier data is there and readable.
        assert _snapshot(reader) == before
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
        reader.close()
    assert proc.returncode == -signal.SIGKILL

    after_kill = open_store(store_url)
    try:
        assert _snapshot(after_kill) == before
        assert after_kill.current_load().id == first.load_id
        # The re-run completes and replaces the data; the killed load is recorded as interrupted.
        summary = ingest(big, after_kill, force=True)  # replaces every provider: past the guard
        main = next(f for f in summary.files if f.kind == "npidata")
        assert summary.status == "succeeded" and main.rows_read == 60_000
        assert after_kill.count_providers() == main.rows_loaded
        assert get_provider(after_kill, "1114920162") is None
        killed = after_kill.get_load(running.id)
        assert killed.status == "failed" and "interrupted" in (killed.message or "")
    finally:
        after_kill.close()
        store.close()


def test_failed_load_changes_nothing(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(store_url)
    try:
        ingest(SAMPLE, store)
        before = _snapshot(store)
        bundle = synth_bundle(tmp_path, 3000, seed=1, as_folder=True).path
        calls = {"n": 0}
        real = store.write_block

        def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk full (simulated)")
            return real(*args, **kwargs)

        monkeypatch.setattr(store, "write_block", flaky)
        with pytest.raises(OSError, match="disk full"):
            ingest(bundle, store, block_bytes=64 * 1024, force=True)  # force: it replaces every provider
        assert _snapshot(store) == before
        failed = store.loads(limit=1)[0]
        assert failed.status == "failed" and failed.message == "disk full (simulated)"
        monkeypatch.undo()
        assert ingest(bundle, store, force=True).status == "succeeded"
    finally:
        store.close()


def test_same_bundle_again_is_a_noop(store_url: str, tmp_path: Path) -> None:
    folder = synth_bundle(tmp_path / "f", 500, seed=5, as_folder=True).path
    store = open_store(store_url)
    try:
        first = ingest(folder, store)
        assert first.status == "succeeded"
        again = ingest(folder, store)
        assert again.status == "unchanged" and f"load #{first.load_id}" in again.message
        assert store.current_load().id == first.load_id
        # The same files zipped are the same content.
        zpath = tmp_path / "NPPES_Data_Dissemination_November_2026_V2.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in folder.iterdir():
                zf.write(f, f.name)
        assert ingest(zpath, store).status == "unchanged"
        # A changed file is new content.
        copy = tmp_path / "changed"
        shutil.copytree(folder, copy)
        pl = next(p for p in copy.glob("pl_pfile_*.csv") if "fileheader" not in p.name)
        pl.write_text("\n".join(pl.read_text().splitlines()[:-1]) + "\n")
        assert ingest(copy, store).status == "succeeded"
        assert ingest(folder, store, force=True).status == "succeeded"
        statuses = [r.status for r in store.loads()]
        assert statuses == ["succeeded", "succeeded", "unchanged", "unchanged", "succeeded"]
    finally:
        store.close()
