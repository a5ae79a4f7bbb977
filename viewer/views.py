"""The viewer page and its two small JSON endpoints. Thin adapters over selectors/services.

Opening a study is one access to patient data: one ``viewer.open`` audit event. The manifest
endpoint is audited as an API read (``viewer.manifest``); pixels come over imaging's WADO-URI,
which audits its own retrievals.
"""

from __future__ import annotations

import json
import logging

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from audit.services import audit_record
from ris.permissions import audit_denied
from ris.roles import has_permission
from ris.vr import validate_ui

from . import selectors, services

logger = logging.getLogger(__name__)

PERMISSION = "imaging.view"

# Strings the viewer's script shows, translated here (the bundle carries no catalogue).
I18N = {
    "accession": gettext_lazy("Acc"),
    "series": gettext_lazy("Se"),
    "image": gettext_lazy("Im"),
    "position": gettext_lazy("Pos"),
    "thickness": gettext_lazy("Th"),
    "slab": gettext_lazy("Slab"),
    "zoom": gettext_lazy("Zoom"),
    "inverted": gettext_lazy("inverted"),
    "axial": gettext_lazy("Axial"),
    "sagittal": gettext_lazy("Sagittal"),
    "coronal": gettext_lazy("Coronal"),
    "instance": gettext_lazy("Image"),
    "cannot_decode": gettext_lazy("this image cannot be decoded in the browser"),
    "empty_image": gettext_lazy("no pixels decoded"),
    "loading_volume": gettext_lazy("Loading volume"),
    "volume_failed": gettext_lazy("Volume could not be built"),
    "volume_ready": gettext_lazy("Volume ready: MPR available (M)"),
    "no_mpr": gettext_lazy("No MPR"),
    "mpr_title": gettext_lazy("MPR (M)"),
    "prior_empty": gettext_lazy("The prior study has no images here."),
    "length": gettext_lazy("Length"),
    "angle": gettext_lazy("Angle"),
    "roi": gettext_lazy("ROI"),
    "mean": gettext_lazy("mean"),
    "images": gettext_lazy("images"),
    "starting": gettext_lazy("Starting…"),
    "manifest_failed": gettext_lazy("The study could not be loaded"),
    "no_images": gettext_lazy("This study has no images yet."),
    "viewer_failed": gettext_lazy("The viewer could not start"),
}


def _valid_uid(uid: str) -> bool:
    try:
        validate_ui(uid)
    except Exception:
        return False
    return True


def _refused(request, *, as_json: bool, status: int, message: str):
    if as_json:
        return JsonResponse(
            {"detail": message, "code": "forbidden" if status == 403 else "not_found"}, status=status
        )
    return render(request, "viewer/refused.html", {"status": status, "message": message}, status=status)


def _study_for(request, uid: str, *, as_json: bool):
    """(study, None) or (None, error response): permission, UID, existence, scope — in that order."""
    if not has_permission(request.user, PERMISSION):
        audit_denied(request, PERMISSION)
        return None, _refused(
            request, as_json=as_json, status=403, message=_("Your role may not view images.")
        )
    if not _valid_uid(uid):
        return None, _refused(
            request, as_json=as_json, status=404, message=_("That is not a Study Instance UID.")
        )
    study = selectors.study_resolve(uid=uid)
    if study is None:
        return None, _refused(
            request, as_json=as_json, status=404, message=_("No images of that study are here.")
        )
    if not selectors.study_visible_to(user=request.user, study=study):
        audit_denied(request, PERMISSION)
        return None, _refused(
            request, as_json=as_json, status=403, message=_("This study is outside your modality scope.")
        )
    return study, None


@login_required
@require_GET
def viewer_page(request, uid: str):
    study, error = _study_for(request, uid, as_json=False)
    if error:
        return error
    priors = selectors.study_priors(study=study)
    audit_record(
        action="viewer.open",
        request=request,
        object_type="study",
        object_id=study.pk,
        patient_id=study.patient_id,
        detail={"study_instance_uid": study.study_instance_uid, "priors": len(priors)},
    )
    config = {
        "study": study.study_instance_uid,
        "manifest": reverse("viewer:manifest", args=[study.study_instance_uid]),
        "preferences": reverse("viewer:preferences"),
        "priors": [
            {
                "uid": p.study_instance_uid,
                "date": p.study_date.isoformat() if p.study_date else "",
                "description": p.description,
                "modalities": p.modalities,
                "instances": p.num_instances,
                "manifest": reverse("viewer:manifest", args=[p.study_instance_uid]),
            }
            for p in priors
        ],
        "preferences_data": services.preference_get(user=request.user),
        "csrf": get_token(request),
        "i18n": {key: str(text) for key, text in I18N.items()},
    }
    return render(
        request,
        "viewer/viewer.html",
        {"study": study, "priors": priors, "config": config},
    )


@login_required
@require_GET
def manifest(request, uid: str):
    study, error = _study_for(request, uid, as_json=True)
    if error:
        return error
    data = selectors.study_manifest(study=study)
    audit_record(
        action="viewer.manifest",
        request=request,
        object_type="study",
        object_id=study.pk,
        patient_id=study.patient_id,
        detail={"series": len(data["series"])},
    )
    return JsonResponse(data)


@login_required
@require_http_methods(["GET", "PUT"])
def preferences(request):
    if not has_permission(request.user, PERMISSION):
        audit_denied(request, PERMISSION)
        return JsonResponse({"detail": _("Your role may not view images."), "code": "forbidden"}, status=403)
    if request.method == "GET":
        return JsonResponse(services.preference_get(user=request.user))
    try:
        data = json.loads(request.body or b"{}")
        saved = services.preference_save(user=request.user, data=data)
    except (ValueError, services.PreferenceInvalid) as exc:
        return JsonResponse({"detail": str(exc), "code": "invalid"}, status=400)
    return JsonResponse(saved)
