"""The synthetic row generator (``_Gen``): one seeded ``Random`` draws every npidata row (a canonical
330-slot list) and every child line (``pl``, ``othername``, ``endpoint``) of the bundles and of the
weekly updates, from the reference tables (``npistack.nppes.synth.reference``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from random import Random
from typing import Protocol, TypeVar

from npistack.nppes.npi import make_npi
from npistack.nppes.synth.reference import (
    _AO_TITLES,
    _DIRS,
    _GROUPS,
    _ISSUERS,
    _SAINTS,
    _SLOTS_IND,
    _SLOTS_ORG,
    _STREET_TYPES,
    _STREETS,
    _SUFFIXES,
    _UNITS,
    _WORDS,
    _Kind,
    _tables,
    _weighted,
    _words,
    _Zip,
)

START = date(2005, 5, 23)

# Column indexes of the canonical npidata layout.
_W = 330
_ENUM, _UPDATE, _DEACT, _REACT, _SEX = 36, 37, 39, 40, 41
_TAX, _IDS, _SOLE, _GROUP, _CERT = 47, 107, 307, 314, 329

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class _Pickable(Protocol[_T_co]):
    """What ``_Gen.pick`` draws from: a sequence, or a ``_Weighted`` table."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> _T_co: ...


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
