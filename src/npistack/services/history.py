"""Every version of a provider, with the release it came from and the fields that changed.

Versions are written when a load changes a provider (``npistack.ingest.apply``). The version a
provider had when it was first changed is written then too, as version 1 (``initial``: as first
loaded), so a provider that never changed has no stored versions: its history is its current record.
A version is in force from ``validFrom`` (the release date of the file that brought it) until
``validTo`` (the release that replaced it; null for the current version).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from npistack.nppes.taxonomy import Taxonomy
from npistack.records.diff import without_release
from npistack.records.rows import StoredProvider
from npistack.services.providers import _nucc, expand
from npistack.storage.base import SqlStore
from npistack.storage.changes import VersionRow, versions_at, versions_of


def _release(v: VersionRow) -> dict[str, Any]:
    return {"date": v.release_date, "kind": v.release_kind, "loadId": v.load_id}


def _fill_current(store: SqlStore, versions: Sequence[VersionRow]) -> None:
    """The current version's content is the live record (history holds it once it is replaced)."""
    missing = [v for v in versions if v.content is None]
    if not missing:
        return
    live = {int(sp.doc["npi"]): sp for sp in store.get_stored([v.npi for v in missing])}
    for v in missing:
        sp = live.get(v.npi)
        v.content = {"doc": without_release(sp.doc), "extras": sp.extras} if sp else {"doc": {}, "extras": []}


def record_of(v: VersionRow, nucc: dict[str, Taxonomy]) -> dict[str, Any]:
    """The full provider document of a stored version (content filled in by ``_fill_current``)."""
    content = v.content or {}
    doc = dict(content.get("doc") or {})
    doc["release"] = _release(v)
    extras = [(str(k), d) for k, d in content.get("extras") or []]
    return expand(StoredProvider(doc, extras), nucc)


def records_at(
    store: SqlStore, keys: Sequence[tuple[int, int]], nucc: dict[str, Taxonomy] | None = None
) -> dict[tuple[int, int], dict[str, Any]]:
    """Full documents of stored versions, by (npi, version)."""
    nucc = nucc if nucc is not None else _nucc()
    found = versions_at(store, keys)
    _fill_current(store, list(found.values()))
    return {k: record_of(v, nucc) for k, v in found.items()}


def version_object(v: VersionRow, nucc: dict[str, Taxonomy]) -> dict[str, Any]:
    return {
        "version": v.version,
        "changeType": v.change_type,
        "validFrom": v.valid_from,
        "validTo": v.valid_to,
        "release": _release(v),
        "recordedAt": v.recorded_at,
        "changes": v.diff or [],
        "record": record_of(v, nucc),
    }


def provider_history(store: SqlStore, npi: str | int) -> dict[str, Any] | None:
    """``{"npi", "current", "versions": [...]}`` oldest first, or None for an NPI never stored."""
    key = int(npi)
    nucc = _nucc()
    stored = versions_of(store, key)
    _fill_current(store, stored)
    if stored:
        versions = [version_object(v, nucc) for v in stored]
        return {"npi": f"{key:010d}", "current": stored[-1].version, "versions": versions}
    live = store.get_stored([key])
    if not live:
        return None
    sp = live[0]
    release = dict(sp.doc.get("release") or {})
    record = expand(StoredProvider(dict(without_release(sp.doc), release=release), sp.extras), nucc)
    version: dict[str, Any] = {
        "version": 1,
        "changeType": "initial",
        "validFrom": release.get("date"),
        "validTo": None,
        "release": {
            "date": release.get("date"),
            "kind": release.get("source") or "full",
            "loadId": release.get("loadId"),
        },
        "recordedAt": None,
        "changes": [],
        "record": record,
    }
    return {"npi": f"{key:010d}", "current": 1, "versions": [version]}
