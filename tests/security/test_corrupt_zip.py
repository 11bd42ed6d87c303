"""Issue 14 item 21 (the zip part): a truncated or fake `.zip` says the zip is corrupt, in one line.

It used to be reported as "not an NPPES data file". Every case runs ``npistack ingest`` as a user runs it
(a subprocess, exit 1, one line on stderr), for a monthly file and for a weekly bundle applied over data.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import pytest

from tests.nppes_files import individual, npi, organization, write_bundle
from tests.security.test_cli_rough_edges import npistack, one_line_error

MONTHLY = "NPPES_Data_Dissemination_November_2026_V2.zip"
WEEKLY = "NPPES_Data_Dissemination_110926_111526_Weekly_V2.zip"


def _zip(folder: Path, path: Path, *, stored: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.glob("*.csv")):
            zf.write(f, f.name)
    return path


def _monthly(tmp_path: Path, **kw: bool) -> Path:
    rows = [individual(n) for n in range(1, 40)] + [organization(5)]
    return _zip(write_bundle(tmp_path / "monthly", rows), tmp_path / MONTHLY, **kw)


def _weekly(tmp_path: Path, **kw: bool) -> Path:
    rows = [individual(n, last="RENAMED") for n in range(1, 40)]
    folder = write_bundle(tmp_path / "weekly", rows, start="20261109", end="20261115")
    return _zip(folder, tmp_path / WEEKLY, **kw)


def _flip_in_member(path: Path, member: str) -> None:
    """Change one byte in the middle of ``member``'s data (its directory stays intact)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    at = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def _ingest(path: Path, data_dir: Path) -> str:
    return one_line_error(npistack("ingest", str(path), data_dir=data_dir, check=False))


def test_random_bytes_named_zip(tmp_path: Path) -> None:
    fake = tmp_path / MONTHLY
    fake.write_bytes(os.urandom(64 * 1024))
    line = _ingest(fake, tmp_path / "data")
    assert "the zip is corrupt" in line and "not a zip" in line and MONTHLY in line, line
    assert "not an NPPES data file" not in line


def test_empty_file_named_zip(tmp_path: Path) -> None:
    empty = tmp_path / MONTHLY
    empty.write_bytes(b"")
    line = _ingest(empty, tmp_path / "data")
    assert "the zip is corrupt" in line and "empty" in line, line


def test_real_zip_cut_in_half(tmp_path: Path) -> None:
    good = _monthly(tmp_path)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    line = _ingest(good, tmp_path / "data")
    assert "the zip is corrupt" in line and "truncated" in line and MONTHLY in line, line


@pytest.mark.parametrize("stored", [True, False], ids=["stored", "deflated"])
def test_member_with_damaged_bytes(tmp_path: Path, stored: bool) -> None:
    bundle = _monthly(tmp_path, stored=stored)
    member = "npidata_pfile_20050523-20261108.csv"
    _flip_in_member(bundle, member)
    line = _ingest(bundle, tmp_path / "data")
    assert "the zip is corrupt" in line and member in line, line
    assert ("fails its CRC check" in line) if stored else ("CRC" in line or "cannot be decompressed" in line)


@pytest.mark.parametrize("damage", ["truncated", "bad crc"])
def test_weekly_apply_of_a_corrupt_zip(tmp_path: Path, damage: str) -> None:
    """A weekly bundle applied over data: the one line, and the store keeps serving what it had."""
    data_dir = tmp_path / "data"
    npistack(
        "ingest",
        str(write_bundle(tmp_path / "base", [individual(n) for n in range(1, 40)])),
        data_dir=data_dir,
    )
    weekly = _weekly(tmp_path, stored=True)
    if damage == "truncated":
        raw = weekly.read_bytes()
        weekly.write_bytes(raw[: len(raw) - 200])
    else:
        _flip_in_member(weekly, "npidata_pfile_20261109-20261115.csv")
    line = _ingest(weekly, data_dir)
    assert "the zip is corrupt" in line and WEEKLY in line, line
    assert ("truncated" in line) if damage == "truncated" else ("fails its CRC check" in line), line
    shown = npistack("show", npi(1), data_dir=data_dir).stdout
    assert '"SMITH"' in shown and "RENAMED" not in shown, shown
