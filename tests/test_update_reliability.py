"""An incremental apply killed midway (SIGKILL, after every row was written but before the commit)
leaves the store exactly as before, and running it again completes. SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from npistack.ingest.load import ingest
from npistack.storage import open_store
from tests.storage_sql import sql_execute
from tests.update_support import base_bundle, store_content, week_one

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from npistack.ingest import weekly
    from npistack.ingest.load import ingest
    from npistack.storage import open_store

    real_record = weekly.record

    def record_then_die(*args, **kwargs):
        real_record(*args, **kwargs)  # data rows, versions, changes and outbox are written...
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # ...and the process dies before the commit

    weekly.record = record_then_die
    store = open_store(sys.argv[1])
    ingest(sys.argv[2], store)
    """
)


def _counts(url: str) -> tuple[int, int, int]:
    store = open_store(url)
    try:
        return tuple(  # type: ignore[return-value]
            store.count_rows(t) for t in ("changes", "provider_history", "webhook_deliveries")
        )
    finally:
        store.close()


def test_killed_apply_leaves_the_store_as_before(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    try:
        ingest(base_bundle(tmp_path / "base"), store)
        store.begin()
        sql_execute(
            store,
            "INSERT INTO webhook_subscriptions (url, secret, filters, active, created_at, updated_at)"
            " VALUES ('http://127.0.0.1:9/hook', 'whsec_x', '{}', 1, 'now', 'now')",
        )
        store.commit()
    finally:
        store.close()
    before = store_content(store_url)
    bundle = week_one(tmp_path / "w1")
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, store_url, str(bundle)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    assert "written" in proc.stdout
    assert store_content(store_url) == before
    assert _counts(store_url) == (0, 0, 0)

    store = open_store(store_url)
    try:
        summary = ingest(bundle, store)
        assert summary.status == "succeeded"
        loads = store.loads()
        assert loads[1].status == "failed" and "interrupted" in (loads[1].message or "")
        assert store.data_release() == "2026-11-15"
    finally:
        store.close()
    assert store_content(store_url) != before
    changes, versions, deliveries = _counts(store_url)
    assert (changes, deliveries) == (5, 5)
    assert versions == 9  # 4 first versions of changed providers + 5 new versions
