"""Build src/npistack/nppes/data/census_names.txt.gz from the 1990 Census name files.

python scripts/build_census_names.py src/npistack/nppes/data/census_names.txt.gz names-0.3.0/names
"""

import gzip
import sys
from pathlib import Path

# The 1990 files as shipped in the `names` 0.3.0 sdist (pip download names==0.3.0; dist.*.{first,last}).
SRC = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("names-0.3.0/names")
OUT = Path(sys.argv[1])
UNIT = 10**7  # weights in parts per billion: percent * 10**7

# The census files drop punctuation and spaces: these names are written as people write them.
SPELLED = """O'BRIEN O'CONNOR O'NEIL O'NEILL O'NEAL O'DONNELL O'CONNELL O'HARA O'ROURKE O'KEEFE O'LEARY
O'MALLEY O'SULLIVAN O'GRADY O'BRYANT O'QUINN O'DONOGHUE O'DEA O'MARA O'TOOLE O'DANIEL O'SHEA O'BRYAN
O'FARRELL O'KELLEY O'KANE O'HAIR O'BANNON O'HEARN O'MEARA O'DOWD O'KELLY O'BOYLE O'CALLAGHAN
DE_LA_CRUZ DE_LEON DE_LA_ROSA DE_LA_GARZA DE_LA_TORRE DE_LOS_SANTOS DE_JESUS DE_LA_PAZ DE_LA_FUENTE DE_LA_O
DE_LOS_REYES VAN_DYKE VAN_BUREN VAN_HORN VAN_HOUTEN VAN_NESS VAN_WINKLE VAN_ZANDT VAN_METER
ST._JOHN ST._CLAIR ST._PIERRE ST._GERMAIN ST._ONGE ST._LOUIS ST._AMANT ST._LAURENT ST._MARTIN ST._CYR
ST._JEAN ST._HILAIRE"""
# First names of npistack's earlier lists that the 1990 files lack, at 0.005% (a rank ~1,000 name).
EXTRA = {"male": ("RAVI", "RAJESH", "WEI"), "female": ("PRIYA",)}
EXTRA_WEIGHT = 50_000


def weights(path: Path) -> list[tuple[str, int]]:
    """Per-name weights from the cumulative column: each increment of the (rounded) cumulative percent
    is spread evenly over the names since the previous increment, so the 0.000% tail gets small,
    non-zero weights; names after the last increment take the last per-name weight."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    out: list[tuple[str, int]] = []
    prev, start, per = 0, 0, 0.0
    for i, (_name, _freq, cum, _rank) in enumerate(rows):
        c = round(float(cum) * 1000)
        if c != prev:
            per = (c - prev) * UNIT / 1000 / (i + 1 - start)
            out.extend((rows[j][0], round(per)) for j in range(start, i + 1))
            prev, start = c, i + 1
    out.extend((rows[j][0], round(per)) for j in range(start, len(rows)))
    return out


def main() -> None:
    spelled = {
        w.replace("_", " ").replace("'", "").replace(".", "").replace(" ", ""): w.replace("_", " ")
        for w in SPELLED.split()
    }
    last = weights(SRC / "dist.all.last")
    known = {n for n, _ in last}
    assert set(spelled) <= known, set(spelled) - known
    last = [(spelled.get(n, n), w) for n, w in last]
    lines = [
        "# Name frequencies for npistack's synthetic NPPES bundles (npistack.nppes.synth).",
        "# Source: US Census Bureau, 1990 Census name frequency files dist.all.last (88,799 surnames),",
        "# dist.male.first (1,219) and dist.female.first (4,275): a US government work, public domain.",
        "# Weights are parts per billion of the 1990 population. The files round each frequency to",
        "# 0.001%, so each name's weight is the rise of the cumulative percent column spread evenly over",
        "# the names since its previous rise (the 0.000% tail gets small, non-zero weights; the last few",
        "# names take the last such weight). The census drops punctuation and spaces: "
        f"{len(spelled)} surnames",
        "# are spelled as written (OBRIEN is O'BRIEN, VANDYKE VAN DYKE, DELACRUZ DE LA CRUZ, STJOHN ST. JOHN).",
        f"# Added: first names {', '.join(n for v in EXTRA.values() for n in v)}, absent from the 1990 files, "
        f"at {EXTRA_WEIGHT} ppb each.",
        "# Sections [last], [male] and [female], in rank order; lines are NAME<tab>WEIGHT.",
    ]
    for section, rows in (
        ("last", last),
        ("male", weights(SRC / "dist.male.first")),
        ("female", weights(SRC / "dist.female.first")),
    ):
        rows = rows + [(n, EXTRA_WEIGHT) for n in EXTRA.get(section, ())]
        assert len({n for n, _ in rows}) == len(rows) and all(w > 0 for _, w in rows)
        lines.append(f"[{section}]")
        lines.extend(f"{n}\t{w}" for n, w in rows)
    data = ("\n".join(lines) + "\n").encode()
    OUT.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(OUT, len(data), OUT.stat().st_size)


main()
