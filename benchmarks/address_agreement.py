"""Agreement and speed of ``npistack.normalize.address`` against usaddress-scourgify.

Builds a corpus from the mailing and practice addresses in ``tests/data/npidata_sample.csv`` plus
``--n`` generated addresses that follow the patterns of NPPES data (spelled-out and abbreviated
street suffixes and directionals, units on line 1 or line 2, ``#`` units, floors, PO boxes,
highways and routes, numbered streets, number words, free text on line 2, mixed case, stray
spaces, periods and commas), standardizes each with both, and prints the agreement per field,
the time per address and up to 20 disagreements.

    python benchmarks/address_agreement.py --n 20000 --seed 1

scourgify raises on some inputs (every PO box, much free text); those are counted apart and left
out of the agreement. Fields compared: line 1, line 2, city, and the full address (line 1, line 2,
city, state, ZIP5, ZIP+4). Disagreements that are wholly explained by the deliberate differences
documented in ``npistack.normalize.address`` are counted per difference, and the full agreement is
also given with them allowed; the remaining ("unexplained") disagreements are printed.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from scourgify import normalize_address_record

from npistack.normalize.address import StdAddress, _standardize, standardize_address

Raw = tuple[str, str, str, str, str]  # line1, line2, city, state, postal

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "data" / "npidata_sample.csv"

# --- generator ----------------------------------------------------------------------------------


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


STREET_NAMES = _words(
    "MAIN OAK PINE MAPLE CEDAR ELM WALNUT CHESTNUT WASHINGTON LINCOLN JEFFERSON MADISON FRANKLIN "
    "JACKSON ADAMS MONROE WILSON GRANT PARK LAKE HILL RIDGE CHURCH HIGH MILL SPRING MARKET BROAD "
    "UNIVERSITY COLLEGE HOSPITAL KING QUEEN PROSPECT CENTRAL UNION LIBERTY HIGHLAND SUNSET RIVER "
    "VALLEY FOREST MEADOW WOODLAND GREEN JOLIET FRANTZ FONDREN OSLER SETON DIANA PARRISH BECKNER "
    "ASYLUM WOODLAND PEACHTREE CAMELBACK WESTHEIMER KIRBY BELLAIRE MOCKINGBIRD COLONIAL COMMERCE "
    "INDUSTRIAL EXECUTIVE CORPORATE PROFESSIONAL TECHNOLOGY HEALTHCARE WELLNESS PHYSICIANS "
    "DOCTORS CLINIC CAMPUS VILLAGE WESTSIDE EASTSIDE NORTHLAND SOUTHGATE NORTHWOOD EASTGATE "
    "BROADWAY BOWERY ALAMEDA"
)
MULTI_NAMES = _words(
    "MEDICAL CENTER|MEDICAL PARK|HEALTH PARK|MARTIN LUTHER KING JR|LAKE SHORE|SAN PABLO|SANTA ROSA|"
    "EL CAMINO REAL|ST CHARLES|SAINT JOHNS|MT VERNON|OLD TESSON|RED OAK|SPANISH RIDGE|CITY BANK|"
    "CAPITAL MEDICAL|WILD TURKEY|PARK NICOLLET|ROCK ISLAND|PHOENIX VILLAGE|MAMIE EISENHOWER|"
    "EXECUTIVE PARK|OFFICE PARK|OAK HILL|PINE RIDGE|SPRING VALLEY|FOREST HILLS|LAKE VIEW|"
    "COUNTRY CLUB|JOHN F KENNEDY|HOSPITAL HILL|WEST END|MEDICAL ARTS|CROSS CREEK|TWIN OAKS|"
    "LAS VEGAS|DE LA VINA|VAN BUREN|MC CORD|O CONNOR|SOUTH PARK|NORTH SHORE",
    sep="|",
)
NAMES_WITH_MARKS = ("O'CONNOR", "ST. JOHN'S", "MT. PLEASANT", "D'IBERVILLE", "FT. UNION", "ST. MARY'S")

# (standard abbreviation, long form, weight)
SUFFIXES = (
    ("ST", "STREET", 20),
    ("AVE", "AVENUE", 15),
    ("RD", "ROAD", 15),
    ("DR", "DRIVE", 15),
    ("BLVD", "BOULEVARD", 8),
    ("LN", "LANE", 5),
    ("WAY", "WAY", 4),
    ("CT", "COURT", 3),
    ("PL", "PLACE", 3),
    ("PKWY", "PARKWAY", 3),
    ("CIR", "CIRCLE", 2),
    ("HWY", "HIGHWAY", 1),
    ("PIKE", "PIKE", 1),
    ("TER", "TERRACE", 1),
    ("TRL", "TRAIL", 1),
    ("PLZ", "PLAZA", 1),
    ("SQ", "SQUARE", 0.5),
    ("LOOP", "LOOP", 0.5),
    ("EXPY", "EXPRESSWAY", 0.3),
    ("CTR", "CENTER", 0.5),
    ("XING", "CROSSING", 0.3),
    ("TPKE", "TURNPIKE", 0.3),
    ("FWY", "FREEWAY", 0.3),
    ("RUN", "RUN", 0.3),
    ("ROW", "ROW", 0.2),
    ("", "", 3),
)
DIRECTIONS = (
    ("N", "NORTH"),
    ("S", "SOUTH"),
    ("E", "EAST"),
    ("W", "WEST"),
    ("NE", "NORTHEAST"),
    ("NW", "NORTHWEST"),
    ("SE", "SOUTHEAST"),
    ("SW", "SOUTHWEST"),
)
HIGHWAYS = (
    "HIGHWAY {n}",
    "HWY {n}",
    "US HIGHWAY {n}",
    "US HWY {n} {d}",
    "STATE ROUTE {n}",
    "STATE HWY {n}",
    "COUNTY ROAD {n}",
    "ROUTE {n}",
    "RT {n}",
    "STATE ROAD {n}",
    "FM {n}",
    "OLD HIGHWAY {n}",
    "US RT. {n}",
    "{d} US HIGHWAY {n}",
    "INTERSTATE {n}",
)
# (template, weight); {i} is an identifier, {o} an ordinal
UNITS = (
    ("SUITE {i}", 30),
    ("STE {i}", 30),
    ("STE. {i}", 3),
    ("# {i}", 4),
    ("#{i}", 4),
    ("APT {i}", 5),
    ("UNIT {i}", 5),
    ("RM {i}", 2),
    ("ROOM {i}", 2),
    ("FL {n}", 2),
    ("FLOOR {n}", 2),
    ("{o} FLOOR", 4),
    ("{o} FL", 1),
    ("BLDG {b}", 2),
    ("BUILDING {b}", 1),
    ("OFFICE {i}", 0.5),
    ("DEPT {i}", 0.5),
    ("LOT {n}", 0.3),
    ("SUITE #{i}", 2),
    ("STE {i}-{b}", 0.5),
    ("BLDG {b} STE {i}", 1.5),
    ("STE {i} BLDG {b}", 0.5),
    ("SUITE {i} & {i2}", 0.3),
    ("{i}", 1),
)
LINE2_TEXT = (
    "MEDICAL OFFICE BUILDING",
    "PROFESSIONAL BUILDING",
    "MEDICAL ARTS BUILDING",
    "NORTH TOWER",
    "EAST WING",
    "ATTN BILLING",
    "ATTN: CREDENTIALING",
    "C/O BUSINESS OFFICE",
    "DEPT OF PEDIATRICS",
    "DEPARTMENT OF SURGERY",
    "BILLING DEPARTMENT",
    "CREDENTIALING",
    "ASSOCIATED MEDICAL PROFESSIONALS",
    "HOUSTON FERTILITY SPECIALISTS PLLC",
    "FAMILY MEDICINE CLINIC",
    "SAINT MARYS HOSPITAL",
    "MEMORIAL HOSPITAL",
    "LOWER LEVEL",
    "GROUND FLOOR",
    "TOWER B",
    "PAVILION 2",
    "LEVEL 3",
    "MAIL STOP 45",
    "MC 1234",
)
LINE1_NAMES = (
    "ONE MEDICAL CENTER",
    "MEDICAL ARTS BUILDING",
    "UNIVERSITY HOSPITAL",
    "SAINT JOSEPH MEDICAL PLAZA",
    "PROFESSIONAL OFFICE BUILDING",
)
ABBREVIATIONS = frozenset(
    _words("ST AVE RD DR BLVD LN CT PL PKWY CIR HWY TER TRL PLZ STE APT RM FL BLDG DEPT")
    + _words("N S E W NE NW SE SW JR MT")
)
ORDINAL_WORDS = ("FIRST", "SECOND", "THIRD", "GROUND")
STATE_NAMES = {"NY": "NEW YORK", "TX": "TEXAS", "CA": "CALIFORNIA", "FL": "FLORIDA", "OH": "OHIO"}


def ordinal(n: int) -> str:
    """``1`` -> ``1ST``."""
    suffix = "TH" if 10 <= n % 100 <= 20 else {1: "ST", 2: "ND", 3: "RD"}.get(n % 10, "TH")
    return f"{n}{suffix}"


class Generator:
    """Random addresses following the patterns of NPPES data."""

    def __init__(self, seed: int) -> None:
        import zipcodes

        self.rng = random.Random(seed)
        self.places = [
            (z["city"].upper(), z["state"], z["zip_code"])
            for z in zipcodes.list_all()
            if z["zip_code_type"] in ("STANDARD", "PO BOX")
        ]
        self.suffix_weights = [w for *_, w in SUFFIXES]
        self.unit_weights = [w for _, w in UNITS]
        self.variants: dict[str, list[str]] = {}
        from scourgify.address_constants import STREET_TYPE_ABBREVIATIONS

        for spelling, abbr in STREET_TYPE_ABBREVIATIONS.items():
            if " " not in spelling:
                self.variants.setdefault(abbr, []).append(spelling)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def ident(self) -> str:
        r = self.rng.random()
        if r < 0.75:
            return str(
                self.rng.choice(
                    (self.rng.randint(1, 30), self.rng.randint(100, 999), self.rng.randint(1000, 4999))
                )
            )
        if r < 0.87:
            return self.rng.choice("ABCDEFGH")
        if r < 0.95:
            return f"{self.rng.randint(1, 9)}{self.rng.choice('ABCDEF')}"
        return f"{self.rng.randint(100, 599)}{self.rng.choice('ABC')}"

    def unit(self) -> str:
        (template,) = self.rng.choices([t for t, _ in UNITS], self.unit_weights)
        n = self.rng.randint(1, 12)
        o = ordinal(n) if self.chance(0.85) else self.rng.choice(ORDINAL_WORDS)
        return template.format(i=self.ident(), i2=self.ident(), n=n, o=o, b=self.rng.choice("ABCDE123"))

    def direction(self) -> str:
        ((abbr, long),) = self.rng.choices(DIRECTIONS, (4, 4, 4, 4, 1, 1, 1, 1))
        r = self.rng.random()
        if r < 0.6:
            return abbr
        if r < 0.9 or len(abbr) == 2:
            return long
        return f"{abbr}."

    def suffix(self) -> str:
        (abbr, long, _) = self.rng.choices(SUFFIXES, self.suffix_weights)[0]
        r = self.rng.random()
        if not abbr or r < 0.55:
            return abbr
        if r < 0.9:
            return long
        if r < 0.95:
            return f"{abbr}."
        return self.rng.choice(self.variants.get(abbr, [abbr]))

    def house_number(self) -> str:
        r = self.rng.random()
        if r < 0.02:
            return self.rng.choice(("ONE", "TWO", "ONE", "THREE"))
        n = str(int(10 ** self.rng.uniform(0, 5)))
        if r < 0.03:
            return n + self.rng.choice("ABC")
        if r < 0.035:
            return f"{n}-{int(n) + 2}"
        if r < 0.038:
            return f"{n} 1/2"
        return n

    def street(self) -> str:
        parts = [self.house_number()]
        if self.chance(0.04):
            n, d = self.rng.randint(1, 299), self.direction()
            parts.append(self.rng.choice(HIGHWAYS).format(n=n, d=d))
            if self.chance(0.1):
                parts.append(self.direction())
            return " ".join(parts)
        if self.chance(0.2):
            parts.append(self.direction())
        r = self.rng.random()
        if r < 0.12:
            n = self.rng.randint(1, 160)
            parts.append(ordinal(n) if self.chance(0.85) else str(n))
        elif r < 0.3:
            parts.append(self.rng.choice(MULTI_NAMES))
        elif r < 0.31:
            parts.append(self.rng.choice(NAMES_WITH_MARKS))
        else:
            parts.append(self.rng.choice(STREET_NAMES))
            if self.chance(0.15):
                parts.append(self.rng.choice(STREET_NAMES))
        suffix = self.suffix()
        if suffix:
            parts.append(suffix)
        if self.chance(0.07):
            parts.append(self.direction())
        return " ".join(parts)

    def po_box(self) -> str:
        n = self.rng.randint(1, 99999)
        (prefix,) = self.rng.choices(
            ("PO BOX", "P.O. BOX", "P O BOX", "POST OFFICE BOX", "BOX", "POB", "PO BOX #", "P.O.BOX"),
            (60, 20, 8, 7, 2, 1, 1, 1),
        )
        return f"{prefix} {n}" if not prefix.endswith("#") else f"{prefix}{n}"

    def lines(self) -> tuple[str, str]:
        r = self.rng.random()
        if r < 0.07:
            return self.po_box(), (self.unit() if self.chance(0.05) else "")
        if r < 0.08:
            return self.rng.choice(LINE1_NAMES), self.street()
        if r < 0.085:
            return self.unit(), self.street()
        line1, line2 = self.street(), ""
        r = self.rng.random()
        if r < 0.18:
            sep = self.rng.choice((" ", " ", " ", ", ", " - "))
            line1 = f"{line1}{sep}{self.unit()}"
        elif r < 0.43:
            line2 = self.unit()
        elif r < 0.45:
            line1, line2 = f"{line1} {self.unit()}", self.unit()
        elif r < 0.49:
            line2 = self.rng.choice(LINE2_TEXT)
        elif r < 0.50:
            line2 = self.po_box()
        return line1, line2

    def place(self) -> tuple[str, str, str]:
        city, state, zip5 = self.rng.choice(self.places)
        if city.startswith("SAINT ") and self.chance(0.3):
            city = "ST." + city[5:]
        elif city.startswith(("ST ", "FT ", "MT ")) and self.chance(0.3):
            city = city[:2] + "." + city[2:]
        if self.chance(0.01) and state in STATE_NAMES:
            state = STATE_NAMES[state]
        r = self.rng.random()
        if r < 0.85:
            postal = zip5 + f"{self.rng.randint(0, 9999):04d}"
        elif r < 0.98:
            postal = zip5
        else:
            postal = f"{zip5}-{self.rng.randint(0, 9999):04d}"
        return city, state, postal

    def noise(self, text: str, periods: bool = True) -> str:
        """Mixed case, doubled or outer spaces, and periods after abbreviations."""
        r = self.rng.random()
        if r < 0.15:
            text = text.title()
        elif r < 0.18:
            text = text.lower()
        if self.chance(0.08):
            text = text.replace(" ", "  ", 1)
        if self.chance(0.03):
            text = f" {text} "
        if periods and self.chance(0.05):
            text = " ".join(
                w + "." if w.upper() in ABBREVIATIONS and self.chance(0.7) else w for w in text.split(" ")
            )
        return text

    def address(self) -> Raw:
        line1, line2 = self.lines()
        city, state, postal = self.place()
        return self.noise(line1), self.noise(line2), self.noise(city, periods=False), state, postal


def sample_addresses(path: Path = SAMPLE) -> list[Raw]:
    """Mailing and practice addresses of the NPPES sample rows."""
    out: list[Raw] = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for kind in ("Mailing", "Practice Location"):
                line1 = row[f"Provider First Line Business {kind} Address"]
                if line1:
                    out.append(
                        (
                            line1,
                            row[f"Provider Second Line Business {kind} Address"],
                            row[f"Provider Business {kind} Address City Name"],
                            row[f"Provider Business {kind} Address State Name"],
                            row[f"Provider Business {kind} Address Postal Code"],
                        )
                    )
    return out


def corpus(n: int, seed: int) -> list[Raw]:
    """The sample's addresses followed by ``n`` generated ones."""
    gen = Generator(seed)
    return sample_addresses() + [gen.address() for _ in range(n)]


# --- comparison ---------------------------------------------------------------------------------


def scourgify_std(raw: Raw) -> StdAddress | None:
    """scourgify's result in our shape, or ``None`` when it raises."""
    line1, line2, city, state, postal = raw
    try:
        rec = normalize_address_record(
            {
                "address_line_1": line1,
                "address_line_2": line2,
                "city": city,
                "state": state,
                "postal_code": postal,
            }
        )
    except Exception:
        return None
    zip5, _, zip4 = (rec["postal_code"] or "").partition("-")
    return StdAddress(
        rec["address_line_1"] or "",
        rec["address_line_2"] or "",
        rec["city"] or "",
        rec["state"] or "",
        zip5,
        zip4,
        "US",
    )


def ours(raw: Raw) -> StdAddress:
    """Our result, bypassing the cache."""
    return _standardize.__wrapped__(*raw, "")


_HASH_AFTER_DESIGNATOR = re.compile(r"\b(STE|APT|UNIT|RM|FL|BLDG|DEPT|OFC|LOT|SPC|TRLR) (?:# |NO )")
_SPELLED = {"BUILDING": "BLDG", "OFFICE": "OFC", "FLOOR": "FL"}
_SPELLED_DESIGNATOR = re.compile(r"(?:UNIT )?\b(BUILDING|OFFICE|FLOOR) (?=\S)")


def _documented(mine: StdAddress, ref: StdAddress) -> list[str]:
    """The documented differences (see ``npistack.normalize.address``) that turn ``ref`` into ``mine``.

    Returns ``[]`` when they do not explain the disagreement.
    """
    found: list[str] = []
    if ref.city != mine.city and ref.city.replace(".", "") == mine.city:
        ref = replace(ref, city=mine.city)
        found.append("periods dropped from the city")
    fixed = _HASH_AFTER_DESIGNATOR.sub(r"\1 ", ref.line2)
    if fixed != ref.line2:
        ref = replace(ref, line2=fixed)
        found.append("'#' dropped after a designator (STE # 2 -> STE 2)")
    fixed = _SPELLED_DESIGNATOR.sub(lambda m: _SPELLED[m[1]] + " ", ref.line2)
    if fixed != ref.line2 and fixed == mine.line2:
        ref = replace(ref, line2=fixed)
        found.append("BUILDING, OFFICE, FLOOR abbreviated (C2) where scourgify keeps them")
    if (
        ref.line2 != mine.line2
        and ref.line1 == mine.line1
        and ref.line2.startswith("UNIT ")
        and ref.line2.split()[1] in mine.line2.split()
    ):
        ref = replace(ref, line2=mine.line2)
        found.append("unknown designator kept (LEVEL 3, not UNIT 3)")
    if ref != mine and mine.line2:
        merged = (
            f"{mine.line1} {mine.line2}",
            f"{mine.line1}, {mine.line2}",
            f"{mine.line2} {mine.line1}",
        )
        if ref.line1 in merged and not ref.line2:
            ref = replace(ref, line1=mine.line1, line2=mine.line2)
            found.append("free text on line 2 / building name on line 1 kept apart from the street")
    return found if ref == mine else []


@dataclass
class Agreement:
    """Agreement of ours with scourgify over a corpus."""

    total: int = 0
    raised: int = 0  # scourgify raised; left out of the agreement
    same: Counter[str] = field(default_factory=Counter)  # field -> inputs where both agree
    documented: Counter[str] = field(default_factory=Counter)  # documented difference -> inputs
    explained: int = 0  # inputs whose whole difference is documented
    examples: list[tuple[Raw, StdAddress, StdAddress]] = field(default_factory=list)  # unexplained
    first_documented: dict[str, tuple[Raw, StdAddress, StdAddress]] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.total - self.raised

    def rate(self, key: str) -> float:
        return self.same[key] / self.accepted if self.accepted else 1.0

    @property
    def rate_documented(self) -> float:
        """Full agreement once the documented, deliberate differences are allowed."""
        return (self.same["full"] + self.explained) / self.accepted if self.accepted else 1.0


def agreement(raws: list[Raw]) -> Agreement:
    """Compare ours with scourgify on every input of ``raws``."""
    result = Agreement()
    for raw in raws:
        result.total += 1
        ref = scourgify_std(raw)
        if ref is None:
            result.raised += 1
            continue
        mine = ours(raw)
        result.same["line1"] += mine.line1 == ref.line1
        result.same["line2"] += mine.line2 == ref.line2
        result.same["city"] += mine.city == ref.city
        if mine == ref:
            result.same["full"] += 1
            continue
        reasons = _documented(mine, ref)
        if reasons:
            result.explained += 1
            result.documented.update(reasons)
            for reason in reasons:
                result.first_documented.setdefault(reason, (raw, mine, ref))
        else:
            result.examples.append((raw, mine, ref))
    return result


def time_per_call(
    func: Callable[..., object],
    args: Sequence[tuple[str, ...]],
    repeat: int = 3,
    setup: Callable[[], object] | None = None,
) -> float:
    """µs per call of ``func(*a)`` over ``args``: the best of ``repeat`` runs, as timeit does."""
    best = float("inf")
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        for a in args:
            func(*a)
        best = min(best, time.perf_counter() - start)
    return best / len(args) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000, help="generated addresses (default 20000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--examples", type=int, default=20, help="disagreements to print (default 20)")
    args = parser.parse_args()

    sample = sample_addresses()
    raws = corpus(args.n, args.seed)
    result = agreement(raws)
    on_sample = agreement(sample)
    print(f"corpus: {len(raws)} addresses ({len(sample)} from the NPPES sample, {args.n} generated)")
    print(
        f"scourgify raised on {result.raised} ({result.raised / len(raws):.1%}); compared {result.accepted}"
    )
    for key in ("line1", "line2", "city", "full"):
        print(f"  agreement {key:<5} {result.rate(key):7.2%}  ({result.same[key]}/{result.accepted})")
    print(f"  full, allowing the documented differences: {result.rate_documented:.2%}")
    for reason, count in result.documented.most_common():
        print(f"    {count:6d}  {reason}")
    print(
        f"  NPPES sample alone: {on_sample.same['full']}/{on_sample.accepted} agree in full, "
        f"{on_sample.raised} raised by scourgify"
    )

    with_country = [(*raw, "") for raw in raws]
    uncached = time_per_call(_standardize.__wrapped__, with_country)
    cold = time_per_call(standardize_address, raws, setup=_standardize.cache_clear)
    warm = time_per_call(standardize_address, raws)
    reference = time_per_call(lambda *raw: scourgify_std(raw), raws[:2000], repeat=1)
    print(
        f"µs/address: ours {uncached:.2f} uncached, {cold:.2f} through an empty cache, {warm:.2f} cached; "
        f"scourgify {reference:.1f}"
    )

    shown = result.examples[: args.examples]
    if shown:
        print(f"\n{len(shown)} of {len(result.examples)} unexplained disagreements (input, ours, scourgify):")
        for raw, mine, ref in shown:
            print(f"  {raw}\n    ours:      {_fields(mine)}\n    scourgify: {_fields(ref)}")
    if result.first_documented and args.examples:
        print("\none example of each documented difference (input, ours, scourgify):")
        for reason, (raw, mine, ref) in result.first_documented.items():
            print(f"  {reason}\n    {raw}\n    ours:      {_fields(mine)}\n    scourgify: {_fields(ref)}")


def _fields(std: StdAddress) -> str:
    return f"{std.line1!r} | {std.line2!r} | {std.city!r} | {std.state} {std.zip5} {std.zip4}"


if __name__ == "__main__":
    main()
