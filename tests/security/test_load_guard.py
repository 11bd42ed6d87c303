"""Issue 14 item 3, and item 10's quarantine cap: a short or hostile "monthly" file cannot wipe the store.

A zip holding a correctly named npidata file with one valid row and five garbage rows, loaded over a
store of providers, used to remove every other provider and queue a webhook delivery per removal per
subscription, live at once. Now it is refused in one line, the store is left exactly as it was (the
old data keeps serving, no change and no delivery recorded), and ``--force`` loads it anyway.
"""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from npistack.errors import LoadError
from npistack.ingest.load import ingest
from npistack.ingest.reconcile import content_keys
from npistack.ingest.reports import LoadLimits
from npistack.nppes.layout import canonical_columns
from npistack.nppes.synth import bundle_name, data_file_name, write_bundle
from npistack.storage import open_store
from npistack.storage.base import SqlStore
from npistack.storage.webhooks import create_subscription
from tests.nppes_files import individual, quoted
from tests.security.test_cli_rough_edges import npistack, one_line_error
from tests.webhook_support import allow_loopback_receivers  # noqa: F401 - applies here

PROVIDERS = 300
BASE_RELEASE = date(2026, 11, 9)
HOSTILE_RELEASE = date(2026, 12, 7)
GARBAGE = ['"not","an","npidata","row"\n', "garbage\n", '"1234567890"\n', ",,,,\n", '"x","y"\n']


def hostile_zip(folder: Path, *, valid: int = 1, garbage: int = 5) -> Path:
    """A monthly zip named as CMS names it, whose npidata file holds ``valid`` good rows and
    ``garbage`` rows that cannot be used (no other files)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{bundle_name(HOSTILE_RELEASE)}.zip"
    lines = [quoted(canonical_columns("npidata"))]
    lines += [quoted(individual(900_000 + i)) for i in range(valid)]
    lines += [GARBAGE[i % len(GARBAGE)] for i in range(garbage)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(data_file_name("npidata", HOSTILE_RELEASE), "".join(lines))
    return path


def snapshot(store: SqlStore) -> dict[str, Any]:
    """What the store serves and has recorded."""
    current = store.current_load()
    return {
        "providers": store.count_providers(),
        "content": content_keys(store),
        "current": current.id if current else None,
        "data_release": store.data_release(),
        "changes": store.count_rows("changes"),
        "history": store.count_rows("provider_history"),
        "deliveries": store.count_rows("webhook_deliveries"),
    }


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(tmp_path_factory.mktemp("guard"), PROVIDERS, seed=3, release=BASE_RELEASE).path


def test_a_short_hostile_monthly_is_refused_then_forced(
    base_bundle: Path, store_url: str, tmp_path: Path
) -> None:
    hostile = hostile_zip(tmp_path / "hostile")
    store = open_store(store_url)
    try:
        assert ingest(base_bundle, store).status == "succeeded"
        create_subscription(store, url="http://127.0.0.1:9/hook", secret="whsec_guard_test_secret_0123456789")
        before = snapshot(store)
        assert before["providers"] == PROVIDERS and before["deliveries"] == 0

        with pytest.raises(LoadError) as refused:
            ingest(hostile, store)
        message = str(refused.value)
        assert "\n" not in message
        assert f"remove {PROVIDERS:,} of the store's {PROVIDERS:,} providers (100%" in message
        assert "5 of its 6 rows were quarantined" in message
        assert "nothing was changed; use --force to load it anyway" in message
        assert snapshot(store) == before  # nothing swapped, no change, no webhook delivery queued
        assert store.loads(limit=1)[0].status == "failed"

        summary = ingest(hostile, store, force=True)
        assert summary.status == "succeeded" and summary.rows_quarantined == 5
        assert store.count_providers() == 1
        assert f"{PROVIDERS:,} removed" in summary.message
        assert store.count_rows("webhook_deliveries") > 0
    finally:
        store.close()


def test_the_guard_counts_shares(base_bundle: Path, tmp_path: Path) -> None:
    """A next month without 6 of the 300 providers removes 2%: refused under a 1% limit (the
    store left as it was), loaded under the 5% default."""
    shorter = write_bundle(tmp_path / "next", PROVIDERS - 6, seed=3, release=HOSTILE_RELEASE).path
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        ingest(base_bundle, store)
        before = snapshot(store)
        with pytest.raises(LoadError, match=r"remove 6 of the store's 300 providers \(2%; .* allows 1%\)"):
            ingest(shorter, store, limits=LoadLimits(max_removed_share=0.01))
        assert snapshot(store) == before
        summary = ingest(shorter, store)
        assert summary.status == "succeeded" and "6 removed" in summary.message
        assert store.count_providers() == PROVIDERS - 6
    finally:
        store.close()


def test_quarantine_cap_stops_the_load(base_bundle: Path, tmp_path: Path) -> None:
    """Item 10: past NPISTACK_LOAD_MAX_QUARANTINE_ROWS the load stops, forced or not."""
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        ingest(base_bundle, store)
        before = snapshot(store)
        bomb = hostile_zip(tmp_path / "bomb", valid=PROVIDERS, garbage=50)
        with pytest.raises(LoadError) as stopped:
            ingest(bomb, store, force=True, limits=LoadLimits(max_quarantine_rows=20))
        assert "more than 20 rows quarantined (NPISTACK_LOAD_MAX_QUARANTINE_ROWS)" in str(stopped.value)
        assert "nothing was changed" in str(stopped.value)
        assert snapshot(store) == before
    finally:
        store.close()


def test_the_command_line_says_why_in_one_line(base_bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    npistack("ingest", str(base_bundle), "-d", url, data_dir=data)
    hostile = hostile_zip(tmp_path / "hostile")
    line = one_line_error(npistack("ingest", str(hostile), "-d", url, data_dir=data, check=False))
    assert line.startswith("error: ") and "nothing was changed; use --force to load it anyway" in line
    store = open_store(url)
    try:
        assert store.count_providers() == PROVIDERS
    finally:
        store.close()
    allowed = npistack(  # the limits are settings
        "ingest",
        str(hostile),
        "-d",
        url,
        data_dir=data,
        NPISTACK_LOAD_MAX_REMOVED_SHARE="1",
        NPISTACK_LOAD_MAX_QUARANTINE_SHARE="0.9",
    )
    assert f"{PROVIDERS:,} removed" in allowed.stdout
    # Back to the older full file (removes the one provider left, 100%): --force loads it anyway.
    forced = npistack("ingest", str(base_bundle), "-d", url, "--force", data_dir=data)
    assert "1 removed" in forced.stdout
    store = open_store(url)
    try:
        assert store.count_providers() == PROVIDERS
    finally:
        store.close()


def test_quarantine_cap_stops_a_weekly_apply(tmp_path: Path) -> None:
    """The cap holds for weekly bundles too: they are applied in one transaction, rolled back."""
    from tests.nppes_files import write_bundle as write_folder

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        ingest(write_folder(tmp_path / "full", [individual(i) for i in range(1, 11)], end="20261108"), store)
        before = snapshot(store)
        rows = [individual(i, last="JONES") for i in range(1, 6)] + GARBAGE * 6
        weekly = write_folder(tmp_path / "week", rows, start="20261109", end="20261115")
        with pytest.raises(LoadError, match=r"more than 20 rows quarantined"):
            ingest(weekly, store, limits=LoadLimits(max_quarantine_rows=20))
        assert snapshot(store) == before
        assert "5 updated" in ingest(weekly, store, limits=LoadLimits(max_quarantine_rows=30)).message
    finally:
        store.close()
