"""Provider verification latency on a big store: the service (``services.verify.verify``) and the endpoint
(``POST /api/v1/verify`` on a real uvicorn server on loopback), per record.

    python benchmarks/verify.py                                # the 1M-provider store, 2,000 records
    python benchmarks/verify.py --db sqlite:///PATH --records 500

The store is opened read-only and never written: the server gets a symlink to it in a temporary folder, so
its accounts database (a plan and a key for the run) lives there too. Records are claims built from random
active providers' own documents (names re-cased, practice address and phone as published), half of them
then made wrong in one field (a typo in the last name, the fax as the phone, another suite or house
number, a mistyped email domain), so both verdicts are timed. Email DNS stays off (the default).

Printed: p50/p95/p99/max per record for (1) the service called with one record (document read included),
(2) the service called with batches of 1,000 (per record), (3) the endpoint with one record per request
(HTTP round trip on loopback), (4) ``/verify/bulk`` with 1,000 records (per record). The issue's bar: one
record answers in well under a second.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from npistack.api import create_app
from npistack.services.accounts import Accounts
from npistack.services.providers import get_providers
from npistack.services.verify import Claim, verify
from npistack.settings import Settings
from npistack.storage import open_store
from npistack.storage.accounts import AccountsDb, Plan

HOST = "127.0.0.1"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def show(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"  {label:<44} n={len(ms):>5}  p50 {pct(ms, 50):7.3f} ms  p95 {pct(ms, 95):7.3f} ms  "
        f"p99 {pct(ms, 99):7.3f} ms  max {max(ms):7.3f} ms  mean {statistics.fmean(ms):7.3f} ms"
    )


def claim_of(doc: dict[str, Any], wrong: int | None) -> dict[str, Any]:
    """A CRM record built from the provider's document; ``wrong`` picks one field to spoil (or None)."""
    n, loc = doc["name"], doc["practiceLocation"] or {}
    out: dict[str, Any] = {"npi": doc["npi"], "ref": f"bench-{doc['npi']}"}
    if doc["entityType"] == "NPI-1":
        out.update(first_name=(n["first"] or "").title(), last_name=(n["last"] or "").title(),
                   credential=n["credential"])  # fmt: skip
    else:
        out["organization_name"] = (doc["organizationName"] or "").title()
    out.update(address_1=(loc.get("line1") or "").title(), address_2=loc.get("line2"),
               city=(loc.get("city") or "").title(), state=loc.get("state"), postal_code=loc.get("postalCode"),
               phone=loc.get("phoneRaw"), email="office@gmail.com")  # fmt: skip
    if wrong == 0 and out.get("last_name"):
        last = out["last_name"]
        out["last_name"] = last[:2] + ("x" if last[2:3] != "x" else "y") + last[3:]  # a one-letter typo
    elif wrong == 1 and loc.get("faxRaw"):
        out["phone"] = loc["faxRaw"]
    elif wrong == 2:
        if loc.get("line2"):
            out["address_2"] = "Suite 9999"  # another suite
        else:
            number, _, street = out["address_1"].partition(" ")
            out["address_1"] = f"{number}9 {street}"  # another house number
    elif wrong == 3:
        out["email"] = "office@gmial.com"
    return {k: v for k, v in out.items() if v is not None}


def sample(url: str, count: int, seed: int) -> list[dict[str, Any]]:
    store = open_store(url, read_only=True)
    try:
        top = store._query("SELECT MAX(rowid) FROM providers")[0][0]
        rng = random.Random(seed)
        rowids = rng.sample(range(1, top + 1), min(top, count * 2))
        marks = ",".join("?" * len(rowids))
        rows = store._query(
            f"SELECT npi FROM providers WHERE rowid IN ({marks}) AND status = 'active'", rowids
        )
        npis = [f"{r[0]:010d}" for r in rows][:count]
        docs = get_providers(store, npis)
    finally:
        store.close()
    rng.shuffle(docs)
    return [claim_of(d, i % 8 if i % 8 < 4 else None) for i, d in enumerate(docs)]


def bench_service(url: str, claims: list[dict[str, Any]]) -> None:
    store = open_store(url, read_only=True)
    try:
        objs = [Claim(**c) for c in claims]
        verify(store, objs[:50], email_dns=False)  # warm: nicknames, NUCC, caches
        single, verdicts = [], {"verified": 0, "needs_review": 0}
        for c in objs:
            t = time.perf_counter()
            (v,) = verify(store, [c], email_dns=False)
            single.append(time.perf_counter() - t)
            verdicts[v.status] += 1
        show("service, one record per call", single)
        batched = []
        for i in range(0, len(objs), 1000):
            chunk = objs[i : i + 1000]
            t = time.perf_counter()
            verify(store, chunk, email_dns=False)
            batched.extend([(time.perf_counter() - t) / len(chunk)] * len(chunk))
        show("service, batches of 1,000 (per record)", batched)
        print(f"  verdicts: {verdicts}")
    finally:
        store.close()


def bench_endpoint(url: str, claims: list[dict[str, Any]]) -> None:
    source = Path(url.removeprefix("sqlite:///"))
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "store.db"
        link.symlink_to(source.resolve())  # the accounts database goes next to the link, not the store
        link_url = f"sqlite:///{link}"
        db = AccountsDb(link_url)
        try:
            db.upsert_plan(Plan("bench", 10**9, 10**9, False, "benchmark"))
            key, _ = Accounts(db).create_key(name="bench", plan="bench")
        finally:
            db.close()
        settings = Settings(
            database_url=link_url, offline=True, access_log=False, redis_url="", upstream_url=""
        )
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://{HOST}:{port}"
        try:
            wait_healthy(base)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                for c in claims[:50]:
                    http.post("/api/v1/verify", json=c).raise_for_status()
                single = []
                for c in claims:
                    t = time.perf_counter()
                    r = http.post("/api/v1/verify", json=c)
                    single.append(time.perf_counter() - t)
                    r.raise_for_status()
                show("POST /api/v1/verify, one record per request", single)
                bulk = []
                for i in range(0, len(claims), 1000):
                    chunk = claims[i : i + 1000]
                    t = time.perf_counter()
                    r = http.post("/api/v1/verify/bulk", json={"records": chunk})
                    elapsed = time.perf_counter() - t
                    r.raise_for_status()
                    bulk.extend([elapsed / len(chunk)] * len(chunk))
                    print(f"  /verify/bulk of {len(chunk)}: {elapsed * 1000:.0f} ms for the request")
                show("POST /api/v1/verify/bulk, 1,000 (per record)", bulk)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {base} did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", default="sqlite:////work/bench/store1m.db", help="SQLite store URL (read-only)"
    )
    parser.add_argument("--records", type=int, default=2000, help="records to time (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-endpoint", action="store_true", help="time the service only")
    args = parser.parse_args()
    if not args.db.startswith("sqlite:///"):
        sys.exit("--db must be a SQLite store URL (sqlite:///PATH)")
    t = time.perf_counter()
    claims = sample(args.db, args.records, args.seed)
    print(f"{len(claims)} records from {args.db} ({time.perf_counter() - t:.1f} s to sample)")
    bench_service(args.db, claims)
    if not args.skip_endpoint:
        bench_endpoint(args.db, claims)


if __name__ == "__main__":
    main()
