"""Decide and write what an incremental load changes: per NPI, old content vs new content.

``decide`` compares each incoming provider (a weekly row with its child sets, or a deactivation
stub) with what the store holds (``read_stored``; ``compare`` reads and decides) and keeps only real
changes, as ``Decision``s that carry everything the writes need: the field diff, the filter facts of
the change, the replaced version's content, and which child tables' rows change. It works in two
steps: ``doc_side`` compares the documents (a worker process that has just transformed a block does
it, ``doc_sides``), ``complete`` adds the child rows of the child files. Which index rows change is
told from the documents (``records.index.rows_change``), not by reading the rows. ``replace_rows``
replaces the changed providers in the live tables and ``record`` records their versions, changes
and webhook deliveries (the caller holds the transaction, so all of it commits together or not at
all). A new monthly full file goes through ``decide`` too, for the NPIs whose content fingerprint
differs (``npistack.ingest.reconcile``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from npistack.records.diff import (
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
from npistack.records.index import rows_change
from npistack.records.rows import ProviderRow, ProviderRows
from npistack.storage.base import SqlStore
from npistack.storage.changes import (
    ChangeCounts,
    ChangeFacts,
    ChangeFilter,
    NewChange,
    NewVersion,
    latest_versions,
    record_changes,
)
from npistack.storage.providers import CHILD_TABLES as PROVIDER_CHILD_TABLES

_CHUNK = 500


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
    new: ProviderRows | None  # None: removed
    rewrite: tuple[str, ...] = ()  # child tables whose rows of this (stored) provider change


@dataclass
class Release:
    """The file a load applies: its release date, kind (full, weekly, deactivation) and load id."""

    load_id: int
    date: str | None
    kind: str


CHILD_TABLES = tuple(t for t, _ in PROVIDER_CHILD_TABLES)
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


def read_doc_sides(providers: Iterable[ProviderRow], read: StoredRead) -> dict[int, DocSide]:
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
    providers: Iterable[ProviderRow], read: tuple[frozenset[int], StoredJson]
) -> dict[int, DocSide]:
    """``DocSide`` of the transformed providers whose NPIs are among those read (``read``: the NPIs
    and what the store holds of those it has)."""
    npis, stored = read
    return {p.npi: doc_side(stored.get(p.npi), p.doc) for p in providers if p.npi in npis}


def complete(inc: ProviderRows, side: DocSide) -> Decision | None:
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


def decide(stored: StoredJson, incoming: Iterable[ProviderRows]) -> list[Decision]:
    """The changes incoming providers make to the stored ones (``read_stored``; equal content: no
    change)."""
    out: list[Decision] = []
    for inc in incoming:
        d = complete(inc, doc_side(stored.get(inc.npi), inc.doc_json))
        if d is not None:
            out.append(d)
    return out


def compare(store: SqlStore, incoming: Sequence[ProviderRows]) -> list[Decision]:
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
    """Replace the changed providers' rows in the live tables (child sets as a whole), inside the
    caller's transaction: a child table is rewritten for a stored provider only when its rows
    there changed (``Decision.rewrite``)."""
    store.replace_changed(
        [(d.new, d.rewrite) for d in decisions if d.replaced is not None and d.new is not None],
        [d.new for d in decisions if d.replaced is None and d.new is not None],
        [d.npi for d in decisions if d.new is None],
    )


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
