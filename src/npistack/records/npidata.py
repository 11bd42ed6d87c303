"""npidata, pl, othername and endpoint rows → stored provider documents and index rows. Pure.

``transform_block`` turns one decoded block of a data file into a ``BlockResult``, and guarantees
that every line of the block is either loaded or quarantined, exactly once.

The document and rows themselves are built by ``records.document`` (its docstring has the rules).
"""

from __future__ import annotations

from typing import Any

from npistack.nppes.layout import IDENTIFIER_SLOTS, TAXONOMY_SLOTS, FileKind, canonical_columns
from npistack.nppes.lines import parse_line, split_lines
from npistack.records.document import (
    add_deactivated,
    add_endpoint,
    add_location,
    add_other_name,
    add_provider,
    checked_npi,
)
from npistack.records.rows import BlockResult, Context, QuarantinedLine
from npistack.records.values import BadRow, iso_date, text

# Canonical npidata positions (checked against the shipped header at import).
NPI, ENTITY, REPLACEMENT, EIN, ORG_NAME = 0, 1, 2, 3, 4
LAST, FIRST, MIDDLE, PREFIX, SUFFIX, CREDENTIAL = 5, 6, 7, 8, 9, 10
OTHER_ORG, OTHER_ORG_TYPE = 11, 12
OTHER_LAST, OTHER_FIRST, OTHER_MIDDLE, OTHER_PREFIX, OTHER_SUFFIX, OTHER_CRED, OTHER_LAST_TYPE = range(13, 20)
MAIL, PRACTICE = 20, 28  # line1, line2, city, state, postal, country, phone, fax
ENUMERATED, UPDATED, DEACT_REASON, DEACTIVATED, REACTIVATED, SEX = 36, 37, 38, 39, 40, 41
AO_LAST, AO_FIRST, AO_MIDDLE, AO_TITLE, AO_PHONE = 42, 43, 44, 45, 46
TAXO, IDENT = 47, 107
SOLE_PROP, SUBPART, PARENT_LBN, PARENT_TIN, AO_PREFIX, AO_SUFFIX, AO_CRED = range(307, 314)
TAXO_GROUP, CERTIFIED = 314, 329
NPIDATA_WIDTH = 330

_cols = canonical_columns("npidata")
assert len(_cols) == NPIDATA_WIDTH
assert _cols[ENUMERATED] == "Provider Enumeration Date" and _cols[AO_PHONE].startswith(
    "Authorized Official Tele"
)
assert _cols[TAXO] == "Healthcare Provider Taxonomy Code_1" and _cols[IDENT] == "Other Provider Identifier_1"
assert (
    _cols[SOLE_PROP] == "Is Sole Proprietor" and _cols[TAXO_GROUP] == "Healthcare Provider Taxonomy Group_1"
)
assert _cols[CERTIFIED] == "Certification Date"

WIDTHS: dict[FileKind, int] = {
    k: len(canonical_columns(k)) for k in ("npidata", "pl", "othername", "endpoint")
}


# -- npidata -----------------------------------------------------------------------------------


def transform_provider(f: list[str], line: int, ctx: Context, out: BlockResult) -> None:
    """One canonical npidata row -> stored provider document and index rows (raises BadRow)."""
    npi_s = f[NPI]
    checked_npi(npi_s)
    entity = f[ENTITY]
    deactivated = iso_date(f[DEACTIVATED], "NPI Deactivation Date")
    reactivated = iso_date(f[REACTIVATED], "NPI Reactivation Date")
    release = {"date": ctx.release_date, "loadId": ctx.load_id, "line": line}

    if not entity:
        if not deactivated:
            raise BadRow("Entity Type Code is blank and the row is not a deactivated NPI")
        add_deactivated(
            out,
            npi_s,
            deactivated=deactivated,
            reason=f[DEACT_REASON],
            replacement=f[REPLACEMENT],
            release=release,
            line=line,
        )
        return
    if entity not in ("1", "2"):
        raise BadRow(f"Entity Type Code {entity!r} is not 1 or 2")
    add_provider(
        out,
        npi_s,
        int(entity),
        release,
        line,
        deactivation=(deactivated, reactivated, f[DEACT_REASON], f[REPLACEMENT]),
        dates=(
            iso_date(f[ENUMERATED], "Provider Enumeration Date"),
            iso_date(f[UPDATED], "Last Update Date"),
            iso_date(f[CERTIFIED], "Certification Date"),
        ),
        person=(f[FIRST], f[MIDDLE], f[LAST], f[PREFIX], f[SUFFIX], f[CREDENTIAL]),
        other_person=(
            f[OTHER_FIRST],
            f[OTHER_MIDDLE],
            f[OTHER_LAST],
            f[OTHER_PREFIX],
            f[OTHER_SUFFIX],
            f[OTHER_CRED],
            f[OTHER_LAST_TYPE],
        ),
        organization=(
            f[ORG_NAME],
            f[OTHER_ORG],
            f[OTHER_ORG_TYPE],
            f[EIN],
            f[SUBPART],
            f[PARENT_LBN],
            f[PARENT_TIN],
        ),
        official=(
            f[AO_LAST],
            f[AO_FIRST],
            f[AO_MIDDLE],
            f[AO_TITLE],
            f[AO_PHONE],
            f[AO_PREFIX],
            f[AO_SUFFIX],
            f[AO_CRED],
        ),
        individual=(f[SEX], f[SOLE_PROP]),
        taxonomies=f[TAXO : TAXO + 4 * TAXONOMY_SLOTS],
        groups=f[TAXO_GROUP : TAXO_GROUP + TAXONOMY_SLOTS],
        identifiers=f[IDENT : IDENT + 4 * IDENTIFIER_SLOTS],
        mailing=f[MAIL : MAIL + 8],
        practice=f[PRACTICE : PRACTICE + 8],
    )


# -- child files -------------------------------------------------------------------------------


def transform_location(f: list[str], line: int, ctx: Context, out: BlockResult) -> None:
    """One pl_pfile row: a secondary practice location."""
    line1, line2, city, state, postal, country, phone, ext, fax = f[1:10]
    add_location(out, checked_npi(f[0]), line, (line1, line2, city, state, postal, country, phone, fax), ext)


def transform_other_name(f: list[str], line: int, ctx: Context, out: BlockResult) -> None:
    """One othername_pfile row: another name of an organization."""
    npi = checked_npi(f[0])
    name, code = f[1], f[2]
    if not text(name):
        raise BadRow("Provider Other Organization Name is blank")
    created = iso_date(f[3], "Created Date") if len(f) > 3 else None
    add_other_name(out, npi, line, name, code, created)


def transform_endpoint(f: list[str], line: int, ctx: Context, out: BlockResult) -> None:
    """One endpoint_pfile row: an electronic endpoint (Direct address, FHIR URL, ...)."""
    add_endpoint(out, checked_npi(f[0]), line, f[1:19])


TRANSFORMS = {
    "npidata": transform_provider,
    "pl": transform_location,
    "othername": transform_other_name,
    "endpoint": transform_endpoint,
}


def transform_block(
    kind: FileKind, layout_remap: Any, width: int, start_line: int, text: str, ctx: Context
) -> BlockResult:
    """Parse and transform one decoded block; every line ends up loaded or quarantined."""
    out = BlockResult(kind)
    fn = TRANSFORMS[kind]
    canonical_width = WIDTHS[kind]
    seen: set[int] = set()
    line = start_line - 1
    for raw in split_lines(text):
        line += 1
        out.rows_read += 1
        fields = parse_line(raw)
        if fields is None:
            out.quarantine.append(QuarantinedLine(line, "malformed CSV quoting", raw))
            continue
        if len(fields) != width:
            if not raw.strip():
                out.quarantine.append(QuarantinedLine(line, "empty line", raw))
            else:
                out.quarantine.append(
                    QuarantinedLine(line, f"has {len(fields)} columns, expected {width}", raw)
                )
            continue
        if layout_remap is not None:
            fields = layout_remap(fields)
        if len(fields) < canonical_width:  # pragma: no cover - guarded by layout detection
            out.quarantine.append(QuarantinedLine(line, "layout mismatch", raw))
            continue
        if kind == "npidata":
            npi = fields[0]
            if npi.isdigit() and len(npi) == 10:
                n = int(npi)
                if n in seen:
                    out.quarantine.append(
                        QuarantinedLine(
                            line, f"duplicate NPI {npi} (an earlier row of this file has it)", raw
                        )
                    )
                    continue
        marks = _marks(out)
        try:
            fn(fields, line, ctx, out)
        except BadRow as e:
            _rollback(out, marks)
            out.quarantine.append(QuarantinedLine(line, str(e), raw))
            continue
        except Exception as e:  # a bug must not lose the row either
            _rollback(out, marks)
            out.quarantine.append(QuarantinedLine(line, f"could not transform: {type(e).__name__}: {e}", raw))
            continue
        if kind == "npidata":
            seen.add(int(fields[0]))
    return out


def _marks(out: BlockResult) -> tuple[int, int, int, int, int]:
    return (len(out.providers), len(out.names), len(out.taxonomies), len(out.locations), len(out.extras))


def _rollback(out: BlockResult, marks: tuple[int, int, int, int, int]) -> None:
    """Drop partial output of a row that failed half-way."""
    del out.providers[marks[0] :]
    del out.names[marks[1] :]
    del out.taxonomies[marks[2] :]
    del out.locations[marks[3] :]
    del out.extras[marks[4] :]
