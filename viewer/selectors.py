"""Reads for the viewer: which study a UID names, its priors, and the image manifest.

The manifest is one query over imaging's index (Instance ⨝ Series ⨝ Study): what the browser
needs to order slices and build a volume before any pixel arrives (Image Position/Orientation,
Pixel Spacing, rescale, window) plus the WADO-URI address of each object. Whether a series can
be a volume reuses the series QC that imaging computes (``imaging.qc``).
"""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext as _

from imaging.models import Instance, Study
from imaging.qc import slice_geometry
from ris.roles import Role, user_roles

VOLUME_MODALITIES = {"CT", "MR", "PT", "NM"}
ORIENTATION_TOLERANCE = 1e-3


def study_resolve(*, uid: str) -> Study | None:
    """The study with this Study Instance UID, or the one linked to the order that assigned it.

    A modality that ignored the worklist's UID still has its images found from the order's.
    """
    return (
        Study.objects.select_related(
            "patient", "requested_procedure__order", "requested_procedure__procedure_type"
        )
        .filter(Q(study_instance_uid=uid) | Q(requested_procedure__study_instance_uid=uid))
        .order_by("-study_instance_uid")  # an exact match and a linked one: deterministic
        .first()
    )


def study_visible_to(*, user, study: Study) -> bool:
    """Object scope: a technologist with a modality scope sees only those modalities."""
    roles = user_roles(user)
    if roles != {Role.TECHNOLOGIST}:
        return True
    profile = getattr(user, "ris_profile", None)
    scope = profile.modality_list if profile else []
    if not scope:
        return True
    modalities = {m for m in study.modalities.upper().split("\\") if m}
    return bool(modalities & set(scope)) or not modalities


def study_priors(*, study: Study, limit: int = 20) -> list[Study]:
    """Other studies of the same patient (registered patient, else Patient ID + issuer), newest first."""
    if study.patient_id:
        q = Q(patient_id=study.patient_id)
    elif study.dicom_patient_id:
        q = Q(dicom_patient_id=study.dicom_patient_id, issuer_of_patient_id=study.issuer_of_patient_id)
    else:
        return []
    return list(
        Study.objects.filter(q)
        .exclude(pk=study.pk)
        .only("study_instance_uid", "study_date", "description", "modalities", "num_instances")
        .order_by("-study_date", "-id")[:limit]
    )


def _normal(orientation):
    r, c = orientation[:3], orientation[3:]
    return [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]


def volume_check(*, modality: str, qc: dict | None, instances: list[dict]) -> tuple[bool, str]:
    """Pure function: can these single-frame slices be one volume? (ok, reason when not).

    Uses the QC geometry imaging stored for the series when it describes the same slices;
    otherwise computes it with the same function (``imaging.qc.slice_geometry``).
    """
    if modality not in VOLUME_MODALITIES:
        return False, _("MPR is offered for CT, MR, PET and NM series (this series is %(m)s).") % {
            "m": modality or "?"
        }
    if any((i["frames"] or 1) > 1 for i in instances):
        return False, _("The series holds multi-frame objects; they are shown frame by frame.")
    if len(instances) < 3:
        return False, _("A volume needs at least 3 slices (this series has %(n)d).") % {"n": len(instances)}
    if any(not i["position"] or not i["orientation"] or not i["spacing"] for i in instances):
        return False, _("Some slices lack Image Position, Image Orientation or Pixel Spacing.")
    first = instances[0]
    if any(i["rows"] != first["rows"] or i["columns"] != first["columns"] for i in instances):
        return False, _("The slices do not all have the same matrix size.")
    if any(
        any(
            abs(a - b) > ORIENTATION_TOLERANCE
            for a, b in zip(i["orientation"], first["orientation"], strict=False)
        )
        for i in instances
    ):
        return False, _("The slices do not all have the same orientation.")
    if any(
        any(
            abs(float(a) - float(b)) > ORIENTATION_TOLERANCE
            for a, b in zip(i["spacing"], first["spacing"], strict=False)
        )
        for i in instances
    ):
        return False, _("The slices do not all have the same pixel spacing.")
    geometry = (qc or {}).get("geometry") or {}
    if geometry.get("slices") != len(instances) or "consistent" not in geometry:
        geometry = slice_geometry([i["position"] for i in instances], first["orientation"])
    if geometry.get("error"):
        return False, _("Image Orientation (Patient) is degenerate.")
    if geometry.get("duplicate_positions"):
        return False, _("%(n)d slices share a position with another slice.") % {
            "n": geometry["duplicate_positions"]
        }
    if geometry.get("gaps"):
        gap = geometry["gaps"][0]
        return False, _("Slice gap of %(size)s mm (%(missing)d slices missing) at %(at)s mm.") % {
            "size": gap["size_mm"],
            "missing": gap["missing"],
            "at": gap["after_mm"],
        }
    if geometry.get("irregular_steps") or not geometry.get("consistent", False):
        return False, _("Slice spacing is irregular (%(min)s to %(max)s mm).") % {
            "min": geometry.get("min_step_mm"),
            "max": geometry.get("max_step_mm"),
        }
    return True, ""


def _sort_key(item: dict):
    if item["position"] and item["orientation"]:
        n = _normal(item["orientation"])
        return (0, sum(a * b for a, b in zip(n, item["position"], strict=False)), item["number"] or 0)
    return (1, item["number"] or 0, 0)


def study_manifest(*, study: Study) -> dict:
    """Series and instances of a study for the browser, in one query."""
    wado = reverse("imaging:wado")
    rows = (
        Instance.objects.filter(series__study_id=study.pk)
        .select_related("series")
        .order_by("series__series_number", "series_id", "instance_number", "id")
    )
    series: dict[int, dict] = {}
    for inst in rows:
        s = inst.series
        entry = series.get(s.pk)
        if entry is None:
            entry = series[s.pk] = {
                "uid": s.series_instance_uid,
                "number": s.series_number,
                "modality": s.modality,
                "description": s.description,
                "body_part": s.body_part,
                "qc": s.qc or {},
                "thumbnail": reverse("imaging:thumbnail", args=[s.thumbnail_instance_id])
                if s.thumbnail_instance_id
                else "",
                "instances": [],
            }
        entry["instances"].append(
            {
                "uid": inst.sop_instance_uid,
                "number": inst.instance_number,
                "frames": inst.number_of_frames or 1,
                "rows": inst.rows,
                "columns": inst.columns,
                "position": inst.image_position,
                "orientation": inst.image_orientation,
                "spacing": inst.pixel_spacing,
                "thickness": inst.slice_thickness,
                "slope": inst.rescale_slope,
                "intercept": inst.rescale_intercept,
                "rescale_type": inst.rescale_type,
                "center": inst.window_center,
                "width": inst.window_width,
                "photometric": inst.photometric_interpretation,
                "transfer_syntax": inst.transfer_syntax_uid,
                "url": (
                    f"{wado}?requestType=WADO&contentType=application%2Fdicom&studyUID={study.study_instance_uid}"
                    f"&seriesUID={s.series_instance_uid}&objectUID={inst.sop_instance_uid}"
                ),
            }
        )
    out = []
    for entry in series.values():
        entry["instances"].sort(key=_sort_key)
        ok, reason = volume_check(
            modality=entry["modality"], qc=entry.pop("qc"), instances=entry["instances"]
        )
        entry["volume"] = {"ok": ok, "reason": reason}
        out.append(entry)
    return {
        "study": {
            "uid": study.study_instance_uid,
            "accession": study.accession_number,
            "date": study.study_date.isoformat() if study.study_date else "",
            "time": study.study_time,
            "description": study.description,
            "modalities": study.modalities,
            "patient_name": study.patient_name,
            "patient_id": study.dicom_patient_id,
            "patient_sex": study.patient_sex,
            "patient_birth_date": study.patient_birth_date.isoformat() if study.patient_birth_date else "",
        },
        "series": out,
    }
