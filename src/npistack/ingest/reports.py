"""What a load reports (per file and in all) and the guards it runs under."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from npistack.errors import LoadError

ProgressFn = Callable[[str, int, int], None]  # (file kind, rows done in this call, bytes done)


@dataclass
class FileReport:
    kind: str
    name: str
    layout: str
    size: int
    crc32: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LoadSummary:
    load_id: int
    status: str  # succeeded, unchanged
    source: str
    release_date: str | None
    checksum: str
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)


@dataclass(frozen=True)
class LoadLimits:
    """What one load may do before it is refused or stopped (docs/ingest.md, "Guards").

    ``max_removed_share`` and ``max_quarantine_share``: a monthly full file replacing a store that
    has providers is refused (nothing changed) when it would remove more than this share of them, or
    when more than this share of its rows is quarantined, unless forced (``check_full_load``).
    ``max_quarantine_rows``: a load that quarantines more rows than this is stopped, forced or not.
    """

    max_removed_share: float = 0.05
    max_quarantine_share: float = 0.01
    max_quarantine_rows: int = 100_000

    @classmethod
    def from_settings(cls) -> LoadLimits:
        from npistack.settings import get_settings

        s = get_settings()
        return cls(
            max_removed_share=s.load_max_removed_share,
            max_quarantine_share=s.load_max_quarantine_share,
            max_quarantine_rows=s.load_max_quarantine_rows,
        )

    def check_quarantine_rows(self, source: str, quarantined: int) -> None:
        """Stop a load that has quarantined more than ``max_quarantine_rows`` rows (LoadError)."""
        if quarantined > self.max_quarantine_rows:
            raise LoadError(
                f"{source}: more than {self.max_quarantine_rows:,} rows quarantined"
                " (NPISTACK_LOAD_MAX_QUARANTINE_ROWS); the load was stopped and nothing was changed"
                " (is this really an NPPES file?)"
            )

    def check_full_load(
        self, source: str, *, providers: int, removed: int, rows_read: int, rows_quarantined: int
    ) -> None:
        """Refuse (LoadError, one line) a full load over a store holding ``providers`` providers
        that would remove ``removed`` of them, or quarantine ``rows_quarantined`` of its
        ``rows_read`` rows, past this guard's shares. A store without providers is never refused."""
        if providers <= 0:
            return
        why: list[str] = []
        if removed / providers > self.max_removed_share:
            why.append(
                f"it would remove {removed:,} of the store's {providers:,} providers"
                f" ({_pct(removed / providers)}; NPISTACK_LOAD_MAX_REMOVED_SHARE allows"
                f" {_pct(self.max_removed_share)})"
            )
        if rows_read and rows_quarantined / rows_read > self.max_quarantine_share:
            why.append(
                f"{rows_quarantined:,} of its {rows_read:,} rows were quarantined"
                f" ({_pct(rows_quarantined / rows_read)}; NPISTACK_LOAD_MAX_QUARANTINE_SHARE allows"
                f" {_pct(self.max_quarantine_share)})"
            )
        if why:
            raise LoadError(
                f"{source}: refused this monthly file: {' and '.join(why)}; nothing was changed;"
                " use --force to load it anyway"
            )


def _pct(share: float) -> str:
    return f"{share * 100:.{0 if share * 100 == int(share * 100) else 2}f}%"
