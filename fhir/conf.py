"""Settings of the FHIR facade, with their defaults (override any of them in ris/settings.py).

The URIs name the identifier and code systems this RIS emits and accepts; a site sets them to
its own (an OID as ``urn:oid:…`` or a URL) so that the HIS and the RIS agree.
"""

from __future__ import annotations

from django.conf import settings

DEFAULTS = {
    # Page size of a searchset when _count is not given, and the largest page served.
    "RIS_FHIR_DEFAULT_COUNT": 20,
    "RIS_FHIR_MAX_COUNT": 100,
    # Placer order number (the HIS's order id, ORC-2/OBR-2): the one system accepted on create.
    "RIS_FHIR_PLACER_SYSTEM": "urn:ris:placer-order-number",
    "RIS_FHIR_FILLER_SYSTEM": "urn:ris:filler-order-number",
    "RIS_FHIR_ACCESSION_SYSTEM": "urn:ris:accession-number",
    "RIS_FHIR_RP_ID_SYSTEM": "urn:ris:requested-procedure-id",
    "RIS_FHIR_SPS_ID_SYSTEM": "urn:ris:scheduled-procedure-step-id",
    "RIS_FHIR_AE_TITLE_SYSTEM": "urn:ris:ae-title",
    # Issuer of Patient ID -> identifier system; unlisted issuers get urn:ris:patient-id:<issuer>.
    "RIS_FHIR_ISSUER_SYSTEMS": {},
    # DICOM coding scheme designator -> FHIR code system (added to the built-in ones).
    "RIS_FHIR_CODING_SYSTEMS": {},
}


def get(name: str):
    return getattr(settings, name, DEFAULTS[name])
