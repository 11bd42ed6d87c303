"""Provider versions, the change feed and the webhook outbox: rows, filters and SQL (tables in
``history_ddl``).

Filters (``ChangeFilter``) are the same for the feed and for webhook subscriptions: change types,
NPIs, states, taxonomy codes and entity types; within one criterion any value matches, and every
criterion given must match. A change's states and taxonomy codes are those of the provider before
*and* after the change, so a subscriber to a state hears of a provider moving out of it.

``record_changes`` runs inside the transaction of the load that made the changes: the versions, the
changes and one delivery row per matching webhook subscription are committed together with the new
data, or not at all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from npistack.errors import NpistackError, StoreError
from npistack.nppes.npi import npi_problem
from npistack.storage.base import SqlStore
from npistack.storage.core import utcnow

_CHUNK = 500
CHANGE_TYPES = ("created", "updated", "deactivated", "reactivated", "removed")
ENTITY_TYPES = {"1": 1, "2": 2, "NPI-1": 1, "NPI-2": 2, "individual": 1, "organization": 2}
MAX_FILTER_VALUES = 1000


class FilterError(NpistackError, ValueError):
    """A filter value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes a feed request or a webhook subscription wants (empty criterion: any)."""

    types: frozenset[str] = frozenset()
    npis: frozenset[int] = frozenset()
    states: frozenset[str] = frozenset()
    taxonomies: frozenset[str] = frozenset()
    entity_types: frozenset[int] = frozenset()

    @classmethod
    def parse(
        cls,
        *,
        types: Iterable[str] = (),
        npis: Iterable[str | int] = (),
        states: Iterable[str] = (),
        taxonomies: Iterable[str] = (),
        entity_types: Iterable[str | int] = (),
    ) -> ChangeFilter:
        """Validate raw values (strings from a query string, JSON or the CLI); raises FilterError."""
        out_types = set()
        for t in _values(types):
            t = t.lower()
            if t not in CHANGE_TYPES:
                raise FilterError(f"unknown change type {t!r}; expected one of {', '.join(CHANGE_TYPES)}")
            out_types.add(t)
        out_npis = set()
        for n in _values(npis):
            problem = npi_problem(n)
            if problem:
                raise FilterError(f"npi {n!r}: {problem}")
            out_npis.add(int(n))
        out_states = set()
        for s in _values(states):
            if len(s) != 2 or not s.isalpha() or not s.isascii():
                raise FilterError(f"state {s!r} must be a two-letter code")
            out_states.add(s.upper())
        out_taxo = set()
        for code in _values(taxonomies):
            if len(code) != 10 or not code.isalnum() or not code.isascii():
                raise FilterError(f"taxonomy code {code!r} must be a 10-character NUCC code")
            out_taxo.add(code.upper())
        out_entities = set()
        for e in _values(entity_types):
            if e not in ENTITY_TYPES:
                raise FilterError(f"entity type {e!r} must be 1 (individual) or 2 (organization)")
            out_entities.add(ENTITY_TYPES[e])
        for name, got in (("npi", out_npis), ("state", out_states), ("taxonomy", out_taxo)):
            if len(got) > MAX_FILTER_VALUES:
                raise FilterError(f"at most {MAX_FILTER_VALUES} {name} values in one filter")
        return cls(
            frozenset(out_types),
            frozenset(out_npis),
            frozenset(out_states),
            frozenset(out_taxo),
            frozenset(out_entities),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ChangeFilter:
        """From the JSON form (``as_dict``); raises FilterError on unknown keys or bad values."""
        data = dict(data or {})
        unknown = set(data) - {"types", "npis", "states", "taxonomies", "entity_types"}
        if unknown:
            raise FilterError(
                f"unknown filter field(s) {', '.join(sorted(unknown))}; "
                "use types, npis, states, taxonomies, entity_types"
            )
        lists: dict[str, list[str]] = {}
        for k, v in data.items():
            if v is None:
                v = []
            if not isinstance(v, list) or not all(isinstance(x, str | int) for x in v):
                raise FilterError(f"filter field {k!r} must be a list of strings")
            lists[k] = [str(x) for x in v]
        return cls.parse(**lists)

    def as_dict(self) -> dict[str, list[Any]]:
        return {
            "types": sorted(self.types),
            "npis": [f"{n:010d}" for n in sorted(self.npis)],
            "states": sorted(self.states),
            "taxonomies": sorted(self.taxonomies),
            "entity_types": sorted(self.entity_types),
        }

    @property
    def empty(self) -> bool:
        return not (self.types or self.npis or self.states or self.taxonomies or self.entity_types)

    def matches(self, change: ChangeFacts) -> bool:
        if self.types and change.change_type not in self.types:
            return False
        if self.npis and change.npi not in self.npis:
            return False
        if self.entity_types and change.entity_type not in self.entity_types:
            return False
        if self.states and not (change.states & self.states):
            return False
        return not (self.taxonomies and not (change.taxonomies & self.taxonomies))


def _values(raw: Iterable[str | int]) -> list[str]:
    """Values from repeated parameters and/or comma-separated lists, stripped, blanks dropped."""
    out: list[str] = []
    for item in raw:
        for part in str(item).split(","):
            part = part.strip()
            if part:
                out.append(part)
    return out


@dataclass
class ChangeFacts:
    """What a filter looks at: the provider before and after the change."""

    npi: int
    change_type: str
    entity_type: int | None
    states: frozenset[str] = field(default_factory=frozenset)
    taxonomies: frozenset[str] = field(default_factory=frozenset)

    @property
    def state_column(self) -> str:
        """States as stored in ``changes.state``: space-padded codes (`` CA NV ``)."""
        return " " + " ".join(sorted(self.states)) + " " if self.states else ""

    @property
    def taxonomy_column(self) -> str:
        return " " + " ".join(sorted(self.taxonomies)) + " " if self.taxonomies else ""


@dataclass
class ChangeRow:
    """A stored change (``changes`` table)."""

    id: int
    event_id: str
    load_id: int
    release_date: str | None
    release_kind: str
    npi: int
    change_type: str
    entity_type: int | None
    version: int | None
    fields: list[str]
    diff: list[dict[str, Any]]
    created_at: str


@dataclass
class NewVersion:
    """A provider version to store (``valid_to`` is set for a version already replaced)."""

    npi: int
    version: int
    change_type: str
    content: str | None  # JSON {"doc": ..., "extras": [[kind, doc], ...]}; None: the live record
    diff: list[dict[str, Any]] | None  # None: no diff, or the one stored with the version's change
    valid_from: str | None
    load_id: int | None
    release_date: str | None
    release_kind: str
    valid_to: str | None = None


@dataclass
class NewChange:
    facts: ChangeFacts
    version: int | None
    fields: list[str]
    diff: list[dict[str, Any]]


@dataclass
class ChangeCounts:
    changes: int = 0
    deliveries: int = 0


def latest_versions(store: SqlStore, npis: Sequence[int]) -> dict[int, int]:
    """The newest stored version number of each NPI that has history."""
    out: dict[int, int] = {}
    for i in range(0, len(npis), _CHUNK):
        part = list(npis[i : i + _CHUNK])
        marks = ",".join("?" * len(part))
        for npi, version in store._query(
            f"SELECT npi, max(version) FROM provider_history WHERE npi IN ({marks}) GROUP BY npi", part
        ):
            out[int(npi)] = int(version)
    return out


def active_subscriptions(store: SqlStore) -> list[tuple[int, ChangeFilter]]:
    rows = store._query("SELECT id, filters FROM webhook_subscriptions WHERE active = 1 ORDER BY id")
    return [(int(r[0]), ChangeFilter.from_dict(orjson.loads(r[1] or "{}"))) for r in rows]


def record_changes(
    store: SqlStore,
    *,
    load_id: int,
    release_date: str | None,
    release_kind: str,
    versions: Sequence[NewVersion],
    changes: Sequence[NewChange],
    closes: Sequence[tuple[str | None, str, int, int]] = (),
    subscriptions: Sequence[tuple[int, ChangeFilter]] | None = None,
) -> ChangeCounts:
    """Write versions, changes and their outbox deliveries, in the caller's open transaction.

    ``closes`` are (valid_to, content, npi, version) of the current versions this load replaced: they
    get their end date and their content (the live record, about to be overwritten).
    """
    now = utcnow()
    counts = ChangeCounts()
    dumped: dict[int, str] = {}  # id(diff) -> its JSON: a version and its change share one diff

    def diff_json(d: list[dict[str, Any]]) -> str:
        text = dumped.get(id(d))
        if text is None:
            text = dumped[id(d)] = orjson.dumps(d).decode()
        return text

    if closes:
        store._exec_many(
            "UPDATE provider_history SET valid_to = ?, content = coalesce(content, ?) WHERE npi = ? AND version = ?",
            closes,
        )
    if versions:
        store._bulk_insert(
            "provider_history",
            (
                "npi",
                "version",
                "load_id",
                "release_date",
                "release_kind",
                "valid_from",
                "valid_to",
                "change_type",
                "content",
                "diff",
                "recorded_at",
            ),
            (
                (
                    v.npi,
                    v.version,
                    v.load_id,
                    v.release_date,
                    v.release_kind,
                    v.valid_from,
                    v.valid_to,
                    v.change_type,
                    v.content,
                    diff_json(v.diff) if v.diff is not None else None,
                    now,
                )
                for v in versions
            ),
        )
    if not changes:
        return counts
    first_event = uuid.uuid4().hex[:16]
    before = last_change_id(store)
    rows = [
        (
            f"evt_{first_event}{i:08x}",
            load_id,
            release_date,
            release_kind,
            c.facts.npi,
            c.facts.change_type,
            c.facts.entity_type,
            c.facts.state_column,
            c.facts.taxonomy_column,
            c.version,
            orjson.dumps(c.fields).decode(),
            diff_json(c.diff),
            now,
        )
        for i, c in enumerate(changes)
    ]
    store._bulk_insert(
        "changes",
        (
            "event_id",
            "load_id",
            "release_date",
            "release_kind",
            "npi",
            "change_type",
            "entity_type",
            "state",
            "taxonomies",
            "version",
            "fields",
            "diff",
            "created_at",
        ),
        rows,
    )
    counts.changes = len(rows)
    subs = active_subscriptions(store) if subscriptions is None else list(subscriptions)
    if not subs:
        return counts
    # The ids the rows just got, in insertion order: past the last id before them (one load writes
    # at a time), read from the primary key, not by event id (which scanned every change of the
    # load so far, per call).
    ids = [
        (int(r[0]), str(r[1]))
        for r in store._query(
            "SELECT id, event_id FROM changes WHERE id > ? AND load_id = ? ORDER BY id", (before, load_id)
        )
    ]
    if [e for _, e in ids] != [r[0] for r in rows]:  # pragma: no cover - another writer interleaved
        raise StoreError(
            "the change feed's new rows were interleaved with another writer's; nothing was changed"
        )
    due = time.time()
    deliveries = [
        (sub_id, change_id, event_id, "pending", 0, due, now)
        for (change_id, event_id), c in zip(ids, changes, strict=True)
        for sub_id, flt in subs
        if flt.matches(c.facts)
    ]
    if deliveries:
        store._bulk_insert(
            "webhook_deliveries",
            (
                "subscription_id",
                "change_id",
                "event_id",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ),
            deliveries,
        )
    counts.deliveries = len(deliveries)
    return counts


_CHANGE_COLS = (
    "id, event_id, load_id, release_date, release_kind, npi, change_type, entity_type, version, fields, diff,"
    " created_at"
)


def _change(r: Sequence[Any]) -> ChangeRow:
    return ChangeRow(
        id=int(r[0]),
        event_id=r[1],
        load_id=int(r[2]),
        release_date=r[3],
        release_kind=r[4],
        npi=int(r[5]),
        change_type=r[6],
        entity_type=r[7],
        version=r[8],
        fields=orjson.loads(r[9]),
        diff=orjson.loads(r[10]),
        created_at=str(r[11]),
    )


def changes_by_id(store: SqlStore, ids: Sequence[int]) -> list[ChangeRow]:
    out: list[ChangeRow] = []
    ids = list(dict.fromkeys(int(i) for i in ids))
    for i in range(0, len(ids), _CHUNK):
        part = ids[i : i + _CHUNK]
        marks = ",".join("?" * len(part))
        out += [
            _change(r)
            for r in store._query(
                f"SELECT {_CHANGE_COLS} FROM changes WHERE id IN ({marks}) ORDER BY id", part
            )
        ]
    return out


def filter_sql(flt: ChangeFilter) -> tuple[str, list[Any]]:
    """WHERE clauses (joined with AND, or '') and parameters of a change filter."""
    clauses: list[str] = []
    params: list[Any] = []
    if flt.types:
        clauses.append(f"change_type IN ({','.join('?' * len(flt.types))})")
        params += sorted(flt.types)
    if flt.npis:
        clauses.append(f"npi IN ({','.join('?' * len(flt.npis))})")
        params += sorted(flt.npis)
    if flt.entity_types:
        clauses.append(f"entity_type IN ({','.join('?' * len(flt.entity_types))})")
        params += sorted(flt.entity_types)
    if flt.states:
        clauses.append("(" + " OR ".join("state LIKE ?" for _ in flt.states) + ")")
        params += [f"% {s} %" for s in sorted(flt.states)]
    if flt.taxonomies:
        clauses.append("(" + " OR ".join("taxonomies LIKE ?" for _ in flt.taxonomies) + ")")
        params += [f"% {t} %" for t in sorted(flt.taxonomies)]
    return " AND ".join(clauses), params


def read_changes(store: SqlStore, *, after: int, flt: ChangeFilter, limit: int) -> list[ChangeRow]:
    """Changes with id > ``after`` that match ``flt``, in feed order, at most ``limit``."""
    where, params = filter_sql(flt)
    sql = f"SELECT {_CHANGE_COLS} FROM changes WHERE id > ?"
    if where:
        sql += " AND " + where
    return [_change(r) for r in store._query(sql + " ORDER BY id LIMIT ?", [after, *params, limit])]


def last_change_id(store: SqlStore) -> int:
    return int(store._query("SELECT coalesce(max(id), 0) FROM changes")[0][0])


def change_stats(store: SqlStore) -> list[dict[str, Any]]:
    """Counts per load (release) and change type, oldest first."""
    rows = store._query(
        "SELECT load_id, release_date, release_kind, change_type, count(*), min(id), max(id) FROM changes"
        " GROUP BY load_id, release_date, release_kind, change_type ORDER BY load_id, change_type"
    )
    out: dict[int, dict[str, Any]] = {}
    for load_id, release, kind, ctype, n, lo, hi in rows:
        item = out.setdefault(
            int(load_id),
            {
                "loadId": int(load_id),
                "release": {"date": release, "kind": kind},
                "counts": {},
                "total": 0,
                "firstId": int(lo),
                "lastId": int(hi),
            },
        )
        item["counts"][ctype] = int(n)
        item["total"] += int(n)
        item["firstId"] = min(item["firstId"], int(lo))
        item["lastId"] = max(item["lastId"], int(hi))
    return list(out.values())


@dataclass
class VersionRow:
    npi: int
    version: int
    load_id: int | None
    release_date: str | None
    release_kind: str | None
    valid_from: str | None
    valid_to: str | None
    change_type: str
    content: dict[str, Any] | None  # None: the current version, whose content is the live record
    diff: list[dict[str, Any]] | None
    recorded_at: str


# A version's diff is stored once, in the row of the change that made it (``changes.version``);
# versions recorded before that carry their own copy.
_VERSION_COLS = (
    "h.npi, h.version, h.load_id, h.release_date, h.release_kind, h.valid_from, h.valid_to, h.change_type,"
    " h.content, coalesce(h.diff, (SELECT c.diff FROM changes c WHERE c.npi = h.npi AND c.version = h.version"
    " ORDER BY c.id DESC LIMIT 1)), h.recorded_at"
)


def _version(r: Sequence[Any]) -> VersionRow:
    return VersionRow(
        npi=int(r[0]),
        version=int(r[1]),
        load_id=r[2],
        release_date=r[3],
        release_kind=r[4],
        valid_from=r[5],
        valid_to=r[6],
        change_type=r[7],
        content=orjson.loads(r[8]) if r[8] is not None else None,
        diff=orjson.loads(r[9]) if r[9] is not None else None,
        recorded_at=str(r[10]),
    )


def versions_of(store: SqlStore, npi: int) -> list[VersionRow]:
    return [
        _version(r)
        for r in store._query(
            f"SELECT {_VERSION_COLS} FROM provider_history h WHERE h.npi = ? ORDER BY h.version", (npi,)
        )
    ]


def versions_at(store: SqlStore, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], VersionRow]:
    """Stored versions by (npi, version)."""
    out: dict[tuple[int, int], VersionRow] = {}
    keys = list(dict.fromkeys(keys))
    for i in range(0, len(keys), _CHUNK):
        part = keys[i : i + _CHUNK]
        npis = sorted({k[0] for k in part})
        marks = ",".join("?" * len(npis))
        wanted = set(part)
        for r in store._query(
            f"SELECT {_VERSION_COLS} FROM provider_history h WHERE h.npi IN ({marks})", npis
        ):
            v = _version(r)
            if (v.npi, v.version) in wanted:
                out[(v.npi, v.version)] = v
    return out
