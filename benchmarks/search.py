"""Search engine benchmark: latency of ``services.search.search`` per query class on a real store.

    python benchmarks/search.py --db sqlite:////work/bench/store1m.db
    python benchmarks/search.py --db postgresql://postgres@127.0.0.1:5432/npi --runs 200 --limit 20

Queries are picked from the store itself (seeded): last names and states of random providers, the
ZIP codes of the densest 0.1° grid cells, taxonomy codes and cities that occur. Each class runs
``--runs`` searches (cycling through its queries) after one warm-up pass, and prints p50/p95/p99
in milliseconds and the mean number of hits. Only the engine is timed (no documents fetched, no
HTTP); the bars below are the engine's share of the API issue's HTTP-level bars.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass, field

from npistack.normalize.geo import zip_info
from npistack.services.search import SearchPage, SearchQuery, search
from npistack.storage import open_store
from npistack.storage.base import SqlStore

BARS_MS = {"last-name prefix + state": 30.0, "exact last name + state": 30.0, "radius 10 mi, dense ZIP": 70.0}


@dataclass
class Klass:
    name: str
    queries: list[SearchQuery]
    cursor_depth: int = 0  # follow this many cursors before the timed page
    times: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)


def _sample_people(store: SqlStore, rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """(last-name key, first-name key, practice state) of random active individuals."""
    top = int(store._query("SELECT max(npi) FROM providers")[0][0])
    low = int(store._query("SELECT min(npi) FROM providers")[0][0])
    out: list[tuple[str, str, str]] = []
    while len(out) < n:
        start = rng.randrange(low, top)
        rows = store._query(
            "SELECT n.name_key, n.first_key, p.practice_state FROM providers p"
            " JOIN provider_names n ON n.npi = p.npi AND n.name_type = 'legal'"
            " WHERE p.npi >= ? AND p.entity_type = 1 AND p.status = 'active' AND p.practice_state IS NOT NULL"
            " ORDER BY p.npi LIMIT 1",
            (start,),
        )
        if rows and len(rows[0][0]) >= 3 and rows[0][2]:
            out.append((rows[0][0], rows[0][1], rows[0][2]))
    return out


def _dense_zips(store: SqlStore, n: int) -> list[tuple[str, float, float]]:
    """The most common practice ZIP of each of the ``n`` cells with most practice locations."""
    cells = store._query(
        "SELECT cell, count(*) AS c FROM provider_locations WHERE cell IS NOT NULL AND purpose <> 'mailing'"
        " GROUP BY cell ORDER BY c DESC LIMIT ?",
        (n,),
    )
    out = []
    for cell, _ in cells:
        z = store._query(
            "SELECT zip5, count(*) AS c FROM provider_locations WHERE cell = ? AND purpose <> 'mailing'"
            " GROUP BY zip5 ORDER BY c DESC LIMIT 1",
            (cell,),
        )[0][0]
        info = zip_info(z)
        if info is not None:
            out.append((z, info.lat, info.lon))
    return out


def _typo(key: str, rng: random.Random) -> str:
    """One typo after the first letter: swap two neighbours or change a letter."""
    i = rng.randrange(1, len(key) - 1)
    if rng.random() < 0.5:
        return key[:i] + key[i + 1] + key[i] + key[i + 2 :]
    return key[:i] + rng.choice("AEIOUY") + key[i + 1 :]


def build_classes(store: SqlStore, rng: random.Random, per_class: int) -> list[Klass]:
    people = _sample_people(store, rng, per_class)
    zips = _dense_zips(store, min(per_class, 40))
    codes = [
        r[0]
        for r in store._query(
            "SELECT primary_taxonomy, count(*) AS c FROM providers WHERE primary_taxonomy IS NOT NULL"
            " GROUP BY primary_taxonomy ORDER BY c DESC LIMIT 20"
        )
    ]
    cities = store._query(
        "SELECT city_key, state, count(*) AS c FROM provider_locations WHERE purpose = 'primary'"
        " GROUP BY city_key, state ORDER BY c DESC LIMIT 40"
    )
    orgs = [
        r[0]
        for r in store._query(
            "SELECT name_key FROM provider_names WHERE entity_type = 2 AND name_type = 'legal' AND npi >= ?"
            " ORDER BY npi LIMIT ?",
            (rng.randrange(10**9, 2 * 10**9), per_class),
        )
    ]
    near = [(la, lo) for _, la, lo in zips]
    return [
        Klass(
            "last-name prefix + state", [SearchQuery(last_name=k[:3] + "*", state=s) for k, _, s in people]
        ),
        Klass("exact last name + state", [SearchQuery(last_name=k, state=s) for k, _, s in people]),
        Klass(
            "CMS-style: prefix + state, active NPI-1",
            [
                SearchQuery(last_name=k[:3] + "*", state=s, status="active", entity_type="NPI-1")
                for k, _, s in people
            ],
        ),
        Klass("radius 10 mi, dense ZIP", [SearchQuery(near=c, radius_miles=10.0) for c in near]),
        Klass(
            "last + first (nicknames)", [SearchQuery(last_name=k, first_name=f) for k, f, _ in people if f]
        ),
        Klass(
            "fuzzy last name + state",
            [SearchQuery(last_name=_typo(k, rng), state=s, fuzzy=True) for k, _, s in people],
        ),
        Klass(
            "organization prefix", [SearchQuery(organization_name=o[:5] + "*") for o in orgs if len(o) >= 5]
        ),
        Klass(
            "taxonomy + state",
            [SearchQuery(taxonomy_code=c, state=s) for c in codes for _, _, s in people[:5]],
        ),
        Klass(
            "taxonomy text + city",
            [SearchQuery(taxonomy_description="Internal Medicine", city=c, state=s) for c, s, _ in cities],
        ),
        Klass("postal code (5 digits)", [SearchQuery(postal_code=z) for z, _, _ in zips]),
        Klass(
            "radius 25 mi + taxonomy",
            [SearchQuery(near=c, radius_miles=25.0, taxonomy_code="207R00000X") for c in near],
        ),
        Klass("radius 100 mi, dense ZIP", [SearchQuery(near=c, radius_miles=100.0) for c in near]),
        Klass(
            "prefix + state, 5th page by cursor",
            [SearchQuery(last_name=k[:2] + "*", state=s) for k, _, s in people],
            cursor_depth=4,
        ),
    ]


def run(store: SqlStore, k: Klass, runs: int, limit: int) -> None:
    def one(q: SearchQuery) -> SearchPage:
        cursor = None
        for _ in range(k.cursor_depth):
            page = search(store, q, limit=limit, cursor=cursor)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        t0 = time.perf_counter()
        page = search(store, q, limit=limit, cursor=cursor)
        k.times.append((time.perf_counter() - t0) * 1000)
        return page

    for q in k.queries:  # warm-up
        search(store, q, limit=limit)
    k.times.clear()
    for i in range(runs):
        k.hits.append(len(one(k.queries[i % len(k.queries)]).hits))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--db", default="sqlite:////work/bench/store1m.db", help="store URL")
    ap.add_argument("--runs", type=int, default=300, help="timed searches per class")
    ap.add_argument("--limit", type=int, default=50, help="page size (the API allows 1-50)")
    ap.add_argument("--queries", type=int, default=100, help="distinct queries per class")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="run only classes whose name contains this text")
    args = ap.parse_args(argv)

    store = open_store(args.db, read_only=args.db.startswith("sqlite"))
    rng = random.Random(args.seed)
    count = store.count_providers()
    print(f"store {args.db}: {count:,} providers; limit {args.limit}, {args.runs} runs per class")
    classes = [k for k in build_classes(store, rng, args.queries) if args.only in k.name and k.queries]
    failed = False
    header = f"{'class':40} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'hits':>6}  bar"
    print(header)
    print("-" * len(header))
    for k in classes:
        run(store, k, args.runs, args.limit)
        p50, p95, p99 = (pct(k.times, p) for p in (50, 95, 99))
        bar = BARS_MS.get(k.name)
        verdict = ""
        if bar is not None:
            ok = p95 <= bar
            failed |= not ok
            verdict = f"p95 ≤ {bar:g} ms: {'PASS' if ok else 'FAIL'}"
        print(f"{k.name:40} {p50:8.2f} {p95:8.2f} {p99:8.2f} {statistics.mean(k.hits):6.1f}  {verdict}")
    store.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
