"""Synthetic NPPES data in CMS's exact formats: monthly bundles, and the month of weekly updates, the
deactivation report and the month-end full file that follow one. Output is a pure function of the
arguments: the same call writes the same bytes.

This package's public face is what callers import from ``npistack.nppes.synth``:

- ``write_bundle`` (``SynthStats``, ``bundle_name``, ``data_file_name``, ``variant_columns``,
  ``MONTHS``, ``VARIANTS``): a monthly bundle (``bundle``, whose docstring says what the rows look like);
- ``write_month`` and ``write_weekly`` (``MonthStats``, ``WeekStats``): the updates after one
  (``updates``).

Inside: ``reference`` (seed-independent tables: names, places, phones, provider kinds), ``rows`` (the
seeded row generator), ``bundle`` (writing a monthly bundle), ``changes`` (one provider's row after a
weekly change), ``state`` (the base bundle read and the providers a month touches), ``updates``
(writing the month's files).
"""

from npistack.nppes.synth.bundle import (
    MONTHS,
    VARIANTS,
    SynthStats,
    bundle_name,
    data_file_name,
    variant_columns,
    write_bundle,
)
from npistack.nppes.synth.updates import MonthStats, WeekStats, write_month, write_weekly

__all__ = [
    "MONTHS",
    "VARIANTS",
    "MonthStats",
    "SynthStats",
    "WeekStats",
    "bundle_name",
    "data_file_name",
    "variant_columns",
    "write_bundle",
    "write_month",
    "write_weekly",
]
