"""Identifier and code systems: the URIs the facade emits, and their reverse mapping on input."""

from __future__ import annotations

from urllib.parse import quote, unquote

from . import conf

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier types: MR, PLAC, FILL, ACSN
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service sections: RAD
DCM = "http://dicom.nema.org/resources/ontology/DCM"  # DICOM modalities (PS3.16 CID 29)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
DICOM_UID = "urn:dicom:uid"
RFC3986 = "urn:ietf:rfc:3986"
ENDPOINT_CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
# ISO 21090 name representation: ABC alphabetic (pinyin), IDE ideographic (汉字), SYL syllabic.
EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"

PATIENT_ID_PREFIX = "urn:ris:patient-id:"
CODING_SCHEME_PREFIX = "urn:ris:coding-scheme:"

# DICOM coding scheme designators (PS3.16 Table 8-1) -> FHIR code systems.
BUILTIN_CODING_SYSTEMS = {
    "LN": LOINC,
    "SCT": SNOMED,
    "DCM": DCM,
    "RADLEX": "http://radlex.org",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
}


def placer() -> str:
    return conf.get("RIS_FHIR_PLACER_SYSTEM")


def filler() -> str:
    return conf.get("RIS_FHIR_FILLER_SYSTEM")


def accession() -> str:
    return conf.get("RIS_FHIR_ACCESSION_SYSTEM")


def rp_id() -> str:
    return conf.get("RIS_FHIR_RP_ID_SYSTEM")


def sps_id() -> str:
    return conf.get("RIS_FHIR_SPS_ID_SYSTEM")


def ae_title() -> str:
    return conf.get("RIS_FHIR_AE_TITLE_SYSTEM")


def issuer_system(issuer: str) -> str:
    mapped = conf.get("RIS_FHIR_ISSUER_SYSTEMS").get(issuer)
    return mapped or PATIENT_ID_PREFIX + quote(issuer, safe="")


def issuer_for_system(system: str) -> str | None:
    """The Issuer of Patient ID a system stands for; None when the system is not ours."""
    for issuer, uri in conf.get("RIS_FHIR_ISSUER_SYSTEMS").items():
        if uri == system:
            return issuer
    if system.startswith(PATIENT_ID_PREFIX):
        return unquote(system[len(PATIENT_ID_PREFIX) :])
    return None


def _coding_systems() -> dict[str, str]:
    return {**BUILTIN_CODING_SYSTEMS, **conf.get("RIS_FHIR_CODING_SYSTEMS")}


def coding_system(scheme: str) -> str:
    return _coding_systems().get(scheme) or CODING_SCHEME_PREFIX + quote(scheme, safe="")


def scheme_for_system(system: str) -> str | None:
    """The DICOM coding scheme designator of a FHIR code system; None when unknown."""
    for scheme, uri in _coding_systems().items():
        if uri == system:
            return scheme
    if system.startswith(CODING_SCHEME_PREFIX):
        return unquote(system[len(CODING_SCHEME_PREFIX) :])
    return None


def identifier_type(code: str, display: str) -> dict:
    return {"coding": [{"system": V2_0203, "code": code, "display": display}]}


def type_code(identifier: dict) -> str | None:
    """The v2-0203 type code of an identifier (PLAC, ACSN, …), if it has one."""
    for coding in (identifier.get("type") or {}).get("coding") or []:
        if coding.get("system") == V2_0203 and coding.get("code"):
            return coding["code"]
    return None


def dicom_uid(uid: str) -> dict:
    return {"system": DICOM_UID, "value": f"urn:oid:{uid}"}
