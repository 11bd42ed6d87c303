"""Provider verification (``services.verify``): the address, phone and email checks. Addresses are
compared USPS-standardized against the primary, secondary and mailing addresses; phones and faxes
against every number on record (a fax given as the phone is a ``warning``); email by syntax and a
plausible domain (DNS deliverability when asked).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from email_validator import EmailNotValidError, EmailUndeliverableError, validate_email
from rapidfuzz import fuzz

from npistack.normalize.address import StdAddress, standardize_address
from npistack.normalize.names import name_key
from npistack.normalize.phone import normalize_phone, phone_digits
from npistack.services.verify.model import CLOSE, FAIL, NOT_CHECKED, PASS, WARNING, Check, Claim
from npistack.services.verify.names import squash, typo

# --- addresses ----------------------------------------------------------------------------------

_UNIT_WORDS = frozenset(
    {"#", "APT", "BLDG", "BSMT", "DEPT", "FL", "FRNT", "HNGR", "KEY", "LBBY", "LOT", "LOWR", "OFC", "PH"}
    | {"PIER", "REAR", "RM", "SIDE", "SLIP", "SPC", "STE", "STOP", "TRLR", "UNIT", "UPPR", "UPPER"}
)
_CITY_WORDS = {"ST": "SAINT", "STE": "SAINTE", "FT": "FORT", "MT": "MOUNT", "PT": "POINT"}
_GRADES = {"match": 4, "other_unit": 3, "other_zip": 3, "close_street": 3, "same_zip": 1, "none": 0}
_PLACES = {"primary": "the primary practice location", "mailing": "the mailing address"}


def _unit_ids(line2: str) -> tuple[str, ...]:
    """The identifiers of the secondary units on a standardized line 2: "STE 200" -> ("200",)."""
    words = line2.split()
    ids = []
    for i, w in enumerate(words):
        if w in _UNIT_WORDS:
            continue
        if any(ch.isdigit() for ch in w) or (len(w) <= 2 and i and words[i - 1] in _UNIT_WORDS):
            ids.append(w)
    return tuple(ids)


def _city(value: str) -> str:
    return "".join(_CITY_WORDS.get(w, w) for w in name_key(value).split())


def _locality(c: StdAddress, r: dict[str, Any]) -> str:
    """'same' (ZIP5, or city and state, agree), 'other_zip' (city and state agree, ZIP5 not), 'none'."""
    city = bool(c.city) and _city(c.city) == _city(r.get("city") or "")
    state = bool(c.state) and c.state == (r.get("state") or "")
    if c.zip5 and r.get("zip5"):
        if c.zip5 == r["zip5"]:
            return "same"
        return "other_zip" if city and state else "none"
    if c.city and c.state:
        return "same" if city and state else "none"
    if c.city or c.state:
        return "same" if (city or not c.city) and (state or not c.state) else "none"
    return "same"


def _agreement(c: StdAddress, r: dict[str, Any]) -> str:
    r1, r2 = r.get("line1") or "", r.get("line2") or ""
    loc = _locality(c, r)
    if not c.line1:
        return "match" if loc == "same" and (c.zip5 or c.city or c.state) else "none"
    if squash(c.line1) == squash(r1):
        if loc == "none":
            return "none"
        ci, ri = _unit_ids(c.line2), _unit_ids(r2)
        if ci and ri and ci != ri:
            return "other_unit"
        return "other_zip" if loc == "other_zip" else "match"
    if loc == "same" and (c.zip5 or c.city):
        cn, _, cs = c.line1.partition(" ")
        rn, _, rs = r1.partition(" ")
        if cn == rn and cs and rs and (typo(cs, rs) or fuzz.ratio(cs, rs) >= 90):
            return "close_street"
        return "same_zip" if c.zip5 and c.zip5 == r.get("zip5") else "none"
    return "none"


def _one_line(a: dict[str, Any]) -> str:
    street = " ".join(p for p in (a.get("line1"), a.get("line2")) if p)
    place = " ".join(p for p in (a.get("state"), a.get("zip5")) if p)
    return ", ".join(p for p in (street, a.get("city"), place) if p)


def check_address(claim: Claim, doc: dict[str, Any]) -> Check:
    c = claim
    std = standardize_address(
        c.address_1 or "", c.address_2 or "", c.city or "", c.state or "", c.postal_code or ""
    )
    claimed = {"line1": std.line1, "line2": std.line2, "city": std.city, "state": std.state,
               "zip5": std.zip5, "zip4": std.zip4}  # fmt: skip
    addresses = [loc for loc in doc.get("practiceLocations") or [] if loc]
    if doc.get("mailingAddress"):
        addresses.append(doc["mailingAddress"])
    registry: list[dict[str, Any]] = []
    best: tuple[int, int] = (-1, 0)
    secondary = 0
    for i, a in enumerate(addresses):
        s = dict(a.get("standardized") or {})
        purpose = a.get("purpose") or "primary"
        secondary += purpose == "secondary"
        grade = _agreement(std, s)
        entry = {"purpose": purpose, **{k: s.get(k) for k in claimed}, "agreement": grade}
        if purpose == "secondary":
            entry["index"] = secondary
        registry.append(entry)
        if _GRADES[grade] > best[0]:
            best = (_GRADES[grade], i)
    if not registry:
        return Check(NOT_CHECKED, "the registry has no address for this provider", claimed, [])
    top = registry[best[1]]
    grade, purpose = top["agreement"], top["purpose"]
    where = _PLACES.get(purpose) or f"secondary practice location {top['index']}"
    shown = _one_line(top)
    if grade == "match":
        notes = []
        ci, ri = _unit_ids(std.line2), _unit_ids(top.get("line2") or "")
        if ri and not ci:
            notes.append(f"the registry adds {top['line2']}")
        elif ci and not ri:
            notes.append(f"the registry has no {std.line2}")
        if not std.line1:
            notes.append("no street supplied: city, state and ZIP only")
        if purpose == "mailing":
            notes.append("a mailing address, not a practice location")
        detail = f"; {'; '.join(notes)}" if notes else ""
        return Check(PASS, f"matches {where} ({shown}){detail}", claimed, registry, purpose)
    if grade == "other_unit":
        reason = (
            f"same street as {where} but another unit: {std.line2} vs the registry's {top['line2']} ({shown})"
        )
        return Check(CLOSE, reason, claimed, registry, purpose)
    if grade == "other_zip":
        reason = (
            f"same street and city as {where} but ZIP {std.zip5} vs the registry's {top['zip5']} ({shown})"
        )
        return Check(CLOSE, reason, claimed, registry, purpose)
    if grade == "close_street":
        reason = f"close to {where}: {std.line1} vs the registry's {top['line1']} ({shown})"
        return Check(CLOSE, reason, claimed, registry, purpose)
    listed = "; ".join(
        f"{_PLACES.get(a['purpose'], 'secondary practice location')}: {_one_line(a)}" for a in registry
    )
    if grade == "same_zip":
        reason = (
            f"matches none of the registry's addresses; same ZIP as {where} but another street ({listed})"
        )
    else:
        reason = f"matches none of the registry's addresses ({listed})"
    return Check(FAIL, reason, claimed, registry, None)


# --- phones -------------------------------------------------------------------------------------


def _phone_key(raw: str) -> str:
    """E.164 when valid, else the bare digits (without a leading NANP 1)."""
    e164 = normalize_phone(raw)
    if e164:
        return e164
    digits = phone_digits(raw)
    return digits[1:] if len(digits) == 11 and digits[0] == "1" else digits


def _registry_key(number: str) -> str:
    return number if number.startswith("+") else _phone_key(number)  # E.164 already, or raw digits


def _registry_phones(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    places = [loc for loc in doc.get("practiceLocations") or [] if loc]
    if doc.get("mailingAddress"):
        places.append(doc["mailingAddress"])
    for a in places:
        for kind in ("phone", "fax"):
            raw = a.get(kind) or a.get(f"{kind}Raw")
            if raw:
                out.append({"purpose": a.get("purpose") or "primary", "kind": kind, "number": raw})
    ao = doc.get("authorizedOfficial") or {}
    if ao.get("phone") or ao.get("phoneRaw"):
        out.append(
            {"purpose": "authorized_official", "kind": "phone", "number": ao.get("phone") or ao["phoneRaw"]}
        )
    return out


def _phone_place(entry: dict[str, Any]) -> str:
    purpose = entry["purpose"]
    if purpose == "authorized_official":
        return "the authorized official's phone"
    place = _PLACES.get(purpose) or "a secondary practice location"
    return f"{place}'s {entry['kind']}"


def check_phone(raw: str, doc: dict[str, Any], *, fax: bool) -> Check:
    key = _phone_key(raw)
    registry = _registry_phones(doc)
    hits = [e for e in registry if key and _registry_key(e["number"]) == key]
    wanted, other = ("fax", "phone") if fax else ("phone", "fax")
    right = [e for e in hits if e["kind"] == wanted]
    wrong = [e for e in hits if e["kind"] == other]
    practice = [
        e["number"] for e in registry if e["kind"] == wanted and e["purpose"] in ("primary", "secondary")
    ]
    practice = list(dict.fromkeys(practice))
    if right:
        top = right[0]
        reason = _phone_place(top)
        if wrong:
            reason += f"; also listed as {_phone_place(wrong[0])}"
        return Check(PASS, reason, key, registry, f"{top['purpose']}_{top['kind']}")
    if wrong:
        top = wrong[0]
        line = "this is a fax line" if not fax else "this is a phone line, not a fax"
        known = f"; the practice {wanted} on record is {', '.join(practice)}" if practice else ""
        reason = f"{line}: {_phone_place(top)}{known}"
        return Check(WARNING, reason, key, registry, f"{top['purpose']}_{top['kind']}")
    known = f": the practice {wanted} on record is {', '.join(practice)}" if practice else ""
    return Check(FAIL, f"not on record{known}", key, registry)


def check_phone_valid(raw: str) -> Check:
    e164 = normalize_phone(raw)
    if e164:
        return Check(PASS, f"a valid number ({e164})", e164)
    return Check(FAIL, f"{raw!r} is not a valid phone number (US, or international with +country code)", raw)


# --- email --------------------------------------------------------------------------------------

_RESERVED = ("example.com", "example.net", "example.org")  # RFC 2606; .example/.invalid/.test below
_RESERVED_TLDS = frozenset({"example", "invalid", "test", "localhost", "local"})
_COMMON_DOMAINS = (
    "gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com", "comcast.net",
    "msn.com", "live.com", "att.net", "verizon.net", "me.com", "protonmail.com", "sbcglobal.net",
    "bellsouth.net", "charter.net", "cox.net", "ymail.com", "mail.com", "kp.org",
)  # fmt: skip
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")


@cache
def _dns_resolver() -> Any:
    from email_validator import caching_resolver

    return caching_resolver(timeout=3)


def check_email(raw: str, doc: dict[str, Any] | None, dns: bool) -> Check:
    try:
        valid = validate_email(raw, check_deliverability=dns, dns_resolver=_dns_resolver() if dns else None)
    except EmailUndeliverableError as e:
        return Check(FAIL, f"the domain does not accept email: {e}", raw)
    except (EmailNotValidError, UnicodeError, ValueError) as e:
        return Check(FAIL, f"not a valid email address: {e}", raw)
    email, domain = valid.normalized, valid.ascii_domain.lower()
    direct = [e["endpoint"] for e in (doc or {}).get("endpoints") or [] if "@" in (e.get("endpoint") or "")]
    tld = domain.rsplit(".", 1)[-1]
    if not _TLD.fullmatch(tld):
        return Check(FAIL, f"not a plausible domain: .{tld} is not a top-level domain", email, direct)
    if domain in _RESERVED or domain.endswith(tuple("." + d for d in _RESERVED)) or tld in _RESERVED_TLDS:
        return Check(
            FAIL, f"{domain} is reserved for examples and tests (RFC 2606), not a real mailbox", email, direct
        )
    near = None if domain in _COMMON_DOMAINS else next((d for d in _COMMON_DOMAINS if typo(domain, d)), None)
    if near:
        return Check(CLOSE, f"{domain} looks like a typo of {near}", email, direct)
    matched = "endpoint" if email.lower() in (d.lower() for d in direct) else None
    if dns:
        mx, fallback = getattr(valid, "mx", None), getattr(valid, "mx_fallback_type", None)
        if mx:
            how = f"the domain accepts email (MX {mx[0][1]})"
        elif fallback:
            how = f"the domain has no MX record but an {fallback} record"
        else:
            how = "deliverability unknown: DNS did not answer"
    else:
        how = "domain plausible; DNS not checked (NPISTACK_VERIFY_EMAIL_DNS is off)"
    also = "; it is the provider's Direct address in the registry" if matched else ""
    return Check(PASS, f"valid syntax; {how}{also}", email, direct, matched)
