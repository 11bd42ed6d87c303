"""CLI commands for record matching: ``npistack match`` (one record) and ``npistack match-eval``
(the evaluation on a labeled set made from the store)."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.table import Table

from npistack.cli.common import DatabaseOpt, open_store_for, out
from npistack.errors import NpistackError

commands = typer.Typer()

PRECISION_BAR = 0.995
RECALL_BAR = 0.95


@commands.command()
def match(
    field: Annotated[
        list[str],
        typer.Argument(
            help="field=value pairs: npi, first_name, last_name, name, organization_name, city, state, ..."
        ),
    ],
    database_url: DatabaseOpt = None,
    threshold: Annotated[
        float, typer.Option(help="Confidence from which a record is matched.", min=0.01, max=1.0)
    ] = 0.9,
) -> None:
    """Match one record to an NPI and print the result as JSON."""
    from npistack.services.match import Matcher, MatchInput, MatchInputError

    values: dict[str, str] = {}
    for item in field:
        key, sep, value = item.partition("=")
        if not sep:
            raise NpistackError(f"{item!r}: expected field=value (e.g. last_name=Smith)")
        values[key.strip()] = value
    try:
        record = MatchInput.from_mapping(values)
    except MatchInputError as e:
        raise NpistackError(str(e)) from None
    store = open_store_for(database_url, read_only=True)
    try:
        result = Matcher(store, threshold=threshold).match_one(record)
    finally:
        store.close()
    sys.stdout.write(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")


@commands.command("match-eval")
def match_eval(
    database_url: DatabaseOpt = None,
    records: Annotated[int, typer.Option(help="Registry providers to sample and perturb.", min=10)] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed of the labeled set.")] = 7,
    strangers: Annotated[
        float,
        typer.Option(
            help="Records of people not in the registry, as a share of --records.", min=0.0, max=1.0
        ),
    ] = 0.1,
    fit: Annotated[
        bool,
        typer.Option(
            "--fit",
            help="Also print the calibration (A, B) fitted on this run (use another seed to check it).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Evaluate matching: precision and recall of "matched", ambiguous and wrong-match rates,
    recall per kind of CRM error and accuracy per confidence band. Exits 1 below the bars
    (precision 99.5 %, recall 95 %)."""
    from npistack.services.match.eval import evaluate, fit_calibration, labeled_set

    store = open_store_for(database_url, read_only=True)
    try:
        labeled = labeled_set(store, records, seed=seed, strangers=strangers)
        if not labeled:
            raise NpistackError("the store has no active providers to sample")
        report, _ = evaluate(store, labeled)
    finally:
        store.close()
    data = report.as_dict()
    if fit:
        data["calibrationFit"] = list(fit_calibration(report.points))
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        t = Table(
            title=f"matching: {report.records:,} records ({report.in_registry:,} in the registry), seed {seed}"
        )
        t.add_column("measure")
        t.add_column("value", justify="right")
        t.add_column("bar", justify="right")
        t.add_row("precision of matched", f"{report.precision:.2%}", f">= {PRECISION_BAR:.1%}")
        t.add_row("recall of matched", f"{report.recall:.2%}", f">= {RECALL_BAR:.0%}")
        t.add_row("ambiguous rate", f"{data['ambiguousRate']:.2%}", "")
        t.add_row("no-match rate", f"{data['noMatchRate']:.2%}", "")
        t.add_row("wrong-match rate", f"{data['wrongMatchRate']:.2%}", "")
        t.add_row("records/s", f"{data['recordsPerSecond']:,}", "")
        out.print(t)
        b = Table(title="best candidate: confidence band vs observed accuracy")
        for col in ("band", "records", "mean confidence", "accuracy"):
            b.add_column(col, justify="right")
        for band, n, mean, acc in report.bands:
            b.add_row(band, f"{n:,}", f"{mean:.3f}", f"{acc:.3f}")
        out.print(b)
        e = Table(title="recall per kind of CRM error (not_in_registry: share left unmatched)")
        for col in ("error", "records", "recall"):
            e.add_column(col, justify="right" if col != "error" else "left")
        for err, (n, r) in sorted(report.by_error.items()):
            e.add_row(err, f"{n:,}", f"{r:.2%}")
        out.print(e)
        if fit:
            out.print(f"calibration fit (A, B): {data['calibrationFit']}")
    if report.precision < PRECISION_BAR or report.recall < RECALL_BAR:
        raise typer.Exit(1)
