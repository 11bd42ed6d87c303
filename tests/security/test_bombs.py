"""Issue 14 item 10 (the archive side): zip and xlsx bombs are refused in one line, the store unchanged.

Observed: a 3.8 MB zip expanding to 1 GiB of one repeated row was read to the end (894k quarantine rows);
a 1 MB deactivation .xlsx with one 1 GiB shared string took 3.2 GB resident. Scaled down here: the same
shapes, a few MiB, with the caps at their defaults or set low through the environment.
"""

from __future__ import annotations

import io
import re
import struct
import time
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from npistack.errors import SourceError
from npistack.ingest.load import ingest
from npistack.ingest.source import zip_bomb_problem
from npistack.nppes import deactivation
from npistack.nppes.deactivation import write_report
from npistack.nppes.reader import ZipLimits, open_member
from npistack.services.providers import get_provider
from npistack.settings import get_settings
from npistack.storage import open_store
from tests.nppes_files import COLS, individual, npi, organization, quoted, write_bundle
from tests.security.test_cli_rough_edges import npistack, one_line_error

END = "20261108"
MiB = 1 << 20


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    """A store holding two providers from a good bundle."""
    s = open_store(f"sqlite:///{tmp_path / 'bomb.db'}")
    ingest(write_bundle(tmp_path / "good", [individual(1), organization(5)]), s, workers=1)
    try:
        yield s
    finally:
        s.close()


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()  # the store fixture's ingest read the settings already


def _state(store: Any) -> tuple[Any, ...]:
    load = store.current_load()
    docs = [get_provider(store, n) for n in (npi(1), npi(5, 1))]
    return load.id, load.checksum, [(d or {}).get("status") for d in docs]


def _zip_bundle(path: Path, npidata: Iterator[bytes], *, level: int = 9) -> Path:
    """A bundle zip whose npidata member is written from ``npidata`` chunks (deflate), with the three
    other data files empty but for their headers."""
    folder = write_bundle(path.parent / f"{path.stem}_parts", [])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        with zf.open(f"npidata_pfile_20050523-{END}.csv", "w") as fh:
            fh.write(quoted(COLS).encode())
            for chunk in npidata:
                fh.write(chunk)
        for f in sorted(folder.glob("*.csv")):
            if not f.name.startswith("npidata"):
                zf.write(f, f.name)
    return path


def _repeated_row(total: int) -> Iterator[bytes]:
    """``total`` bytes of one npidata row, over and over (the item's bomb)."""
    line = quoted(organization(7)).encode()
    chunk = line * (MiB // len(line))
    for _ in range(total // len(chunk)):
        yield chunk


def _distinct_rows(count: int) -> Iterator[bytes]:
    for n in range(100, 100 + count):
        yield quoted(organization(n, name=f"CLINIC NUMBER {n}")).encode()


def _assert_one_line(message: str, *needles: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


# -- zip bombs ----------------------------------------------------------------------------------


def test_repeated_row_zip_is_refused_before_a_row_is_read(tmp_path: Path, store: Any) -> None:
    """The item's bomb at the default settings: 32 MiB of one row deflated ~1000:1."""
    bomb = _zip_bundle(tmp_path / "bomb.zip", _repeated_row(32 * MiB))
    assert bomb.stat().st_size < 200_000
    before = _state(store)
    loads_before = len(store.loads())
    t0 = time.perf_counter()
    with pytest.raises(SourceError) as e:
        ingest(bomb, store, workers=1)
    assert time.perf_counter() - t0 < 5
    _assert_one_line(
        str(e.value), str(bomb), "npidata_pfile_", "past the cap of 100:1", "NPISTACK_ZIP_MAX_RATIO"
    )
    assert "zip bomb" in str(e.value)
    assert _state(store) == before
    assert len(store.loads()) == loads_before  # refused before a load was even begun


def test_uncompressed_size_cap_from_the_environment(
    tmp_path: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, NPISTACK_ZIP_MAX_UNCOMPRESSED_BYTES=str(1 * MiB), NPISTACK_ZIP_MAX_RATIO="100000")
    bundle = _zip_bundle(tmp_path / "big.zip", _distinct_rows(1500), level=1)  # ~2 MiB of real rows
    before = _state(store)
    with pytest.raises(SourceError) as e:
        ingest(bundle, store, workers=1)
    _assert_one_line(str(e.value), str(bundle), "1,048,576", "NPISTACK_ZIP_MAX_UNCOMPRESSED_BYTES")
    assert _state(store) == before


def _lie_about_size(path: Path, member: str, declared: int) -> None:
    """Rewrite the uncompressed size of ``member`` in its local and central headers."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for sig, size_at, name_len_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        for m in re.finditer(re.escape(sig), data):
            at = m.start()
            (n,) = struct.unpack_from("<H", data, at + name_len_at)
            if bytes(data[at + name_at : at + name_at + n]) == name:
                struct.pack_into("<I", data, at + size_at, declared)
    path.write_bytes(bytes(data))


def test_member_whose_header_lies_about_its_size_stops_at_the_lie(tmp_path: Path, store: Any) -> None:
    """The directory says 256 KiB (under every cap); the member really holds ~2 MiB of rows. Reading stops
    where the header said and fails the CRC check: a corrupt zip, the load stopped, the store unchanged."""
    member = f"npidata_pfile_20050523-{END}.csv"
    bundle = _zip_bundle(tmp_path / "liar.zip", _distinct_rows(1500))
    assert zipfile.ZipFile(bundle).getinfo(member).file_size > 1_500_000
    _lie_about_size(bundle, member, 256 * 1024)
    assert zipfile.ZipFile(bundle).getinfo(member).file_size == 256 * 1024
    before = _state(store)
    with pytest.raises(SourceError) as e:
        ingest(bundle, store, workers=1)
    _assert_one_line(str(e.value), str(bundle), "the zip is corrupt", member, "CRC")
    assert _state(store) == before
    assert get_provider(store, npi(100, 1)) is None  # none of the liar's rows is served


def test_streams_count_what_they_decompress_whatever_the_directory_says(tmp_path: Path) -> None:
    """``open_member`` counts real bytes: past its cap a read fails, even with the directory check skipped."""
    bundle = _zip_bundle(tmp_path / "count.zip", _repeated_row(8 * MiB))
    member = f"npidata_pfile_20050523-{END}.csv"
    read = 0
    limits = ZipLimits(max_bytes=2 * MiB, max_ratio=1e9)
    with pytest.raises(SourceError) as e, open_member(bundle, member, limits) as fh:
        while chunk := fh.read(256 * 1024):
            read += len(chunk)
    assert read <= 2 * MiB
    _assert_one_line(str(e.value), member, "2,097,152", "zip bomb")
    # and the ratio is counted on the real bytes too
    limits = ZipLimits(max_bytes=1 << 40, max_ratio=100)
    with (
        pytest.raises(SourceError, match=r"past the cap of 100:1"),
        open_member(bundle, member, limits) as fh,
    ):
        while fh.read(MiB):
            pass


def test_download_refuses_a_bomb(tmp_path: Path) -> None:
    bomb = _zip_bundle(tmp_path / "bomb.zip", _repeated_row(8 * MiB))
    problem = zip_bomb_problem(bomb)
    assert problem is not None and "zip bomb" in problem
    assert zip_bomb_problem(write_report(tmp_path, date(2026, 12, 14), [(npi(1), date(2026, 12, 1))])) is None


def test_cli_ingest_of_a_bomb_is_one_line(tmp_path: Path) -> None:
    bomb = _zip_bundle(tmp_path / "bomb.zip", _repeated_row(8 * MiB))
    line = one_line_error(npistack("ingest", str(bomb), data_dir=tmp_path / "data", check=False))
    _assert_one_line(line, "bomb.zip", "zip bomb", "NPISTACK_ZIP_MAX_RATIO")


# -- xlsx bombs ---------------------------------------------------------------------------------

_SST_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"


def _with_shared_strings(workbook: bytes, size: int) -> bytes:
    """The workbook with an xl/sharedStrings.xml holding one string of ``size`` characters, declared in
    [Content_Types].xml so that openpyxl would load it."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"</Types>",
                    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_SST_TYPE}"/></Types>'.encode(),
                )
            dst.writestr(info.filename, data)
        with dst.open("xl/sharedStrings.xml", "w") as fh:
            fh.write(b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/')
            fh.write(b'spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>')
            block = b"A" * MiB
            for _ in range(size // MiB):
                fh.write(block)
            fh.write(b"</t></si></sst>")
    return out.getvalue()


def _report_zip(tmp_path: Path, shared_string_bytes: int) -> Path:
    """A deactivation report zip (as CMS ships it) whose workbook carries a huge shared string."""
    xlsx = write_report(tmp_path / "x", date(2026, 12, 14), [(npi(1), date(2026, 12, 1))], zipped=False)
    bombed = _with_shared_strings(xlsx.read_bytes(), shared_string_bytes)
    path = tmp_path / "NPPES_Deactivated_NPI_Report_121426_V2.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(xlsx.name, bombed)
    return path


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes, where: str) -> Any:
        raise AssertionError(f"openpyxl was asked to parse {where}")

    monkeypatch.setattr(deactivation, "_load", refuse)


def test_xlsx_shared_strings_over_a_low_cap(
    tmp_path: Path, store: Any, monkeypatch: pytest.MonkeyPatch, no_parsing: None
) -> None:
    _env(monkeypatch, NPISTACK_XLSX_MAX_PART_BYTES=str(1 * MiB))
    report = _report_zip(tmp_path, 2 * MiB)
    before = _state(store)
    with pytest.raises(SourceError) as e:
        ingest(report, store, workers=1)
    _assert_one_line(
        str(e.value), str(report), "xl/sharedStrings.xml", "1,048,576", "NPISTACK_XLSX_MAX_PART_BYTES"
    )
    assert _state(store) == before


def test_xlsx_with_a_huge_shared_string_at_the_defaults(tmp_path: Path, store: Any, no_parsing: None) -> None:
    """The item's workbook scaled down: ~130 KB on disk, one 129 MiB shared string (cap 128 MiB), refused
    from the workbook's zip directory, in well under a second, and as a bare .xlsx too."""
    report = _report_zip(tmp_path, 129 * MiB)
    assert report.stat().st_size < 1 * MiB
    before = _state(store)
    t0 = time.perf_counter()
    with pytest.raises(SourceError) as e:
        ingest(report, store, workers=1)
    assert time.perf_counter() - t0 < 5
    _assert_one_line(str(e.value), "xl/sharedStrings.xml", "134,217,728", "refused before parsing")
    bare = tmp_path / "NPPES Deactivated NPI Report 20261214.xlsx"
    with zipfile.ZipFile(report) as zf:
        bare.write_bytes(zf.read(zf.namelist()[0]))
    with pytest.raises(SourceError, match=r"xl/sharedStrings\.xml"):
        ingest(bare, store, workers=1)
    assert _state(store) == before


def test_real_shaped_report_still_applies(tmp_path: Path, store: Any) -> None:
    """The caps do not get in the way of a genuine report."""
    report = write_report(tmp_path / "r", date(2026, 12, 14), [(npi(1), date(2026, 12, 1))])
    summary = ingest(report, store, workers=1)
    assert summary.status == "succeeded"
    assert get_provider(store, npi(1))["status"] != "A"
