"""Row-level changes for the synthetic weekly updates (``synth.updates``): what one provider's row and
child rows look like after it is created, updated, deactivated or reactivated in a given week.

Every method works on one npidata row as a list of fields in the base bundle's layout (329 or 330
columns, canonical order) and on the provider's complete child sets (``pl``, ``othername``,
``endpoint``: CSV lines without their newline, in the base's child layouts). Randomness comes from the
shared ``synth.rows._Gen`` so that one seed gives one month.

- ``created``: a new individual (~80%, as in CMS's weeklies) or organization drawn by ``_Gen`` like the
  monthly synth, with enumeration and last update dates within the week and child rows as synth makes.
- ``updated``: one kind of change (``UPDATE_KINDS``): a practice and/or mailing address (sometimes
  adding or dropping a secondary practice location), a phone/fax, a taxonomy (add a slot, replace a
  code, or move the primary switch), a licence (new number, sometimes a new state), or a name (an
  individual's last name, the old one kept as other name type 1 about half the time; an
  organization's legal business name, the old one kept as an ``othername`` row of type 4 about half
  the time). The Last Update Date (and usually the Certification Date) moves into the week.
- ``stub``: CMS's deactivated row: only NPI and NPI Deactivation Date, every other field blank, and no
  child rows.
- ``reactivated``: a full new record for a stub's NPI, keeping its deactivation date, with a
  reactivation date and last update within the week and an enumeration date before the deactivation.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

from npistack.nppes.synth.reference import _Kind, _Zip
from npistack.nppes.synth.rows import _CERT, _DEACT, _ENUM, _REACT, _TAX, _UPDATE, _Gen

UPDATE_KINDS: Final = ("address", "phone", "taxonomy", "license", "name")
_UPDATE_WEIGHTS: Final = (35, 15, 20, 15, 15)  # percent of updates
_TAX_SLOTS = 15
_MAIL, _PRACTICE = 20, 28
_SHARE_INDIVIDUAL = 0.8  # CMS weekly Sep 21-27 2026: 11,038 of 13,537 new NPIs were Type 1

Children = dict[str, list[str]]  # file kind -> CSV lines (no newline)


def row_line(fields: list[str]) -> str:
    """One CMS CSV line (no newline): every field quoted; embedded quotes become single quotes."""
    line = '","'.join(fields)
    if '"' in line.replace('","', ""):
        line = '","'.join(f.replace('"', "'") for f in fields)
    return f'"{line}"'


class Changer:
    """Makes the rows of one week; call ``set_week`` before each week."""

    def __init__(self, gen: _Gen, width: int, othername_width: int = 3) -> None:
        self.gen = gen
        self.rnd = gen.rnd
        self.width = width
        self.othername_width = othername_width
        self.week: list[str] = []
        self.by_zip: dict[str, _Zip] = {z[0]: z for zips in gen.t.zips.values() for z in zips}
        self.licensed: tuple[_Kind, ...] = tuple(k for k in gen.t.ind_kinds if k.licence)

    def set_week(self, start: date) -> None:
        self.week = [(start + timedelta(days=d)).strftime("%m/%d/%Y") for d in range(7)]

    def _day(self, at_least: int = 0) -> int:
        return at_least + int(self.rnd() * (7 - at_least))

    def pick_kind(self) -> str:
        u = self.rnd() * 100
        for kind, weight in zip(UPDATE_KINDS, _UPDATE_WEIGHTS, strict=True):
            if u < weight:
                return kind
            u -= weight
        return UPDATE_KINDS[-1]

    # -- child lines

    def _othername(self, npi: str, name: str, code: str, created: str) -> str:
        extra = ',"' + created + '"' if self.othername_width > 3 else ""
        return f'"{npi}","{name}","{code}"{extra}'

    def _zip_of(self, r: list[str], at: int) -> _Zip:
        zp = self.by_zip.get(r[at + 4][:5])
        if zp is not None:
            return zp
        state = r[at + 3]
        return self.gen.place(state if state in self.gen.t.zips else None)

    def _record(self, npi: str) -> tuple[list[str], list[tuple[str, str]], str, list[str]]:
        """A full new record (dates still to be set): the row, its other names, an e-mail local part
        and its practice location (for the child rows, made by ``_finish`` once the dates are known)."""
        r = self.gen.blank.copy()
        r[0] = npi
        names: list[tuple[str, str]] = []
        if self.rnd() < _SHARE_INDIVIDUAL:
            loc, first, last = self.gen.individual(r)
            local = first[0] + last
        else:
            loc, local, names = self.gen.organization(r)
        r[_DEACT] = r[_REACT] = ""
        return r, names, local, loc

    def _finish(
        self, r: list[str], names: list[tuple[str, str]], local: str, loc: list[str]
    ) -> tuple[list[str], Children]:
        gen, npi = self.gen, r[0]
        out: Children = {"pl": [], "othername": [], "endpoint": []}
        out["othername"] = [self._othername(npi, name, code, r[_UPDATE]) for name, code in names]
        lines: list[str] = []
        if self.rnd() < 0.08:
            gen.locations(npi, loc[3], lines)
            out["pl"] = [ln.rstrip("\n") for ln in lines]
        lines = []
        if self.rnd() < 0.05:
            gen.endpoints(npi, local, loc, lines)
            out["endpoint"] = [ln.rstrip("\n") for ln in lines]
        return r[: self.width], out

    # -- the four kinds of weekly row

    def created(self, npi: str) -> tuple[list[str], Children]:
        """A newly enumerated provider: enumerated and last updated within the week."""
        r, names, local, loc = self._record(npi)
        enum = self._day()
        r[_ENUM], r[_UPDATE] = self.week[enum], self.week[self._day(enum)]
        r[_CERT] = r[_UPDATE] if self.rnd() < 0.9 else ""
        return self._finish(r, names, local, loc)

    def reactivated(self, npi: str, deactivated: str) -> tuple[list[str], Children]:
        """A stub's NPI back as a full record: its deactivation date kept, reactivated this week."""
        gen = self.gen
        r, names, local, loc = self._record(npi)
        at = gen.day_index.get(deactivated)
        r[_ENUM] = gen.days[int(self.rnd() * (at + 1))] if at is not None else deactivated
        react = self._day()
        r[_DEACT], r[_REACT], r[_UPDATE] = deactivated, self.week[react], self.week[self._day(react)]
        r[_CERT] = r[_UPDATE] if self.rnd() < 0.9 else ""
        return self._finish(r, names, local, loc)

    def stub(self, npi: str, day: int | None = None) -> list[str]:
        """CMS's deactivated row: NPI and NPI Deactivation Date only."""
        r = [""] * self.width
        r[0], r[_DEACT] = npi, self.week[self._day() if day is None else day]
        return r

    def updated(self, row: list[str], children: Children, kind: str) -> tuple[list[str], Children]:
        """``row`` (an active provider) after one change of ``kind``; ``children`` is not modified."""
        r = row.copy()
        ch: Children = {k: list(v) for k, v in children.items()}
        r[_UPDATE] = self.week[self._day()]
        getattr(self, f"_{kind}")(r, ch)
        if len(r) > _CERT and (r[_CERT] or self.rnd() < 0.5):
            r[_CERT] = r[_UPDATE]
        return r, ch

    # -- updates (each changes ``r`` and ``ch`` in place)

    def _address(self, r: list[str], ch: Children) -> None:
        gen, rnd = self.gen, self.rnd
        old = self._zip_of(r, _PRACTICE)
        zp = gen.place(old[2]) if rnd() < 0.7 else gen.place()
        u = rnd()
        if u < 0.8:  # the practice moves (and the mailing address with it, if it was the same)
            same = r[_MAIL : _MAIL + 6] == r[_PRACTICE : _PRACTICE + 6]
            r[_PRACTICE : _PRACTICE + 8] = gen.address(zp)
            if same or u < 0.35:
                r[_MAIL : _MAIL + 8] = gen.mailing(r[_PRACTICE : _PRACTICE + 8], zp)
        else:  # only the mailing address
            before = r[_MAIL : _MAIL + 8]
            for _ in range(3):
                r[_MAIL : _MAIL + 8] = gen.mailing(gen.address(zp), zp)
                if r[_MAIL : _MAIL + 8] != before:
                    break
        pl = ch.setdefault("pl", [])
        if pl and rnd() < 0.25:
            del pl[int(rnd() * len(pl))]
        elif rnd() < 0.15:
            lines: list[str] = []
            gen.locations(r[0], zp[2], lines)
            pl.extend(ln.rstrip("\n") for ln in lines[:1])

    def _phone(self, r: list[str], ch: Children) -> None:
        gen, rnd = self.gen, self.rnd
        zp = self._zip_of(r, _PRACTICE)
        old = r[_PRACTICE + 6]
        new = old
        while new == old:
            new = gen.phone(zp[4])
        r[_PRACTICE + 6] = new
        if rnd() < 0.5:
            r[_PRACTICE + 7] = gen.phone(zp[4]) if rnd() < 0.7 else ""
        if old and r[_MAIL + 6] == old:
            r[_MAIL + 6] = new
        if r[1] == "2" and r[46] == old:
            r[46] = new

    def _codes(self, r: list[str]) -> tuple[str, ...]:
        kinds = self.gen.t.ind_kinds if r[1] == "1" else self.gen.t.org_kinds
        return self.gen.pick(kinds).codes

    def _taxonomy(self, r: list[str], ch: Children) -> None:
        rnd, pick = self.rnd, self.gen.pick
        used = [n for n in range(_TAX_SLOTS) if r[_TAX + 4 * n]]
        u = rnd()
        if not used or (len(used) < _TAX_SLOTS and u < 0.45):  # add a slot
            n = next(n for n in range(_TAX_SLOTS) if not r[_TAX + 4 * n])
            c = _TAX + 4 * n
            taken = {r[_TAX + 4 * m] for m in used}
            codes = [x for x in self._codes(r) if x not in taken] or list(self._codes(r))
            r[c] = pick(codes)
            if r[1] == "1" and rnd() < 0.8:
                r[c + 1] = self.gen.licence(pick(self.licensed))
                r[c + 2] = r[_PRACTICE + 3]
            has_primary = any(r[_TAX + 4 * m + 3] == "Y" for m in used)
            r[c + 3] = "N" if has_primary else "Y"
        elif len(used) >= 2 and u < 0.65:  # the primary moves to another slot
            primary = next((m for m in used if r[_TAX + 4 * m + 3] == "Y"), None)
            new = pick([m for m in used if m != primary])
            for m in used:
                r[_TAX + 4 * m + 3] = "Y" if m == new else "N"
        else:  # one code is replaced
            c = _TAX + 4 * pick(used)
            old = r[c]
            for _ in range(5):
                r[c] = pick(self._codes(r))
                if r[c] != old:
                    break

    def _license(self, r: list[str], ch: Children) -> None:
        rnd, gen = self.rnd, self.gen
        slots = [n for n in range(_TAX_SLOTS) if r[_TAX + 4 * n]]
        if not slots:
            self._taxonomy(r, ch)
            return
        held = [n for n in slots if r[_TAX + 4 * n + 1]]
        c = _TAX + 4 * gen.pick(held or slots)
        old = r[c + 1]
        while r[c + 1] == old:
            r[c + 1] = gen.licence(gen.pick(self.licensed))
        if not r[c + 2] or rnd() < 0.2:
            r[c + 2] = r[_PRACTICE + 3] if not r[c + 2] else gen.pick(gen.t.states)

    def _name(self, r: list[str], ch: Children) -> None:
        rnd, gen = self.rnd, self.gen
        if r[1] == "1":
            old = r[5]
            new = old
            while new == old:
                new = gen.pick(gen.t.last)
            if rnd() < 0.15:
                new = f"{old}-{new}"
            r[5] = new
            if rnd() < 0.5 and not (r[13] or r[14]):
                r[13:20] = [old, r[6], r[7], r[8], r[9], r[10], "1"]
            return
        old = r[4]
        zp = self._zip_of(r, _PRACTICE)
        for _ in range(5):
            r[4] = gen.org_name(gen.pick(gen.t.org_kinds), zp)
            if r[4] != old:
                break
        if rnd() < 0.5:
            ch.setdefault("othername", []).append(self._othername(r[0], old, "4", r[_UPDATE]))
