"""Issue 14, items 13 (settings), 19, 20 and 21 (the command line's parts): what a new user met.

Every command runs as a user runs it: ``python -m npistack.cli`` in a subprocess, a fresh data folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from npistack import __version__
from npistack.services.demo import _practice_line
from tests.api_support import sample_store


def npistack(
    *args: str, data_dir: Path, columns: int = 200, check: bool = True, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NPISTACK_")}
    env.update(NPISTACK_DATA_DIR=str(data_dir), COLUMNS=str(columns), NO_COLOR="1", **env_extra)
    proc = subprocess.run(
        [sys.executable, "-m", "npistack.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data folder after ``npistack demo --no-serve`` (a small one), and what the demo printed."""
    data = tmp_path_factory.mktemp("rough") / "data"
    proc = npistack("demo", "--rows", "2000", "--no-serve", data_dir=data)
    return data, proc.stdout


# -- item 19 -----------------------------------------------------------------------------------


def test_version_prints_and_exits_zero(tmp_path: Path) -> None:
    proc = npistack("--version", data_dir=tmp_path)
    assert proc.stdout.strip() == f"npistack {__version__}"


# -- item 20 -----------------------------------------------------------------------------------


def test_after_the_demo_stats_and_keys_use_its_store(demo_dir: tuple[Path, str], tmp_path: Path) -> None:
    data, printed = demo_dir
    assert (data / "npistack.db").is_file()  # the default store, not a store of its own
    assert f"sqlite:///{data / 'npistack.db'}: the default store" in printed
    stats = npistack("stats", data_dir=data)
    assert "no store" not in stats.stdout + stats.stderr and "providers" in stats.stdout
    # The key the demo made and one made now live in the accounts database the demo server reads.
    npistack("keys", "create", "--name", "after-demo", data_dir=data)
    keys = npistack("keys", "list", data_dir=data).stdout
    assert "demo" in keys and "after-demo" in keys


def test_the_demo_never_replaces_a_real_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = sample_store(data / "npistack.db")  # the user's store: the 50 real rows
    before = (data / "npistack.db").read_bytes()
    line = one_line_error(npistack("demo", "--rows", "200", "--no-serve", data_dir=data, check=False))
    assert "already holds data the demo did not load" in line and "--database-url" in line
    assert (data / "npistack.db").read_bytes() == before
    assert url.endswith("npistack.db")
    # Pointed at a store of its own, it runs and says how to point every command at it.
    own = f"sqlite:///{tmp_path / 'demo.db'}"
    printed = npistack("demo", "--rows", "200", "--no-serve", "-d", own, data_dir=data).stdout
    assert f"export NPISTACK_DATABASE_URL={own}" in printed
    # Run again (a smaller demo), it replaces its own earlier data.
    again = npistack("demo", "--rows", "100", "--no-serve", "-d", own, data_dir=data).stdout
    assert "removed" in again


# -- item 21 -----------------------------------------------------------------------------------


def test_the_demo_prints_no_none(demo_dir: tuple[Path, str]) -> None:
    _, printed = demo_dir
    assert "None" not in printed
    assert _practice_line({"phone": "+12175551234", "fax": None, "standardized": {"city": "X"}}) == (
        "X · phone +12175551234 · no fax"
    )


def test_enrich_refuses_an_output_folder_that_is_not_there(
    demo_dir: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = demo_dir
    src = tmp_path / "in.csv"
    src.write_text("Last Name,State\nSMITH,CA\n")
    missing = tmp_path / "nonexistent"
    line = one_line_error(
        npistack("enrich", str(src), "-o", str(missing / "out.csv"), data_dir=data, check=False)
    )
    assert line == f"error: {missing / 'out.csv'}: the folder {missing} does not exist (create it first)"
    assert not missing.exists()


def test_tables_are_readable_at_80_columns(demo_dir: tuple[Path, str]) -> None:
    data, _ = demo_dir
    npistack("webhooks", "create", "https://hooks.example.com/npistack/receiver", data_dir=data)
    commands = [
        ["loads"],
        ["stats"],
        ["keys", "list"],
        ["keys", "usage", "1"],
        ["plans", "list"],
        ["webhooks", "list"],
        ["settings"],
    ]
    for args in commands:
        text = npistack(*args, data_dir=data, columns=80).stdout
        assert "…" not in text, (args, text)
        assert max(len(line) for line in text.splitlines()) <= 80, (args, text)
    loads = npistack("loads", data_dir=data, columns=80).stdout
    assert "succeeded" in loads and "(current)" in loads  # the status whole, not "succeed…"


# -- item 13 -----------------------------------------------------------------------------------


def test_settings_hide_passwords_and_tokens(tmp_path: Path) -> None:
    printed = npistack(
        "settings",
        data_dir=tmp_path,
        NPISTACK_REDIS_URL="redis://:SuperSecretPw@127.0.0.1:6379/0",
        NPISTACK_DATABASE_URL="postgresql://postgres:PgSecretPw@127.0.0.1:5432/npi",
        NPISTACK_METRICS_TOKEN="MetricsSecretToken",
    ).stdout
    assert "redis://:***@127.0.0.1:6379/0" in printed
    assert "postgresql://postgres:***@127.0.0.1:5432/npi" in printed
    for secret in ("SuperSecretPw", "PgSecretPw", "MetricsSecretToken"):
        assert secret not in printed


def test_error_lines_hide_passwords(tmp_path: Path) -> None:
    proc = npistack("stats", "-d", "foo://user:TopSecretPw@db.example/npi", data_dir=tmp_path, check=False)
    line = one_line_error(proc)
    assert "foo://user:***@db.example/npi" in line and "TopSecretPw" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("NPISTACK_API_PORT", "0", "greater than or equal to 1"),
        ("NPISTACK_API_PORT", "eighty", "valid integer"),
        (
            "NPISTACK_WEBHOOK_ALLOW_HOSTS",
            "127.0.0.1,10.0.0.0/33",
            "'10.0.0.0/33' is not an address or a CIDR",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    line = one_line_error(npistack("stats", data_dir=tmp_path, check=False, **{name: value}))
    assert line.startswith(f"error: invalid setting {name}=") and says in line, line
