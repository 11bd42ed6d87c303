"""``npistack ingest`` of weekly bundles, ``npistack history`` and ``npistack changes`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import one_line_error, run
from tests.update_support import INDIVIDUAL, base_bundle, week_one


def test_weekly_history_and_changes(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    run("ingest", str(base_bundle(tmp_path / "base")), db=db)
    applied = run("ingest", str(week_one(tmp_path / "w1")), db=db)
    assert "changes: 1 created, 2 updated, 1 deactivated, 1 reactivated, 1 unchanged" in applied.stdout
    again = run("ingest", str(week_one(tmp_path / "w1")), db=db)
    assert "already applied" in again.stdout

    hist = run("history", INDIVIDUAL, db=db)
    assert "version 1 · initial · in force 2026-11-08 → 2026-11-15" in hist.stdout
    assert "version 2 · updated · in force 2026-11-15 → now · weekly release 2026-11-15" in hist.stdout
    assert "500 NEW HOSPITAL DR" in hist.stdout
    as_json = json.loads(run("history", INDIVIDUAL, "--json", db=db).stdout)
    assert [v["changeType"] for v in as_json["versions"]] == ["initial", "updated"]

    table = run("changes", "--type", "updated", db=db)
    assert INDIVIDUAL in table.stdout and "next: npistack changes --since" in table.stdout
    cursor = table.stdout.rsplit("--since", 1)[1].split()[0]
    tail = run("changes", "--type", "updated", "--since", cursor, db=db).stdout
    assert INDIVIDUAL not in tail and "next: npistack changes --since " + cursor in tail
    lines = run("changes", "--ndjson", db=db).stdout.splitlines()
    assert len(lines) == 5 and all(json.loads(x)["id"].startswith("evt_") for x in lines)
    assert "latest cursor:" in run("changes", "--stats", db=db).stdout

    bad = run("changes", "--type", "moved", db=db, check=False)
    assert one_line_error(bad).startswith("error: unknown change type 'moved'")
    older = run("ingest", str(base_bundle(tmp_path / "old")), db=db, check=False)
    assert older.returncode == 0 and "already loaded" in older.stdout  # same content as load #1
    missing = run("history", "1000000004", db=db, check=False)
    assert one_line_error(missing) == "error: NPI 1000000004 is not in the store"


def test_synth_updates_then_apply(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    run("synth", str(tmp_path / "base"), "-n", "600", "--seed", "2", db=db)
    base = next((tmp_path / "base").glob("*.zip"))
    made = run(
        "synth",
        str(tmp_path / "m"),
        "--updates-from",
        str(base),
        "--weeks",
        "2",
        "--weekly-rows",
        "60",
        db=db,
    )
    assert made.stdout.count("_Weekly_V2.zip") == 2 and "month-end full file" in made.stdout
    run("ingest", str(base), db=db)
    for weekly in sorted((tmp_path / "m").glob("*_Weekly_V2.zip")):
        assert "changes:" in run("ingest", str(weekly), db=db).stdout
    report = next((tmp_path / "m").glob("NPPES_Deactivated_NPI_Report_*.zip"))
    assert "changes:" in run("ingest", str(report), db=db).stdout
    clash = run(
        "synth", str(tmp_path / "base"), "--updates-from", str(base), "--weeks", "1", db=db, check=False
    )
    assert one_line_error(clash).startswith("error: ")
