"""What provider verification (``services.verify``) takes and gives: a :class:`Claim` (what a CRM
holds about a provider), a :class:`Check` per field, a :class:`Verification` per claim, and the
names of the statuses and checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

PASS, CLOSE, WARNING, FAIL = "pass", "close", "warning", "fail"
NOT_CHECKED, NOT_SUPPLIED = "not_checked", "not_supplied"
STATUSES = (PASS, CLOSE, WARNING, FAIL, NOT_CHECKED, NOT_SUPPLIED)
VERIFIED, NEEDS_REVIEW = "verified", "needs_review"
CHECKS = (
    *("npiFormat", "npiExists", "npiActive", "name", "credential"),
    *("address", "phone", "phoneValid", "fax", "email"),
)


class Claim(BaseModel):
    """What a CRM holds about a provider. Only ``npi`` is required; blank strings count as absent."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, str_strip_whitespace=True)

    npi: str = Field(min_length=1, max_length=20, description="The NPI the CRM holds (10 digits).")
    ref: str | None = Field(None, max_length=200, description="Your own record id, echoed back.")
    first_name: str | None = Field(None, max_length=100, description="An individual's first name.")
    middle_name: str | None = Field(None, max_length=100, description="Middle name or initial.")
    last_name: str | None = Field(None, max_length=100, description="An individual's last name.")
    organization_name: str | None = Field(None, max_length=200, description="An organization's name.")
    credential: str | None = Field(None, max_length=100, description="Credentials, e.g. 'MD' or 'RN, MSN'.")
    address_1: str | None = Field(None, max_length=200, description="Street address, line 1.")
    address_2: str | None = Field(None, max_length=200, description="Street address, line 2 (suite).")
    city: str | None = Field(None, max_length=100, description="City.")
    state: str | None = Field(None, max_length=50, description="State: 2-letter code or name.")
    postal_code: str | None = Field(None, max_length=20, description="ZIP or ZIP+4.")
    phone: str | None = Field(None, max_length=50, description="Phone number, any common format.")
    fax: str | None = Field(None, max_length=50, description="Fax number, any common format.")
    email: str | None = Field(None, max_length=320, description="Email address.")

    @field_validator("*", mode="after")
    @classmethod
    def _blank_is_absent(cls, value: str | None) -> str | None:
        return value or None


@dataclass(frozen=True, slots=True)
class Check:
    """One field's verdict: its status, a sentence saying why, the value compared (normalized), what
    the registry holds for it, and which registry value agreed (``matched``)."""

    status: str
    reason: str
    claimed: Any = None
    registry: Any = None
    matched: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "claimed": self.claimed,
                "registry": self.registry, "matched": self.matched}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verification:
    npi: str
    ref: str | None
    status: str  # verified or needs_review
    reasons: list[str]
    checks: dict[str, Check]
    provider: dict[str, Any] | None  # what was checked against: name, status, lastUpdated, release

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "npi": self.npi,
            "status": self.status,
            "reasons": self.reasons,
            "checks": {k: c.to_dict() for k, c in self.checks.items()},
            "provider": self.provider,
        }
