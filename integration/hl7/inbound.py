"""Inbound HL7 v2: one function from raw bytes (and the peer's address) to ACK bytes.

AA is answered only after the change has committed; AE (with ERR naming the field) for
application errors — nothing is changed; AR for unparsable or unsupported messages and
unknown senders. A repeated MSH-10 from the same sender gets the original ACK and is not
applied again. Every message is logged once in ``InterfaceMessage`` and audited once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import Outcome
from audit.services import audit_record
from registration.models import Patient
from registration.names import has_han
from registration.services import patient_merge, patient_register, patient_update
from ris.errors import ApplicationError, NotFound

from ..models import CODECS, Direction, InterfaceMessage, LogStatus, Sender
from ..services import orders as placer
from . import codec
from .codec import HL7Reject, get

logger = logging.getLogger(__name__)

ADT_REGISTER = {"A01", "A04", "A05", "A08"}
ORDER_TYPES = {("ORM", "O01"), ("OMI", "O23")}
PRIORITIES = {"S": "STAT", "A": "HIGH", "P": "HIGH", "T": "HIGH", "R": "ROUTINE", "C": "MEDIUM"}
SEX = {"M": "M", "F": "F", "O": "O", "A": "O", "U": "", "N": ""}

# Domain field names (service errors) -> HL7 location (segment^sequence^field).
PATIENT_FIELDS = {
    "patient_id": "PID^1^3",
    "issuer": "PID^1^3",
    "family_name": "PID^1^5",
    "given_name": "PID^1^5",
    "ideographic_family": "PID^1^5",
    "ideographic_given": "PID^1^5",
    "phonetic_family": "PID^1^5",
    "middle_name": "PID^1^5",
    "birth_date": "PID^1^7",
    "sex": "PID^1^8",
    "address": "PID^1^11",
    "phone": "PID^1^13",
}
ORDER_FIELDS = {
    "procedure_code": "OBR^1^4",
    "procedure_type": "OBR^1^4",
    "placer_order_number": "ORC^1^2",
    "order_control": "ORC^1^1",
    "start": "ORC^1^7",
    "station": "IPC^1^10",
    "station_ae_title": "IPC^1^10",
    "modality": "OBR^1^24",
    "priority": "ORC^1^7",
    "reason": "OBR^1^31",
    "clinical_info": "OBR^1^13",
    "referring_physician": "PV1^1^8",
    "requesting_physician": "ORC^1^12",
    "requesting_service": "PV1^1^3",
    "admission_id": "PV1^1^19",
    "accession_number": "IPC^1^1",
    "requested_procedure_id": "IPC^1^2",
    "study_instance_uid": "IPC^1^3",
    "sps_id": "IPC^1^4",
    "patient": "PID^1^3",
}


class HL7Error(ApplicationError):
    """An application error answered AE, with the HL7 location and table 0357 code."""

    def __init__(self, message: str, *, location: str, code: str = "207"):
        super().__init__(message)
        self.location = location
        self.code = code


@dataclass
class Result:
    ack: bytes
    status: str
    log_id: int | None = None


def _from_app_error(exc: ApplicationError, mapping: dict, default: str) -> HL7Error:
    if isinstance(exc, HL7Error):
        return exc
    field = next(iter(exc.fields or {}), "")
    location = mapping.get(field, default)
    detail = ""
    if exc.fields and field:
        detail = "; ".join(str(m) for m in exc.fields[field])
    text = f"{exc} {detail}".strip() if detail and detail not in str(exc) else str(exc)
    code = (
        "204"
        if isinstance(exc, NotFound)
        else ("103" if field in ("procedure_code", "procedure_type") else "207")
    )
    return HL7Error(text, location=location, code=code)


# ---------------------------------------------------------------------------------------
# Entry point


def handle(raw: bytes, *, peer: str = "") -> Result:
    """Process one message (without MLLP framing) and return the ACK to send."""
    now = timezone.now()
    try:
        msh = codec.sniff_msh(raw)
    except HL7Reject as exc:
        return _reject({}, raw, exc, peer=peer, now=now, charset="")
    sender = Sender.objects.filter(
        application=msh["sending_application"], facility=msh["sending_facility"], active=True
    ).first()
    default_codec = CODECS.get(sender.default_charset, "utf-8") if sender else "utf-8"
    charset = msh["charset"]
    try:
        text = codec.decode(raw, charset=charset, default_codec=default_codec)
        msg = codec.parse(text)
    except HL7Reject as exc:
        return _reject(msh, raw, exc, peer=peer, now=now, charset=charset, sender=sender)
    if sender is None or (sender.host and sender.host != peer):
        audit_record(
            action="interface.unknown_sender",
            object_type="hl7_sender",
            object_id=f"{msh['sending_application']}/{msh['sending_facility']}"[:64],
            outcome=Outcome.FAILURE,
            source_ip=peer or None,
            detail={"message_type": msh["message_type"][:16], "control_id": msh["control_id"][:64]},
        )
        exc = HL7Reject("Unknown sending application/facility (MSH-3/MSH-4).", code="207", location="MSH^1^3")
        return _reject(msh, raw, exc, peer=peer, now=now, charset=charset, audit=False, text=text)
    if not msh["control_id"]:
        exc = HL7Reject("The message control ID (MSH-10) is missing.", code="101", location="MSH^1^10")
        return _reject(msh, raw, exc, peer=peer, now=now, charset=charset, sender=sender, text=text)
    original = _original(sender, msh["control_id"])
    if original is not None:
        return _duplicate(original, msh, text, peer=peer, now=now, charset=charset)

    mtype = get(msg, "MSH", 9, 1)
    trigger = get(msg, "MSH", 9, 2)
    handler = _handler_for(mtype, trigger)
    if handler is None:
        exc = HL7Reject(
            f"Unsupported message type {mtype}^{trigger}.",
            code="200" if mtype not in ("ADT", "ORM", "OMI") else "201",
            location="MSH^1^9",
        )
        return _reject(msh, raw, exc, peer=peer, now=now, charset=charset, sender=sender, text=text)

    ack_id = f"A{msh['control_id']}"[:20]
    source = f"hl7:{sender.application}"[:32]
    try:
        with transaction.atomic():
            patient = handler(msg, sender=sender, source=source)
            ack = codec.build_ack(code="AA", msh=msh, control_id=ack_id)
            log = _log(
                sender=sender,
                msh=msh,
                status=LogStatus.AA,
                text=text,
                ack=ack,
                peer=peer,
                now=now,
                charset=charset,
                patient=patient,
            )
            _audit(log, sender, peer)
    except IntegrityError:
        # A concurrent copy of the same control ID committed first: answer as it was answered.
        original = _original(sender, msh["control_id"])
        if original is not None:
            return _duplicate(original, msh, text, peer=peer, now=now, charset=charset)
        exc = HL7Error("An identifier in the message is already in use.", location="", code="205")
        return _error(msh, text, exc, sender=sender, peer=peer, now=now, charset=charset)
    except HL7Error as exc:
        return _error(msh, text, exc, sender=sender, peer=peer, now=now, charset=charset)
    except ApplicationError as exc:
        mapping = PATIENT_FIELDS if mtype == "ADT" else {**PATIENT_FIELDS, **ORDER_FIELDS}
        default = "PID^1^3" if mtype == "ADT" else "ORC^1^1"
        return _error(
            msh,
            text,
            _from_app_error(exc, mapping, default),
            sender=sender,
            peer=peer,
            now=now,
            charset=charset,
        )
    return Result(ack=_encode(ack, charset, default_codec), status=LogStatus.AA, log_id=log.pk)


def _encode(ack: str, charset: str, default_codec: str = "utf-8") -> bytes:
    try:
        codec_name = codec.codec_for(charset) or default_codec
    except HL7Reject:
        codec_name = "ascii"
    return ack.encode(codec_name, errors="replace")


def _original(sender, control_id: str):
    return (
        InterfaceMessage.objects.filter(
            direction=Direction.INBOUND, sender=sender, control_id=control_id[:64]
        )
        .exclude(status__in=[LogStatus.DUPLICATE, LogStatus.AR])
        .only("pk", "ack", "status")
        .first()
    )


def _duplicate(original, msh, text, *, peer, now, charset) -> Result:
    sender = Sender.objects.get(pk=original.sender_id) if hasattr(original, "sender_id") else None
    log = _log(
        sender=sender,
        msh=msh,
        status=LogStatus.DUPLICATE,
        text=text,
        ack=original.ack,
        peer=peer,
        now=now,
        charset=charset,
        error=f"Repeated control ID; original answered {original.status}.",
    )
    _audit(log, sender, peer)
    return Result(ack=_encode(original.ack, charset), status=LogStatus.DUPLICATE, log_id=log.pk)


def _log(*, sender, msh, status, text, ack, peer, now, charset, error="", error_field="", patient=None):
    return InterfaceMessage.objects.create(
        direction=Direction.INBOUND,
        sender=sender,
        sending_application=msh.get("sending_application", "")[:64],
        sending_facility=msh.get("sending_facility", "")[:64],
        peer=peer[:64],
        message_type=msh.get("message_type", "").replace(msh.get("encoding", "^")[0], "^")[:16],
        control_id=msh.get("control_id", "")[:64],
        status=status,
        error=error[:255],
        error_field=error_field[:32],
        charset=(charset or "")[:16],
        raw=text,
        ack=ack,
        patient=patient,
        received_at=now,
        processed_at=timezone.now(),
    )


def _audit(log: InterfaceMessage, sender, peer: str) -> None:
    audit_record(
        action="interface.message_in",
        object_type="hl7_message",
        object_id=log.pk,
        patient_id=log.patient_id,
        outcome=Outcome.SUCCESS if log.status in (LogStatus.AA, LogStatus.DUPLICATE) else Outcome.FAILURE,
        source_ae=(sender.application if sender else log.sending_application)[:16],
        source_ip=peer or None,
        detail={
            "type": log.message_type,
            "control_id": log.control_id,
            "status": log.status,
            **({"error": log.error[:120]} if log.error else {}),
        },
    )


def _reject(msh, raw, exc: HL7Reject, *, peer, now, charset, sender=None, audit=True, text=None) -> Result:
    ack = codec.build_ack(
        code="AR",
        msh=msh,
        text=str(exc),
        error_code=exc.code,
        location=exc.location,
        control_id=f"A{msh.get('control_id', '')}"[:20] or "ARIS",
    )
    log = _log(
        sender=sender,
        msh=msh,
        status=LogStatus.AR,
        text=text if text is not None else raw.decode("latin-1"),
        ack=ack,
        peer=peer,
        now=now,
        charset=charset,
        error=str(exc),
        error_field=exc.location,
    )
    if audit:
        _audit(log, sender, peer)
    else:
        # The unknown-sender audit event was written; link nothing more.
        pass
    logger.info("hl7 in: AR %s from %s (%s)", msh.get("message_type", "?"), peer, exc.code)
    return Result(ack=_encode(ack, charset if charset else ""), status=LogStatus.AR, log_id=log.pk)


def _error(msh, text, exc: HL7Error, *, sender, peer, now, charset) -> Result:
    ack = codec.build_ack(
        code="AE",
        msh=msh,
        text=str(exc),
        error_code=exc.code,
        location=exc.location,
        control_id=f"A{msh['control_id']}"[:20],
    )
    with transaction.atomic():
        log = _log(
            sender=sender,
            msh=msh,
            status=LogStatus.AE,
            text=text,
            ack=ack,
            peer=peer,
            now=now,
            charset=charset,
            error=str(exc),
            error_field=exc.location,
        )
        _audit(log, sender, peer)
    logger.info("hl7 in: AE %s at %s (%s)", log.message_type, exc.location, exc.code)
    return Result(
        ack=_encode(ack, charset, CODECS.get(sender.default_charset, "utf-8")),
        status=LogStatus.AE,
        log_id=log.pk,
    )


def _handler_for(mtype: str, trigger: str):
    if mtype == "ADT" and trigger in ADT_REGISTER:
        return handle_adt_register
    if mtype == "ADT" and trigger == "A40":
        return handle_adt_merge
    if (mtype, trigger) in ORDER_TYPES:
        return handle_order
    return None


# ---------------------------------------------------------------------------------------
# Patients


def _hl7_date(value: str, location: str) -> date | None:
    if not value:
        return None
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        raise HL7Error(f"Invalid date {value!r}.", location=location, code="102") from None


def _hl7_datetime(value: str, location: str) -> datetime | None:
    if not value:
        return None
    digits = value.split("+")[0].split("-")[0].split(".")[0]
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d%H"):
        try:
            dt = datetime.strptime(digits, fmt)
        except ValueError:
            continue
        return timezone.make_aware(dt) if timezone.is_naive(dt) else dt
    raise HL7Error(f"Invalid date/time {value!r}.", location=location, code="102")


def patient_identifier(msg, segment: str = "PID", field: int = 3) -> tuple[str, str, list[dict]]:
    """(id, issuer, other ids) from a CX list: the first repetition is the patient's ID in the
    namespace of its assigning authority (CX-4), the RIS default issuer when none is given."""
    reps = max(1, codec.repetitions(msg, segment, field))
    ids = []
    for r in range(1, reps + 1):
        value = get(msg, segment, field, 1, r)
        if value:
            ids.append(
                {
                    "id": value,
                    "issuer": get(msg, segment, field, 4, r) or settings.RIS_ISSUER_OF_PATIENT_ID,
                    "type": get(msg, segment, field, 5, r),
                }
            )
    if not ids:
        raise HL7Error("The patient identifier is missing.", location=f"{segment}^1^{field}", code="101")
    first = ids[0]
    return first["id"], first["issuer"], ids[1:]


def patient_fields(msg) -> dict:
    """Demographics from PID-5/7/8/11/13. A name in Chinese characters goes to the ideographic
    group and the alphabetic group is derived as pinyin (registration.normalise_name_fields)."""
    fields: dict = {}
    for r in range(1, max(1, codec.repetitions(msg, "PID", 5)) + 1):
        family, given, middle = get(msg, "PID", 5, 1, r), get(msg, "PID", 5, 2, r), get(msg, "PID", 5, 3, r)
        if not (family or given):
            continue
        if has_han(family) or has_han(given):
            fields.setdefault("ideographic_family", family)
            fields.setdefault("ideographic_given", given)
        else:
            fields.setdefault("family_name", family)
            fields.setdefault("given_name", given)
            if middle:
                fields.setdefault("middle_name", middle)
    if (
        "ideographic_family" in fields
        and not fields.get("ideographic_given")
        and len(fields["ideographic_family"]) > 1
    ):
        fields["chinese_name"] = fields.pop("ideographic_family")
        fields.pop("ideographic_given", None)
    birth = _hl7_date(get(msg, "PID", 7), "PID^1^7")
    if birth is not None:
        fields["birth_date"] = birth
    sex = get(msg, "PID", 8).upper()
    if sex:
        if sex not in SEX:
            raise HL7Error(f"Unknown administrative sex {sex!r}.", location="PID^1^8", code="103")
        fields["sex"] = SEX[sex]
    address = " ".join(p for p in (get(msg, "PID", 11, c) for c in (1, 2, 3, 4, 5, 6)) if p)
    if address:
        fields["address"] = address[:255]
    phone = get(msg, "PID", 13, 1) or get(msg, "PID", 13, 12)
    if phone:
        fields["phone"] = phone[:32]
    return fields


def _find_patient(patient_id: str, issuer: str) -> Patient | None:
    patient = Patient.objects.filter(patient_id=patient_id, issuer=issuer).first()
    while patient is not None and patient.merged_into_id:
        patient = Patient.objects.get(pk=patient.merged_into_id)
    return patient


def register_or_update(msg, *, source: str) -> Patient:
    patient_id, issuer, others = patient_identifier(msg)
    fields = patient_fields(msg)
    if others:
        fields["other_ids"] = others
    patient = Patient.objects.select_for_update().filter(patient_id=patient_id, issuer=issuer).first()
    if patient is None:
        return patient_register(actor=None, patient_id=patient_id, issuer=issuer, **fields)
    if patient.merged_into_id:
        raise HL7Error("This patient was merged into another record.", location="PID^1^3", code="204")
    if "chinese_name" in fields or "ideographic_family" in fields:
        # A new Chinese name replaces the derived pinyin as well.
        fields.setdefault("family_name", "")
        fields.setdefault("given_name", "")
    return patient_update(patient=patient, actor=None, **fields)


def handle_adt_register(msg, *, sender, source) -> Patient:
    return register_or_update(msg, source=source)


def handle_adt_merge(msg, *, sender, source) -> Patient:
    """ADT^A40: PID-3 is the surviving patient, MRG-1 the one merged into it (IHE PAM/PIR)."""
    target_id, target_issuer, _ = patient_identifier(msg)
    source_id, source_issuer, _ = patient_identifier(msg, "MRG", 1)
    target = Patient.objects.filter(patient_id=target_id, issuer=target_issuer).first()
    if target is None:
        raise HL7Error("Unknown surviving patient.", location="PID^1^3", code="204")
    prior = Patient.objects.filter(patient_id=source_id, issuer=source_issuer).first()
    if prior is None:
        raise HL7Error("Unknown patient to merge (MRG-1).", location="MRG^1^1", code="204")
    try:
        return patient_merge(source=prior, target=target, actor=None)
    except ApplicationError as exc:
        raise HL7Error(str(exc), location="MRG^1^1", code="207") from None


# ---------------------------------------------------------------------------------------
# Orders


def _pn(msg, segment, field) -> str:
    """An XCN (id^family^given^middle) as a DICOM PN (family^given^middle)."""
    family, given, middle = (
        get(msg, segment, field, 2),
        get(msg, segment, field, 3),
        get(msg, segment, field, 4),
    )
    parts = [family, given, middle]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)[:64]


def external_order_from(msg, *, sender) -> tuple[str, placer.ExternalOrder]:
    control = get(msg, "ORC", 1).upper()
    number = get(msg, "ORC", 2, 1) or get(msg, "OBR", 2, 1)
    authority = get(msg, "ORC", 2, 2) or get(msg, "OBR", 2, 2) or sender.placer_authority
    if not number:
        raise HL7Error("The placer order number is missing.", location="ORC^1^2", code="101")
    start_raw = get(msg, "TQ1", 7) or get(msg, "ORC", 7, 4) or get(msg, "OBR", 27, 4)
    start = _hl7_datetime(start_raw, "TQ1^1^7" if get(msg, "TQ1", 7) else "ORC^1^7")
    priority_code = (
        get(msg, "TQ1", 9) or get(msg, "ORC", 7, 6) or get(msg, "OBR", 27, 6) or get(msg, "OBR", 5) or "R"
    ).upper()[:1]
    if priority_code not in PRIORITIES:
        raise HL7Error(f"Unknown priority {priority_code!r}.", location="ORC^1^7", code="103")
    location = get(msg, "PV1", 3, 1) or get(msg, "ORC", 13, 1)
    data = placer.ExternalOrder(
        placer_order_number=number[:64],
        placer_authority=authority[:64],
        procedure_code=get(msg, "OBR", 4, 1) or get(msg, "IPC", 7, 1),
        coding_scheme="",
        priority=PRIORITIES[priority_code],
        reason=(get(msg, "OBR", 31, 2) or get(msg, "OBR", 31, 1))[:64],
        clinical_info=get(msg, "OBR", 13),
        referring_physician=_pn(msg, "PV1", 8) or _pn(msg, "OBR", 16),
        requesting_physician=_pn(msg, "ORC", 12) or _pn(msg, "OBR", 16),
        requesting_service=location[:64],
        admission_id=get(msg, "PV1", 19, 1)[:64],
        accession_number=get(msg, "IPC", 1, 1),
        requested_procedure_id=get(msg, "IPC", 2, 1),
        study_instance_uid=get(msg, "IPC", 3, 1),
        sps_id=get(msg, "IPC", 4, 1),
        station_ae_title=get(msg, "IPC", 10, 1),
        modality=get(msg, "IPC", 6, 1) or get(msg, "OBR", 24),
        start=start,
        ordered_at=_hl7_datetime(get(msg, "ORC", 9), "ORC^1^9"),
    )
    return control, data


def handle_order(msg, *, sender, source) -> Patient:
    control, data = external_order_from(msg, sender=sender)
    if control == "NW":
        patient = register_or_update(msg, source=source)
        try:
            placer.external_order_place(patient=patient, data=data, source=source)
        except placer.DuplicatePlacerOrder:
            raise HL7Error(
                "An order with this placer order number already exists.", location="ORC^1^2", code="205"
            ) from None
        return patient
    if control in ("CA", "DC", "XO"):
        order = placer.order_get_by_placer(
            placer_authority=data.placer_authority, placer_order_number=data.placer_order_number
        )
        if order is None:
            raise HL7Error("Unknown placer order number.", location="ORC^1^2", code="204")
        reason = get(msg, "ORC", 16, 2) or get(msg, "ORC", 16, 1)
        if control == "CA":
            placer.external_order_cancel(
                placer_authority=data.placer_authority,
                placer_order_number=data.placer_order_number,
                reason=reason,
                source=source,
            )
        elif control == "DC":
            placer.external_order_discontinue(
                placer_authority=data.placer_authority,
                placer_order_number=data.placer_order_number,
                reason=reason,
                source=source,
            )
        else:
            placer.external_order_change(data=data, source=source)
        return order.patient
    raise HL7Error(f"Unsupported order control {control or '(empty)'!r}.", location="ORC^1^1", code="103")
