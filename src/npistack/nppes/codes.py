"""NPPES code values (CMS Data Dissemination Code Values, nppes_format.md §4)."""

from __future__ import annotations

OTHER_NAME_TYPES = {
    "1": "Former Name",
    "2": "Professional Name",
    "3": "Doing Business As",
    "4": "Former Legal Business Name",
    "5": "Other Name",
}
IDENTIFIER_TYPES = {
    "01": "Other (non-Medicare)",
    "02": "Medicare UPIN",
    "04": "Medicare ID-Type Unspecified",
    "05": "Medicaid",
    "06": "Medicare OSCAR/Certification",
    "07": "Medicare NSC",
    "08": "Medicare PIN",
}
ENDPOINT_TYPES = {
    "SOAP": "SOAP URL",
    "CONNECT": "CONNECT URL",
    "FHIR": "FHIR URL",
    "DIRECT": "Direct Messaging Address",
    "REST": "REST URL",
    "WEB": "Website URL",
    "OTHERS": "Other URL",
}
ENTITY_TYPES = {"NPI-1": "Individual", "NPI-2": "Organization"}
