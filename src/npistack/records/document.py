"""A provider's stored document and rows, built from its published values, whichever form they
were published in: an npidata row (``records.npidata``) or a registry API result
(``records.registry``) give the same values to these builders, so a provider fetched one by one is
stored exactly as if it had come from the monthly file. Pure functions.

Documents are stored compactly: published values and their normalized forms only, without empty
keys; reference data (NUCC names, code descriptions, ZIP geodata) is added when a document is read
(``npistack.services.providers.expand``), so the full document is a superset of the Health Provider
API's provider shape (docs/provider-document.md). Rules worth knowing:

- Deactivated stubs (only NPI and deactivation date) become ``status: "deactivated"`` documents
  with ``entityType: null``. A row with both a deactivation and a later reactivation date is active.
- Primary taxonomy: the first slot whose switch is "Y". When no slot says "Y", the first filled
  slot is taken and ``primaryInferred`` is true; when several say "Y", the first wins and the
  others keep ``primarySwitch: "Y"`` but ``primary: false``.
- ``<UNAVAIL>`` placeholders become null; Other Organization Name ``<UNAVAIL>`` (type code 6) is
  not an other name and is dropped.
- Phones and faxes are kept apart: ``phone``/``fax`` in E.164 when valid, ``phoneRaw``/``faxRaw``
  as published; addresses as published plus ``std`` (USPS Publication 28 form).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from npistack.normalize.address import StdAddress, standardize_address
from npistack.normalize.names import name_key, normalize_credentials
from npistack.normalize.phone import normalize_phone
from npistack.nppes.layout import IDENTIFIER_SLOTS, TAXONOMY_SLOTS
from npistack.nppes.npi import check_npi, npi_problem
from npistack.records.index import address_rows, location_row, name_rows, taxonomy_rows
from npistack.records.rows import BlockResult, ExtraRow, NameRow, ProviderRow
from npistack.records.values import YES_NO, BadRow, compact, text

# An address as published: line1, line2, city, state, postal code, country, phone, fax.
Address = Sequence[str]


def address_doc(address: Address) -> tuple[dict[str, Any] | None, StdAddress | None]:
    """An address's stored object and standardized form; (None, None) when it is empty."""
    line1, _, city, _, postal, _, _, _ = address
    if not (line1 or city or postal):
        return None, None
    std = standardize_address(*address[:6])
    return _address_object(address, std, ""), std


def _address_object(address: Address, std: StdAddress, extension: str) -> dict[str, Any]:
    """The stored object of an address (``extension``: the phone's, '' for none)."""
    line1, line2, city, state, postal, country, phone, fax = address
    return compact(
        line1=line1,
        line2=line2,
        city=city,
        state=state,
        postalCode=postal,
        countryCode=country,
        phone=normalize_phone(phone) if phone else None,
        phoneRaw=phone,
        phoneExtension=extension,
        fax=normalize_phone(fax) if fax else None,
        faxRaw=fax,
        std=compact(
            line1=std.line1, line2=std.line2, city=std.city, state=std.state, zip5=std.zip5, zip4=std.zip4
        ),
    )


def taxonomy_docs(
    slots: Sequence[str], groups: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The taxonomies and the primary one, from the file's slots: ``slots`` holds (code, license,
    license state, primary switch) per slot, flattened as the file lays them out, ``groups`` the
    taxonomy group of each slot ("193400000X SINGLE SPECIALTY GROUP")."""
    out: list[dict[str, Any]] = []
    codes = slots[0 : 4 * TAXONOMY_SLOTS : 4]
    licenses = slots[1 : 4 * TAXONOMY_SLOTS : 4]
    for slot in range(min(TAXONOMY_SLOTS, len(codes))):
        if not (codes[slot] or licenses[slot]):
            continue
        at = 4 * slot
        group = groups[slot] if slot < len(groups) else ""
        group_code, _, group_text = group.partition(" ")
        out.append(
            compact(
                slot=slot + 1,
                code=slots[at].upper(),
                license=slots[at + 1],
                licenseState=slots[at + 2],
                primarySwitch=slots[at + 3],
                group=compact(code=group_code, description=" ".join(group_text.split())) if group else None,
            )
        )
    primary = next((t for t in out if t.get("primarySwitch") == "Y"), None)
    if primary is None:
        primary = next((t for t in out if t.get("code")), None)
        if primary is not None:
            primary["primaryInferred"] = True
    if primary is not None:
        primary["primary"] = True
    return out, primary


def identifier_docs(region: Sequence[str]) -> list[dict[str, Any]]:
    """Other provider identifiers: (identifier, type code, state, issuer) per slot, flattened."""
    out: list[dict[str, Any]] = []
    if not any(region):
        return out
    for slot in range(min(IDENTIFIER_SLOTS, len(region) // 4)):
        at = 4 * slot
        ident, typ, state, issuer = region[at], region[at + 1], region[at + 2], region[at + 3]
        if ident or typ:
            out.append(compact(identifier=ident, typeCode=typ, state=state, issuer=issuer))
    return out


def checked_npi(npi: str) -> int:
    """The NPI as a number (raises ``BadRow`` for an invalid one)."""
    problem = check_npi(npi)
    if problem is not None:
        raise BadRow(problem.message)
    return int(npi)


def add_deactivated(
    out: BlockResult,
    npi_s: str,
    *,
    deactivated: str,
    reason: str,
    replacement: str,
    release: dict[str, Any],
    line: int,
) -> None:
    """A deactivated NPI as CMS publishes it: only the NPI and its deactivation."""
    doc = compact(
        npi=npi_s,
        status="deactivated",
        deactivationDate=deactivated,
        deactivationReasonCode=reason,
        replacementNpi=replacement,
        release=release,
    )
    out.providers.append(
        ProviderRow(int(npi_s), None, "deactivated", None, None, None, orjson.dumps(doc).decode(), line)
    )


def add_provider(
    out: BlockResult,
    npi_s: str,
    etype: int,
    release: dict[str, Any],
    line: int,
    *,
    deactivation: tuple[str | None, str | None, str, str],
    dates: tuple[str | None, str | None, str | None],
    person: Sequence[str],
    other_person: Sequence[str],
    organization: Sequence[str],
    official: Sequence[str],
    individual: tuple[str, str],
    taxonomies: Sequence[str],
    groups: Sequence[str],
    identifiers: Sequence[str],
    mailing: Address,
    practice: Address,
) -> None:
    """An individual's (``etype`` 1) or an organization's (2) document and index rows.

    ``deactivation``: (deactivation date, reactivation date, reason code, replacement NPI);
    ``dates``: (enumeration, last update, certification); ``person``: first, middle, last,
    prefix, suffix, credential; ``other_person``: the same and the other name's type code;
    ``organization``: (name, other name, its type code, EIN, subpart Y/N, parent's legal business
    name, parent's TIN); ``official`` (the authorized official): last, first, middle, title,
    phone, prefix, suffix, credential; ``individual``: (sex, sole proprietor Y/N); dates are ISO.
    Raises ``BadRow`` for an invalid replacement NPI.

    The fields come grouped: a call with more than 13 keyword arguments takes CPython 3.11's slow
    path (~3 us, against 0.4), and a load makes one call per provider.
    """
    deactivated, reactivated, reason, replacement = deactivation
    enumerated, updated, certified = dates
    org_name, other_org, other_org_type, ein, subpart, parent_lbn, parent_tin = organization
    sex, sole_proprietor = individual
    npi = int(npi_s)
    status = "deactivated" if deactivated and (not reactivated or reactivated < deactivated) else "active"
    if replacement and npi_problem(replacement):
        raise BadRow(f"Replacement NPI: {npi_problem(replacement)}")

    taxonomy_list, primary = taxonomy_docs(taxonomies, groups)
    mailing_doc, mailing_std = address_doc(mailing)
    practice_doc, practice_std = address_doc(practice)
    other_names: list[dict[str, Any]] = []
    name = None
    organization_name = None

    if etype == 1:
        first, middle, last, prefix, suffix, credential = person
        name = compact(
            first=first,
            middle=middle,
            last=last,
            prefix=prefix,
            suffix=suffix,
            credential=credential,
            credentials=list(normalize_credentials(credential)),
        )
        o_first, o_middle, o_last, o_prefix, o_suffix, o_credential, o_type = other_person
        if o_last or o_first:
            other_names.append(
                compact(
                    typeCode=o_type,
                    first=o_first,
                    middle=o_middle,
                    last=o_last,
                    prefix=o_prefix,
                    suffix=o_suffix,
                    credential=o_credential,
                )
            )
    else:
        organization_name = text(org_name)
        other = text(other_org)
        if other:
            other_names.append(compact(typeCode=other_org_type, organizationName=other))

    ao = None
    ao_last, ao_first, ao_middle, ao_title, ao_phone, ao_prefix, ao_suffix, ao_credential = official
    if ao_last or ao_first:
        ao = compact(
            prefix=ao_prefix,
            first=ao_first,
            middle=ao_middle,
            last=ao_last,
            suffix=ao_suffix,
            credential=ao_credential,
            title=ao_title,
            phone=normalize_phone(ao_phone) if ao_phone else None,
            phoneRaw=ao_phone,
        )
    out.names += name_rows(npi, etype, name, organization_name, other_names, ao)
    out.taxonomies += taxonomy_rows(npi, taxonomy_list)
    out.locations += address_rows(
        npi,
        None if mailing_std is None else (mailing_std, mailing[4]),
        None if practice_std is None else (practice_std, practice[4]),
    )

    parent_doc = compact(name=parent_lbn, tin=text(parent_tin))
    doc = compact(
        npi=npi_s,
        entityType=f"NPI-{etype}",
        status=status,
        deactivationDate=deactivated,
        deactivationReasonCode=reason,
        reactivationDate=reactivated,
        replacementNpi=replacement,
        name=name,
        organizationName=organization_name,
        otherNames=other_names,
        ein=text(ein),
        authorizedOfficial=ao,
        organizationSubpart=YES_NO.get(subpart),
        parentOrganization=parent_doc or None,
        sex=sex,
        soleProprietor=YES_NO.get(sole_proprietor),
        taxonomies=taxonomy_list,
        identifiers=identifier_docs(identifiers),
        mailingAddress=mailing_doc,
        practiceLocation=practice_doc,
        enumerationDate=enumerated,
        lastUpdated=updated,
        certificationDate=certified,
        release=release,
    )
    out.providers.append(
        ProviderRow(
            npi,
            etype,
            status,
            updated,
            primary.get("code") if primary else None,
            practice_std.state or None if practice_std is not None else None,
            orjson.dumps(doc).decode(),
            line,
        )
    )


def add_location(out: BlockResult, npi: int, seq: int, address: Address, extension: str) -> None:
    """A secondary practice location (an address as ``address_doc`` takes it, and the phone's
    extension)."""
    std = standardize_address(*address[:6])
    doc = _address_object(address, std, extension)
    out.extras.append(ExtraRow(npi, "location", seq, orjson.dumps(doc).decode()))
    out.locations.append(location_row(npi, "secondary", seq, std, address[4]))


def add_other_name(out: BlockResult, npi: int, seq: int, name: str, code: str, created: str | None) -> None:
    """Another name of an organization (raises ``BadRow`` for a blank one)."""
    if not text(name):
        raise BadRow("Provider Other Organization Name is blank")
    doc = compact(typeCode=code, organizationName=name, createdDate=created)
    out.extras.append(ExtraRow(npi, "other_name", seq, orjson.dumps(doc).decode()))
    out.names.append(NameRow(npi, 2, "other", name_key(name), ""))


def add_endpoint(out: BlockResult, npi: int, seq: int, values: Sequence[str]) -> None:
    """An electronic endpoint (Direct address, FHIR URL, ...): ``values`` in the endpoint file's
    column order after the NPI (raises ``BadRow`` when the endpoint is blank)."""
    (
        etype,
        etype_desc,
        endpoint,
        affiliation,
        desc,
        aff_lbn,
        use,
        use_desc,
        use_other,
        ctype,
        cdesc,
        cother,
        a1,
        a2,
        city,
        state,
        country,
        postal,
    ) = values
    if not endpoint:
        raise BadRow("Endpoint is blank")
    doc = compact(
        endpointType=etype,
        endpointTypeDescription=etype_desc,
        endpoint=endpoint,
        endpointDescription=desc,
        affiliation=YES_NO.get(affiliation),
        affiliationName=aff_lbn,
        use=use,
        useDescription=use_desc,
        useOtherDescription=use_other,
        contentType=ctype,
        contentTypeDescription=cdesc,
        contentOtherDescription=cother,
        address=compact(line1=a1, line2=a2, city=city, state=state, countryCode=country, postalCode=postal)
        or None,
    )
    out.extras.append(ExtraRow(npi, "endpoint", seq, orjson.dumps(doc).decode()))
