"""List enrichment: a CSV of providers (a CRM export, a roster) matched to NPIs and written back with
NPPES data (``enrich_file``; ``npistack enrich`` and ``POST /api/v1/jobs/enrich`` run it).

Reading is forgiving and accounts for every line (``services.enrich.input``): the encoding and the
delimiter are detected; the columns are found by their header names (``services.enrich.columns``,
overridable per field); a row that cannot be read is reported with its line number and still
written out, with match status ``error``. Rows in = rows out.

Each row keeps its input columns, followed by the ``nppes_*`` columns (``OUTPUT_COLUMNS``).
Ambiguous rows also go to a review file with their candidates, unreadable ones to an errors file.
Matching (``services.enrich.rows``) runs in batches in worker processes, each with its own
read-only store connection; the output keeps the input order.
Every cell written is neutralized against spreadsheet formulas (``services.enrich.csv_safe``).

The modules: ``file`` (the file job: ``enrich_file``, ``inspect_csv``), ``input`` (reading any CSV),
``columns`` (which column holds which field), ``rows`` (the per-row match and enriched values, in
worker processes) and ``csv_safe`` (the formula guard).
"""

from npistack.services.enrich.columns import FIELDS, parse_overrides
from npistack.services.enrich.file import (
    CsvInfo,
    EnrichCancelled,
    EnrichProgress,
    EnrichSummary,
    default_side_paths,
    enrich_file,
    inspect_csv,
)
from npistack.services.enrich.input import EnrichError
from npistack.services.enrich.rows import STATUSES

__all__ = [
    "FIELDS",
    "STATUSES",
    "CsvInfo",
    "EnrichCancelled",
    "EnrichError",
    "EnrichProgress",
    "EnrichSummary",
    "default_side_paths",
    "enrich_file",
    "inspect_csv",
    "parse_overrides",
]
