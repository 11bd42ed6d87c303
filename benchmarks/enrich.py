"""List enrichment benchmark: ``npistack enrich`` on a CRM-like CSV against a big store.

    python benchmarks/enrich.py                                   # 100k rows, /work/bench/store1m.db
    python benchmarks/enrich.py --rows 10000 --workers 2 --keep /tmp/enrich-bench

The CSV is made from the store (opened read-only, never modified) the way CRM exports look:
records of random providers written with the mistakes of ``services.match.eval.labeled_set`` (NPI
mostly missing, sometimes mistyped; typos and nicknames; the middle name dropped; a full name in
one field; a moved practice; an old phone; the specialty in words; organizations under a DBA),
about 5% of people the registry does not have, CRM columns the matcher does not use (record id,
email, owner) and a few broken lines. Then ``npistack enrich`` runs as a subprocess; the benchmark
prints its wall time against the bar (100k rows in 60 s on 2 cores), rows/s, the status counts,
how many matches are right (the CSV's labels are kept aside), and the peak memory of the process tree.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

BAR_S = 60.0
HEADER = [
    "Record ID", "NPI", "First Name", "Middle Name", "Last Name", "Provider Name", "Account Name",
    "Credentials", "Specialty", "Street", "Suite", "City", "State", "Zip", "Phone", "License #", "Email",
    "Owner",
]  # fmt: skip
FIELD_OF = {
    "NPI": "npi", "First Name": "first_name", "Middle Name": "middle_name", "Last Name": "last_name",
    "Provider Name": "name", "Account Name": "organization_name", "Credentials": "credential",
    "Specialty": "specialty", "Street": "address_1", "Suite": "address_2", "City": "city", "State": "state",
    "Zip": "postal_code", "Phone": "phone", "License #": "license_number",
}  # fmt: skip
OWNERS = ["jmartin", "akim", "rpatel", "sgarcia", "tnguyen"]


def make_csv(db: str, path: Path, rows: int, seed: int, broken: int) -> Path:
    """The CSV, and ``path.labels`` (line -> right NPI, empty for people not in the registry)."""
    from npistack.services.match.eval import labeled_set
    from npistack.storage import open_store

    store = open_store(db, read_only=True)
    try:
        strangers = 0.05
        labeled = labeled_set(store, int(rows / (1 + strangers)) + 2, seed=seed, strangers=strangers)
    finally:
        store.close()
    rng = random.Random(seed)
    labeled = labeled[:rows]
    broken_at = set(rng.sample(range(len(labeled)), min(broken, len(labeled))))
    labels = path.with_name(path.name + ".labels")
    with path.open("w", newline="", encoding="utf-8") as fh, labels.open("w") as lf:
        w = csv.writer(fh)
        w.writerow(HEADER)
        line = 1
        for i, x in enumerate(labeled):
            rec = x.record
            values = [f"CRM-{i + 1:07d}"]
            values += [getattr(rec, FIELD_OF[h]) or "" for h in HEADER[1:16]]
            values += [f"office{i}@example.com" if rng.random() < 0.5 else "", rng.choice(OWNERS)]
            line += 1
            if i in broken_at:
                fh.write(",".join(values[:5]) + "\n")  # a line cut short
                lf.write(f"{line},broken\n")
                continue
            w.writerow(values)
            lf.write(f"{line},{x.npi or ''}\n")
    return path


class MemorySampler(threading.Thread):
    """Peak memory of a process and its descendants, sampled from /proc: the sum of their PSS
    (shared pages, such as the store's memory map, split between the processes that map them) and
    the largest single RSS."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_pss = 0
        self.peak_rss = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.25):
            parents: dict[int, int] = {}
            for p in Path("/proc").iterdir():
                if p.name.isdigit():
                    try:
                        stat = (p / "stat").read_text()
                        parents[int(p.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
                    except (OSError, ValueError, IndexError):
                        continue
            tree, grew = {self.pid}, True
            while grew:
                more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
                grew = bool(more)
                tree |= more
            pss = 0
            for pid in tree:
                try:
                    fields = dict(
                        line.split(":", 1)
                        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
                    )
                except (OSError, ValueError):
                    continue
                pss += int(fields["Pss"].split()[0]) * 1024
                self.peak_rss = max(self.peak_rss, int(fields["Rss"].split()[0]) * 1024)
            self.peak_pss = max(self.peak_pss, pss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="sqlite:////work/bench/store1m.db")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--broken", type=int, default=25, help="Lines cut short (reported, never dropped).")
    ap.add_argument("--keep", type=Path, help="Folder for the CSVs (reused when the input exists).")
    a = ap.parse_args()

    folder = a.keep or Path(tempfile.mkdtemp(prefix="enrich-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"crm-{a.rows}-{a.seed}.csv"
    if not src.exists():
        t0 = time.perf_counter()
        make_csv(a.db, src, a.rows, a.seed, a.broken)
        print(f"made {src} ({a.rows:,} rows) in {time.perf_counter() - t0:.1f} s")
    out = folder / "enriched.csv"
    cmd = [sys.executable, "-m", "npistack.cli", "enrich", str(src), "-o", str(out), "-d", a.db]
    cmd += ["--workers", str(a.workers)]
    env = {**os.environ, "COLUMNS": "200"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sampler = MemorySampler(proc.pid)
    sampler.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"npistack enrich failed ({proc.returncode}):\n{stdout}")

    labels = dict(line.strip().split(",", 1) for line in (src.with_name(src.name + ".labels")).open())
    statuses: Counter[str] = Counter()
    right = wrong = 0
    with out.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        col = {h: i for i, h in enumerate(header)}
        n_out = 0
        for row in reader:
            n_out += 1
            status = row[col["nppes_match_status"]]
            statuses[status] += 1
            if status == "matched":
                want = labels.get(row[col["nppes_input_line"]], "")
                right += want == row[col["nppes_npi"]]
                wrong += want != row[col["nppes_npi"]]
    rows_in = len(labels)
    print(f"store {a.db}; {a.workers} workers; {os.cpu_count()} cores (shared machine: other work may run)")
    print(f"rows in {rows_in:,}, rows out {n_out:,} ({'equal' if rows_in == n_out else 'DIFFERENT'})")
    per_100k = wall * 100_000 / max(rows_in, 1)
    verdict = "met" if per_100k <= BAR_S else "MISSED"
    scaled = "" if rows_in == 100_000 else f", {per_100k:.0f} s per 100k rows"
    print(f"wall time {wall:.1f} s{scaled} (bar {BAR_S:.0f} s per 100k rows: {verdict})")
    print(f"{rows_in / wall:,.0f} rows/s end to end")
    print(
        f"peak memory of the process tree {sampler.peak_pss / 2**20:,.0f} MiB PSS (largest process RSS "
        f"{sampler.peak_rss / 2**20:,.0f} MiB, pages of the store's memory map included)"
    )
    print(
        "status counts: "
        + ", ".join(f"{s} {statuses[s]:,}" for s in ("matched", "ambiguous", "no_match", "error"))
    )
    if statuses["matched"]:
        print(f"matches right {right:,}, wrong {wrong:,} (precision {right / (right + wrong):.4f})")
    print("npistack enrich said:\n" + "\n".join("  " + ln for ln in stdout.strip().splitlines()[-4:]))


if __name__ == "__main__":
    main()
