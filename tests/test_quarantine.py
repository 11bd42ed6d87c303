"""A row that cannot be used is quarantined with file, line, raw text and reason; nothing is lost:
rows read = loaded + quarantined, exactly, per file."""

from __future__ import annotations

from pathlib import Path

from npistack.ingest.load import ingest
from npistack.services.providers import get_provider
from npistack.storage import open_store
from tests.nppes_files import COLS, individual, npi, organization, quoted, stub, write_bundle


def _bad_rows() -> list[tuple[list[str] | str, str]]:
    bad_npi = individual(10)
    bad_npi[0] = "1234567890"  # fails the check digit
    short = quoted(individual(11)[:100])
    bad_date = individual(12, enumerated="02/30/2019")
    bad_entity = individual(13, entity="3")
    blank_entity = individual(14, entity="")
    broken_quotes = '"' + npi(15) + '","1","SM"ITH' + ',""' * 327 + "\n"
    return [
        (bad_npi, "fails the check digit"),
        (short, "has 100 columns, expected 330"),
        (bad_date, "impossible date '02/30/2019' in 'Provider Enumeration Date'"),
        (bad_entity, "Entity Type Code '3' is not 1 or 2"),
        (blank_entity, "Entity Type Code is blank and the row is not a deactivated NPI"),
        (broken_quotes, "malformed CSV quoting"),
        ("\n", "empty line"),
    ]


def test_accounting_with_broken_rows(store_url: str, tmp_path: Path) -> None:
    good = [individual(i, last=f"GOOD{i}") for i in range(1, 8)] + [organization(20), stub(21)]
    bad = _bad_rows()
    rows: list[list[str] | str] = []
    for i, g in enumerate(good):  # interleave good and bad rows
        rows.append(g)
        if i < len(bad):
            rows.append(bad[i][0])
    rows.append(individual(3, last="DUPLICATE"))  # same NPI as an earlier row
    pl_bad = [npi(1), "1 A ST"]  # wrong column count in a child file
    bundle = write_bundle(
        tmp_path / "b",
        rows,
        pl=[pl_bad, [npi(1), "5 OAK AVENUE", "", "CHICAGO", "IL", "60601", "US", "3125550000", "", ""]],
    )
    store = open_store(store_url)
    try:
        summary = ingest(bundle, store, block_bytes=4096)  # several blocks per file
        by_kind = {f.kind: f for f in summary.files}
        main = by_kind["npidata"]
        assert (main.rows_read, main.rows_loaded, main.rows_quarantined) == (17, 9, 8)
        assert (by_kind["pl"].rows_read, by_kind["pl"].rows_loaded, by_kind["pl"].rows_quarantined) == (
            2,
            1,
            1,
        )
        for f in summary.files:
            assert f.rows_read == f.rows_loaded + f.rows_quarantined
        record = store.get_load(summary.load_id)
        assert (record.rows_read, record.rows_loaded, record.rows_quarantined) == (19, 10, 9)
        q = store.quarantined(summary.load_id)
        assert len(q) == 9
        reasons = {r["reason"] for r in q}
        for _, reason in bad:
            assert any(reason in r for r in reasons), reason
        dup = next(r for r in q if r["reason"].startswith("duplicate NPI"))
        assert "DUPLICATE" in dup["raw"] and dup["line"] == 18
        short = next(r for r in q if "100 columns" in r["reason"])
        assert short["raw"] == quoted(individual(11)[:100]).rstrip("\n")
        assert short["file"].startswith("npidata_pfile_")
        assert any(r["file"].startswith("pl_pfile_") and "2 columns" in r["reason"] for r in q)
        assert store.count_providers() == 9
        assert get_provider(store, npi(3))["name"]["last"] == "GOOD3"  # first occurrence wins
    finally:
        store.close()


def test_lines_are_physical_line_numbers(tmp_path: Path) -> None:
    bad = individual(2)
    bad[0] = "12345"
    bundle = write_bundle(tmp_path / "b", [individual(1), bad])
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    summary = ingest(bundle, store)
    (row,) = store.quarantined(summary.load_id)
    assert row["line"] == 3 and row["reason"] == "NPI '12345' is not 10 digits"
    assert len(COLS) == 330


def test_transforming_a_block_leaves_no_reference_cycles(tmp_path: Path) -> None:
    """Worker processes run with the cyclic garbage collector off (``pool._warm``): that is only
    safe while transforming blocks, good rows and bad, creates no reference cycles."""
    import gc

    from npistack.ingest.pool import _work
    from npistack.nppes.reader import iter_blocks, open_bundle, read_header, read_layouts
    from npistack.nppes.synth import write_bundle as synth_bundle
    from npistack.records.rows import Context

    bundle = open_bundle(synth_bundle(tmp_path / "s", 400, seed=3, as_folder=True, broken_rows=20).path)
    layouts = read_layouts(bundle)
    ctx = Context(load_id=1, release_date="2026-11-09")
    blocks = 0
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for kind, df in bundle.files.items():
            with df.open() as fh:
                read_header(fh, df.name)
                for start, block in iter_blocks(fh, 8192):
                    res = _work(kind, layouts[kind][0], start, block, ctx)
                    blocks += 1
                    assert res.rows_read
                    del res
                    assert gc.collect() == 0, f"{kind} block at line {start} left reference cycles"
    finally:
        if was_enabled:
            gc.enable()
    assert blocks > len(bundle.files)
