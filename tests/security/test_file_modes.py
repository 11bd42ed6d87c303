"""Issue 14, item 14 (the command line's part): what npistack's commands create is owner-only.

Real commands in subprocesses, started with the common umask 022 (which used to give 0644 files and
0755 folders): a synthetic bundle, its ingest into the default store of a new data folder, an API
key, an enrichment. Every file and folder they made must have no group or other permission bits.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from npistack.nppes.synth import write_bundle


def npistack(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NPISTACK_DATA_DIR=str(data_dir), COLUMNS="200", NO_COLOR="1")
    for name in ("NPISTACK_DATABASE_URL", "NPISTACK_DEBUG", "NPISTACK_JOBS_DIR", "NPISTACK_DOWNLOAD_DIR"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "npistack.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def open_to_others(root: Path) -> dict[str, str]:
    """Every path under ``root`` (and ``root``) that its group or others may read, write or enter."""
    found = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found[str(path.relative_to(root.parent))] = oct(mode)
    return found


def test_commands_create_owner_only_files(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "cms", 200, 3).path  # written by the test, not under test
    data = tmp_path / "data"  # does not exist yet: the first command creates it
    npistack("ingest", str(bundle), "--workers", "1", data_dir=data)
    npistack("keys", "create", "--name", "ops", data_dir=data)
    npistack("synth", str(tmp_path / "synth"), "-n", "50", "--folder", data_dir=data)
    crm = data.parent / "in"
    crm.mkdir(mode=0o700)
    (crm / "crm.csv").write_text("Last Name,First Name,State\nSMITH,JOHN,CA\n")
    os.chmod(crm / "crm.csv", 0o600)
    npistack("enrich", str(crm / "crm.csv"), "-o", str(crm / "out.csv"), "--workers", "0", data_dir=data)

    made = {p.name for p in data.iterdir()}
    assert {"npistack.db", "npistack.accounts.db"} <= made, made
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {p.name for p in crm.iterdir()} >= {"out.csv", "out.review.csv", "out.errors.csv"}
    assert open_to_others(data) == {}
    assert open_to_others(crm) == {}
    assert open_to_others(tmp_path / "synth") == {}
