"""Provider verification: what a CRM holds about a provider, checked field by field against the registry.

- :func:`verify_claim` is pure: a :class:`Claim` and the provider document (``services.providers``;
  ``None`` when the NPI is not in the registry) in, a :class:`Verification` out.
- :func:`verify` reads the documents of a batch of claims from a store and verifies each.

The claim and the verdicts are in ``services.verify.model``; the checks of names and credentials in
``services.verify.names``, of addresses, phones and email in ``services.verify.contact``.

Each check has one of these statuses (docs/verify.md):

=============== ======================================================================================
``pass``        agrees with the registry (``phoneValid``, ``email``: valid)
``close``       nearly agrees: a typo-level name or street difference, the right street with another
                suite or ZIP, an email domain one letter off a common one
``warning``     the registry's value, but not what the field is for: a fax given as the phone, a
                phone given as the fax, a former name, an organization's authorized official
``fail``        disagrees with the registry, is not on record, or is invalid
``not_checked`` supplied but not checkable: the NPI is invalid, unknown or a deactivated stub, or the
                registry holds nothing to compare (no credential on record)
``not_supplied`` the claim does not have the field
=============== ======================================================================================

A claim is ``verified`` when the NPI is well-formed, exists and is active, and no check is ``close``,
``warning`` or ``fail``; otherwise it ``needs_review``, and ``reasons`` says why (one line per check).

The modules: ``engine`` (:func:`verify`, :func:`verify_claim`), ``model`` (the claim, checks and
verdicts), ``names`` (names and credentials) and ``contact`` (addresses, phones, email).
"""

from npistack.services.verify.engine import verify, verify_claim
from npistack.services.verify.model import CHECKS, STATUSES, Check, Claim, Verification

__all__ = ["CHECKS", "STATUSES", "Check", "Claim", "Verification", "verify", "verify_claim"]
