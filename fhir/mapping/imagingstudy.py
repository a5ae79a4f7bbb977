"""ImagingStudy <- imaging.Study/Series/Instance, with a contained Endpoint to our DICOMweb base."""

from __future__ import annotations

from datetime import datetime, time

from django.db.models import Prefetch, Q
from django.utils import timezone

from fhir.resources.R4B.imagingstudy import ImagingStudy as FhirImagingStudy
from imaging.models import Instance, Series, Study

from .. import systems
from ..search import Param, date_param_q, id_q, parse_token, reference_q
from .base import Context, ResourceType, clean, ref

ENDPOINT_ID = "dicomweb"


def endpoint(ctx: Context) -> dict:
    """The DICOMweb service (WADO-RS/QIDO-RS/STOW-RS base; append /studies/<uid>)."""
    return {
        "resourceType": "Endpoint",
        "id": ENDPOINT_ID,
        "status": "active",
        "connectionType": {
            "system": systems.ENDPOINT_CONNECTION_TYPE,
            "code": "dicom-wado-rs",
            "display": "DICOM WADO-RS",
        },
        "name": "RIS DICOMweb",
        "payloadType": [{"text": "DICOM"}],
        "payloadMimeType": ["application/dicom"],
        "address": ctx.site_url("/dicomweb"),
    }


def _started(study: Study) -> str | None:
    if not study.study_date:
        return None
    tm = (study.study_time or "").split(".")[0]
    if len(tm) >= 4 and tm.isdigit():
        try:
            t = time(int(tm[0:2]), int(tm[2:4]), int(tm[4:6]) if len(tm) >= 6 else 0)
        except ValueError:
            return study.study_date.isoformat()
        aware = timezone.make_aware(datetime.combine(study.study_date, t))
        return aware.isoformat()
    return study.study_date.isoformat()


def _identifier_q(raw: str, modifier: str | None) -> Q:
    token = parse_token(raw)
    if token.system == "" or not token.code:
        return Q(pk__in=[])
    uid = token.code.removeprefix("urn:oid:")
    if token.system == systems.DICOM_UID:
        return Q(study_instance_uid=uid)
    if token.system == systems.accession():
        return Q(accession_number=token.code)
    if token.system is None:
        return Q(study_instance_uid=uid) | Q(accession_number=token.code)
    return Q(pk__in=[])


def _modality_q(raw: str, modifier: str | None) -> Q:
    token = parse_token(raw)
    if token.system not in (None, systems.DCM) or not token.code:
        return Q(pk__in=[])
    return Q(pk__in=Series.objects.filter(modality=token.code).values("study_id"))


class ImagingStudyType(ResourceType):
    name = "ImagingStudy"
    model = FhirImagingStudy
    read_action = "imaging.view"
    audit_object_type = "study"
    ordering = ("pk",)
    params = {
        "_id": Param("_id", "token", "Logical id of the study.", id_q()),
        "identifier": Param(
            "identifier",
            "token",
            "Study Instance UID (urn:dicom:uid|urn:oid:<uid>) or Accession Number.",
            _identifier_q,
        ),
        "patient": Param(
            "patient",
            "reference",
            "The registered patient (Patient/<id>).",
            reference_q("patient_id", "patient", "Patient"),
            target="Patient",
        ),
        "basedon": Param(
            "basedon",
            "reference",
            "The ServiceRequest the study was linked to.",
            reference_q("requested_procedure_id", "basedon", "ServiceRequest"),
            target="ServiceRequest",
        ),
        "modality": Param("modality", "token", "Modality of a series (DCM|CT).", _modality_q),
        "started": Param(
            "started",
            "date",
            "Study date; prefixes eq, ge, gt, le, lt.",
            date_param_q("study_date", "started", is_date_field=True),
        ),
    }

    def queryset(self, user):
        return Study.objects.select_related("patient").prefetch_related(
            Prefetch("series", queryset=Series.objects.order_by("series_number", "id"))
        )

    def patient_pk(self, obj):
        return obj.patient_id

    def prepare(self, objs, ctx):
        if not ctx.detail:
            return
        series_ids = [s.pk for study in objs for s in study.series.all()]
        by_series: dict[int, list[Instance]] = {}
        for inst in (
            Instance.objects.filter(series_id__in=series_ids)
            .only("series_id", "sop_instance_uid", "sop_class_uid", "instance_number")
            .order_by("instance_number", "id")
        ):
            by_series.setdefault(inst.series_id, []).append(inst)
        for study in objs:
            for s in study.series.all():
                s.fhir_instances = by_series.get(s.pk, [])

    def to_fhir(self, study: Study, ctx: Context) -> dict:
        modalities = [m for m in (study.modalities or "").split("\\") if m]
        if study.patient_id:
            subject = ref("Patient", study.patient_id, study.patient.display_name)
        else:
            # Not (yet) reconciled to a registered patient: the DICOM Patient ID and name as received.
            subject = clean(
                {
                    "type": "Patient",
                    "identifier": {"value": study.dicom_patient_id} if study.dicom_patient_id else None,
                    "display": study.patient_name.replace("^", " ") or "unknown",
                }
            )
        identifiers = [systems.dicom_uid(study.study_instance_uid)]
        if study.accession_number:
            identifiers.append(
                {
                    "type": systems.identifier_type("ACSN", "Accession ID"),
                    "system": systems.accession(),
                    "value": study.accession_number,
                }
            )
        series = []
        for s in study.series.all():
            instances = getattr(s, "fhir_instances", None) if ctx.detail else None
            series.append(
                clean(
                    {
                        "uid": s.series_instance_uid,
                        "number": s.series_number,
                        "modality": {"system": systems.DCM, "code": s.modality or "OT"},
                        "description": s.description,
                        "numberOfInstances": s.num_instances,
                        "endpoint": [{"reference": f"#{ENDPOINT_ID}"}],
                        "bodySite": {"display": s.body_part} if s.body_part else None,
                        "instance": [
                            clean(
                                {
                                    "uid": i.sop_instance_uid,
                                    "sopClass": {
                                        "system": systems.RFC3986,
                                        "code": f"urn:oid:{i.sop_class_uid}",
                                    },
                                    "number": i.instance_number,
                                }
                            )
                            for i in instances or []
                        ],
                    }
                )
            )
        return clean(
            {
                "resourceType": "ImagingStudy",
                "id": str(study.pk),
                "meta": {"lastUpdated": timezone.localtime(study.updated_at).isoformat()},
                "contained": [endpoint(ctx)],
                "identifier": identifiers,
                "status": "available",
                "modality": [{"system": systems.DCM, "code": m} for m in modalities],
                "subject": subject,
                "started": _started(study),
                "basedOn": [ref("ServiceRequest", study.requested_procedure_id)]
                if study.requested_procedure_id
                else None,
                "referrer": {"display": study.referring_physician.replace("^", " ")}
                if study.referring_physician
                else None,
                "endpoint": [{"reference": f"#{ENDPOINT_ID}"}],
                "numberOfSeries": study.num_series,
                "numberOfInstances": study.num_instances,
                "description": study.description,
                "series": series,
            }
        )
