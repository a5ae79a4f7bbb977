"""Appointment <- scheduling.ScheduledProcedureStep (the booked slot on a station)."""

from __future__ import annotations

from django.db.models import Q

from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from scheduling.models import ScheduledProcedureStep, SPSStatus
from scheduling.selectors import procedure_list_for

from .. import systems
from ..search import Param, date_param_q, id_q, parse_token, reference_q, token_choice_q
from .base import Context, ResourceType, clean, fhir_instant, ref
from .servicerequest import station_reference

# SPS status (PS3.3 C.4.10) -> Appointment.status (R4 valueset appointmentstatus, required).
STATUS = {
    SPSStatus.SCHEDULED: "booked",
    SPSStatus.ARRIVED: "arrived",
    SPSStatus.STARTED: "fulfilled",
    SPSStatus.COMPLETED: "fulfilled",
    SPSStatus.DISCONTINUED: "fulfilled",
    SPSStatus.CANCELED: "cancelled",
}
STATUS_VALUESET = {
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
}
STATUS_REVERSE: dict[str, tuple[str, ...]] = {}
for _ours, _theirs in STATUS.items():
    STATUS_REVERSE[_theirs] = (*STATUS_REVERSE.get(_theirs, ()), _ours)


def _identifier_q(raw: str, modifier: str | None) -> Q:
    token = parse_token(raw)
    if token.system not in (None, systems.sps_id()) or not token.code:
        return Q(pk__in=[])
    return Q(sps_id=token.code)


class AppointmentType(ResourceType):
    name = "Appointment"
    model = FhirAppointment
    read_action = "procedure.view"
    audit_object_type = "procedure_step"
    ordering = ("start", "pk")
    params = {
        "_id": Param("_id", "token", "Logical id (the scheduled procedure step).", id_q()),
        "identifier": Param("identifier", "token", "Scheduled Procedure Step ID.", _identifier_q),
        "patient": Param(
            "patient",
            "reference",
            "The patient (Patient/<id>).",
            reference_q("requested_procedure__order__patient_id", "patient", "Patient"),
            target="Patient",
        ),
        "based-on": Param(
            "based-on",
            "reference",
            "The ServiceRequest (ServiceRequest/<id>).",
            reference_q("requested_procedure_id", "based-on", "ServiceRequest"),
            target="ServiceRequest",
        ),
        "status": Param(
            "status",
            "token",
            "booked | arrived | fulfilled (started, completed, discontinued) | cancelled.",
            token_choice_q("status", "status", STATUS_REVERSE, STATUS_VALUESET),
        ),
        "date": Param(
            "date",
            "date",
            "Start of the slot; prefixes eq, ge, gt, le, lt.",
            date_param_q("start", "date", is_date_field=False),
        ),
    }

    def queryset(self, user):
        visible = procedure_list_for(user).values("pk")
        # An Appointment is a booked slot: steps awaiting booking (no station/time) are not shown.
        return ScheduledProcedureStep.objects.filter(
            requested_procedure__in=visible, station__isnull=False, start__isnull=False
        ).select_related(
            "station", "requested_procedure__order__patient", "requested_procedure__procedure_type"
        )

    def patient_pk(self, obj):
        return obj.requested_procedure.order.patient_id

    def to_fhir(self, step: ScheduledProcedureStep, ctx: Context) -> dict:
        proc = step.requested_procedure
        patient = proc.order.patient
        participants = [
            {
                "actor": ref("Patient", patient.pk, patient.display_name),
                "required": "required",
                "status": "accepted",
            },
            {"actor": station_reference(step.station), "required": "required", "status": "accepted"},
        ]
        if step.station.room:
            participants.append(
                {
                    "actor": {"type": "Location", "display": step.station.room},
                    "required": "information-only",
                    "status": "accepted",
                }
            )
        minutes = int((step.end - step.start).total_seconds() // 60)
        return clean(
            {
                "resourceType": "Appointment",
                "id": str(step.pk),
                "identifier": [{"system": systems.sps_id(), "value": step.sps_id}],
                "status": STATUS.get(step.status, "booked"),
                "serviceType": [
                    {"coding": [{"system": systems.DCM, "code": step.modality}], "text": step.modality}
                ],
                "description": step.description or proc.procedure_type.code_meaning,
                "start": fhir_instant(step.start),
                "end": fhir_instant(step.end),
                "minutesDuration": minutes if minutes > 0 else None,
                "basedOn": [ref("ServiceRequest", proc.pk)],
                "participant": participants,
            }
        )
