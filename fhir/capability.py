"""GET /fhir/metadata: the CapabilityStatement, generated from the same registry that serves
requests, so it lists exactly the interactions and search parameters we support."""

from __future__ import annotations

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from .mapping import REGISTRY

FHIR_VERSION = "4.0.1"
# The date this facade's capabilities last changed (CapabilityStatement.date is required).
CAPABILITY_DATE = "2026-12-04"

SECURITY = (
    "Token authentication as the REST API: 'Authorization: Token <key>' (POST /api/v1/auth/token/), "
    "or a logged-in session. Each interaction needs the role permission of the REST API "
    "(ris/roles.py) and is scoped as the REST API is; every read and search is audited."
)
PAGING = (
    "Searchsets page with _count (default {default}, at most {max}) and _offset; Bundle.link "
    "self/next/previous; Bundle.total is exact. An unknown search parameter or modifier is an "
    "error (400 naming it), as with Prefer: handling=strict."
)


def capability_statement(*, base: str) -> dict:
    from . import conf

    resources = []
    for rt in REGISTRY.values():
        entry = {
            "type": rt.name,
            "interaction": [{"code": code} for code in rt.interactions],
            "versioning": "no-version",
            "readHistory": False,
            "updateCreate": False,
            "conditionalRead": "not-supported",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "searchParam": [
                {"name": p.name, "type": p.type, "documentation": p.documentation} for p in rt.params.values()
            ],
        }
        if rt.create_action:
            entry["conditionalCreate"] = True
            entry["documentation"] = (
                "create: an electronic order (as HL7 ORM^O01 NW). Conditional create with "
                "If-None-Exist (e.g. identifier=<placer system>|<number>): 0 matches create (201), "
                "1 returns the existing request (200), more than one is 412."
            )
        resources.append(entry)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_DATE,
        "publisher": "RIS",
        "kind": "instance",
        "software": {"name": "RIS FHIR facade"},
        "implementation": {"description": "RIS FHIR R4 facade", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": PAGING.format(
                    default=conf.get("RIS_FHIR_DEFAULT_COUNT"), max=conf.get("RIS_FHIR_MAX_COUNT")
                ),
                "security": {"cors": False, "description": SECURITY},
                "resource": resources,
            }
        ],
    }
    return CapabilityStatement.model_validate(statement).model_dump(mode="json", exclude_none=True)
