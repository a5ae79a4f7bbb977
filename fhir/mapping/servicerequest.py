"""ServiceRequest <- scheduling.RequestedProcedure (with its Order: the Imaging Service Request)."""

from __future__ import annotations

from django.db.models import Q

from fhir.resources.R4B.servicerequest import ServiceRequest as FhirServiceRequest
from scheduling.models import FINAL_SPS_STATUSES, ProcedureStatus, RequestedProcedure
from scheduling.selectors import procedure_list_for

from .. import systems
from ..search import Param, date_param_q, id_q, parse_token, reference_q, token_choice_q
from .base import Context, ResourceType, clean, fhir_datetime, meta, ref

S = ProcedureStatus
# RequestedProcedure.status -> ServiceRequest.status (R4 valueset request-status, required).
STATUS = {
    S.SCHEDULED: "active",
    S.ARRIVED: "active",
    S.IN_PROGRESS: "active",
    S.COMPLETED: "completed",
    S.DISCONTINUED: "revoked",
    S.CANCELLED: "revoked",
}
STATUS_VALUESET = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
STATUS_REVERSE: dict[str, tuple[str, ...]] = {}
for _ours, _theirs in STATUS.items():
    STATUS_REVERSE[_theirs] = (*STATUS_REVERSE.get(_theirs, ()), _ours)

# Order.priority (DICOM Requested Procedure Priority) <-> ServiceRequest.priority (request-priority).
PRIORITY = {"STAT": "stat", "HIGH": "urgent", "ROUTINE": "routine", "MEDIUM": "routine", "LOW": "routine"}
PRIORITY_IN = {"stat": "STAT", "asap": "HIGH", "urgent": "HIGH", "routine": "ROUTINE"}

IMAGING_CATEGORY = {"coding": [{"system": systems.SNOMED, "code": "363679005", "display": "Imaging"}]}


def procedure_code(pt) -> dict:
    return {
        "coding": [
            {
                "system": systems.coding_system(pt.coding_scheme),
                "code": pt.code_value,
                "display": pt.code_meaning,
            }
        ],
        "text": pt.code_meaning,
    }


def station_reference(station) -> dict:
    return {
        "type": "Device",
        "identifier": {"system": systems.ae_title(), "value": station.ae_title},
        "display": f"{station.ae_title} ({station.modality}{', ' + station.room if station.room else ''})",
    }


def _identifier_q(raw: str, modifier: str | None) -> Q:
    token = parse_token(raw)
    if token.system == "" or not token.code:
        return Q(pk__in=[])
    by_system = {
        systems.placer(): Q(order__placer_order_number=token.code),
        systems.accession(): Q(order__accession_number=token.code),
        systems.filler(): Q(order__filler_order_number=token.code),
        systems.rp_id(): Q(requested_procedure_id=token.code),
    }
    if token.system is None:
        q = Q()
        for part in by_system.values():
            q |= part
        return q
    return by_system.get(token.system, Q(pk__in=[]))


def _code_q(raw: str, modifier: str | None) -> Q:
    token = parse_token(raw)
    if token.system == "":
        return Q(pk__in=[])
    q = Q(procedure_type__code_value=token.code) if token.code else Q()
    if token.system:
        scheme = systems.scheme_for_system(token.system)
        if scheme is None:
            return Q(pk__in=[])
        q &= Q(procedure_type__coding_scheme=scheme)
    return q


def identifiers(proc: RequestedProcedure) -> list[dict]:
    order = proc.order
    out = []
    if order.placer_order_number:
        out.append(
            {
                "use": "usual",
                "type": systems.identifier_type("PLAC", "Placer Identifier"),
                "system": systems.placer(),
                "value": order.placer_order_number,
            }
        )
    if order.filler_order_number:
        out.append(
            {
                "type": systems.identifier_type("FILL", "Filler Identifier"),
                "system": systems.filler(),
                "value": order.filler_order_number,
            }
        )
    out.append(
        {
            "type": systems.identifier_type("ACSN", "Accession ID"),
            "system": systems.accession(),
            "value": order.accession_number,
        }
    )
    out.append({"system": systems.rp_id(), "value": proc.requested_procedure_id})
    return out


class ServiceRequestType(ResourceType):
    name = "ServiceRequest"
    model = FhirServiceRequest
    read_action = "order.view"
    create_action = "order.create"
    audit_object_type = "procedure"
    ordering = ("pk",)
    params = {
        "_id": Param("_id", "token", "Logical id (the requested procedure).", id_q()),
        "identifier": Param(
            "identifier",
            "token",
            "Placer order number, Accession Number, filler order number or Requested Procedure ID "
            "(system|value, or a bare value matching any of them).",
            _identifier_q,
        ),
        "patient": Param(
            "patient",
            "reference",
            "The patient (Patient/<id>).",
            reference_q("order__patient_id", "patient", "Patient"),
            target="Patient",
        ),
        "subject": Param(
            "subject",
            "reference",
            "Same as patient.",
            reference_q("order__patient_id", "subject", "Patient"),
            target="Patient",
        ),
        "status": Param(
            "status",
            "token",
            "active (scheduled, arrived, in progress) | completed | revoked (cancelled, discontinued).",
            token_choice_q("status", "status", STATUS_REVERSE, STATUS_VALUESET),
        ),
        "code": Param("code", "token", "Procedure code: system|code from the catalog.", _code_q),
        "authored": Param(
            "authored",
            "date",
            "When the order was placed; prefixes eq, ge, gt, le, lt.",
            date_param_q("order__created_at", "authored", is_date_field=False),
        ),
    }

    def queryset(self, user):
        return procedure_list_for(user).distinct()

    def patient_pk(self, obj):
        return obj.order.patient_id

    def to_fhir(self, proc: RequestedProcedure, ctx: Context) -> dict:
        order = proc.order
        # An order awaiting booking has no step with a station and time yet.
        steps = sorted((s for s in proc.steps.all() if s.start and s.station_id), key=lambda s: s.start)
        open_steps = [s for s in steps if s.status not in FINAL_SPS_STATUSES] or steps
        step = open_steps[0] if open_steps else None
        physician = order.requesting_physician or order.referring_physician
        return clean(
            {
                "resourceType": "ServiceRequest",
                "id": str(proc.pk),
                "meta": meta(proc.updated_at),
                "identifier": identifiers(proc),
                "status": STATUS.get(proc.status, "unknown"),
                "intent": "order",
                "category": [IMAGING_CATEGORY],
                "priority": PRIORITY.get(order.priority, "routine"),
                "code": procedure_code(proc.procedure_type),
                "subject": ref("Patient", order.patient_id, order.patient.display_name),
                "occurrenceDateTime": fhir_datetime(step.start) if step else None,
                "authoredOn": fhir_datetime(order.created_at),
                "requester": {"display": physician.replace("^", " ").strip()} if physician else None,
                "performer": [station_reference(step.station)] if step else None,
                "reasonCode": [{"text": order.reason}] if order.reason else None,
                "note": [{"text": order.clinical_info}] if order.clinical_info else None,
            }
        )
