"""``npistack demo``: synthesize a bundle, ingest it, and show what the store answers."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table

from npistack.normalize.geo import zip_info
from npistack.redact import redact_url
from npistack.services.providers import get_provider, get_providers
from npistack.storage import open_store


def check_store_is_free(url: str, directory: Path) -> bool:
    """Refuse (one line) a store that holds data the demo did not load: the demo loads a synthetic
    monthly file, which would replace a real store's providers. A store that is not there yet, is
    empty, or whose every load came from a bundle in the demo's folder is the demo's to use; True
    when it holds an earlier demo's providers (which the new demo bundle may replace)."""
    from npistack.errors import NpistackError

    try:
        store = open_store(url, read_only=True)
    except NpistackError:
        return False  # no store yet (or one the ingest will explain)
    try:
        if store.count_providers() == 0:
            return False
        folder = directory.resolve()
        foreign = [
            ld for ld in store.loads(limit=10_000) if not Path(ld.source).resolve().is_relative_to(folder)
        ]
    finally:
        store.close()
    if foreign:
        ld = foreign[0]
        raise NpistackError(
            f"{redact_url(url)} already holds data the demo did not load (load #{ld.id} from "
            f"{Path(ld.source).name}); the demo never replaces it: give the demo its own store with "
            f"--database-url sqlite:///{directory / 'npistack-demo.db'}"
        )
    return True


def run_demo(
    console: Console,
    directory: Path,
    *,
    rows: int,
    seed: int,
    ingest_fn: Callable[..., Any],
    summary_fn: Callable[[Any], None],
    serve_fn: Callable[[str], None] | None = None,
    port: int = 8000,
    database_url: str,
    default_url: str,
) -> None:
    """The demo in ``directory`` (its bundle), loaded into ``database_url``: the default store
    (``default_url``, what every other command uses) unless the user named another one."""
    from npistack.nppes.synth import write_bundle

    url = database_url
    earlier_demo = check_store_is_free(url, directory)
    directory.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]1. synthesize a CMS-format bundle")
    t0 = time.perf_counter()
    stats = write_bundle(directory, rows, seed, broken_rows=max(3, rows // 10_000))
    console.print(
        f"{stats.path.name}: {stats.providers:,} providers ({stats.individuals:,} individuals, "
        f"{stats.organizations:,} organizations, {stats.deactivated:,} deactivated), "
        f"{stats.broken_rows} deliberately broken rows, in {time.perf_counter() - t0:.1f} s"
    )

    console.rule("[bold]2. ingest it")
    # Over an earlier demo's store, the new bundle replaces it whatever its size (--force).
    summary = ingest_fn(stats.path, url, workers=0, force=earlier_demo)
    summary_fn(summary)

    console.rule("[bold]3. ask the store")
    store = open_store(url, read_only=True)
    try:
        example = _show(console, store)
    finally:
        store.close()
    console.rule("[bold]4. an API key")
    from npistack.services.accounts import Accounts
    from npistack.storage.accounts import AccountsDb

    accounts_db = AccountsDb(url)
    try:
        key, rec = Accounts(accounts_db).create_key(name="demo", plan="growth")
    finally:
        accounts_db.close()
    console.print(f"created key {rec.prefix}… on plan {rec.plan} (shown once, only its hash is stored):")
    console.print(f"  {key}", markup=False)
    base = f"http://127.0.0.1:{port}"
    console.rule("[bold]try it yourself")
    auth = f'-H "Authorization: Bearer {key}"'
    npi, last, state = example or ("1234567893", "SMITH", "CA")
    prefix = quote(last[:3].lower())
    console.print(f"  curl -s {auth} {base}/api/v1/npi/{npi}", markup=False, soft_wrap=True)
    console.print(
        f"  curl -s {auth} '{base}/api/v1/providers/search?last_name={prefix}*&state={state}&limit=5'",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"  curl -s '{base}/api/?version=2.1&last_name={quote(last.lower())}&state={state}&pretty=on'",
        markup=False,
        soft_wrap=True,
    )
    console.print(f"  interactive docs: {base}/docs", markup=False)
    console.rule("[bold]the demo's store")
    if url == default_url:
        console.print(
            f"{redact_url(url)}: the default store; `npistack stats`, `npistack keys create` and "
            "`npistack serve` use it as they are.",
            markup=False,
            soft_wrap=True,
        )
    else:
        console.print("point every command at it (stats, keys, serve, enrich...):", markup=False)
        console.print(f"  export NPISTACK_DATABASE_URL={shlex.quote(url)}", markup=False, soft_wrap=True)
    if serve_fn is not None:
        console.rule("[bold]5. serving (Ctrl-C to stop)")
        serve_fn(url)


def _show(console: Console, store: Any) -> tuple[str, str, str] | None:
    """Print what the store answers; returns (NPI, last name, practice state) of a provider worth showing."""
    stats = store.stats(top=5)
    total = sum(r["count"] for r in stats["by_type"])
    console.print(f"{total:,} providers in the store")

    # An individual with several taxonomies and a license.
    sample = None
    for npi in store.find_by_name("SMITH", entity_type=1, limit=200):
        doc = get_provider(store, npi)
        if doc and len(doc.get("taxonomies") or []) > 1:
            sample = doc
            break
    if sample:
        pt = sample["primaryTaxonomy"] or {}
        loc = sample.get("practiceLocation") or {}
        console.print(
            f"[bold]lookup[/] NPI {sample['npi']}: {sample['name']['full']} · {pt.get('description') or ''} "
            + (
                f"· license {pt['license']} ({pt.get('state') or '?'}) "
                if pt.get("license")
                else "· no license "
            )
            + f"· {len(sample['taxonomies'])} taxonomies"
        )
        console.print(f"  practice: {_practice_line(loc)}", markup=False, soft_wrap=True)
        if pt.get("license"):
            found = store.find_by_license(pt["license"], pt.get("state"))
            console.print(f"[bold]by license[/] {pt['license']} {pt.get('state')}: {', '.join(found[:5])}")

    t0 = time.perf_counter()
    smiths = store.find_by_name("SMI", limit=1000)
    console.print(
        f"[bold]name prefix[/] 'smi': {len(smiths):,} providers ({(time.perf_counter() - t0) * 1000:.1f} ms)"
    )
    if stats["top_specialties"]:
        code = stats["top_specialties"][0]["code"]
        console.print(
            f"[bold]by taxonomy[/] {code}: {len(store.find_by_taxonomy(code, limit=100_000)):,} providers"
        )
    if stats["top_states"]:
        state = stats["top_states"][0]["state"]
        console.print(
            f"[bold]by state[/] {state}: {len(store.find_by_location(state=state, limit=100_000)):,} "
            "providers with an address there"
        )
    if sample and (sample.get("practiceLocation") or {}).get("zip5"):
        z = zip_info(sample["practiceLocation"]["zip5"])
        if z:
            t0 = time.perf_counter()
            near = store.find_near(z.lat, z.lon, 25, limit=10)
            table = Table(
                title=f"within 25 miles of {z.zip5} {z.city.title()}, {z.state} "
                f"({(time.perf_counter() - t0) * 1000:.1f} ms)"
            )
            table.add_column("NPI")
            table.add_column("name")
            table.add_column("miles", justify="right")
            docs = {d["npi"]: d for d in get_providers(store, [n for n, _ in near])}
            for npi, miles in near:
                d = docs.get(npi) or {}
                table.add_row(npi, (d.get("name") or {}).get("full") or "", f"{miles:.1f}")
            console.print(table)
    current = store.current_load()
    if current and current.rows_quarantined:
        bad = store.quarantined(current.id, limit=3)
        console.print(
            f"[bold]quarantine[/] {current.rows_quarantined} rows kept aside with their reason, e.g.:"
        )
        for r in bad:
            console.print(f"  line {r['line']}: {r['reason']}", markup=False)
    if not sample:
        return None
    state = (sample.get("practiceLocation") or {}).get("state") or "CA"
    return sample["npi"], sample["name"]["last"], state


def _practice_line(loc: dict[str, Any]) -> str:
    """The practice location in one line, leaving out what the record does not have (no ``None``)."""
    std = loc.get("standardized") or {}
    street = " ".join(p for p in (std.get("line1"), std.get("line2")) if p)
    place = " ".join(p for p in (std.get("city"), std.get("state"), std.get("zip5")) if p)
    parts = [", ".join(p for p in (street, place) if p)]
    parts.append(f"phone {loc['phone']}" if loc.get("phone") else "no phone")
    parts.append(f"fax {loc['fax']}" if loc.get("fax") else "no fax")
    if loc.get("latitude") is not None and loc.get("longitude") is not None:
        where = ", ".join(str(loc[k]) for k in ("county", "timeZone") if loc.get(k))
        parts.append(f"{loc['latitude']},{loc['longitude']}" + (f" ({where})" if where else ""))
    return " · ".join(p for p in parts if p)
