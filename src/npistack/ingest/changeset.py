"""Decide and write what an incremental load changes: per NPI, old content vs new content.

``decide`` compares each incoming provider (a weekly row with its child sets, or a deactivation
stub) with what the store holds (``read_stored``; ``compare`` reads and decides) and keeps only real
changes, as ``Decision``s that carry everything the writes need: the field diff, the filter facts of
the change, the replaced version's content, and which child tables' rows change. It works in two
steps: ``doc_side`` compares the documents (a worker process that has just transformed a block does
it, ``doc_sides``), ``complete`` adds the child rows of the child files. Which index rows change is
told from the documents (``transform.rows_change``), not by reading the rows. ``replace_rows``
replaces the changed providers in the live tables and ``record`` records their versions, changes
and webhook deliveries (the caller holds the transaction, so all of it commits together or not at
all). A new monthly full file goes through ``decide`` too, for the NPIs whose content fingerprint
differs (``npistack.ingest.apply``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from npistack.ingest.diff import (
    child_sets,
    classify,
    diff,
    entity_type_of,
    extra_states,
    states_of,
    stored_content_json,
    strip_release,
    taxonomies_of,
)
from npistack.ingest.transform import rows_change
from npistack.storage.base import DATA_TABLES, SqlStore
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
        """(kind, doc JSON) of the child rows, by kind and file order."""
        return [(str(e[1]), str(e[3])) for e in sorted(self.extras, key=lambda e: (e[1], e[2]))]


class Replaced(NamedTuple):
    """The stored version a change replaces: its content (``diff.content_json``) and release."""

    content: str
    release_date: str | None
    load_id: int | None
    kind: str


@dataclass
class Decision:
    """One provider's change: what ``replace_rows`` and ``record`` write."""

    npi: int
    change_type: str
    diff: list[dict[str, Any]]
    facts: ChangeFacts
    replaced: Replaced | None  # None: the NPI is new to the store
    new: Incoming | None  # None: removed
    rewrite: tuple[str, ...] = ()  # child tables whose rows of this (stored) provider change


@dataclass
class Release:
    """The file a load applies: its release date, kind (full, weekly, deactivation) and load id."""

    load_id: int
    date: str | None
    kind: str


# Child tables and the Incoming attribute holding their rows.
_CHILD_TABLES = (
    ("provider_names", "names"),
    ("provider_taxonomies", "taxonomies"),
    ("provider_locations", "locations"),
    ("provider_extras", "extras"),
)
CHILD_TABLES = tuple(t[0] for t in _CHILD_TABLES)
# The tables a child file's rows (provider_extras.kind) also have rows in.
_EXTRA_ROWS = {"location": "provider_locations", "other_name": "provider_names"}

StoredJson = dict[int, tuple[str, list[tuple[str, str]]]]  # npi -> (doc JSON, [(kind, JSON)])


class DocSide(NamedTuple):
    """What a provider's new document changes against the stored version: the part of a decision
    that needs neither the provider's child rows nor the store, so that a worker process that has
    just transformed the document can work it out (``doc_sides``)."""

    same: bool  # the documents are equal (release aside)
    change_type: str
    diff: list[dict[str, Any]]  # the documents' fields
    entity_type: int | None
    states: frozenset[str]  # of both documents and of the stored secondary locations
    taxonomies: frozenset[str]
    replaced: Replaced | None  # None: not stored
    old_extras: list[tuple[str, str]]  # the stored child rows (kind, JSON) a reader sees
    rewrite: tuple[str, ...]  # tables whose rows made of the npidata row change (``rows_change``)


def doc_side(stored: tuple[str, list[tuple[str, str]]] | None, doc_json: str) -> DocSide:
    """``DocSide`` of a new document (JSON) against its stored version (``read_stored``), if any."""
    new_doc = orjson.loads(doc_json)
    if stored is None:
        return DocSide(
            False,
            classify(None, new_doc),
            [],
            entity_type_of(new_doc),
            frozenset(states_of(new_doc)),
            frozenset(taxonomies_of(new_doc)),
            None,
            [],
            (),
        )
    old_json, extras = stored
    old_doc = orjson.loads(old_json)
    if old_doc.get("entityType") is None:  # a deactivated record has no child rows
        extras = []
    same = strip_release(old_json) == strip_release(doc_json)
    rel = old_doc.get("release") or {}
    replaced = Replaced(
        stored_content_json(old_doc, old_json, extras),
        rel.get("date"),
        rel.get("loadId"),
        str(rel.get("source") or "full"),
    )
    return DocSide(
        same,
        classify(old_doc, new_doc),
        [] if same else diff(old_doc, new_doc),
        entity_type_of(new_doc) or entity_type_of(old_doc),
        frozenset(states_of(old_doc, extras) | states_of(new_doc)),
        frozenset(taxonomies_of(old_doc) | taxonomies_of(new_doc)),
        replaced,
        extras,
        () if same else rows_change(int(new_doc["npi"]), old_doc, new_doc),
    )


class StoredRead(NamedTuple):
    """What a worker needs to compare a block's documents with the stored ones: the NPIs that the
    block's lines most likely hold, and either what the store holds of them (``stored``) or the
    store to read it from (``url``, read-only, in the worker process)."""

    npis: frozenset[int]
    stored: StoredJson | None
    url: str | None


_READERS: dict[str, SqlStore] = {}  # per worker process: its read-only connection to each store


def read_doc_sides(providers: Iterable[tuple[Any, ...]], read: StoredRead) -> dict[int, DocSide]:
    """``doc_sides``, reading the stored documents first when ``read`` says where from.

    Worker processes read them over their own read-only connection (the store's write lock is
    held by the loading process, which writes nothing until the transform ends, so both see the
    same data): the loading process, whose Python threads share one interpreter lock, no longer
    reads and sends every stored document, and its reads were what the workers waited for."""
    stored = read.stored
    if stored is None:
        from npistack.storage import open_store

        url = str(read.url)
        store = _READERS.get(url)
        if store is None:
            store = _READERS[url] = open_store(url, read_only=True)
        stored = read_stored(store, sorted(read.npis))
    return doc_sides(providers, (read.npis, stored))


def doc_sides(
    providers: Iterable[tuple[Any, ...]], read: tuple[frozenset[int], StoredJson]
) -> dict[int, DocSide]:
    """``DocSide`` of the transformed providers whose NPIs are among those read (``read``: the NPIs
    and what the store holds of those it has)."""
    npis, stored = read
    return {
        int(p[0]): doc_side(stored.get(int(p[0])), str(p[PROVIDER_WIDTH]))
        for p in providers
        if int(p[0]) in npis
    }


def complete(inc: Incoming, side: DocSide) -> Decision | None:
    """The decision about ``inc`` given its ``DocSide`` (None: no change)."""
    extras = inc.extra_docs()
    changes = side.diff
    rewrite: tuple[str, ...] = ()
    if side.replaced is not None:
        same_extras = sorted(side.old_extras) == sorted(extras)
        if side.same and same_extras:
            return None
        if side.old_extras or extras:
            changes = changes + diff(child_sets(side.old_extras), child_sets(extras))
        rewrite = side.rewrite if same_extras else _with_extras(side.rewrite, side.old_extras, extras)
    states = side.states | extra_states(extras) if extras else side.states
    facts = ChangeFacts(inc.npi, side.change_type, side.entity_type, frozenset(states), side.taxonomies)
    return Decision(inc.npi, side.change_type, changes, facts, side.replaced, inc, rewrite)


def _with_extras(
    rewrite: tuple[str, ...], old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]]
) -> tuple[str, ...]:
    """``rewrite`` and the tables whose rows made of the child files' rows change between two child
    sets (kind, JSON): provider_extras, and the tables of the kinds that differ (``_EXTRA_ROWS``)."""
    out = set(rewrite) | {"provider_extras"}
    for kind, table in _EXTRA_ROWS.items():
        if sorted(d for k, d in old if k == kind) != sorted(d for k, d in new if k == kind):
            out.add(table)
    return tuple(t for t in CHILD_TABLES if t in out)


def decide(stored: StoredJson, incoming: Iterable[Incoming]) -> list[Decision]:
    """The changes incoming providers make to the stored ones (``read_stored``; equal content: no
    change)."""
    out: list[Decision] = []
    for inc in incoming:
        d = complete(inc, doc_side(stored.get(inc.npi), inc.doc_json))
        if d is not None:
            out.append(d)
    return out


def compare(store: SqlStore, incoming: Sequence[Incoming]) -> list[Decision]:
    """The changes ``incoming`` makes to what ``store`` holds (reads only), in the order given."""
    return decide(read_stored(store, sorted(inc.npi for inc in incoming)), incoming)


def removals(stored: StoredJson, npis: Iterable[int]) -> list[Decision]:
    """Decisions removing these stored providers (NPIs a new monthly full file no longer has)."""
    out: list[Decision] = []
    for n in npis:
        if n not in stored:
            continue
        side = doc_side(stored[n], stored[n][0])  # against itself: its facts and content
        facts = ChangeFacts(n, "removed", side.entity_type, side.states, side.taxonomies)
        out.append(Decision(n, "removed", [], facts, side.replaced, None, CHILD_TABLES))
    return out


def read_stored(store: SqlStore, npis: Sequence[int], *, prefix: str = "") -> StoredJson:
    """The stored documents and child rows of the NPIs among ``npis`` that exist, as JSON text."""
    out: StoredJson = {}
    for i in range(0, len(npis), _CHUNK):
        out.update(store.get_stored_json(npis[i : i + _CHUNK], prefix=prefix))
    return out


def replace_rows(store: SqlStore, decisions: Sequence[Decision]) -> None:
    """Replace the changed providers' rows in the live tables (child sets as a whole).

    Existing providers are updated in place, and a child table is rewritten for a provider only when
    its rows there changed (``Decision.rewrite``: a phone change leaves the name, taxonomy and
    location rows alone), so index maintenance is proportional to what changed.
    """
    existing = [(d, d.new) for d in decisions if d.replaced is not None and d.new is not None]
    fresh = [d.new for d in decisions if d.replaced is None and d.new is not None]
    gone = sorted(d.npi for d in decisions if d.new is None)
    if existing:
        store._exec_many(
            "UPDATE providers SET entity_type = ?, status = ?, last_updated = ?, primary_taxonomy = ?,"
            " practice_state = ? WHERE npi = ?",
            (tuple(new.provider[1:PROVIDER_WIDTH]) + (d.npi,) for d, new in existing),
        )
        store._exec_many(
            "UPDATE provider_docs SET doc = ? WHERE npi = ?", ((new.doc_json, d.npi) for d, new in existing)
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
    for table, attr in _CHILD_TABLES:
        rewrite = [new for d, new in existing if table in d.rewrite]
        _delete(store, (table,), sorted([n.npi for n in rewrite] + gone))
        rows = [r for n in rewrite for r in getattr(n, attr)] + [r for n in fresh for r in getattr(n, attr)]
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
        old = d.replaced
        if old is not None and prev == 0:  # keep the version as first loaded
            versions.append(
                NewVersion(
                    d.npi,
                    1,
                    "initial",
                    old.content,
                    None,
                    old.release_date,
                    old.load_id,
                    old.release_date,
                    old.kind,
                    valid_to=release.date,
                )
            )
            prev = 1
        elif prev and old is not None:
            closes.append((release.date, old.content, d.npi, prev))
        version: int | None = None
        if d.new is not None:
            version = prev + 1
            versions.append(
                NewVersion(
                    d.npi,
                    version,
                    d.change_type,
                    None,  # the live record until a later change replaces it
                    None,  # the diff: stored with the change (see storage.changes)
                    release.date,
                    release.load_id,
                    release.date,
                    release.kind,
                )
            )
        changes.append(NewChange(d.facts, version, [c["field"] for c in d.diff], d.diff))
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
