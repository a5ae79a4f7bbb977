"""Create ServiceRequest: an electronic order from the HIS (the FHIR twin of HL7 ORM^O01 NW).

Three steps, each small:
1. ``order_request_from`` maps a validated R4 ServiceRequest to plain values (``OrderRequest``),
   raising a 422 that names the element for anything the RIS cannot resolve (patient, code
   system, code, station, priority, status).
2. ``service_request_create`` applies conditional create (If-None-Exist) under a per-placer-number
   lock, so concurrent duplicates of one order create it once.
3. ``place_order`` is the one call into the order service. Today it books through
   ``scheduling.services.order_create`` and so needs a time and a station; when the integration
   app's order-mapping service with orders *awaiting booking* lands, only this function changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

from django.db import connection, transaction
from django.utils import timezone

from registration.models import Patient
from ris.errors import ApplicationError, Conflict
from scheduling import services as scheduling_services
from scheduling.models import ProcedureType, RequestedProcedure, Station

from . import systems
from .errors import FhirError, Issue, Unprocessable
from .search import parse_reference

SR = "ServiceRequest"
STATUS_VALUESET = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
INTENT_VALUESET = {
    "proposal",
    "plan",
    "directive",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
}
PRIORITY_IN = {"stat": "STAT", "asap": "HIGH", "urgent": "HIGH", "routine": "ROUTINE"}

# Field errors of the order service -> the element of the ServiceRequest they came from.
FIELD_ELEMENTS = {
    "start": f"{SR}.occurrenceDateTime",
    "station": f"{SR}.performer",
    "procedure_type": f"{SR}.code",
    "priority": f"{SR}.priority",
    "referring_physician": f"{SR}.requester",
    "requesting_physician": f"{SR}.requester",
    "reason": f"{SR}.reasonCode",
    "clinical_info": f"{SR}.note",
    "placer_order_number": f"{SR}.identifier",
    "accession_number": f"{SR}.identifier",
}


@dataclass
class OrderRequest:
    patient: Patient
    procedure_type: ProcedureType
    placer_order_number: str
    station: Station | None = None
    start: datetime | None = None
    priority: str = "ROUTINE"
    accession_number: str | None = None
    physician: str = ""
    reason: str = ""
    clinical_info: str = ""


def _bad(element: str, message: str, code: str = "value") -> Unprocessable:
    return Unprocessable(f"{element}: {message}", expression=element, code=code)


def _patient(sr) -> Patient:
    element = f"{SR}.subject"
    subject = sr.subject
    if subject.reference:
        if subject.reference.startswith("#"):
            raise _bad(f"{element}.reference", "contained patients are not supported.", "not-supported")
        try:
            target = parse_reference(subject.reference, "subject", "Patient")
        except FhirError as exc:
            raise _bad(f"{element}.reference", "must refer to a Patient.") from exc
        patient = Patient.objects.filter(pk=int(target.id)).first() if target.id.isdigit() else None
        if patient is None:
            raise _bad(f"{element}.reference", f"no patient {subject.reference!r}.", "not-found")
    elif subject.identifier and subject.identifier.value:
        ident = subject.identifier
        issuer = systems.issuer_for_system(ident.system) if ident.system else None
        if ident.system and issuer is None:
            raise _bad(
                f"{element}.identifier.system", f"unknown identifier system {ident.system!r}.", "code-invalid"
            )
        qs = Patient.objects.filter(patient_id=ident.value)
        if issuer is not None:
            qs = qs.filter(issuer=issuer)
        found = list(qs[:2])
        if not found:
            raise _bad(f"{element}.identifier", f"no patient with identifier {ident.value!r}.", "not-found")
        if len(found) > 1:
            raise _bad(
                f"{element}.identifier", "the identifier is ambiguous without a system.", "multiple-matches"
            )
        patient = found[0]
    else:
        raise _bad(element, "a reference (Patient/<id>) or identifier is required.", "required")
    if patient.merged_into_id:
        raise _bad(element, f"the patient was merged into Patient/{patient.merged_into_id}.", "business-rule")
    return patient


def _procedure_type(sr) -> ProcedureType:
    element = f"{SR}.code"
    if sr.code is None or not sr.code.coding:
        raise _bad(element, "a procedure code (coding with system and code) is required.", "required")
    first_error = None
    for i, coding in enumerate(sr.code.coding):
        where = f"{element}.coding[{i}]"
        if not coding.system or not coding.code:
            first_error = first_error or _bad(where, "system and code are required.", "required")
            continue
        scheme = systems.scheme_for_system(coding.system)
        if scheme is None:
            first_error = first_error or _bad(
                f"{where}.system", f"unknown code system {coding.system!r}.", "code-invalid"
            )
            continue
        pt = ProcedureType.objects.filter(coding_scheme=scheme, code_value=coding.code).first()
        if pt is None:
            first_error = first_error or _bad(
                f"{where}.code", f"unknown procedure code {coding.code!r} in {coding.system}.", "code-invalid"
            )
            continue
        if not pt.active:
            first_error = first_error or _bad(
                f"{where}.code", "this procedure is no longer offered.", "business-rule"
            )
            continue
        return pt
    raise first_error


def _start(sr) -> datetime | None:
    if sr.occurrenceTiming is not None:
        raise _bad(f"{SR}.occurrenceTiming", "use occurrenceDateTime or occurrencePeriod.", "not-supported")
    value, element = sr.occurrenceDateTime, f"{SR}.occurrenceDateTime"
    if value is None and sr.occurrencePeriod is not None:
        value, element = sr.occurrencePeriod.start, f"{SR}.occurrencePeriod.start"
    if value is None:
        return None
    if not isinstance(value, datetime) or (isinstance(value, date) and not isinstance(value, datetime)):
        raise _bad(element, "a date and time with a time zone is required.")
    if timezone.is_naive(value):
        raise _bad(element, "a time zone is required.")
    return value


def _station(sr) -> Station | None:
    candidates = [(f"{SR}.performer[{i}]", r) for i, r in enumerate(sr.performer or [])]
    candidates += [(f"{SR}.locationReference[{i}]", r) for i, r in enumerate(sr.locationReference or [])]
    for where, reference in candidates:
        ident = reference.identifier
        if reference.type not in (None, "Device", "Location") or ident is None or not ident.value:
            continue
        if ident.system and ident.system != systems.ae_title():
            continue
        station = Station.objects.filter(ae_title=ident.value).first()
        if station is None:
            raise _bad(f"{where}.identifier.value", f"unknown station AE title {ident.value!r}.", "not-found")
        if not station.active:
            raise _bad(
                f"{where}.identifier.value", f"station {ident.value!r} is not active.", "business-rule"
            )
        return station
    return None


def _identifiers(sr) -> tuple[str, str | None]:
    placer, accession = "", None
    for i, ident in enumerate(sr.identifier or []):
        where = f"{SR}.identifier[{i}]"
        kind = systems.type_code({"type": ident.type.model_dump(mode="json")}) if ident.type else None
        if ident.system == systems.placer() or kind == "PLAC":
            if ident.system and ident.system != systems.placer():
                raise _bad(
                    f"{where}.system",
                    f"unknown placer system {ident.system!r} (this RIS accepts {systems.placer()!r}).",
                    "code-invalid",
                )
            if not ident.value:
                raise _bad(f"{where}.value", "the placer order number is empty.", "required")
            placer = ident.value
        elif ident.system == systems.accession() or kind == "ACSN":
            if ident.system and ident.system != systems.accession():
                raise _bad(f"{where}.system", f"unknown accession system {ident.system!r}.", "code-invalid")
            accession = ident.value or None  # the placer assigned it (SWF.b IPC)
    if not placer:
        raise _bad(
            f"{SR}.identifier",
            f"a placer order number is required (identifier with system {systems.placer()!r} or type PLAC).",
            "required",
        )
    return placer, accession


def order_request_from(sr) -> OrderRequest:
    """Map a validated R4 ServiceRequest to plain order values (422 naming the element otherwise)."""
    if sr.status not in STATUS_VALUESET:
        raise _bad(f"{SR}.status", f"unknown status {sr.status!r}.", "code-invalid")
    if sr.status != "active":
        raise _bad(f"{SR}.status", "only an active order can be placed.", "business-rule")
    if sr.intent not in INTENT_VALUESET:
        raise _bad(f"{SR}.intent", f"unknown intent {sr.intent!r}.", "code-invalid")
    if sr.intent not in ("order", "original-order"):
        raise _bad(f"{SR}.intent", "only intent 'order' (or 'original-order') is accepted.", "business-rule")
    if sr.doNotPerform:
        raise _bad(f"{SR}.doNotPerform", "a do-not-perform request cannot be scheduled.", "business-rule")
    priority = "ROUTINE"
    if sr.priority:
        if sr.priority not in PRIORITY_IN:
            raise _bad(f"{SR}.priority", f"unknown priority {sr.priority!r}.", "code-invalid")
        priority = PRIORITY_IN[sr.priority]
    placer, accession = _identifiers(sr)
    reasons = []
    for rc in sr.reasonCode or []:
        text = rc.text or next((c.display for c in rc.coding or [] if c.display), "")
        if text:
            reasons.append(text)
    physician = ""
    if sr.requester is not None and sr.requester.display:
        physician = sr.requester.display.strip()
    return OrderRequest(
        patient=_patient(sr),
        procedure_type=_procedure_type(sr),
        placer_order_number=placer,
        station=_station(sr),
        start=_start(sr),
        priority=priority,
        accession_number=accession,
        physician=physician,
        reason="; ".join(reasons),
        clinical_info="\n".join(n.text for n in sr.note or [] if n.text),
    )


def place_order(*, spec: OrderRequest, actor, request=None) -> RequestedProcedure:
    """The single call into the order service (switch point for orders awaiting booking)."""
    missing = []
    if spec.start is None:
        missing.append(f"{SR}.occurrenceDateTime")
    if spec.station is None:
        missing.append(f"{SR}.performer")
    if missing:
        raise Unprocessable(
            issues=[
                Issue(
                    "required",
                    f"{m}: required. Orders awaiting booking (no time or station) are not accepted yet; "
                    "give occurrenceDateTime and a performer Device (or locationReference Location) whose "
                    f"identifier ({systems.ae_title()}) is the station's AE title.",
                    [m],
                )
                for m in missing
            ]
        )
    order = scheduling_services.order_create(
        patient=spec.patient,
        procedure_type=spec.procedure_type,
        station=spec.station,
        start=spec.start,
        actor=actor,
        request=request,
        priority=spec.priority,
        referring_physician=spec.physician,
        requesting_physician=spec.physician,
        reason=spec.reason,
        clinical_info=spec.clinical_info,
        placer_order_number=spec.placer_order_number,
        accession_number=spec.accession_number,
        source="fhir",
    )
    return order.procedures.order_by("pk").first()


def _lock_placer(placer: str) -> None:
    """Serialise creates of one placer order number until commit (PostgreSQL advisory lock).

    SQLite needs none: its write transactions are serialised (IMMEDIATE mode, settings.py).
    """
    if connection.vendor != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(f"fhir-placer:{placer}".encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def application_error(exc: ApplicationError) -> FhirError:
    if exc.fields:
        issues = []
        for field, messages in exc.fields.items():
            element = FIELD_ELEMENTS.get(field, SR)
            for message in messages:
                issues.append(
                    Issue(
                        "conflict" if isinstance(exc, Conflict) else "invalid",
                        f"{element}: {message} ({exc.message})",
                        [element],
                    )
                )
    else:
        issues = [Issue("conflict" if isinstance(exc, Conflict) else "business-rule", exc.message, [])]
    return FhirError(issues=issues, status=409 if isinstance(exc, Conflict) else 422)


def service_request_create(*, sr, match, actor, request=None) -> tuple[RequestedProcedure, bool]:
    """Create the order unless ``match()`` (the If-None-Exist search, or None) finds it.

    Returns (procedure, created). 412 when the condition matches more than one request; 409
    when, without a condition, the placer order number is already known.
    """
    spec = order_request_from(sr)
    try:
        with transaction.atomic():
            _lock_placer(spec.placer_order_number)
            if match is not None:
                found = list(match()[:2])
                if len(found) > 1:
                    raise FhirError(
                        "If-None-Exist matches more than one ServiceRequest.",
                        status=412,
                        code="multiple-matches",
                    )
                if found:
                    return found[0], False
            elif RequestedProcedure.objects.filter(
                order__placer_order_number=spec.placer_order_number
            ).exists():
                raise FhirError(
                    f"A ServiceRequest with placer order number {spec.placer_order_number!r} exists; "
                    "use If-None-Exist for an idempotent create.",
                    expression=f"{SR}.identifier",
                    status=409,
                    code="duplicate",
                )
            return place_order(spec=spec, actor=actor, request=request), True
    except ApplicationError as exc:
        raise application_error(exc) from exc
