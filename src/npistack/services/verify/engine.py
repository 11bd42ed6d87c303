"""Provider verification's engine (``services.verify``): :func:`verify_claim` checks one claim against
its provider document, field by field, and gives the verdict; :func:`verify` reads the documents of a
batch of claims from a store and verifies each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from npistack.nppes.npi import npi_problem
from npistack.services.providers import get_providers
from npistack.services.verify.contact import check_address, check_email, check_phone, check_phone_valid
from npistack.services.verify.model import (
    CHECKS,
    CLOSE,
    FAIL,
    NEEDS_REVIEW,
    NOT_CHECKED,
    NOT_SUPPLIED,
    PASS,
    VERIFIED,
    WARNING,
    Check,
    Claim,
    Verification,
)
from npistack.services.verify.names import check_credential, check_name
from npistack.settings import get_settings
from npistack.storage.base import SqlStore

__all__ = ["verify", "verify_claim"]

_NPI_CHECKS = CHECKS[:3]
_REVIEW = frozenset({CLOSE, WARNING, FAIL})


# --- the whole record ---------------------------------------------------------------------------


def verify(store: SqlStore, claims: Sequence[Claim], *, email_dns: bool | None = None) -> list[Verification]:
    """Verify each claim against its provider document in ``store`` (one read for the batch).

    ``email_dns`` defaults to the ``NPISTACK_VERIFY_EMAIL_DNS`` setting.
    """
    dns = get_settings().verify_email_dns if email_dns is None else email_dns
    wanted = [c.npi for c in claims if npi_problem(c.npi) is None]
    docs = {d["npi"]: d for d in get_providers(store, wanted)} if wanted else {}
    return [verify_claim(c, docs.get(c.npi), email_dns=dns) for c in claims]


def verify_claim(claim: Claim, provider: dict[str, Any] | None, *, email_dns: bool = False) -> Verification:
    """Verify one claim against the provider document of its NPI (``None``: not in the registry)."""
    checks: dict[str, Check] = {}
    problem = npi_problem(claim.npi)
    if problem:
        checks["npiFormat"] = Check(FAIL, problem, claim.npi)
        provider = None
        missing = "not checked: the NPI is not valid"
        checks["npiExists"] = checks["npiActive"] = Check(NOT_CHECKED, missing)
    else:
        checks["npiFormat"] = Check(PASS, "10 digits with a valid check digit", claim.npi)
        if provider is None:
            missing = "not checked: the NPI is not in the registry"
            checks["npiExists"] = Check(FAIL, f"no provider has NPI {claim.npi} in the registry")
            checks["npiActive"] = Check(NOT_CHECKED, missing)
        else:
            checks["npiExists"] = Check(PASS, f"NPI {claim.npi} is in the registry")
            checks["npiActive"] = _active(provider)
            missing = (
                "not checked: the registry keeps only the NPI and deactivation date of a deactivated NPI"
            )
    data = provider if provider is not None and provider.get("entityType") else None

    def registry_check(supplied: bool, run: Callable[[dict[str, Any]], Check]) -> Check:
        if not supplied:
            return Check(NOT_SUPPLIED, "not supplied")
        return run(data) if data is not None else Check(NOT_CHECKED, missing)

    c = claim
    names = (c.first_name, c.middle_name, c.last_name, c.organization_name)
    checks["name"] = registry_check(any(names), lambda d: check_name(c, d))
    checks["credential"] = registry_check(
        bool(c.credential), lambda d: check_credential(c.credential or "", d)
    )
    address = (c.address_1, c.address_2, c.city, c.state, c.postal_code)
    checks["address"] = registry_check(any(address), lambda d: check_address(c, d))
    checks["phone"] = registry_check(bool(c.phone), lambda d: check_phone(c.phone or "", d, fax=False))
    checks["phoneValid"] = check_phone_valid(c.phone) if c.phone else Check(NOT_SUPPLIED, "not supplied")
    checks["fax"] = registry_check(bool(c.fax), lambda d: check_phone(c.fax or "", d, fax=True))
    checks["email"] = (
        check_email(c.email, data, email_dns) if c.email else Check(NOT_SUPPLIED, "not supplied")
    )

    npi_ok = all(checks[k].status == PASS for k in _NPI_CHECKS)
    reasons = [f"{name}: {chk.reason}" for name, chk in checks.items() if chk.status in _REVIEW]
    status = VERIFIED if npi_ok and not reasons else NEEDS_REVIEW
    return Verification(claim.npi, claim.ref, status, reasons, checks, _summary(provider))


def _summary(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {
        "entityType": doc.get("entityType"),
        "name": (doc.get("name") or {}).get("full"),
        "status": doc.get("status"),
        "lastUpdated": doc.get("lastUpdated"),
        "releaseDate": (doc.get("release") or {}).get("date"),
    }


def _active(doc: dict[str, Any]) -> Check:
    keys = ("status", "deactivationDate", "reactivationDate", "replacementNpi")
    registry = {k: doc.get(k) for k in keys}
    if doc.get("status") == "deactivated":
        reason = f"NPI {doc['npi']} was deactivated on {doc.get('deactivationDate') or 'an unknown date'}"
        if doc.get("replacementNpi"):
            reason += f"; its replacement NPI is {doc['replacementNpi']}"
        return Check(FAIL, reason, registry=registry)
    if doc.get("reactivationDate"):
        when = f" on {doc['deactivationDate']}" if doc.get("deactivationDate") else ""
        reason = f"active (reactivated on {doc['reactivationDate']} after a deactivation{when})"
        return Check(PASS, reason, registry=registry)
    return Check(PASS, "active", registry=registry)
