"""A weekly apply tells which of a stored provider's index rows change from its documents alone
(``transform.rows_change``): the rows made again from a document (``document_rows``) must be the
rows the transform made."""

from __future__ import annotations

import copy
import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from npistack.nppes.reader import open_bundle, read_header
from npistack.nppes.synth import write_bundle
from npistack.records.index import ROW_TABLES, document_rows, rows_change
from npistack.records.npidata import transform_block, transform_provider
from npistack.records.rows import BlockResult, Context, DeferredLine, QuarantinedLine
from tests.update_support import INDIVIDUAL, ORGANIZATION, C, sample_rows

CTX = Context(load_id=1, release_date="2026-11-09")
TABLES = {"provider_names": "names", "provider_taxonomies": "taxonomies", "provider_locations": "locations"}
assert tuple(TABLES) == ROW_TABLES


def _by_provider(out: BlockResult) -> list[tuple[int, dict[str, Any], dict[str, list[tuple[Any, ...]]]]]:
    rows: dict[int, dict[str, list[tuple[Any, ...]]]] = defaultdict(lambda: {t: [] for t in TABLES})
    for table, attr in TABLES.items():
        for r in getattr(out, attr):
            rows[int(r[0])][table].append(r)
    return [(int(p[0]), orjson.loads(p[6]), rows[int(p[0])]) for p in out.providers]


MAIL_COUNTRY = C["Provider Business Mailing Address Country Code (If outside U.S.)"]
PRACTICE_POSTAL = C["Provider Business Practice Location Address Postal Code"]
PRACTICE_COUNTRY = C["Provider Business Practice Location Address Country Code (If outside U.S.)"]


def _sample() -> BlockResult:
    """The real rows, and variants of two of them: foreign and "USA" addresses."""
    rows = list(sample_rows().values())
    foreign = list(rows[0])
    foreign[0], foreign[PRACTICE_POSTAL], foreign[PRACTICE_COUNTRY] = "1234567893", "10115", "DE"
    usa = list(rows[1])
    usa[0], usa[MAIL_COUNTRY], usa[PRACTICE_COUNTRY] = "1245319599", "USA", "usa"
    out = BlockResult("npidata")
    for line, row in enumerate([*rows, foreign, usa], start=2):
        transform_provider(row, line, CTX, out)
    return out


def _synthetic(tmp: Path) -> BlockResult:
    bundle = open_bundle(write_bundle(tmp, 3000, seed=7, as_folder=True).path)
    df = bundle.files["npidata"]
    with df.open() as fh:
        header = read_header(fh, df.name)
        text = fh.read().decode("utf-8")
    out = transform_block("npidata", None, len(header), 2, text, CTX)
    assert not out.quarantine and len(out.providers) == 3000
    return out


@pytest.mark.parametrize("source", ["sample", "synthetic"])
def test_rows_made_again_from_the_document_are_the_transforms(source: str, tmp_path: Path) -> None:
    out = _sample() if source == "sample" else _synthetic(tmp_path)
    kinds = defaultdict(int)
    for npi, doc, made in _by_provider(out):
        assert document_rows(npi, doc) == made, npi
        for table, rows in made.items():
            kinds[table] += len(rows)
        kinds["both"] += any(r[1] == "both" for r in made["provider_locations"])
        kinds["ao"] += any(r[2] == "ao" for r in made["provider_names"])
        kinds["other"] += any(r[2] == "other" for r in made["provider_names"])
        kinds["foreign"] += any(r[10] != "US" for r in made["provider_locations"])
    # the comparison covered every kind of row (the synthetic file has no foreign addresses)
    assert min(v for k, v in kinds.items() if k != "foreign" or source == "sample") > 0, dict(kinds)


def _doc(npi: str) -> dict[str, Any]:
    out = BlockResult("npidata")
    transform_provider(sample_rows()[npi], 2, CTX, out)
    return orjson.loads(out.providers[0][6])


def test_a_change_rewrites_only_the_tables_it_touches() -> None:
    doc = _doc(INDIVIDUAL)
    n = int(doc["npi"])

    def changed(path: list[Any], value: Any) -> dict[str, Any]:
        new = copy.deepcopy(doc)
        target = new
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return new

    assert rows_change(n, doc, doc) == ()
    assert rows_change(n, doc, changed(["practiceLocation", "phone"], "+19195550000")) == ()
    assert rows_change(n, doc, changed(["lastUpdated"], "2026-11-10")) == ()
    assert rows_change(n, doc, changed(["name", "credential"], "DO")) == ()  # not in a row
    assert rows_change(n, doc, changed(["taxonomies", 0, "license"], "X999")) == ("provider_taxonomies",)
    assert rows_change(n, doc, changed(["name", "last"], "SMITH")) == ("provider_names",)
    moved = changed(["practiceLocation", "std", "zip5"], "10001")
    assert rows_change(n, doc, moved) == ("provider_locations",)
    stub = {"npi": doc["npi"], "status": "deactivated", "deactivationDate": "2026-11-10"}
    assert rows_change(n, doc, stub) == ("provider_names", "provider_taxonomies", "provider_locations")
    assert rows_change(n, stub, doc) == ("provider_names", "provider_taxonomies", "provider_locations")
    org = _doc(ORGANIZATION)
    assert rows_change(int(org["npi"]), org, {**org, "authorizedOfficial": None}) == ("provider_names",)


@pytest.mark.parametrize("source", ["sample", "synthetic"])
def test_a_block_crosses_processes_unchanged(source: str, tmp_path: Path) -> None:
    """Pickled (to a weekly apply's writer) or packed (to a full load's), a block keeps every row,
    field for field; packed rows are plain tuples, unpacked ones their named types again."""
    out = _sample() if source == "sample" else _synthetic(tmp_path)
    out.quarantine.append(QuarantinedLine(9, "empty line", ""))
    out.deferred.append(DeferredLine(10, "duplicate NPI"))
    lists = ("providers", "names", "taxonomies", "locations", "extras", "quarantine", "deferred")
    back = pickle.loads(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    packed = pickle.loads(pickle.dumps(out.pack(), protocol=pickle.HIGHEST_PROTOCOL))
    unpacked = packed.unpack()
    assert packed.rows_read == back.rows_read == unpacked.rows_read == out.rows_read
    assert packed.rows_loaded == out.rows_loaded and packed.rows_quarantined == out.rows_quarantined == 2
    assert out.names and out.taxonomies and out.locations
    for name in lists:
        rows, copies = (
            getattr(out, name),
            (getattr(back, name), getattr(packed, name), getattr(unpacked, name)),
        )
        assert all(c == rows for c in copies), name
        for r, b, p, u in zip(rows, *copies, strict=True):
            assert type(b) is type(u) is type(r), name
            assert type(p) is (type(r) if name in ("quarantine", "deferred") else tuple), name
