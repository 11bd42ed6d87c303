"""List enrichment's file job (``services.enrich``): ``enrich_file`` reads a CSV of providers, matches
its rows in batches in worker processes (``services.enrich.rows``) and writes them back, in their order,
with the ``nppes_*`` columns (``OUTPUT_COLUMNS``), plus the review and errors files; ``inspect_csv``
reports what a file holds before a job runs.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from npistack.errors import NpistackError
from npistack.services.enrich.columns import Columns, detect_columns
from npistack.services.enrich.csv_safe import SafeCsvWriter
from npistack.services.enrich.input import CsvFormat, EnrichError, Row, open_records, sniff_format
from npistack.services.enrich.rows import (
    CANDIDATE_COLUMNS,
    EMPTY_VALUES,
    MAX_CANDIDATES,
    NUMERIC_OUTPUT_COLUMNS,
    OUTPUT_COLUMNS,
    STATUSES,
    BatchMatcher,
    MatcherFactory,
    Outcome,
    init_worker,
    run_batch,
)


class EnrichCancelled(NpistackError):
    """An enrichment stopped before its end (``should_stop`` said so)."""


@dataclass(frozen=True)
class CsvInfo:
    """What ``inspect_csv`` found: the format, the header's columns and the rows."""

    format: CsvFormat
    columns: Columns
    header_line: int
    rows: int  # data rows (readable or not)
    error_rows: int

    @property
    def readable_rows(self) -> int:
        return self.rows - self.error_rows


def inspect_csv(path: Path, overrides: Mapping[str, str] | None = None, *, count: bool = True) -> CsvInfo:
    """Read the format and header (EnrichError when unusable) and count the rows (all of them)."""
    if not path.is_file():
        raise EnrichError(f"{path}: no such file")
    fmt = sniff_format(path)
    with path.open("rb") as fh:
        records, header = open_records(fh, fmt)
        columns = detect_columns(header.values, overrides)
        rows = errors = 0
        if count:
            for r in records:
                rows += 1
                errors += r.error is not None
    return CsvInfo(fmt, columns, header.line, rows, errors)


# -- the whole file -----------------------------------------------------------------------------


@dataclass
class EnrichProgress:
    rows_done: int
    rows_total: int | None
    seconds: float
    counts: dict[str, int]

    @property
    def rows_per_s(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0


@dataclass
class EnrichSummary:
    input: Path
    output: Path
    review: Path | None
    errors: Path | None
    format: CsvFormat
    columns: Columns
    rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    seconds: float = 0.0
    prefix: str = "nppes_"

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "counts": dict(self.counts),
            "seconds": round(self.seconds, 3),
            "rowsPerSecond": round(self.rows_per_s, 1),
            "format": self.format.label,
            "columns": self.columns.as_dict(),
            "output": str(self.output),
            "review": str(self.review) if self.review else None,
            "errors": str(self.errors) if self.errors else None,
        }


def output_prefix(header: Sequence[str]) -> str:
    """``nppes_``, or ``nppes2_``... when the input already has a column of that name."""
    taken = {h.strip().lower() for h in header}
    n = 1
    while True:
        prefix = "nppes_" if n == 1 else f"nppes{n}_"
        if not any(prefix + c in taken for c in OUTPUT_COLUMNS):
            return prefix
        n += 1


def default_side_paths(output: Path) -> tuple[Path, Path]:
    """``out.csv`` -> ``out.review.csv``, ``out.errors.csv``."""
    suffix = output.suffix or ".csv"
    return output.with_name(f"{output.stem}.review{suffix}"), output.with_name(
        f"{output.stem}.errors{suffix}"
    )


class _Writers:
    """The output, review and errors files, written to ``*.part`` and renamed at the end."""

    def __init__(
        self, summary: EnrichSummary, fmt: CsvFormat, header: Sequence[str], prefix: str, n_cols: int
    ) -> None:
        self.n = n_cols
        self.files: list[tuple[IO[str], Path, Path]] = []
        for path in (summary.output, summary.review, summary.errors):
            if path is not None and not path.parent.is_dir():
                raise EnrichError(f"{path}: the folder {path.parent} does not exist")
        bom = fmt.bom or fmt.encoding != "utf-8"
        # Every cell is neutralized against formulas (services.enrich.csv_safe) except the plain numbers of
        # the numeric columns npistack computes: confidences, coordinates, E.164 phones, line numbers.
        numeric = [n_cols + OUTPUT_COLUMNS.index(c) for c in NUMERIC_OUTPUT_COLUMNS]
        self.out = self._open(summary.output, fmt, bom, numeric)
        self.out.writerow([*header, *(prefix + c for c in OUTPUT_COLUMNS)])
        self.review: SafeCsvWriter | None = None
        self.errors: SafeCsvWriter | None = None
        if summary.review:
            first = 2 + n_cols  # input_line, pick_npi, the input columns, then the candidates
            width, conf = len(CANDIDATE_COLUMNS), CANDIDATE_COLUMNS.index("confidence")
            self.review = self._open(
                summary.review, fmt, bom, [0, *(first + k * width + conf for k in range(MAX_CANDIDATES))]
            )
            cands = [f"candidate_{k}_{c}" for k in range(1, MAX_CANDIDATES + 1) for c in CANDIDATE_COLUMNS]
            self.review.writerow(["input_line", "pick_npi", *header, *cands])
        if summary.errors:
            self.errors = self._open(summary.errors, fmt, bom, [0])
            self.errors.writerow(["input_line", "reason", "raw"])

    def _open(self, path: Path, fmt: CsvFormat, bom: bool, numeric: Sequence[int]) -> SafeCsvWriter:
        part = path.with_name(path.name + ".part")
        fh = part.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="")
        self.files.append((fh, part, path))
        return SafeCsvWriter(fh, delimiter=fmt.delimiter, numeric_columns=numeric)

    def row_values(self, row: Row) -> list[str]:
        values = row.values
        if len(values) < self.n:
            return [*values, *([""] * (self.n - len(values)))]
        return values[: self.n] if len(values) > self.n else values

    def close(self, keep: bool) -> None:
        for fh, part, path in self.files:
            fh.close()
            if keep:
                os.replace(part, path)
            else:
                part.unlink(missing_ok=True)


def enrich_file(
    input_path: Path,
    output_path: Path,
    *,
    store_url: str,
    review_path: Path | None = None,
    errors_path: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    threshold: float = 0.9,
    workers: int = 2,
    batch_size: int = 500,
    rows_total: int | None = None,
    progress: Callable[[EnrichProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    matcher_factory: MatcherFactory | None = None,
) -> EnrichSummary:
    """Match every row of ``input_path`` and write them all to ``output_path`` (input columns, then
    the ``nppes_*`` columns), ambiguous rows to ``review_path``, unreadable ones to ``errors_path``.

    ``workers`` processes match (0: in this process); ``progress`` is called after each batch;
    ``should_stop`` is asked between batches (EnrichCancelled, no output left behind).
    """
    if input_path.resolve() == output_path.resolve():
        raise EnrichError(f"{output_path}: the output would overwrite the input")
    info = inspect_csv(input_path, overrides, count=False)
    fmt, columns = info.format, info.columns
    prefix = output_prefix(columns.header)
    summary = EnrichSummary(input_path, output_path, review_path, errors_path, fmt, columns, prefix=prefix)
    started = time.perf_counter()
    writers = _Writers(summary, fmt, columns.header, prefix, len(columns.header))
    pool: ProcessPoolExecutor | None = None
    local: BatchMatcher | None = None
    ok = False
    try:
        if workers > 0:
            pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(store_url, threshold, matcher_factory),
            )
        else:
            local = BatchMatcher(store_url, threshold, matcher_factory)
        pending: deque[tuple[list[Row], Future[list[Outcome | None]] | list[Outcome | None]]] = deque()

        def flush_one() -> None:
            rows, fut = pending.popleft()
            try:
                outcomes = fut if isinstance(fut, list) else fut.result()
            except BrokenProcessPool:
                raise EnrichError(
                    "a matching process ended abruptly (out of memory? killed?); try fewer --workers"
                ) from None
            _write_batch(writers, summary, rows, outcomes)
            if progress:
                progress(
                    EnrichProgress(
                        summary.rows, rows_total, time.perf_counter() - started, dict(summary.counts)
                    )
                )

        with input_path.open("rb") as fh:
            records, _ = open_records(fh, fmt)
            for batch in _batches(records, batch_size):
                if should_stop and should_stop():
                    raise EnrichCancelled("enrichment stopped before the end")
                items = [None if r.error else columns.record(r.values) for r in batch]
                if pool is not None:
                    pending.append((batch, pool.submit(run_batch, items)))
                    while len(pending) > 3 * workers:
                        flush_one()
                else:
                    assert local is not None
                    pending.append((batch, local.run(items)))
                    flush_one()
            while pending:
                flush_one()
        ok = True
    finally:
        if pool is not None:
            pool.shutdown(wait=ok, cancel_futures=True)
        if local is not None:
            local.close()
        writers.close(keep=ok)
    summary.seconds = time.perf_counter() - started
    return summary


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_batch(w: _Writers, s: EnrichSummary, rows: list[Row], outcomes: list[Outcome | None]) -> None:
    for row, oc in zip(rows, outcomes, strict=True):
        values = w.row_values(row)
        s.rows += 1
        if row.error is not None or oc is None:
            reason = row.error or "not matched"
            s.counts["error"] += 1
            w.out.writerow([*values, "error", "", *EMPTY_VALUES, str(row.line), reason])
            if w.errors:
                w.errors.writerow([row.line, reason, row.raw])
            continue
        status, confidence, enriched, notes, candidates = oc
        s.counts[status] = s.counts.get(status, 0) + 1
        conf = f"{confidence:.3f}" if status != "error" else ""
        w.out.writerow([*values, status, conf, *enriched, str(row.line), notes])
        if status == "error" and w.errors:
            w.errors.writerow([row.line, notes, ""])
        if candidates is not None and w.review:
            cells: list[str] = []
            for c in candidates[:MAX_CANDIDATES]:
                cells += [c.get(k, "") for k in CANDIDATE_COLUMNS]
            cells += [""] * (MAX_CANDIDATES * len(CANDIDATE_COLUMNS) - len(cells))
            w.review.writerow([row.line, "", *values, *cells])
