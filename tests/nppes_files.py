"""Build small NPPES data files for tests, in the exact CMS format (all fields quoted, LF)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from npistack.nppes.layout import GENDER, SEX, canonical_columns
from npistack.nppes.npi import make_npi

SAMPLE = Path(__file__).parent / "data" / "npidata_sample.csv"
COLS = canonical_columns("npidata")


def npi(n: int, entity: int = 1) -> str:
    """A valid NPI built from a small integer."""
    return make_npi(f"{entity}{n:08d}")


def quoted(fields: Sequence[str]) -> str:
    return ",".join(f'"{f}"' for f in fields) + "\n"


def npidata_row(**values: str) -> list[str]:
    """A canonical npidata row; keys are column names or short aliases below."""
    alias = {
        "npi": "NPI",
        "entity": "Entity Type Code",
        "last": "Provider Last Name (Legal Name)",
        "first": "Provider First Name",
        "middle": "Provider Middle Name",
        "credential": "Provider Credential Text",
        "org": "Provider Organization Name (Legal Business Name)",
        "enumerated": "Provider Enumeration Date",
        "updated": "Last Update Date",
        "deactivated": "NPI Deactivation Date",
        "reactivated": "NPI Reactivation Date",
        "sex": SEX,
        "certified": "Certification Date",
        "taxonomy": "Healthcare Provider Taxonomy Code_1",
        "license": "Provider License Number_1",
        "license_state": "Provider License Number State Code_1",
        "primary": "Healthcare Provider Primary Taxonomy Switch_1",
        "line1": "Provider First Line Business Practice Location Address",
        "line2": "Provider Second Line Business Practice Location Address",
        "city": "Provider Business Practice Location Address City Name",
        "state": "Provider Business Practice Location Address State Name",
        "zip": "Provider Business Practice Location Address Postal Code",
        "phone": "Provider Business Practice Location Address Telephone Number",
        "fax": "Provider Business Practice Location Address Fax Number",
        "other_last": "Provider Other Last Name",
        "other_first": "Provider Other First Name",
        "other_type": "Provider Other Last Name Type Code",
        "other_org": "Provider Other Organization Name",
        "other_org_type": "Provider Other Organization Name Type Code",
    }
    row = dict.fromkeys(COLS, "")
    defaults = {
        "Entity Type Code": "1",
        "Provider Enumeration Date": "05/23/2005",
        "Last Update Date": "01/02/2024",
    }
    row.update(defaults)
    for k, v in values.items():
        col = alias.get(k, k)
        if col not in row:
            raise KeyError(col)
        row[col] = v
    return [row[c] for c in COLS]


def individual(n: int, last: str = "SMITH", first: str = "JOHN", **kw: str) -> list[str]:
    base = dict(
        npi=npi(n),
        entity="1",
        last=last,
        first=first,
        credential="M.D.",
        sex="M",
        taxonomy="207R00000X",
        license=f"A{n:05d}",
        license_state="CA",
        primary="Y",
        line1="100 MAIN STREET",
        line2="SUITE 200",
        city="SPRINGFIELD",
        state="IL",
        zip="627011234",
        phone="2175551234",
        fax="2175559876",
    )
    base.update(kw)
    return npidata_row(**base)


def organization(n: int, name: str = "ACME CLINIC LLC", **kw: str) -> list[str]:
    base = dict(
        npi=npi(n, 1),
        entity="2",
        org=name,
        taxonomy="261QP2300X",
        primary="Y",
        line1="1 HOSPITAL DRIVE",
        city="BOSTON",
        state="MA",
        zip="02114",
        phone="6175551000",
    )
    base["Employer Identification Number (EIN)"] = "<UNAVAIL>"
    base["Authorized Official Last Name"] = "JONES"
    base["Authorized Official First Name"] = "MARY"
    base["Authorized Official Title or Position"] = "CEO"
    base["Authorized Official Telephone Number"] = "6175551001"
    base["Is Organization Subpart"] = "N"
    base.update(kw)
    return npidata_row(**base)


def stub(n: int, deactivated: str = "03/03/2021") -> list[str]:
    row = [""] * len(COLS)
    row[0] = npi(n)
    row[COLS.index("NPI Deactivation Date")] = deactivated
    return row


def write_file(path: Path, header: Sequence[str], rows: Iterable[Sequence[str] | str]) -> Path:
    """Write a CMS-style CSV; a str row is written verbatim (for broken lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(quoted(header))
        for r in rows:
            fh.write(r if isinstance(r, str) else quoted(r))
    return path


def write_bundle(
    folder: Path,
    npidata: Iterable[Sequence[str] | str],
    *,
    pl: Iterable[Sequence[str]] = (),
    othername: Iterable[Sequence[str]] = (),
    endpoint: Iterable[Sequence[str]] = (),
    end: str = "20261108",
    start: str = "20050523",
    header: Sequence[str] | None = None,
) -> Path:
    """A bundle folder with the four data files named as CMS names them (a weekly bundle when
    ``start`` is not 20050523)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_file(folder / f"npidata_pfile_{start}-{end}.csv", header or COLS, npidata)
    write_file(folder / f"pl_pfile_{start}-{end}.csv", canonical_columns("pl"), pl)
    write_file(folder / f"othername_pfile_{start}-{end}.csv", canonical_columns("othername"), othername)
    write_file(folder / f"endpoint_pfile_{start}-{end}.csv", canonical_columns("endpoint"), endpoint)
    return folder


def gender_header() -> list[str]:
    return [GENDER if c == SEX else c for c in COLS]
