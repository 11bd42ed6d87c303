"""Incremental loads, what they share: weekly update bundles (``ingest.weekly``), monthly deactivation
reports (``ingest.deactivations``), and the reconciliation of a new monthly full file with the store
(``ingest.reconcile``).

**Atomicity.** An incremental load writes its data, the provider versions, the change feed and the
webhook outbox in one transaction: a failure or a kill leaves the store as it was, and the
interrupted load is recorded as failed by the next run.

Here: a no-op for content applied before (``already_applied``), the write of the decisions with their
versions, changes, webhook deliveries and quarantine (``write_decisions``), and a commit that frees
the load's memory meanwhile (``commit_freeing``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from npistack.ingest.changeset import Decision, Release, record, replace_rows
from npistack.ingest.reports import LoadSummary
from npistack.storage.base import SqlStore
from npistack.storage.changes import ChangeCounts


def already_applied(
    store: SqlStore, kind: str, what: str, source: str, release: str | None, checksum: str, t_start: float
) -> LoadSummary | None:
    """A no-op summary (recorded as an unchanged load) when the same content was applied before."""
    same = store.find_load(checksum, kind)
    if same is None:
        return None
    load_id = store.record_unchanged(
        source=source, kind=kind, release_date=release, checksum=checksum, same_as=same.id
    )
    return LoadSummary(
        load_id,
        "unchanged",
        source,
        release,
        checksum,
        seconds=time.perf_counter() - t_start,
        message=f"already applied: same {what} as load #{same.id}; nothing changed",
    )


def commit_freeing(store: SqlStore, held: list[Any]) -> None:
    """Commit while a thread frees what the load held in memory (``held``: the only references):
    the commit and its checkpoint run in SQLite, without the GIL, so the objects are deallocated
    meanwhile instead of before or after it."""
    thread = threading.Thread(target=held.clear, name="npistack-free")
    thread.start()
    try:
        store.commit()
    finally:
        thread.join()


def write_decisions(
    store: SqlStore,
    load_id: int,
    n_incoming: int,
    decisions: list[Decision],
    release: Release,
    quarantine: list[tuple[str, int, str, str]],
    timings: dict[str, float],
    *,
    recorded: ChangeCounts | None = None,
) -> str:
    """Inside one transaction (left open for the caller to commit): write the decisions about
    ``n_incoming`` providers (in NPI order, table by table: each index's pages change together),
    record them (unless they were, ``recorded``), and quarantine; returns the summary."""
    t0 = time.perf_counter()
    store.begin()
    replace_rows(store, decisions)
    t1 = time.perf_counter()
    counts = record(store, decisions, release) if recorded is None else recorded
    if quarantine:
        store.quarantine_lines(load_id, quarantine)
    timings["write_s"] = round(t1 - t0, 3)
    if recorded is None:
        timings["record_s"] = round(time.perf_counter() - t1, 3)
    kinds: dict[str, int] = {}
    for d in decisions:
        kinds[d.change_type] = kinds.get(d.change_type, 0) + 1
    parts = [f"{kinds[k]:,} {k}" for k in ("created", "updated", "deactivated", "reactivated") if k in kinds]
    summary = ", ".join(parts) or "no changes"
    if n_incoming > len(decisions):
        summary += f", {n_incoming - len(decisions):,} unchanged"
    if counts.deliveries:
        summary += f"; {counts.deliveries:,} webhook deliveries queued"
    return summary
