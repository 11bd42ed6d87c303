"""The named rows of the store's data tables, and what one block of a data file becomes.

Each row type's fields are its table's columns, in order (``storage`` inserts them as they are, and
checks the names against its schema at import: ``storage.schema.DATA_TABLES``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

    def place(self) -> tuple[object, ...]:
        """Where the row is (every field but the NPI, purpose and seq): two rows at one place."""
        return (
            self.city_key,
            self.state,
            self.zip5,
            self.cell,
            self.lat,
            self.lon,
            self.postal,
            self.country,
        )


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

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - self.rows_quarantined


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
