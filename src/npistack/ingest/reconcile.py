"""The reconciliation of a new monthly full file (staged) with the live data: what it changes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from npistack.ingest.changeset import Release, decide, read_stored, record, removals
from npistack.records.diff import strip_release
from npistack.records.rows import ExtraRow, ProviderRow, ProviderRows
from npistack.storage.base import SqlStore


def content_keys(store: SqlStore, prefix: str = "") -> dict[int, bytes]:
    """A content fingerprint per NPI of the live (or ``stage_``) tables, read in one pass each."""
    keys: dict[int, bytes] = {}
    for rows in store.stream_docs(prefix=prefix):
        for npi, doc in rows:
            keys[npi] = hashlib.blake2b(strip_release(doc).encode(), digest_size=16).digest()
    extras: dict[int, list[tuple[str, str]]] = {}
    for batch in store.stream_extras(prefix=prefix):
        for npi, kind, doc in batch:
            extras.setdefault(npi, []).append((kind, doc))
    for npi, items in extras.items():
        h = hashlib.blake2b(keys.get(npi, b""), digest_size=16)
        for kind, text in sorted(items):
            h.update(b"\x00" + kind.encode() + b"\x01" + text.encode())
        keys[npi] = h.digest()
    return keys


def reconcile_full(
    store: SqlStore,
    load_id: int,
    release: str | None,
    *,
    guard: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The changes a new monthly full file (staged, not yet swapped in) makes to the live data.

    Runs inside the swap transaction (``finish_load(before_swap=...)``): the versions, changes and
    webhook deliveries it records commit with the swap. NPIs the new file no longer has are
    ``removed``. ``guard(providers in the store, providers removed)`` runs before anything is
    recorded; what it raises rolls the swap back (``reports.LoadLimits.check_full_load``).
    """
    old_keys = content_keys(store)
    new_keys = content_keys(store, "stage_")
    changed = sorted(n for n, k in new_keys.items() if old_keys.get(n) != k)
    gone = sorted(n for n in old_keys if n not in new_keys)
    if guard is not None:
        guard(len(old_keys), len(gone))
    del old_keys, new_keys
    old = read_stored(store, changed + gone)
    incoming: list[ProviderRows] = []
    for i in range(0, len(changed), 500):
        for sp in store.get_stored(changed[i : i + 500], prefix="stage_"):
            npi = int(sp.doc["npi"])
            doc_json = orjson.dumps(sp.doc).decode()
            extras = [
                ExtraRow(npi, kind, seq, orjson.dumps(d).decode()) for seq, (kind, d) in enumerate(sp.extras)
            ]
            incoming.append(
                ProviderRows(ProviderRow(npi, None, None, None, None, None, doc_json, 0), extras=extras)
            )
    decisions = decide(old, incoming) + removals(old, gone)
    counts = record(store, decisions, Release(load_id, release, "full"))
    kinds: dict[str, int] = {}
    for d in decisions:
        kinds[d.change_type] = kinds.get(d.change_type, 0) + 1
    return {"changes": kinds, "deliveries": counts.deliveries}
