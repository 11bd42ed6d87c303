"""Helpers for update tests: the real sample rows as a monthly bundle, modified weekly bundles, and
a comparison of two stores' current data."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from npistack.nppes.layout import canonical_columns
from npistack.records.diff import without_release
from npistack.storage import open_store
from tests.nppes_files import COLS, SAMPLE, write_bundle
from tests.storage_sql import sql_rows

C = {name: i for i, name in enumerate(COLS)}
INDIVIDUAL = "1114920162"  # DUBOSE, Tarboro NC
ORGANIZATION = "1497758544"  # CUMBERLAND COUNTY HOSPITAL SYSTEM, Fayetteville NC
TO_DEACTIVATE = "1679576722"  # WIEBE, Kearney NE
STUB = "1306849450"  # deactivated 03/03/2021
UNCHANGED = "1588667638"  # PILCHER
NEW_NPI = "1234567893"

PL_COLS = canonical_columns("pl")
OTHER_COLS = canonical_columns("othername")
ENDPOINT_COLS = canonical_columns("endpoint")


def sample_rows() -> dict[str, list[str]]:
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    return {r[0]: r for r in rows}


def pl_row(
    npi: str, line1: str, city: str = "RALEIGH", state: str = "NC", postal: str = "276011234"
) -> list[str]:
    return [npi, line1, "", city, state, postal, "US", "9195551234", "", ""]


def other_row(npi: str, name: str, code: str = "3") -> list[str]:
    return [npi, name, code]


def endpoint_row(npi: str, url: str) -> list[str]:
    row = [""] * len(ENDPOINT_COLS)
    row[0], row[1], row[2], row[3] = npi, "DIRECT", "Direct Messaging Address", url
    return row


def base_bundle(folder: Path) -> Path:
    """The 50 real rows as the November 2026 monthly file, with child rows for the organization."""
    rows = sample_rows()
    return write_bundle(
        folder,
        list(rows.values()),
        pl=[
            pl_row(ORGANIZATION, "100 FIRST ST"),
            pl_row(ORGANIZATION, "200 SECOND ST", "DURHAM", "NC", "27701"),
        ],
        othername=[other_row(ORGANIZATION, "CAPE FEAR VALLEY HEALTH")],
        endpoint=[endpoint_row(ORGANIZATION, "records@direct.example-hie.org")],
        end="20261108",
    )


def week_one_rows() -> tuple[list[list[str]], dict[str, Any]]:
    """Weekly 11/09–11/15/2026: one update of each kind, as CMS would publish them."""
    rows = sample_rows()
    ind = list(rows[INDIVIDUAL])
    ind[C["Provider First Line Business Practice Location Address"]] = "500 NEW HOSPITAL DR"
    ind[C["Provider Business Practice Location Address Telephone Number"]] = "2525550199"
    ind[C["Last Update Date"]] = "11/12/2026"
    org = list(rows[ORGANIZATION])
    org[C["Last Update Date"]] = "11/13/2026"
    gone = [""] * len(COLS)
    gone[0], gone[C["NPI Deactivation Date"]] = TO_DEACTIVATE, "11/12/2026"
    back = list(rows[UNCHANGED])  # a full record for the stub NPI, from another provider's row
    back[0] = STUB
    back[C["NPI Deactivation Date"]] = "03/03/2021"
    back[C["NPI Reactivation Date"]] = "11/14/2026"
    back[C["Last Update Date"]] = "11/14/2026"
    new = list(rows[UNCHANGED])
    new[0] = NEW_NPI
    new[C["Provider Last Name (Legal Name)"]] = "NEWCOMER"
    new[C["Provider Enumeration Date"]] = "11/10/2026"
    new[C["Last Update Date"]] = "11/10/2026"
    same = list(rows[UNCHANGED])
    children = {
        "pl": [pl_row(ORGANIZATION, "100 FIRST ST STE 5")],
        "othername": [],
        "endpoint": [endpoint_row(ORGANIZATION, "records@direct.example-hie.org")],
    }
    return [ind, org, gone, back, new, same], children


def week_one(folder: Path) -> Path:
    npidata, children = week_one_rows()
    return write_bundle(folder, npidata, start="20261109", end="20261115", **children)


def store_content(url: str) -> dict[str, Any]:
    """Everything a reader can see of the current data, independent of file order and provenance:
    each provider's document (without ``release``) and child rows (as a sorted list), and the index
    rows of every data table (without file line numbers)."""
    store = open_store(url, read_only=url.startswith("sqlite"))
    try:
        docs: dict[int, Any] = {}
        for npi, doc in sql_rows(store, "SELECT npi, doc FROM provider_docs"):
            docs[int(npi)] = [without_release(orjson.loads(doc)), []]
        for npi, kind, doc in sql_rows(store, "SELECT npi, kind, doc FROM provider_extras"):
            docs[int(npi)][1].append((kind, doc))
        for item in docs.values():
            item[1].sort()
        tables = {
            "providers": "npi, entity_type, status, last_updated, primary_taxonomy, practice_state",
            "provider_names": "npi, entity_type, name_type, name_key, first_key",
            "provider_taxonomies": "npi, slot, code, license_key, license_state, is_primary",
            "provider_locations": "npi, purpose, city_key, state, zip5, cell, lat, lon, postal, country",
        }
        index = {
            t: sorted(map(tuple, sql_rows(store, f"SELECT {cols} FROM {t}"))) for t, cols in tables.items()
        }
    finally:
        store.close()
    return {"docs": docs, "index": index}


def diff_fields(changes: Sequence[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    return {c["field"]: (c["old"], c["new"]) for c in changes}
