"""Ingest benchmark: synthesize N rows, ingest them into SQLite, report wall time, rows/s, peak RSS,
and DuckDB's time to only read the same npidata CSV, as a ratio.

    python benchmarks/ingest.py                 # 1,000,000 rows (the issue's bar: ≤120 s, ≤2 GiB)
    python benchmarks/ingest.py --rows 200000

The ingest runs as `npistack ingest` in a subprocess on the CMS-style zip, with everything the real
load does (standardization, geodata, phones, indexes, swap). Peak RSS is the peak of the summed RSS
of the whole process tree (main process plus transform workers), sampled every 50 ms from /proc.
The synth step is not timed as part of the ingest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

WALL_BAR_S = 120.0
RSS_BAR = 2 * 1024**3


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def _tree_rss(root: int, field: str = "VmRSS:") -> int:
    """The sum of ``field`` (VmRSS: all resident pages; RssAnon: the processes' own memory, without
    mapped files) over a process and its descendants, in bytes."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith(field):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
        stack += _children(pid)
    return total


def run_ingest(bundle: Path, db: Path, workers: int) -> tuple[float, int, str]:
    env = dict(os.environ, NPISTACK_DATABASE_URL=f"sqlite:///{db}", COLUMNS="120")
    cmd = [sys.executable, "-m", "npistack.cli", "ingest", str(bundle), "--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}):\n{output}")
    return wall, peak, output


def duckdb_scan(csv_path: Path) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    t0 = time.perf_counter()
    con.execute(
        f"CREATE TEMP TABLE t AS SELECT * FROM read_csv('{csv_path}', header=true, all_varchar=true, quote='\"')"
    )
    n = con.execute("SELECT count(*) FROM t").fetchone()[0]
    dt = time.perf_counter() - t0
    con.close()
    print(f"duckdb read {n:,} rows (all 330 columns as text, 2 threads)")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workers", type=int, default=0, help="transform processes (0: one per core)")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="keep files here (default: a temp dir, removed)"
    )
    args = ap.parse_args()

    from npistack.nppes.synth import write_bundle

    work = args.workdir or Path(tempfile.mkdtemp(prefix="npistack-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        stats = write_bundle(work, args.rows, args.seed)
        print(
            f"synthesized {stats.providers:,} providers (+{stats.pl_rows:,} pl, {stats.othername_rows:,} "
            f"othername, {stats.endpoint_rows:,} endpoint rows) in {time.perf_counter() - t0:.1f} s "
            f"-> {stats.path.name} ({stats.path.stat().st_size / 1e6:.0f} MB)"
        )
        db = work / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        wall, peak, output = run_ingest(stats.path, db, args.workers)
        tail = [ln for ln in output.splitlines() if ln.strip()][-12:]
        print("\n".join(tail))

        with zipfile.ZipFile(stats.path) as zf:
            member = next(n for n in zf.namelist() if n.startswith("npidata_pfile") and "fileheader" not in n)
            zf.extract(member, work)
        csv_path = work / member
        duck = duckdb_scan(csv_path)

        rate = stats.providers / wall
        print()
        print(f"rows             {stats.providers:>12,}")
        print(f"ingest wall      {wall:>12.1f} s    (bar ≤ {WALL_BAR_S:.0f} s at 1M rows)")
        print(f"rows/s           {rate:>12,.0f}")
        print(f"peak RSS (tree)  {peak / 2**20:>12,.0f} MiB  (bar ≤ {RSS_BAR / 2**20:,.0f} MiB)")
        print(f"duckdb scan      {duck:>12.1f} s    ratio ingest/duckdb = {wall / duck:.1f}x")
        print(f"store size       {db.stat().st_size / 2**20:>12,.0f} MiB")
        scale = 1_000_000 / stats.providers
        ok = wall * scale <= WALL_BAR_S * 1.0 and peak <= RSS_BAR
        print(f"verdict          {'PASS' if ok else 'MISS'} (wall scaled to 1M rows: {wall * scale:.0f} s)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
