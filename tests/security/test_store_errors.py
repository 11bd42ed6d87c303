"""Issue 14 item 21 (the store's parts): a failed ingest leaves no empty store behind, and a file
that is not a database is one clear line with exit 1 (was "internal error", exit 2).

Every command runs as a user runs it (``python -m npistack.cli`` in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from npistack.nppes.layout import canonical_columns
from npistack.nppes.synth import write_bundle
from tests.nppes_files import individual, quoted
from tests.security.test_cli_rough_edges import npistack, one_line_error


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def bad_header(tmp_path: Path) -> Path:
    """A correctly named npidata file whose header is not an NPPES one (refused after the store opens)."""
    path = tmp_path / "in" / "npidata_pfile_20050523-20261108.csv"
    path.parent.mkdir()
    path.write_text('"x","y"\n"1","2"\n')
    return path


def test_a_missing_file_creates_no_store(tmp_path: Path) -> None:
    where = tmp_path / "stores"
    url = f"sqlite:///{where / 'new' / 'npistack.db'}"
    line = one_line_error(
        npistack("ingest", str(tmp_path / "nope.zip"), "-d", url, data_dir=tmp_path, check=False)
    )
    assert "no such file" in line
    assert _files(where) == []
    stats = npistack("stats", "-d", url, data_dir=tmp_path, check=False)
    assert "no store at" in one_line_error(stats)  # not a store with empty tables


def test_a_refused_first_load_removes_the_store_it_created(tmp_path: Path, bad_header: Path) -> None:
    where = tmp_path / "stores"
    url = f"sqlite:///{where / 'deep' / 'npistack.db'}"
    line = one_line_error(npistack("ingest", str(bad_header), "-d", url, data_dir=tmp_path, check=False))
    assert "unknown npidata layout" in line
    assert _files(where) == []  # the file, its WAL and the folders the attempt made: all gone
    # The default store (in the data folder) too: `stats` then says there is none.
    data = tmp_path / "data"
    one_line_error(npistack("ingest", str(bad_header), data_dir=data, check=False))
    assert "no store at" in one_line_error(npistack("stats", data_dir=data, check=False))


def test_a_failed_load_keeps_a_store_that_has_data(tmp_path: Path, bad_header: Path) -> None:
    bundle = write_bundle(tmp_path / "b", 50, seed=1).path
    url = f"sqlite:///{tmp_path / 'npistack.db'}"
    npistack("ingest", str(bundle), "-d", url, data_dir=tmp_path)
    one_line_error(npistack("ingest", str(bad_header), "-d", url, data_dir=tmp_path, check=False))
    assert "50" in npistack("stats", "-d", url, data_dir=tmp_path).stdout


def test_an_existing_empty_file_is_kept(tmp_path: Path, bad_header: Path) -> None:
    """An empty file is a valid (empty) SQLite database: the store is made in it, and a failed
    attempt leaves the file there (it was not this attempt's to delete)."""
    path = tmp_path / "mine.db"
    path.write_bytes(b"")
    one_line_error(
        npistack("ingest", str(bad_header), "-d", f"sqlite:///{path}", data_dir=tmp_path, check=False)
    )
    assert path.exists()


@pytest.mark.parametrize("command", [["stats"], ["ingest", "{bundle}"], ["loads"]])
def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    text = tmp_path / "x" / "notadb.txt"
    text.parent.mkdir()
    text.write_text("these are my notes, not a database\n" * 100)
    bundle = tmp_path / "in" / "npidata_pfile_20050523-20261108.csv"
    bundle.parent.mkdir()
    bundle.write_text(quoted(canonical_columns("npidata")) + quoted(individual(1)))
    args = [a.replace("{bundle}", str(bundle)) for a in command]
    line = one_line_error(npistack(*args, "-d", f"sqlite:///{text}", data_dir=tmp_path, check=False))
    assert "internal error" not in line
    assert f"cannot open SQLite store {text}: the file is not a SQLite database" in line
    assert text.read_text().startswith("these are my notes")  # untouched, never deleted


def _run_in(folder: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NPISTACK_")}
    env.update(NPISTACK_DATA_DIR=str(folder / "data"), COLUMNS="200", NO_COLOR="1", **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "npistack.cli", *args],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command",
    [["stats"], ["ingest", "{bundle}"], ["changes"], ["keys", "list"], ["plans", "list"], ["jobs", "purge"]],
)
def test_a_garbage_url_and_an_unknown_scheme_are_the_same_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """``NPISTACK_DATABASE_URL=garbage`` was taken as a file name (``ingest`` created ./garbage, the
    others said "no store at garbage") while ``-d foo://bar`` said "unsupported database URL"."""
    bundle = tmp_path / "in" / "npidata_pfile_20050523-20261108.csv"
    bundle.parent.mkdir()
    bundle.write_text(quoted(canonical_columns("npidata")) + quoted(individual(1)))
    args = [a.replace("{bundle}", str(bundle)) for a in command]
    lines = {
        "env garbage": one_line_error(_run_in(tmp_path, *args, NPISTACK_DATABASE_URL="garbage")),
        "-d garbage": one_line_error(_run_in(tmp_path, *args, "-d", "garbage")),
        "env foo://bar": one_line_error(_run_in(tmp_path, *args, NPISTACK_DATABASE_URL="foo://bar")),
        "-d foo://bar": one_line_error(_run_in(tmp_path, *args, "-d", "foo://bar")),
    }
    shapes = {
        how: line.replace("'garbage'", "URL").replace("'foo://bar'", "URL") for how, line in lines.items()
    }
    assert len(set(shapes.values())) == 1, lines
    assert lines["-d garbage"] == (
        "error: unsupported database URL 'garbage': use sqlite:///PATH or postgresql://user@host:port/db"
    )
    # Nothing created (the accounts database and the jobs folder were garbage.accounts.db, garbage.jobs).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"], list(tmp_path.iterdir())


def test_a_bare_file_path_is_still_a_sqlite_store(tmp_path: Path) -> None:
    from npistack.storage import open_store

    for name in ("mine.db", "mine.sqlite3", str(tmp_path / "plain")):
        store = open_store(name if "/" in name else str(tmp_path / name))
        try:
            assert store.dialect == "sqlite" and store.count_providers() == 0
        finally:
            store.close()
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        open_store("relative.db").close()
        assert (tmp_path / "relative.db").exists()
    finally:
        os.chdir(old)
