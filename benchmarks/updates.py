"""Weekly update benchmark: apply a 35k-row weekly bundle to a 1M-provider SQLite store, with
provider history, change feed rows and webhook outbox rows included (the issue's bar: ≤ 10 s).

    python benchmarks/updates.py --store /work/bench/store1m.db --base /work/bench/bundle1m/*.zip
    python benchmarks/updates.py --store S --base B --rows 35000 --subscriptions 3

The store is copied first (the original is not changed). The weekly bundle is written by
``npistack.nppes.synth.write_weekly`` from the base monthly bundle the store was loaded from
(~40% new enumerations, the rest address, phone, taxonomy, license and name changes, deactivations
and reactivations); writing it is not timed. The apply runs as ``npistack ingest WEEKLY`` in a
subprocess, as a user runs it: transform (worker processes), per-NPI decisions and diffs, the
data writes, versions, changes and deliveries, and the commit. Reported: wall time of the command,
the load's own timings, what it changed, and peak RSS of the process tree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import _tree_rss  # noqa: E402  (peak RSS of a process tree, from /proc)

BAR_S = 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="A 1M-provider SQLite store (copied first).")
    ap.add_argument("--base", type=Path, required=True, help="The monthly bundle the store was loaded from.")
    ap.add_argument("--rows", type=int, default=35_000, help="npidata rows in the weekly bundle.")
    ap.add_argument("--subscriptions", type=int, default=3, help="Webhook subscriptions to match changes.")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workdir", type=Path, default=None, help="Where to put the copy and the bundle.")
    args = ap.parse_args()

    from npistack.nppes.synth import write_weekly

    work = Path(args.workdir or tempfile.mkdtemp(prefix="npistack-upd-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    week = write_weekly(args.base, work / "weekly", args.rows, seed=args.seed)
    print(f"weekly bundle: {week.path.name}, {week.rows:,} rows, written in {time.perf_counter() - t0:.1f} s")
    db = work / "store.db"
    t0 = time.perf_counter()
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(args.store) + suffix)
        if src.exists():
            shutil.copyfile(src, str(db) + suffix)
    os.sync()  # the copy's write-back must not run during the measured apply
    print(f"store copied in {time.perf_counter() - t0:.1f} s")
    for problem in _index_drift(db):
        print(f"WARNING: {problem}; the store was loaded by an older version (reload it to measure this one)")
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE IF NOT EXISTS webhook_subscriptions (id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL,"
        " secret TEXT NOT NULL, filters TEXT NOT NULL DEFAULT '{}', description TEXT, active INTEGER NOT NULL"
        " DEFAULT 1, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )
    filters = ["{}", '{"states": ["CA", "TX", "NY"]}', '{"types": ["deactivated", "reactivated"]}']
    for i in range(args.subscriptions):
        conn.execute(
            "INSERT INTO webhook_subscriptions (url, secret, filters, active, created_at, updated_at)"
            " VALUES (?, 'whsec_bench', ?, 1, 'now', 'now')",
            (f"http://127.0.0.1:9/hook{i}", filters[i % len(filters)]),
        )
    conn.commit()
    conn.close()

    env_url = f"sqlite:///{db}"
    cmd = [sys.executable, "-m", "npistack.cli", "ingest", str(week.path)]
    peak = peak_anon = 0
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "NPISTACK_DATABASE_URL": env_url, "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_anon
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            peak_anon = max(peak_anon, _tree_rss(proc.pid, "RssAnon:"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    if proc.returncode != 0:
        sys.exit(f"ingest failed: {err.strip()}")

    conn = sqlite3.connect(db)
    timings, message = conn.execute(
        "SELECT timings, message FROM loads WHERE kind = 'weekly' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    counts = {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("changes", "provider_history", "webhook_deliveries")
    }
    providers = conn.execute("SELECT count(*) FROM providers").fetchone()[0]
    conn.close()
    print(out.strip().splitlines()[-1] if out.strip() else "")
    print(f"store: {providers:,} providers after the apply")
    print(f"changes: {message}")
    print(
        f"rows written: {counts['changes']:,} changes, {counts['provider_history']:,} versions,"
        f" {counts['webhook_deliveries']:,} webhook deliveries"
    )
    print(f"load timings: {timings}")
    print(
        f"peak RSS (process tree): {peak / 2**20:,.0f} MiB, of which the processes' own memory"
        f" {peak_anon / 2**20:,.0f} MiB (the rest: the store's file pages, mapped during the apply)"
    )
    verdict = "PASS" if wall <= BAR_S else "MISS"
    print(f"apply {week.rows:,}-row weekly to the store: {wall:.2f} s wall (bar {BAR_S:.0f} s) {verdict}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def _index_drift(db: Path) -> list[str]:
    """The data indexes of the store that differ from this version's (``DATA_INDEXES``): what a weekly
    update costs depends on them (every dirtied index page is written twice)."""
    import re

    from npistack.storage.schema import DATA_INDEXES

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        have = {
            re.sub(r"^ix\d+_", "", name): " ".join(sql.split())
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
            if re.match(r"ix\d+_", name)
        }
        merged = conn.execute("SELECT 1 FROM provider_locations WHERE purpose = 'both' LIMIT 1").fetchone()
    finally:
        conn.close()
    out = []
    for ix in DATA_INDEXES:
        sql = have.get(ix.name)
        want = f"({ix.columns})" + (f" WHERE {ix.where}" if ix.where else "")
        if sql is None or not sql.endswith(want):
            out.append(f"index {ix.name} is {sql or 'missing'!r}, expected ...{want}")
    if not merged:
        out.append("no location row holds both a practice and the mailing address (purpose 'both')")
    return out


if __name__ == "__main__":
    main()
