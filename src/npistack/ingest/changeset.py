"""Decide and write what an incremental load changes: per NPI, old content vs new content.

``decide`` compares each incoming provider (a weekly row with its child sets, or a deactivation
stub) with what the store holds and keeps only real changes; ``write`` replaces those providers in
the live tables and records their versions, changes and webhook deliveries (the caller holds the
transaction, so all of it commits together or not at all). A new monthly full file goes through
``decide`` too, for the NPIs whose content fingerprint differs (``npistack.ingest.apply``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from npistack.ingest.diff import (
    classify,
    content_json,
    content_key,
    diff,
    entity_type_of,
    states_of,
    taxonomies_of,
    view,
)
from npistack.storage.base import DATA_TABLES, SqlStore, StoredProvider
from npistack.storage.changes import (
    ChangeCounts,
    ChangeFacts,
    ChangeFilter,
    NewChange,
    NewVersion,
    latest_versions,
    record_changes,
)

_CHUNK = 500
PROVIDER_WIDTH = len(DATA_TABLES["providers"])


@dataclass
class Incoming:
    """One provider's new content: its npidata row (as transformed) and its complete child rows."""

    provider: tuple[Any, ...]  # (npi, entity, status, updated, primary, state, doc_json, line)
    names: list[tuple[Any, ...]] = field(default_factory=list)
    taxonomies: list[tuple[Any, ...]] = field(default_factory=list)
    locations: list[tuple[Any, ...]] = field(default_factory=list)
    extras: list[tuple[Any, ...]] = field(default_factory=list)  # (npi, kind, seq, doc_json)

    @property
    def npi(self) -> int:
        return int(self.provider[0])

    @property
    def doc_json(self) -> str:
        return str(self.provider[PROVIDER_WIDTH])

    def extra_docs(self) -> list[tuple[str, str]]:
        """(kind, doc JSON) of the child rows, by kind and file order (cached)."""
        cached: list[tuple[str, str]] | None = getattr(self, "_extra_docs", None)
        if cached is None:
            cached = [(str(e[1]), str(e[3])) for e in sorted(self.extras, key=lambda e: (e[1], e[2]))]
            self._extra_docs = cached
        return cached


@dataclass
class Decision:
    npi: int
    change_type: str
    old: StoredProvider | None
    new: Incoming | None
    diff: list[dict[str, Any]]


@dataclass
class Release:
    """The file a load applies: its release date, kind (full, weekly, deactivation) and load id."""

    load_id: int
    date: str | None
    kind: str


def _stored_key(sp: StoredProvider) -> bytes:
    return content_key(orjson.dumps(sp.doc).decode(), [(k, orjson.dumps(d).decode()) for k, d in sp.extras])


def decide(old: dict[int, StoredProvider], incoming: Iterable[Incoming]) -> list[Decision]:
    """The changes incoming providers make to the stored ones (equal content: no change)."""
    out: list[Decision] = []
    for inc in incoming:
        before = old.get(inc.npi)
        if before is not None and _stored_key(before) == content_key(inc.doc_json, inc.extra_docs()):
            continue
        new_doc = orjson.loads(inc.doc_json)
        ctype = classify(before.doc if before else None, new_doc)
        changes: list[dict[str, Any]] = []
        if before is not None:
            changes = diff(view(before.doc, before.extras), view(new_doc, inc.extra_docs()))
        out.append(Decision(inc.npi, ctype, before, inc, changes))
    return out


def removals(old: dict[int, StoredProvider], npis: Iterable[int]) -> list[Decision]:
    return [Decision(n, "removed", old[n], None, []) for n in npis if n in old]


def load_stored(store: SqlStore, npis: Sequence[int], *, prefix: str = "") -> dict[int, StoredProvider]:
    out: dict[int, StoredProvider] = {}
    for i in range(0, len(npis), _CHUNK):
        for sp in store.get_stored(npis[i : i + _CHUNK], prefix=prefix):
            out[int(sp.doc["npi"])] = sp
    return out


# Child tables and the columns that identify a row's content (file line numbers are not content).
_CHILD_TABLES = (
    ("provider_names", "names", "npi, entity_type, name_type, name_key, first_key", None),
    ("provider_taxonomies", "taxonomies", "npi, slot, code, license_key, license_state, is_primary", None),
    (
        "provider_locations",
        "locations",
        "npi, purpose, seq, city_key, state, zip5, cell, lat, lon, postal, country",
        2,
    ),
    ("provider_extras", "extras", "npi, kind, seq, doc", 2),
)


def _content_rows(rows: Iterable[Sequence[Any]], seq_at: int | None) -> list[tuple[Any, ...]]:
    if seq_at is None:
        return sorted(tuple(r) for r in rows)
    return sorted(tuple(r[:seq_at]) + tuple(r[seq_at + 1 :]) for r in rows)


def replace_rows(store: SqlStore, decisions: Sequence[Decision]) -> None:
    """Replace the changed providers' rows in the live tables (child sets as a whole).

    Existing providers are updated in place, and a child table is rewritten for a provider only when
    its rows there changed (a phone change leaves the name, taxonomy and location rows alone), so
    index maintenance is proportional to what changed.
    """
    existing = [d for d in decisions if d.old is not None and d.new is not None]
    fresh = [d.new for d in decisions if d.old is None and d.new is not None]
    gone = sorted(d.npi for d in decisions if d.new is None)
    if existing:
        store._exec_many(
            "UPDATE providers SET entity_type = ?, status = ?, last_updated = ?, primary_taxonomy = ?,"
            " practice_state = ? WHERE npi = ?",
            (tuple(d.new.provider[1:PROVIDER_WIDTH]) + (d.npi,) for d in existing if d.new is not None),
        )
        store._exec_many(
            "UPDATE provider_docs SET doc = ? WHERE npi = ?",
            ((d.new.doc_json, d.npi) for d in existing if d.new is not None),
        )
    if fresh:
        store._bulk_insert(
            "providers", DATA_TABLES["providers"], (n.provider[:PROVIDER_WIDTH] for n in fresh)
        )
        store._bulk_insert(
            "provider_docs", DATA_TABLES["provider_docs"], ((n.provider[0], n.doc_json) for n in fresh)
        )
    if gone:
        _delete(store, ("providers", "provider_docs"), gone)
    npis = sorted(d.npi for d in existing)
    by_npi = {d.npi: d.new for d in existing}
    for table, attr, columns, seq_at in _CHILD_TABLES:
        old_rows: dict[int, list[tuple[Any, ...]]] = {}
        for i in range(0, len(npis), _CHUNK):
            part = npis[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            for r in store._query(f"SELECT {columns} FROM {table} WHERE npi IN ({marks})", part):
                old_rows.setdefault(int(r[0]), []).append(r)
        rewrite = [
            n
            for n in npis
            if _content_rows(old_rows.get(n, ()), seq_at) != _content_rows(getattr(by_npi[n], attr), seq_at)
        ]
        _delete(store, (table,), sorted([n for n in rewrite if n in old_rows] + gone))
        rows = [r for n in rewrite for r in getattr(by_npi[n], attr)] + [
            r for n in fresh for r in getattr(n, attr)
        ]
        if rows:
            store._bulk_insert(table, DATA_TABLES[table], rows)
    add_name_keys(store, [r for d in decisions if d.new is not None for r in d.new.names])


def _delete(store: SqlStore, tables: Sequence[str], npis: Sequence[int]) -> None:
    for i in range(0, len(npis), _CHUNK):
        part = list(npis[i : i + _CHUNK])
        marks = ",".join("?" * len(part))
        for table in tables:
            store._exec(f"DELETE FROM {table} WHERE npi IN ({marks})", part)


def add_name_keys(store: SqlStore, names: Sequence[tuple[Any, ...]]) -> None:
    """New name keys join the fuzzy-search vocabulary (unused keys stay until the next full load)."""
    wanted = sorted({(3 if n[2] == "ao" else int(n[1]), str(n[3])) for n in names if n[3]})
    if not wanted:
        return
    have: set[tuple[int, str]] = set()
    by_class: dict[int, list[str]] = {}
    for klass, key in wanted:
        by_class.setdefault(klass, []).append(key)
    for klass, keys in by_class.items():
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            have |= {
                (klass, str(r[0]))
                for r in store._query(
                    f"SELECT name_key FROM provider_name_keys WHERE klass = ? AND name_key IN ({marks})",
                    [klass, *part],
                )
            }
    missing = [k for k in wanted if k not in have]
    if missing:
        store._bulk_insert("provider_name_keys", DATA_TABLES["provider_name_keys"], missing)


def _old_release(sp: StoredProvider) -> tuple[str | None, int | None, str]:
    rel = sp.doc.get("release") or {}
    return rel.get("date"), rel.get("loadId"), str(rel.get("source") or "full")


def record(
    store: SqlStore,
    decisions: Sequence[Decision],
    release: Release,
    subscriptions: Sequence[tuple[int, ChangeFilter]] | None = None,
) -> ChangeCounts:
    """Versions (with the first version of a provider changed for the first time), changes, outbox."""
    latest = latest_versions(store, [d.npi for d in decisions])
    versions: list[NewVersion] = []
    closes: list[tuple[str | None, str, int, int]] = []
    changes: list[NewChange] = []
    for d in decisions:
        prev = latest.get(d.npi, 0)
        if d.old is not None and prev == 0:  # keep the version as first loaded
            date, load_id, kind = _old_release(d.old)
            versions.append(
                NewVersion(
                    d.npi,
                    1,
                    "initial",
                    content_json(d.old.doc, d.old.extras),
                    None,
                    date,
                    load_id,
                    date,
                    kind,
                    valid_to=release.date,
                )
            )
            prev = 1
        elif prev and d.old is not None:
            closes.append((release.date, content_json(d.old.doc, d.old.extras), d.npi, prev))
        version: int | None = None
        new_doc = orjson.loads(d.new.doc_json) if d.new is not None else None
        if d.new is not None and new_doc is not None:
            version = prev + 1
            versions.append(
                NewVersion(
                    d.npi,
                    version,
                    d.change_type,
                    None,  # the live record until a later change replaces it
                    d.diff,
                    release.date,
                    release.load_id,
                    release.date,
                    release.kind,
                )
            )
        old_doc = d.old.doc if d.old else None
        facts = ChangeFacts(
            d.npi,
            d.change_type,
            entity_type_of(new_doc) or entity_type_of(old_doc),
            frozenset(states_of(old_doc, d.old.extras if d.old else ()) | states_of(new_doc, _extras(d))),
            frozenset(taxonomies_of(old_doc) | taxonomies_of(new_doc)),
        )
        changes.append(NewChange(facts, version, [c["field"] for c in d.diff], d.diff))
    return record_changes(
        store,
        load_id=release.load_id,
        release_date=release.date,
        release_kind=release.kind,
        versions=versions,
        changes=changes,
        closes=closes,
        subscriptions=subscriptions,
    )


def _extras(d: Decision) -> list[tuple[str, str]]:
    return d.new.extra_docs() if d.new is not None else []
