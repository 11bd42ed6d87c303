"""The named rows of the store's data tables, and what one block of a data file becomes.

Each row type's fields are its table's columns, in order (``storage`` inserts them as they are, and
checks the names against its schema at import: ``storage.schema.DATA_TABLES``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any, NamedTuple

from npistack.nppes.layout import FileKind


class ProviderRow(NamedTuple):
    """A provider: the ``providers`` columns, its document (``provider_docs.doc``), its line."""

    npi: int
    entity_type: int | None  # 1, 2, or None for a deactivated NPI as CMS publishes it
    status: str | None  # active | deactivated (None: a row that only carries a document)
    last_updated: str | None  # ISO date
    primary_taxonomy: str | None
    practice_state: str | None
    doc: str  # the stored document, JSON
    line: int  # its line in the file (0 for a provider fetched from the upstream registry)


class NameRow(NamedTuple):
    """A ``provider_names`` row: one searchable name of a provider."""

    npi: int
    entity_type: int
    name_type: str  # legal | other | ao (the authorized official of an organization)
    name_key: str
    first_key: str


class TaxonomyRow(NamedTuple):
    """A ``provider_taxonomies`` row: one taxonomy slot (code and license)."""

    npi: int
    slot: int
    code: str
    license_key: str
    license_state: str
    is_primary: int  # 1 or 0


class LocationRow(NamedTuple):
    """A ``provider_locations`` row: an address, as searched (city key, state, ZIP, geo cell)."""

    npi: int
    purpose: str  # mailing | primary | secondary | both (``keys.MAILING_AND_PRIMARY``)
    seq: int
    city_key: str
    state: str
    zip5: str
    cell: int | None
    lat: float | None
    lon: float | None
    postal: str
    country: str

    def place(self) -> tuple[Any, ...]:
        """Where the row is (every field after the NPI, purpose and seq, in order): two rows at one
        place."""
        return _PLACE(self)  # type: ignore[no-any-return]


# LocationRow.place: the fields from city_key on, sliced in C (a load calls it twice per provider).
_PLACE = itemgetter(slice(LocationRow._fields.index("city_key"), None))
assert LocationRow._fields[LocationRow._fields.index("city_key") :] == (
    "city_key", "state", "zip5", "cell", "lat", "lon", "postal", "country",
)  # fmt: skip


class ExtraRow(NamedTuple):
    """A ``provider_extras`` row: a child file's row (secondary location, other name, endpoint)."""

    npi: int
    kind: str  # location | other_name | endpoint
    seq: int
    doc: str  # JSON


class QuarantinedLine(NamedTuple):
    """A line that could not be loaded: where, why, and its raw text."""

    line: int
    reason: str
    raw: str


class DeferredLine(NamedTuple):
    """A line refused after its block was transformed (a duplicate NPI of an earlier block): its raw
    text is read back from the file at the end of the file."""

    line: int
    reason: str


@dataclass
class BlockResult:
    """Everything one block of one data file turns into."""

    kind: FileKind
    rows_read: int = 0
    providers: list[ProviderRow] = field(default_factory=list)
    names: list[NameRow] = field(default_factory=list)
    taxonomies: list[TaxonomyRow] = field(default_factory=list)
    locations: list[LocationRow] = field(default_factory=list)
    extras: list[ExtraRow] = field(default_factory=list)
    quarantine: list[QuarantinedLine] = field(default_factory=list)
    deferred: list[DeferredLine] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine) + len(self.deferred)

    def __reduce__(self) -> tuple[Any, ...]:
        # Blocks cross a process boundary (transform workers -> writer) by the hundred thousand rows.
        # Pickled as named tuples, every row would go through ``__getnewargs__`` and ``__new__``,
        # Python functions: 3.5x the pickling and 2.2x the unpickling time of plain tuples, paid
        # by the writer process, which sets the pace of a load. So rows travel as plain tuples and
        # become named again in C (``tuple.__new__``), with no Python call per row either way
        # (``row[:]`` of a named tuple is a plain tuple: twice as fast as ``tuple(row)``).
        lists = [list(map(_AS_TUPLE, getattr(self, name))) for name, _ in _ROW_LISTS]
        return (_unpickle_block, (self.kind, self.rows_read, *lists))

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - self.rows_quarantined

    def pack(self) -> PackedBlock:
        """The block as a full load's writer takes it (see ``PackedBlock``)."""
        return PackedBlock(
            self.kind,
            self.rows_read,
            providers=list(map(_AS_TUPLE, self.providers)),
            names=list(map(_AS_TUPLE, self.names)),
            taxonomies=list(map(_AS_TUPLE, self.taxonomies)),
            locations=list(map(_AS_TUPLE, self.locations)),
            extras=list(map(_AS_TUPLE, self.extras)),
            quarantine=self.quarantine,
            deferred=self.deferred,
        )


_ROW_LISTS: tuple[tuple[str, type[tuple[Any, ...]]], ...] = (
    ("providers", ProviderRow),
    ("names", NameRow),
    ("taxonomies", TaxonomyRow),
    ("locations", LocationRow),
    ("extras", ExtraRow),
    ("quarantine", QuarantinedLine),
    ("deferred", DeferredLine),
)


_AS_TUPLE = itemgetter(slice(None))  # row[:]: a named tuple's fields as a plain tuple, in C


@dataclass
class PackedBlock:
    """A transformed block on its way to a full load's writer: each row list's rows as plain tuples
    of the same fields (a ``ProviderRow``'s, a ``NameRow``'s...), in the same order.

    A full load moves every row of the registry from a transform worker to the writer process, once
    and only to insert it. Plain tuples make that ~40% cheaper for the writer, which sets the pace:
    pickle writes and reads them natively (a named tuple goes through two Python calls per row),
    and sqlite3 binds an exact tuple through its fast path (a tuple subclass item by item: 6.2
    against 3.7 us for an 11-column row). The writer reads fields through getters made from the row
    types' field names (``storage.schema``), never by a literal position. Code that reads rows by
    name takes a ``BlockResult`` (``unpack``).
    """

    kind: FileKind
    rows_read: int = 0
    providers: list[tuple[Any, ...]] = field(default_factory=list)
    names: list[tuple[Any, ...]] = field(default_factory=list)
    taxonomies: list[tuple[Any, ...]] = field(default_factory=list)
    locations: list[tuple[Any, ...]] = field(default_factory=list)
    extras: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[QuarantinedLine] = field(default_factory=list)
    deferred: list[DeferredLine] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine) + len(self.deferred)

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - self.rows_quarantined

    def unpack(self) -> BlockResult:
        """The block with named rows again."""
        out = BlockResult(self.kind, self.rows_read, quarantine=self.quarantine, deferred=self.deferred)
        for (name, row_type), rows in zip(_ROW_LISTS[:5], self._row_lists(), strict=True):
            setattr(out, name, list(map(partial(tuple.__new__, row_type), rows)))
        return out

    def _row_lists(self) -> tuple[list[tuple[Any, ...]], ...]:
        return (self.providers, self.names, self.taxonomies, self.locations, self.extras)


def _unpickle_block(kind: FileKind, rows_read: int, *lists: list[tuple[Any, ...]]) -> BlockResult:
    out = BlockResult(kind, rows_read)
    for (name, row_type), rows in zip(_ROW_LISTS, lists, strict=True):
        setattr(out, name, list(map(partial(tuple.__new__, row_type), rows)))
    return out


@dataclass(frozen=True)
class Context:
    """What a transform needs besides the row: the load and release it belongs to."""

    load_id: int
    release_date: str | None  # ISO date of the bundle
    nucc_csv: str | None = None


@dataclass
class StoredProvider:
    """A provider as stored: the compact document and its child rows (kind, doc) in file order."""

    doc: dict[str, Any]
    extras: list[tuple[str, dict[str, Any]]]


@dataclass
class ProviderRows:
    """One provider's rows in every data table: its provider row and its child rows (complete, or
    those of the files read so far)."""

    provider: ProviderRow
    names: list[NameRow] = field(default_factory=list)
    taxonomies: list[TaxonomyRow] = field(default_factory=list)
    locations: list[LocationRow] = field(default_factory=list)
    extras: list[ExtraRow] = field(default_factory=list)

    @property
    def npi(self) -> int:
        return self.provider.npi

    @property
    def doc_json(self) -> str:
        return self.provider.doc

    def extra_docs(self) -> list[tuple[str, str]]:
        """(kind, doc JSON) of the child rows, by kind and file order."""
        return [(e.kind, e.doc) for e in sorted(self.extras, key=lambda e: (e.kind, e.seq))]
