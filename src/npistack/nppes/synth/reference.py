"""Seed-independent reference data of the synthetic bundles (``npistack.nppes.synth``): street words,
states by population, provider kinds (taxonomy codes, credentials, licences, organization names),
and the tables built once from the installed data: real USPS ZIPs with phone prefixes that
``phonenumbers`` accepts, the 1990 US Census name frequencies, nicknames and NUCC codes (``_tables``).
"""

from __future__ import annotations

import gzip
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import accumulate
from random import Random

# ---- reference data (seed independent) --------------------------------------------------------------
# fmt: off
_STREETS = """MAIN OAK PINE MAPLE CEDAR ELM WASHINGTON LAKE HILL PARK CHURCH HIGH CENTER SPRING RIVER MARKET
BROAD JEFFERSON LINCOLN MADISON FRANKLIN JACKSON WALNUT CHESTNUT HOSPITAL MEDICAL_CENTER MEDICAL_PARK
PROFESSIONAL COLLEGE UNIVERSITY SUNSET VALLEY RIDGE FOREST MEADOW CAPITAL HEALTH_PARK COMMERCE STATE KING
GRAND MILL 1ST 2ND 3RD 4TH 5TH 6TH 7TH 8TH 10TH 12TH 14TH 21ST 25TH 41ST MARTIN_LUTHER_KING_JR CAMINO_REAL
PEACHTREE"""
_STREET_TYPES = ("ST:20 AVE:12 RD:10 DR:10 BLVD:5 LN:3 WAY:3 PKWY:2 CT:2 PL:1 HWY:2 CIR:1 PIKE:1 "
                 "STREET:6 AVENUE:4 ROAD:3 DRIVE:3 BOULEVARD:2 LANE:1 PARKWAY:1 HIGHWAY:1")
_DIRS = "N:4 S:4 E:3 W:3 NORTH:1 SOUTH:1 EAST:1 WEST:1 NW:1 SE:1"
_UNITS = "SUITE :6|STE :6|# :1|UNIT :1|RM :1|APT :1"
_STATE_WEIGHTS = """CA:395 TX:290 FL:215 NY:200 PA:130 IL:128 OH:118 GA:107 NC:105 MI:100 NJ:93 VA:86 WA:77
AZ:71 MA:70 TN:69 IN:68 MD:62 MO:62 WI:59 CO:58 MN:57 SC:51 AL:50 LA:46 KY:45 OR:42 OK:40 CT:36 UT:33
IA:32 NV:31 AR:30 MS:30 KS:29 NM:21 NE:20 ID:18 WV:18 HI:14 NH:14 ME:14 MT:11 RI:11 DE:10 SD:9 ND:8
AK:7 DC:7 VT:6 WY:6 PR:33 VI:1 GU:1"""
_TERRITORY_REGION = {"PR": "PR", "VI": "VI", "GU": "GU"}

# Individual kinds: weight, taxonomy codes (CODE:weight; "*" = any NUCC individual code), credentials
# (TEXT:weight, "|" separated), licence prefixes ("|" separated, "" = digits only, "-" = unlicensed),
# share female, "DR." title common.
_IND_KINDS: tuple[tuple[int, str, str, str, float, bool], ...] = (
    (30, "207R00000X:12 207Q00000X:10 208000000X:6 2084P0800X:4 207X00000X:3 207RC0000X:3 208600000X:3 "
         "207V00000X:4 207P00000X:4 2085R0202X:3 207L00000X:3 207RG0100X:1 207RH0003X:1 207RN0300X:1 "
         "207W00000X:2 207N00000X:1 2084N0400X:1 207Y00000X:1 208800000X:1 207ZP0102X:1 208VP0014X:1 "
         "207RP1001X:1 207RE0101X:1 208100000X:1 208G00000X:1 207T00000X:1 208D00000X:1 207RI0200X:1 "
         "207K00000X:1 174400000X:1 207RX0202X:1 2086S0129X:1",
     "M.D.:30|MD:40|M. D.:2|D.O.:6|DO:8|MD, PHD:2|M.D., PH.D.:1|MD, FACP:1|MD MPH:1|M.D:1|MD.:1|md:1|"
     "MD,  PHD:1|:8", "|||MD|A|G|ME|DO|MD0", 0.38, True),
    (12, "363L00000X:3 363LF0000X:6 363LA2200X:1 363LP0808X:1 363LA2100X:1 363LP0200X:1 363LW0102X:1 "
         "363LG0600X:1",
     "NP:10|FNP-C:10|APRN:8|FNP:5|FNP-BC:5|CRNP:4|APRN, FNP-C:3|RN, MSN, CPNP:1|MSN, APRN, FNP-C:2|"
     "ARNP:3|DNP, FNP-BC:1|PMHNP-BC:1|APN:2|NP-C:3|:3", "APRN|RN|AP|NP|", 0.88, False),
    (5, "363A00000X:8 363AM0700X:2 363AS0400X:1",
     "PA-C:20|PA:6|P.A.:3|PA-C, MPAS:1|MPAS, PA-C:1|P.A.-C:1|:2", "PA||", 0.68, False),
    (5, "163W00000X:6 163WP0808X:1 163WC0400X:1 163WE0003X:1 163WG0600X:1",
     "RN:20|R.N.:3|BSN, RN:4|RN, BSN:4|MSN, RN:2|RN, MSN:2|:3", "RN||R", 0.9, False),
    (1, "367500000X:1", "CRNA:6|MSN, CRNA:1|DNP, CRNA:1", "RN|APRN", 0.6, False),
    (6, "122300000X:6 1223G0001X:8 1223P0221X:1 1223X0400X:1 1223S0112X:1 1223E0200X:1 1223P0300X:1",
     "DDS:20|D.D.S.:6|DMD:8|D.M.D.:3|DDS, MS:1|DDS MS:1|:2", "DDS|DN||D", 0.35, True),
    (4, "183500000X:8 1835P1200X:1 1835P0018X:1 1835G0303X:1",
     "PHARMD:20|PHARM.D.:5|RPH:8|R.PH.:3|PHARMD, BCPS:2|B.C.P.S., PH.D.:1|:4", "RPH|PH||", 0.6, False),
    (5, "225100000X:8 2251X0800X:1",
     "PT:10|DPT:10|PT, DPT:8|P.T.:2|MPT:2|PT, DPT, OCS:1|:2", "PT||", 0.65, False),
    (2, "225X00000X:1", "OTR/L:10|OT:3|MS, OTR/L:2|OTR:2", "OT|", 0.88, False),
    (2, "235Z00000X:3 231H00000X:1", "CCC-SLP:8|MA-CCC:3|M.S., CCC-SLP:3|AU.D.:2|SLP:2", "SLP|", 0.92, False),
    (5, "101YP2500X:3 101YM0800X:2 101Y00000X:2 101YA0400X:1",
     "LPC:10|LMHC:5|LPCC:3|MA, LPC:2|LCPC:3|LADC:1|M.ED., LPC:1|NCC, LPC:1", "LPC|MHC|", 0.75, False),
    (4, "1041C0700X:1", "LCSW:15|LICSW:3|MSW LICSW:2|LCSW-C:1|MSW, LCSW:3|LISW:2", "LCSW|SW|", 0.85, False),
    (2, "103T00000X:2 103TC0700X:1", "PH.D.:8|PHD:6|PSYD:4|PSY.D.:3|PH.D., ABPP:1", "PSY|", 0.6, True),
    (1, "106H00000X:1", "LMFT:6|MA, LMFT:2|MFT:1", "LMFT|", 0.78, False),
    (2, "111N00000X:1", "DC:8|D.C.:4|:1", "DC|CHI|", 0.3, True),
    (2, "152W00000X:1", "OD:8|O.D.:5|:1", "OD|OA|", 0.45, True),
    (1, "213E00000X:1", "DPM:8|D.P.M.:3", "DPM|", 0.3, True),
    (1, "133V00000X:1", "RD:4|RDN:4|MS, RDN, LD:2|RD, LD:2", "LD|", 0.92, False),
    (2, "103K00000X:2 106S00000X:1", "BCBA:8|M.ED., BCBA:1|RBT:3|:2", "-", 0.8, False),
    (1, "225700000X:1", "LMT:8|:2", "MA|", 0.8, False),
    (1, "171100000X:1", "L.AC.:5|LAC:3|DIPL. AC.:1", "AC|", 0.55, False),
    (2, "390200000X:1", ":10|MD:2|DDS:1", "-", 0.5, False),
    (1, "164W00000X:1", "LPN:8|L.P.N.:1", "LPN|PN|", 0.9, False),
    (1, "183700000X:1", "CPHT:5|:5", "-", 0.75, False),
    (1, "146L00000X:1", "EMT-P:5|NRP:2|PARAMEDIC:2", "P|", 0.3, False),
    (2, "*", ":6|MD:1|PHD:1", "|", 0.5, False),
)
# Organization kinds: weight, codes ("*" = any NUCC non-individual code), name templates, group practice.
_ORG_KINDS: tuple[tuple[int, str, str, bool], ...] = (
    (12, "261QP2300X:4 261QM1300X:3 261QF0400X:2 261QR1300X:2 261Q00000X:1 261QM2500X:1",
     "{city} FAMILY HEALTH CENTER{sfx}|{word} MEDICAL CLINIC{sfx}|{last} CLINIC{sfx}|"
     "{county} COUNTY HEALTH DEPARTMENT|{word} COMMUNITY HEALTH CENTER{sfx}", False),
    (2, "261QU0200X:1", "{word} URGENT CARE{sfx}|{city} URGENT CARE CENTER{sfx}", False),
    (2, "261QA1903X:1", "{city} SURGERY CENTER{sfx}|{word} AMBULATORY SURGICAL CENTER{sfx}", False),
    (5, "261QM0801X:3 251S00000X:2 324500000X:1",
     "{word} BEHAVIORAL HEALTH{sfx}|{county} COUNTY MENTAL HEALTH CENTER|{word} RECOVERY CENTER{sfx}", False),
    (1, "261QE0700X:1", "{word} DIALYSIS{sfx}|{city} KIDNEY CENTER{sfx}", False),
    (1, "261QR0200X:1", "{word} IMAGING{sfx}|{city} MRI{sfx}", False),
    (4, "261QP2000X:3 225100000X:1", "{word} PHYSICAL THERAPY{sfx}|{last} REHAB{sfx}", False),
    (3, "282N00000X:6 282NC0060X:1 283Q00000X:1 273R00000X:1",
     "{city} REGIONAL MEDICAL CENTER|{saint}'S HOSPITAL|{county} COUNTY HOSPITAL DISTRICT|"
     "{word} MEMORIAL HOSPITAL{sfx}|{city} COMMUNITY HOSPITAL", False),
    (12, "3336C0003X:10 3336C0004X:1 3336H0001X:1 3336L0003X:1 3336M0002X:1 3336S0011X:1 333600000X:1",
     "{last} PHARMACY{sfx}|{city} DRUG{sfx}|{word} PHARMACY{sfx}|{word} APOTHECARY{sfx}|"
     "{last}'S DRUG STORE{sfx}", False),
    (4, "291U00000X:1", "{word} LABORATORIES{sfx}|{word} DIAGNOSTICS{sfx}|{city} PATHOLOGY LAB{sfx}", False),
    (26, "207Q00000X:6 207R00000X:4 208000000X:3 207X00000X:2 207RC0000X:2 207V00000X:2 174400000X:2 "
         "207P00000X:2 2085R0202X:1 207L00000X:1 2084P0800X:1 208600000X:1 152W00000X:1 111N00000X:1",
     "{last} & {last2} MD PA|{city} ORTHOPAEDIC ASSOCIATES{sfx}|{word} MEDICAL GROUP{sfx}|"
     "{last} FAMILY MEDICINE{sfx}|{word} PEDIATRICS{sfx}|{word} CARDIOLOGY ASSOCIATES{sfx}|"
     "{last}, {last2} AND ASSOCIATES{sfx}|{word} WOMEN'S HEALTH{sfx}|{word} 'PREMIER' PHYSICIANS{sfx}", True),
    (6, "1223G0001X:4 122300000X:2 261QD0000X:1",
     "{last} FAMILY DENTISTRY{sfx}|{word} DENTAL GROUP{sfx}|{word} SMILES{sfx}|{last} DDS PC", False),
    (7, "251E00000X:1",
     "{word} HOME HEALTH{sfx}|ANGELS OF {city} HOME CARE{sfx}|{last} HOME CARE SERVICES{sfx}", False),
    (2, "251G00000X:1", "{word} HOSPICE{sfx}|HOSPICE OF {county} COUNTY{sfx}", False),
    (6, "332B00000X:6 332BX2000X:1 332BP3500X:1 335E00000X:2",
     "{word} MEDICAL SUPPLY{sfx}|{word} HOME MEDICAL EQUIPMENT{sfx}|{last} ORTHOTICS & PROSTHETICS{sfx}",
     False),
    (4, "314000000X:3 313M00000X:1 311Z00000X:1 310400000X:2",
     "{word} NURSING AND REHABILITATION CENTER{sfx}|{city} HEALTH CARE CENTER{sfx}|{word} MANOR{sfx}|"
     "{saint} CARE CENTER{sfx}", False),
    (2, "3416L0300X:4 341600000X:2 3416A0800X:1",
     "{county} COUNTY EMS|{word} AMBULANCE SERVICE{sfx}|{city} FIRE DEPARTMENT", False),
    (1, "343900000X:1", "{word} MEDICAL TRANSPORT{sfx}|{last} TRANSPORTATION{sfx}", False),
    (2, "*", "{word} HEALTH SERVICES{sfx}|{last} {word} CARE{sfx}", False),
)
_WORDS = """PIONEER SUMMIT HORIZON VALLEY LAKESIDE RIVERSIDE PINNACLE PREMIER HERITAGE CORNERSTONE GOLDEN
EVERGREEN BRIGHTON COASTAL MOUNTAIN_VIEW SUNRISE ADVANCED COMPLETE FIRST_CHOICE ACCESS UNITED ALLIANCE
NORTHSIDE SOUTHERN TRI-COUNTY BLUE_RIDGE HEARTLAND LIBERTY CAPITAL GENESIS HARMONY BEACON COMPASS"""
_SUFFIXES = ":6|, LLC:5| LLC:6|, INC.:5| INC:4| INC.:3|, P.C.:2| PC:2| PLLC:3| PA:2|, P.A.:1| LLP:1| CORP:1"
_SAINTS = "ST. MARY|ST. JOSEPH|ST. LUKE|SAINT FRANCIS|ST. VINCENT|SAINT ANTHONY|ST. JUDE|ST. ELIZABETH"
_AO_TITLES = ("CEO:8|OFFICE MANAGER:8|ADMINISTRATOR:8|PRESIDENT:10|OWNER:6|CFO:3|PRACTICE MANAGER:4|"
              "DIRECTOR:3|MANAGING MEMBER:3|VICE PRESIDENT:2|DIRECTOR OF BILLING:1|BILLING MANAGER:2|"
              "COMPLIANCE OFFICER:1|PHARMACIST IN CHARGE:2|MEDICAL DIRECTOR:2|CREDENTIALING SPECIALIST:1|"
              "PRESIDENT & CFO:1|VP OF FINANCE:1|EXECUTIVE DIRECTOR:2|SECRETARY:1|MEMBER:2")
_ISSUERS = ("BCBS:8|AETNA:5|CIGNA:4|UHC:4|HUMANA:3|BLUE CROSS BLUE SHIELD:3|RAILROAD MEDICARE:2|TRICARE:2|"
            "UNITED HEALTHCARE:2|MEDICARE PROVIDER NUMBER:1|TAX ID:1|MEDICAID GROUP:1|"
            "BLUE CROSS & BLUE SHIELD:1|HEALTHLINK:1")
_GROUPS = ("193400000X SINGLE SPECIALTY  GROUP:6|193200000X MULTI-SPECIALTY GROUP:4|"
           "193400000X MULTIPLE SINGLE SPECIALTY GROUP:1")
_SLOTS_IND = (1,) * 72 + (2,) * 18 + (3,) * 7 + (4,) * 3
_SLOTS_ORG = (1,) * 75 + (2,) * 18 + (3,) * 7
# fmt: on


def _weighted(spec: str, sep: str | None = None) -> tuple[str, ...]:
    """Expand ``"A:3 B:1"`` into ``("A", "A", "A", "B")``: a uniform pick is then a weighted pick."""
    out: list[str] = []
    for item in spec.split(sep):
        value, _, weight = item.rpartition(":")
        out.extend([value] * int(weight))
    return tuple(out)


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.replace("_", " ") for w in text.split())


_Zip = tuple[str, str, str, str, tuple[str, ...]]  # zip5, city, state, county, valid NPA-NXX prefixes


class _Weighted:
    """Names with integer weights, indexed like the sequence that repeats each name ``weight`` times
    (as ``_weighted`` expands a spec) without building it: ``len`` is the total weight and item ``i`` is
    found by bisecting the cumulative weights, so a uniform ``_Gen.pick`` is a weighted pick.
    ``draw(u)`` is the same pick for ``u = rnd()``, a little faster (for the hot name draws)."""

    __slots__ = ("names", "cumulative", "total")
    __iter__ = None  # not a real sequence: iterating would walk the total weight

    def __init__(self, names: Sequence[str], weights: Sequence[int]) -> None:
        if len(names) != len(weights):
            raise ValueError(f"{len(names)} names but {len(weights)} weights")
        self.names = tuple(names)
        # floats compare faster than ints in the bisection, and are exact for totals below 2**53
        self.cumulative: list[float] = [float(c) for c in accumulate(weights)]
        self.total: int = sum(weights)
        if not 0 < self.total < 2**53 or min(weights) <= 0:
            raise ValueError("weights must be positive with a total below 2**53")

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: int, /) -> str:
        if not 0 <= index < self.total:
            raise IndexError(index)
        return self.names[bisect_right(self.cumulative, index)]

    def draw(self, u: float) -> str:
        """The name at ``int(u * len(self))``, ``0 <= u < 1``: cumulative weights are whole numbers, so
        bisecting at ``u * total`` itself finds the same name."""
        return self.names[bisect_right(self.cumulative, u * self.total)]


def _census_names() -> dict[str, _Weighted]:
    """The ``last``, ``male`` and ``female`` tables of ``data/census_names.txt.gz`` (1990 US Census name
    frequencies; its header says how the weights were derived)."""
    raw = resources.files("npistack.nppes").joinpath("data", "census_names.txt.gz").read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    tables = {}
    for section in text.split("\n[")[1:]:  # "last]\nSMITH\t10060000\n..."
        title, _, body = section.partition("]\n")
        fields = body.strip("\n").replace("\t", "\n").split("\n")  # name, weight, name, weight, ...
        tables[title] = _Weighted(fields[0::2], [int(w) for w in fields[1::2]])
    return tables


@dataclass(frozen=True)
class _Kind:
    codes: tuple[str, ...]
    creds: tuple[str, ...]
    licence: tuple[str, ...]  # prefixes; empty = unlicensed
    female: float
    doctor: bool
    names: tuple[str, ...]
    group: bool


@dataclass(frozen=True)
class _Tables:
    states: tuple[str, ...]  # weighted by population
    zips: dict[str, tuple[_Zip, ...]]  # per state
    male: _Weighted  # by 1990 US Census frequency
    female: _Weighted
    nicknames: dict[str, tuple[str, ...]]  # for every male and female name
    last: _Weighted
    ind_kinds: tuple[_Kind, ...]  # weighted
    org_kinds: tuple[_Kind, ...]  # weighted


def _valid_exchanges(npa: str, region: str) -> tuple[str, ...]:
    """A few NPA-NXX prefixes that ``phonenumbers`` accepts (US validity depends only on NPA-NXX)."""
    import phonenumbers

    rng = Random(int(npa))
    found: list[str] = []
    for _ in range(40):
        nxx = str(rng.randrange(201, 990))
        if nxx[1:] == "11" or nxx in ("555", "950", "958", "959", "976"):
            continue
        number = phonenumbers.parse(f"{npa}{nxx}4321", region)
        if phonenumbers.is_valid_number_for_region(number, region):
            found.append(npa + nxx)
            if len(found) == 12:
                break
    return tuple(found)


@cache
def _tables() -> _Tables:
    from nicknames import NickNamer

    from npistack.normalize.geo import zip_table
    from npistack.nppes.taxonomy import load_nucc

    states = _weighted(_STATE_WEIGHTS)
    exchanges: dict[tuple[str, str], tuple[str, ...]] = {}
    zips: dict[str, list[_Zip]] = {s: [] for s in states}
    for z in sorted(zip_table().values(), key=lambda z: z.zip5):
        if z.zip_type != "STANDARD" or z.state not in zips:
            continue
        region = _TERRITORY_REGION.get(z.state, "US")
        phones: list[str] = []
        for npa in z.area_codes:
            if (npa, region) not in exchanges:
                exchanges[npa, region] = _valid_exchanges(npa, region)
            phones.extend(exchanges[npa, region])
        if phones:
            county = (
                z.county.upper().removesuffix(" COUNTY").removesuffix(" PARISH").removesuffix(" MUNICIPIO")
            )
            zips[z.state].append((z.zip5, z.city, z.state, county, tuple(phones)))
    states = tuple(s for s in states if zips[s])

    namer = NickNamer()
    names = _census_names()
    male, female, last = names["male"], names["female"], names["last"]
    nicknames = {}
    for name in male.names + female.names:
        nicks = sorted(n.upper() for n in namer.nicknames_of(name.lower()) if n.isalpha() and len(n) > 2)
        nicknames[name] = tuple(n for n in nicks if n != name)

    nucc = load_nucc()
    tail = {
        sec: tuple(sorted(c for c, t in nucc.items() if t.section == sec))
        for sec in ("Individual", "Non-Individual")
    }

    def codes(spec: str, section: str) -> tuple[str, ...]:
        return tail[section] if spec == "*" else tuple(c for c in _weighted(spec) if c in nucc)

    ind = []
    for weight, spec, creds, lic, female_share, doctor in _IND_KINDS:
        licence = () if lic == "-" else tuple(lic.split("|"))
        kind = _Kind(
            codes(spec, "Individual"), _weighted(creds, "|"), licence, female_share, doctor, (), False
        )
        ind.extend([kind] * weight)
    org = [
        _Kind(codes(c, "Non-Individual"), (), (), 0.0, False, tuple(t.split("|")), grp)
        for w, c, t, grp in _ORG_KINDS
        for _ in range(w)
    ]
    return _Tables(states, {s: tuple(v) for s, v in zips.items()}, male, female, nicknames, last,
                   tuple(ind), tuple(org))  # fmt: skip
