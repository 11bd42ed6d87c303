"""Synthetic NPPES "Full Replacement" monthly bundles, byte-for-byte in CMS's format.

``write_bundle(out_dir, n, seed)`` writes ``NPPES_Data_Dissemination_<Month>_<YYYY>_V2.zip`` (or the same
files in a folder) holding the four ``*_pfile_20050523-YYYYMMDD.csv`` data files and their
``_fileheader.csv`` files. Output is a pure function of the arguments (and of the installed reference
data): the same call writes the same bytes. Rows are streamed, so memory does not grow with ``n``;
child files are spooled to temporary files beside the zip and copied in after ``npidata``.

What the rows look like (shares are per ``npidata`` row, drawn independently):

- ~76% individuals (Entity Type 1): physicians of many specialties (~30% of individuals), nurse
  practitioners, PAs, RNs, dentists, pharmacists, therapists, counselors and social workers, ... with
  1-4 taxonomy slots, licences, usually exactly one primary switch "Y" (a few rows have none, or "X").
  Names follow the 1990 US Census frequencies (``data/census_names.txt.gz``, its header says how):
  88,799 surnames with a long tail (SMITH ~1.1% of individuals, the top 200 ~27%; in a 1M-row bundle
  ~70% of individuals share their first + last name with nobody), O'BRIEN, VAN DYKE, DE LA CRUZ and
  ST. JOHN spelled as written, ~2% hyphenated double last names; 1,222 male and 4,276 female first
  names, about two thirds of people's with nicknames (the ``nicknames`` package). ~7% carry an "other
  name": a former (maiden) last name, type 1, or a nickname as professional name, type 2.
- ~21% organizations (Entity Type 2): clinics, group practices (with ``Taxonomy Group`` columns such as
  ``193400000X SINGLE SPECIALTY  GROUP``), pharmacies, hospitals, labs, home health, DME, nursing
  facilities, ambulance services, ... EIN is ``<UNAVAIL>``; ~45% have ``<UNAVAIL>``/``6`` as other
  name (as CMS's files do), ~15% a real DBA (type 3); ~12% are subparts naming their parent.
- ~3% deactivated stubs: only NPI and NPI Deactivation Date filled.
- ~0.5% reactivated: full rows (counted as individuals or organizations) with both dates.

Realistic detail: NPIs are Luhn-valid, start with 1 and are unique (an affine permutation of the
9-digit body, in a scattered order like CMS's); ZIP/city/state triples are real USPS STANDARD ZIPs
(``normalize.geo.zip_table``) picked by state population; phones use an area code of that ZIP and an
exchange that ``phonenumbers`` accepts; taxonomy codes come from the shipped NUCC set (plus a long
tail of random NUCC codes); ~12% of enumeration dates are 05/23/2005. Some mess is kept on purpose:
suites in address line 1, lower or mixed case, doubled spaces, odd credentials, missing phones.

Child files: ~8% of providers have 1-5 secondary practice locations (``pl``); every organization
with a real other name (types 3/4/5; ``<UNAVAIL>`` is not copied, as in CMS's files) has ``othername``
rows; ~5% have ``endpoint`` rows (DIRECT addresses, FHIR and REST URLs on example domains). Child rows
only name active NPIs present in ``npidata``. ``broken_rows`` injects bad rows (wrong column count,
failed check digit, 02/30/2019 enumeration date, Entity Type "3") spread evenly through the file.

``variant`` picks the npidata layout: "current" (330 columns, "Provider Sex Code"), "pre2025"
("Provider Gender Code") or "329" (Gender and no trailing "Certification Date"); the child files keep
their single layout (``othername`` has 3 columns).
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zipfile
from bisect import bisect_right
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import IO, Protocol, TypeVar

from npistack.nppes.layout import CERTIFICATION_DATE, FILE_KINDS, GENDER, SEX, FileKind, canonical_columns
from npistack.nppes.npi import make_npi

VARIANTS = ("current", "pre2025", "329")
CHILD_KINDS: tuple[FileKind, ...] = ("pl", "othername", "endpoint")
START = date(2005, 5, 23)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
ZIP_LEVEL = 1
_CHUNK = 2000  # rows buffered before a write
_PROGRESS_EVERY = 10_000

# Column indexes of the canonical npidata layout.
_W = 330
_ENUM, _UPDATE, _DEACT, _REACT, _SEX = 36, 37, 39, 40, 41
_TAX, _IDS, _SOLE, _GROUP, _CERT = 47, 107, 307, 314, 329


@dataclass
class SynthStats:
    """What ``write_bundle`` wrote. ``providers`` = individuals + organizations + deactivated + broken;
    reactivated rows are also counted as individuals or organizations."""

    path: Path
    providers: int = 0
    individuals: int = 0
    organizations: int = 0
    deactivated: int = 0
    reactivated: int = 0
    pl_rows: int = 0
    othername_rows: int = 0
    endpoint_rows: int = 0
    broken_rows: int = 0


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


_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_Zip = tuple[str, str, str, str, tuple[str, ...]]  # zip5, city, state, county, valid NPA-NXX prefixes


class _Pickable(Protocol[_T_co]):
    """What ``_Gen.pick`` draws from: a sequence, or a ``_Weighted`` table."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> _T_co: ...


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


# ---- the generator -----------------------------------------------------------------------------------


class _Gen:
    """Draws everything from one seeded ``Random``: row methods fill a canonical 330-slot list, child
    methods append finished CSV lines to a buffer. Reference tables are shared and seed independent."""

    def __init__(self, seed: int, release: date, width: int) -> None:
        self.t = _tables()
        self.rng = Random(seed)
        self.rnd = self.rng.random
        self.width = width
        end = release - timedelta(days=1)
        self.span = (end - START).days
        if self.span < 1200:
            raise ValueError(f"release {release} is too early: synthetic bundles need a release after 2008")
        self.days = tuple((START + timedelta(days=d)).strftime("%m/%d/%Y") for d in range(self.span + 1))
        self.day_index = {d: i for i, d in enumerate(self.days)}
        self.off2018 = (date(2018, 1, 1) - START).days
        self.blank = [""] * _W
        self.street_types, self.dirs = _weighted(_STREET_TYPES), _weighted(_DIRS)
        self.units, self.streets = _weighted(_UNITS, "|"), _words(_STREETS)
        self.words, self.sfx = _words(_WORDS), _weighted(_SUFFIXES, "|")
        self.saints, self.titles = tuple(_SAINTS.split("|")), _weighted(_AO_TITLES, "|")
        self.issuers, self.groups = _weighted(_ISSUERS, "|"), _weighted(_GROUPS, "|")
        # NPIs: an affine permutation of the 9-digit bodies 100000000..199999999 (unique, scattered).
        self.mult = self.rng.randrange(10**7, 9 * 10**7) | 1
        while self.mult % 5 == 0:
            self.mult += 2
        self.offset = self.rng.randrange(10**8)

    def pick(self, seq: _Pickable[_T]) -> _T:
        return seq[int(self.rnd() * len(seq))]

    def npi(self, i: int) -> str:
        return make_npi(str(100_000_000 + (self.mult * i + self.offset) % 100_000_000))

    def place(self, state: str | None = None) -> _Zip:
        zips = self.t.zips[state or self.pick(self.t.states)]
        return zips[int(self.rnd() * len(zips))]

    def phone(self, prefixes: Sequence[str]) -> str:
        return f"{prefixes[int(self.rnd() * len(prefixes))]}{int(self.rnd() * 10000):04d}"

    def address(self, zp: _Zip) -> list[str]:
        """[line1, line2, city, state, postal, country, phone, fax] for a real ZIP."""
        rnd, pick = self.rnd, self.pick
        street = pick(self.streets)
        if rnd() < 0.25:
            street = f"{pick(self.dirs)} {street}"
        line1 = f"{int(10 ** (1 + rnd() * 3.7))} {street} {pick(self.street_types)}"
        if rnd() < 0.05:
            line1 += " " + pick(("NW", "NE", "SW", "SE", "NORTH", "SOUTH"))
        line2 = ""
        if rnd() < 0.4:
            unit = (
                str(100 * int(1 + rnd() * 9) + int(rnd() * 30))
                if rnd() < 0.8
                else pick(("A", "B", "1F", "2C"))
            )
            line2 = pick(self.units) + unit
        u = rnd()
        if u < 0.06 and line2:  # real-world mess
            line1, line2 = f"{line1} {line2}", ""
        elif u < 0.07:
            line1 = line1.lower()
        elif u < 0.08:
            line1 = line1.title()
        elif u < 0.09:
            line1 = line1.replace(" ", "  ", 1)
        postal = zp[0] if rnd() < 0.08 else f"{zp[0]}{int(rnd() * 10000):04d}"
        phone = self.phone(zp[4]) if rnd() < 0.96 else ""
        fax = self.phone(zp[4]) if phone and rnd() < 0.65 else ""
        return [line1, line2, zp[1], zp[2], postal, "US", phone, fax]

    def mailing(self, loc: list[str], zp: _Zip) -> list[str]:
        u = self.rnd()
        if u < 0.65:  # same as the practice location; the mailing phone often blank
            return loc[:6] + ([loc[6], loc[7]] if self.rnd() < 0.55 else ["", ""])
        if u < 0.8:
            box = str(int(10 ** (1 + self.rnd() * 4.5)))
            return [f"PO BOX {box}", "", zp[1], zp[2], f"{zp[0]}{int(box[-4:]):04d}", "US", loc[6], ""]
        return self.address(self.place(zp[2] if self.rnd() < 0.7 else None))

    def dates(self, r: list[str]) -> None:
        rnd, span = self.rnd, self.span
        u = rnd()
        enum = 0 if u < 0.12 else int(rnd() * 950) if u < 0.3 else 950 + int(rnd() * (span - 951))
        upd = enum if rnd() < 0.15 else enum + int(rnd() * (span - enum))
        r[_ENUM], r[_UPDATE] = self.days[enum], self.days[upd]
        if upd >= self.off2018 and rnd() < 0.75:
            r[_CERT] = r[_UPDATE]

    def reactivate(self, r: list[str]) -> None:
        """Deactivation, reactivation up to 30 days later, and a last update on or after that."""
        rnd, span = self.rnd, self.span
        enum = self.day_index[r[_ENUM]]  # <= span - 2
        deact = enum + int(rnd() * (span - 1 - enum))
        react = deact + 1 + int(rnd() * min(30, span - 1 - deact))
        r[_DEACT], r[_REACT] = self.days[deact], self.days[react]
        r[_UPDATE] = self.days[react + int(rnd() * (span - react))]
        if r[_CERT]:
            r[_CERT] = r[_UPDATE]

    def licence(self, kind: _Kind) -> str:
        num = str(int(self.rnd() * 10 ** (4 + int(self.rnd() * 4))))
        u = self.rnd()
        suffix = "-1" if u < 0.05 else ""
        return f"{self.pick(kind.licence)}{num.zfill(5)}{suffix}" if u > 0.02 else f"{num[:2]}-{num.zfill(6)}"

    def taxonomies(self, r: list[str], kind: _Kind, state: str, slots: int) -> list[str]:
        rnd, pick = self.rnd, self.pick
        codes = [pick(kind.codes)]
        for _ in range(slots - 1):
            codes.append(codes[0] if rnd() < 0.4 else pick(kind.codes))
        u = rnd()
        primary = int(rnd() * slots) if u < 0.97 else -1
        flag = "N" if u < 0.985 else "X"
        for n, code in enumerate(codes):
            c = _TAX + 4 * n
            r[c] = code
            if kind.licence and rnd() < 0.97:
                r[c + 1] = self.licence(kind)
                r[c + 2] = state if n == 0 or rnd() < 0.5 else self.pick(self.t.states)
            r[c + 3] = "Y" if n == primary else flag
        return codes

    def identifiers(self, r: list[str], state: str, count: int) -> None:
        for n in range(count):
            c = _IDS + 4 * n
            if self.rnd() < 0.5:
                r[c], r[c + 1], r[c + 2] = (
                    f"{int(self.rnd() * 10**9):07d}{self.pick(('', '', 'A', 'C'))}",
                    "05",
                    state,
                )
            else:
                r[c], r[c + 1] = str(int(self.rnd() * 10**6) + 1000), "01"
                r[c + 2], r[c + 3] = (state if self.rnd() < 0.7 else ""), self.pick(self.issuers)

    def person(self, female: bool) -> tuple[str, str, str]:
        rnd, t = self.rnd, self.t
        names = t.female if female else t.male
        first = names.draw(rnd())
        u = rnd()
        middle = names.draw(rnd()) if u < 0.35 else ""
        if middle == first:
            middle = ""
        if 0.35 <= u < 0.65:
            middle = chr(65 + int(rnd() * 26)) + ("." if rnd() < 0.1 else "")
        last = t.last.draw(rnd())
        if rnd() < 0.02:
            last = f"{last}-{t.last.draw(rnd())}"
        return last, first, middle

    def individual(self, r: list[str]) -> tuple[list[str], str, str]:
        rnd, pick, t = self.rnd, self.pick, self.t
        kind = pick(t.ind_kinds)
        female = rnd() < kind.female
        last, first, middle = self.person(female)
        r[1], r[5], r[6], r[7] = "1", last, first, middle
        u = rnd()
        if kind.doctor and u < 0.55:
            r[8] = "DR."
        elif u < 0.2:
            r[8] = pick(("MS.", "MS.", "MRS.")) if female else "MR."
        if rnd() < 0.03:
            r[9] = pick(("JR.", "JR.", "SR.", "II", "III", "IV"))
        r[10] = pick(kind.creds)
        u = rnd()
        if u < 0.045 and female:  # maiden name
            r[13:20] = [pick(t.last), first, middle, r[8], "", r[10], "1"]
        elif u < 0.07 and t.nicknames[first]:  # nickname as professional name
            r[13:20] = [last, pick(t.nicknames[first]), "", "", r[9], r[10], "2"]
        zp = self.place()
        loc = self.address(zp)
        r[20:28], r[28:36] = self.mailing(loc, zp), loc
        self.dates(r)
        r[_SEX] = ("F" if female else "M") if rnd() < 0.998 else ""
        self.taxonomies(r, kind, zp[2], pick(_SLOTS_IND))
        if rnd() < 0.25:
            self.identifiers(r, zp[2], 1 + int(rnd() ** 2 * 8))
        r[_SOLE] = pick(("Y", "Y", "N", "N", "N", "N", "N", "N", "N", "X", "X"))
        return loc, first, last

    def org_name(self, kind: _Kind, zp: _Zip, sfx: bool = True) -> str:
        pick = self.pick
        return pick(kind.names).format(
            city=zp[1], county=zp[3], last=pick(self.t.last), last2=pick(self.t.last), word=pick(self.words),
            saint=pick(self.saints), sfx=pick(self.sfx) if sfx else "",
        )  # fmt: skip

    def organization(self, r: list[str]) -> tuple[list[str], str, list[tuple[str, str]]]:
        rnd, pick, t = self.rnd, self.pick, self.t
        kind = pick(t.org_kinds)
        zp = self.place()
        name = self.org_name(kind, zp)
        r[1], r[3], r[4] = "2", "<UNAVAIL>", name
        others: list[tuple[str, str]] = []
        u = rnd()
        if u < 0.45:
            r[11], r[12] = "<UNAVAIL>", "6"
        elif u < 0.6:
            r[11], r[12] = self.org_name(kind, zp, sfx=False), "3"
            others.append((r[11], "3"))
        for code, share in (("3", 0.05), ("4", 0.04), ("5", 0.08)):
            if rnd() < share:
                others.append((self.org_name(kind, zp), code))
        loc = self.address(zp)
        r[20:28], r[28:36] = self.mailing(loc, zp), loc
        self.dates(r)
        female = rnd() < 0.55
        r[42], r[43], r[44] = self.person(female)
        r[45] = pick(self.titles)
        r[46] = loc[6] if loc[6] and rnd() < 0.6 else self.phone(zp[4])
        codes = self.taxonomies(r, kind, zp[2], pick(_SLOTS_ORG))
        if kind.group:
            if rnd() < 0.3:
                r[_TAX] = "193200000X" if len(set(codes)) > 1 else "193400000X"
            else:
                group = pick(self.groups)
                for n in range(len(codes)):
                    r[_GROUP + n] = group
        if rnd() < 0.35:
            self.identifiers(r, zp[2], 1 + int(rnd() * 3))
        u = rnd()
        r[308] = "Y" if u < 0.12 else "N" if u < 0.98 else "X"
        if u < 0.12:
            r[309], r[310] = self.org_name(pick(t.org_kinds), zp), f"{int(rnd() * 9e8) + 10**8}"
        if rnd() < 0.35:
            r[311] = pick(("MS.", "MRS.")) if female else pick(("MR.", "DR."))
        if rnd() < 0.03:
            r[312] = pick(("JR.", "SR.", "III"))
        if rnd() < 0.25:
            r[313] = pick(("MD", "M.D.", "DDS", "RN", "MBA", "PHARMD", "CPA", "DO"))
        return loc, name, others

    # -- child files

    def locations(self, npi: str, state: str, out: list[str]) -> int:
        count = 1 + int(self.rnd() ** 4 * 5)
        for _ in range(count):
            a = self.address(self.place(state if self.rnd() < 0.7 else None))
            ext = str(int(self.rnd() * 900) + 100) if self.rnd() < 0.1 else ""
            out.append(
                f'"{npi}","{a[0]}","{a[1]}","{a[2]}","{a[3]}","{a[4]}","US","{a[6]}","{ext}","{a[7]}"\n'
            )
        return count

    def endpoints(self, npi: str, local: str, loc: list[str], out: list[str]) -> int:
        rnd, pick = self.rnd, self.pick
        slug = "".join(ch for ch in local.lower() if ch.isalnum())[:24] or "provider"
        count = 1 if rnd() < 0.8 else 2
        for _ in range(count):
            u = rnd()
            if u < 0.7:
                host = pick(("example-hie.org", "example-health.net", "example-ehr.com"))
                kind, desc, url = "DIRECT", "Direct Messaging Address", f"{slug}@direct.{host}"
            elif u < 0.92:
                kind, desc, url = "FHIR", "FHIR URL", f"https://fhir.example.org/{slug}/r4"
            else:
                kind, desc, url = "REST", "REST API", f"https://api.example.org/{slug}/v1"
            aff = "Y" if rnd() < 0.45 else "N"
            lbn = self.org_name(pick(self.t.org_kinds), self.place(loc[3])) if aff == "Y" else ""
            use = pick((("DIRECT", "Direct", ""), ("HIE", "Health Information Exchange (HIE)", ""),
                        ("OTHER", "Other", "REFERRALS"), ("", "", "")))  # fmt: skip
            content = pick((("CSV", "CSV", ""), ("OTHER", "Other", "C-CDA"), ("", "", "")))
            note = pick(("", "", "", "SECURE MESSAGING", "PATIENT ACCESS API"))
            address = [loc[0], loc[1], loc[2], loc[3], "US", loc[4]]
            fields = [npi, kind, desc, url, aff, note, lbn, *use, *content, *address]
            out.append('"' + '","'.join(fields) + '"\n')
        return count


# ---- writing -----------------------------------------------------------------------------------------


def bundle_name(release: date) -> str:
    """``NPPES_Data_Dissemination_<Month>_<YYYY>_V2`` for a release date."""
    return f"NPPES_Data_Dissemination_{MONTHS[release.month - 1]}_{release.year}_V2"


def data_file_name(kind: FileKind, release: date) -> str:
    """``<kind>_pfile_20050523-YYYYMMDD.csv``, ending the Sunday (day) before the release."""
    return f"{kind}_pfile_20050523-{release - timedelta(days=1):%Y%m%d}.csv"


def variant_columns(kind: FileKind, variant: str) -> tuple[str, ...]:
    """The column names written for one file kind and npidata variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    cols = canonical_columns(kind)
    if kind != "npidata" or variant == "current":
        return cols
    cols = tuple(GENDER if c == SEX else c for c in cols)
    return cols[:-1] if variant == "329" and cols[-1] == CERTIFICATION_DATE else cols


def _header_line(cols: Sequence[str]) -> bytes:
    return ('"' + '","'.join(cols) + '"\n').encode()


def _zip_info(name: str, when: date) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(when.year, when.month, when.day, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = ZIP_LEVEL  # type: ignore[attr-defined]  # the only knob before Python 3.13
    info.external_attr = 0o644 << 16
    return info


def _flush(buf: list[str], raw: IO[bytes]) -> None:
    raw.write("".join(buf).encode())
    buf.clear()


def write_bundle(
    out_dir: Path,
    n: int,
    seed: int = 0,
    *,
    release: date = date(2026, 11, 9),
    as_folder: bool = False,
    variant: str = "current",
    broken_rows: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SynthStats:
    """Write a synthetic monthly bundle of ``n`` npidata rows into ``out_dir``; see the module docstring."""
    if n < 0 or not 0 <= broken_rows <= n:
        raise ValueError(f"need 0 <= broken_rows <= n, got n={n}, broken_rows={broken_rows}")
    headers = {k: _header_line(variant_columns(k, variant)) for k in FILE_KINDS}
    gen = _Gen(seed, release, len(variant_columns("npidata", variant)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {k: data_file_name(k, release) for k in FILE_KINDS}
    header_names = {k: names[k].removesuffix(".csv") + "_fileheader.csv" for k in FILE_KINDS}
    base = bundle_name(release)
    stats = SynthStats(path=out_dir / (base if as_folder else base + ".zip"), providers=n)

    if as_folder:
        stats.path.mkdir(exist_ok=True)
        with ExitStack() as stack:
            files: dict[FileKind, IO[bytes]] = {}
            for k in FILE_KINDS:
                files[k] = stack.enter_context(open(stats.path / names[k], "wb"))
            _generate(gen, n, broken_rows, stats, files, headers, progress)
        for k in FILE_KINDS:
            (stats.path / header_names[k]).write_bytes(headers[k])
        return stats

    # npidata streams straight into the zip; the child files are spooled beside it and copied in after.
    try:
        with (
            tempfile.TemporaryDirectory(dir=out_dir, prefix=".synth-") as tmp,
            zipfile.ZipFile(stats.path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf,
        ):
            spool = Path(tmp)
            with ExitStack() as stack:
                info = _zip_info(names["npidata"], release)
                files = {"npidata": stack.enter_context(zf.open(info, "w", force_zip64=True))}
                for k in CHILD_KINDS:
                    files[k] = stack.enter_context(open(spool / names[k], "wb"))
                _generate(gen, n, broken_rows, stats, files, headers, progress)
            for k in FILE_KINDS:
                if k in CHILD_KINDS:
                    info = _zip_info(names[k], release)
                    info.file_size = (spool / names[k]).stat().st_size  # lets zipfile pick zip64 itself
                    with open(spool / names[k], "rb") as src, zf.open(info, "w") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                zf.writestr(_zip_info(header_names[k], release), headers[k])
    except BaseException:
        stats.path.unlink(missing_ok=True)  # never leave a truncated zip behind
        raise
    return stats


def _generate(
    gen: _Gen,
    n: int,
    broken: int,
    stats: SynthStats,
    files: dict[FileKind, IO[bytes]],
    headers: dict[FileKind, bytes],
    progress: Callable[[int], None] | None,
) -> None:
    """The hot loop: one npidata line per row, child lines as they come, written in chunks."""
    rnd, days, width, blank = gen.rnd, gen.days, gen.width, gen.blank
    for k, raw in files.items():
        raw.write(headers[k])
    main: list[str] = []
    pl: list[str] = []
    other: list[str] = []
    endp: list[str] = []
    bufs = (
        (main, files["npidata"]),
        (pl, files["pl"]),
        (other, files["othername"]),
        (endp, files["endpoint"]),
    )
    next_broken = n // (2 * broken) if broken else n
    k_broken = 0
    reported = 0
    for i in range(n):
        npi = gen.npi(i)
        r = blank.copy()
        r[0] = npi
        u = rnd()
        if i == next_broken:  # the k-th broken row sits at (k + 1/2) * n / broken
            gen.individual(r)
            r = r[:width]
            kind = k_broken % 4
            if kind == 0:  # wrong column count: 3 short, or 1 extra
                r = r[: width - 3] if k_broken // 4 % 2 == 0 else [*r, ""]
            elif kind == 1:
                r[0] = npi[:9] + str((int(npi[9]) + 1 + int(rnd() * 9)) % 10)
            elif kind == 2:
                r[_ENUM] = "02/30/2019"
            else:
                r[1] = "3"
            stats.broken_rows += 1
            k_broken += 1
            next_broken = (2 * k_broken + 1) * n // (2 * broken) if k_broken < broken else n
            main.append('"' + '","'.join(r) + '"\n')
        elif u < 0.03:
            stats.deactivated += 1
            r[_DEACT] = days[400 + int(rnd() * (gen.span - 400))]
            main.append('"' + '","'.join(r[:width]) + '"\n')
        else:
            if u < 0.03 + 0.76:
                loc, first, last = gen.individual(r)
                local = first[0] + last
                stats.individuals += 1
            else:
                loc, local, names = gen.organization(r)
                stats.organizations += 1
                for name, code in names:
                    other.append(f'"{npi}","{name}","{code}"\n')
                stats.othername_rows += len(names)
            if rnd() < 0.005 / 0.97:
                gen.reactivate(r)
                stats.reactivated += 1
            main.append('"' + '","'.join(r[:width]) + '"\n')
            if rnd() < 0.08:
                stats.pl_rows += gen.locations(npi, loc[3], pl)
            if rnd() < 0.05:
                stats.endpoint_rows += gen.endpoints(npi, local, loc, endp)
        if len(main) >= _CHUNK:
            for buf, raw in bufs:
                _flush(buf, raw)
        if progress is not None and i + 1 - reported >= _PROGRESS_EVERY:
            progress(i + 1 - reported)
            reported = i + 1
    for buf, raw in bufs:
        _flush(buf, raw)
    if progress is not None and n > reported:
        progress(n - reported)
