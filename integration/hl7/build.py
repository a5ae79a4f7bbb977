"""Outbound messages: ORU^R01 (reports) and ORM^O01 / OMI^O23 (order status to the placer).

Values are escaped with python-hl7 (delimiters; other characters are written as they are and
encoded per the destination's MSH-18). Field use is listed in docs/integration.md.
"""

from __future__ import annotations

import base64

from django.conf import settings
from django.utils import timezone

from ..models import CODECS, Destination, MessageType, OutboxMessage
from .codec import escape, hl7_timestamp

ORDER_STATUS = {  # event -> (ORC-1, ORC-5) per HL7 tables 0119/0038, IHE RAD-3/RAD-4
    "scheduled": ("SC", "SC"),
    "arrived": ("SC", "IP"),
    "started": ("SC", "IP"),
    "completed": ("SC", "CM"),
    "cancelled": ("OC", "CA"),
    "discontinued": ("OD", "DC"),
}
RESULT_STATUS = {"preliminary": "P", "final": "F", "amended": "C"}
SEX = {"M": "M", "F": "F", "O": "O"}


def _e(value) -> str:
    return escape(None, str(value or ""))


def _join(fields: list[str]) -> str:
    while fields and fields[-1] == "":
        fields.pop()
    return "|".join(fields)


def _msh(dest: Destination, msg: OutboxMessage, mtype: str, version: str) -> str:
    fields = [
        "MSH",
        "^~\\&",
        _e(settings.RIS_HL7_APPLICATION),
        _e(settings.RIS_HL7_FACILITY),
        _e(dest.receiving_application),
        _e(dest.receiving_facility),
        hl7_timestamp(),
        "",
        mtype,
        msg.control_id,
        "P",
        version,
        "",
        "",
        "AL",
        "NE",
        "",
        dest.charset,
    ]
    return _join(fields)


def _pid(patient, dest: Destination) -> str:
    names = []
    if patient.family_name or patient.given_name:
        names.append(
            f"{_e(patient.family_name)}^{_e(patient.given_name)}^{_e(patient.middle_name)}".rstrip("^")
            + "^^^^L"
        )
    if (patient.ideographic_family or patient.ideographic_given) and CODECS.get(dest.charset) in (
        "utf-8",
        "gb18030",
    ):
        names.append(f"{_e(patient.ideographic_family)}^{_e(patient.ideographic_given)}^^^^^L^I")
    fields = [
        "PID",
        "1",
        "",
        f"{_e(patient.patient_id)}^^^{_e(patient.issuer)}^MR",
        "",
        "~".join(names),
        "",
        patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
        SEX.get(patient.sex, "U"),
    ]
    return _join(fields)


def _ei(number: str, namespace: str) -> str:
    return f"{_e(number)}^{_e(namespace)}" if number else ""


def _order_ids(order) -> tuple[str, str]:
    placer = _ei(order.placer_order_number, order.placer_authority)
    filler = _ei(order.filler_order_number or order.accession_number, settings.RIS_HL7_APPLICATION)
    return placer, filler


def _pn_xcn(pn: str) -> str:
    if not pn:
        return ""
    parts = pn.split("^")
    return "^" + "^".join(_e(p) for p in parts[:3])


def build(msg: OutboxMessage) -> str:
    dest = msg.destination
    if msg.message_type == MessageType.ORU_R01:
        return build_oru(msg, dest)
    return build_order_status(msg, dest)


def build_order_status(msg: OutboxMessage, dest: Destination) -> str:
    from scheduling.models import RequestedProcedure

    proc = (
        RequestedProcedure.objects.select_related("order__patient", "procedure_type")
        .prefetch_related("steps__station")
        .get(pk=msg.facts["procedure_id"])
    )
    order, patient, ptype = proc.order, proc.order.patient, proc.procedure_type
    step = next(iter(proc.steps.all()), None)
    orc1, orc5 = ORDER_STATUS.get(msg.event, ("SC", "SC"))
    placer, filler = _order_ids(order)
    start = hl7_timestamp(step.start) if step is not None and step.start else ""
    omi = msg.message_type == MessageType.OMI_O23
    segs = [
        _msh(dest, msg, "OMI^O23^OMI_O23" if omi else "ORM^O01^ORM_O01", "2.5.1" if omi else "2.3.1"),
        _pid(patient, dest),
        _join(
            [
                "PV1",
                "1",
                "O",
                _e(order.requesting_service),
                "",
                "",
                "",
                "",
                _pn_xcn(order.referring_physician),
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                _e(order.admission_id),
            ]
        ),
        _join(
            [
                "ORC",
                orc1,
                placer,
                filler,
                "",
                orc5,
                "",
                "" if omi else f"^^^{start}^^{_priority(order.priority)}",
                "",
                hl7_timestamp(),
                "",
                "",
                _pn_xcn(order.requesting_physician),
            ]
        ),
    ]
    if omi:
        segs.append(_join(["TQ1", "1", "", "", "", "", "", start, "", _priority(order.priority)]))
    code = f"{_e(ptype.code_value)}^{_e(ptype.code_meaning)}^{_e(ptype.coding_scheme)}"
    obr = ["OBR", "1", placer, filler, code] + [""] * 14
    obr[18] = _e(order.accession_number)  # OBR-18 placer field 1: accession (IHE RAD-4)
    obr += [
        _e(proc.requested_procedure_id),
        _e(step.sps_id if step else ""),
        "",
        "",
        _e(step.modality if step else ptype.modality),
    ]
    segs.append(_join(obr))
    if omi:
        segs.append(
            _join(
                [
                    "IPC",
                    _e(order.accession_number),
                    _e(proc.requested_procedure_id),
                    _e(proc.study_instance_uid),
                    _e(step.sps_id if step else ""),
                    _e(step.modality if step else ptype.modality),
                    "",
                    "",
                    _e(step.station.name if step and step.station else ""),
                    _e(step.station.room if step and step.station else ""),
                    _e(step.station.ae_title if step and step.station else ""),
                ]
            )
        )
    return "\r".join(segs) + "\r"


def _priority(priority: str) -> str:
    return {"STAT": "S", "HIGH": "A", "ROUTINE": "R", "MEDIUM": "R", "LOW": "R"}.get(priority, "R")


def build_oru(msg: OutboxMessage, dest: Destination) -> str:
    from reports.models import Report

    report = Report.objects.select_related(
        "requested_procedure__order__patient", "requested_procedure__procedure_type", "signed_by", "author"
    ).get(pk=msg.facts["report_id"])
    proc = report.requested_procedure
    order, patient, ptype = proc.order, proc.order.patient, proc.procedure_type
    version = (
        report.versions.filter(number=msg.facts.get("version")).first() if msg.facts.get("version") else None
    )
    version = version or report.versions.order_by("-number").first()
    findings = version.findings if version else report.findings
    impression = version.impression if version else report.impression
    status = RESULT_STATUS.get(msg.event, "F")
    critical = report.critical_results.exists()
    flag = "AA" if critical else ""
    placer, filler = _order_ids(order)
    observed = hl7_timestamp(proc.started_at or proc.ended_at) if (proc.started_at or proc.ended_at) else ""
    reported = hl7_timestamp(report.amended_at or report.signed_at or report.submitted_at or timezone.now())
    interpreter = report.signed_by or report.author
    code = f"{_e(ptype.code_value)}^{_e(ptype.code_meaning)}^{_e(ptype.coding_scheme)}"
    obr = ["OBR", "1", placer, filler, code, "", "", observed] + [""] * 8
    obr += [
        _pn_xcn(order.referring_physician),
        "",
        _e(order.accession_number),
        "",
        "",
        "",
        reported,
        "",
        _e(ptype.modality),
        status,
    ]
    obr += ["", "", "", "", "", "", "", f"{_e(interpreter.get_username()) if interpreter else ''}"]
    segs = [
        _msh(dest, msg, "ORU^R01^ORU_R01", "2.5.1"),
        _pid(patient, dest),
        _join(["ORC", "RE", placer, filler, "", "CM"]),
        _join(obr),
    ]
    n = 0

    def obx(value_type, ident, value, *, abnormal=""):
        nonlocal n
        n += 1
        segs.append(_join(["OBX", str(n), value_type, ident, "", value, "", "", abnormal, "", "", status]))

    obx("TX", "59776-5^Findings^LN", _e(findings), abnormal=flag)
    obx("TX", "19005-8^Impression^LN", _e(impression), abnormal=flag)
    for add in report.addenda.order_by("number"):
        obx("TX", f"ADD{add.number}^Addendum {add.number}^99RIS", _e(add.text))
    if dest.include_pdf and report.is_signed:
        from reports.pdf import render_report_pdf

        data = base64.b64encode(render_report_pdf(report)).decode("ascii")
        obx("ED", "PDF^Report PDF^99RIS", f"^application^pdf^Base64^{data}")
    return "\r".join(segs) + "\r"
