"""QIDO-RS views (PS3.18 §10.6): search for studies, series and instances.

Thin adapters over ``imaging.qido``: permission-checked through the role matrix
(``imaging.view``) with the same session/token authentication as WADO-RS, audited once per
search, one SQL query for the matches. Zero matches is ``200 []`` (PS3.18 §10.6.3.2: an
empty JSON array). A bad parameter is ``400 application/problem+json`` naming it.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from rest_framework.views import APIView

from audit.services import audit_record

from . import dicomweb, qido

JSON_TYPES = ("application/dicom+json", "application/json")


def problem(request, status: int, detail: str, *, parameter: str | None = None) -> JsonResponse:
    """An RFC 9457 problem, as the REST API answers; ``parameter`` names the bad query key."""
    titles = {400: "Bad Request", 404: "Not Found", 406: "Not Acceptable"}
    body = {
        "type": "about:blank",
        "title": titles.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if parameter:
        body["parameter"] = parameter
    return JsonResponse(body, status=status, content_type="application/problem+json")


def acceptable(request, offered: tuple[str, ...]) -> str | None:
    """The first offered media type the Accept header allows (no header = anything)."""
    accept = request.headers.get("Accept", "") or "*/*"
    ranges = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for media in offered:
        major = media.split("/")[0]
        if any(r in (media, f"{major}/*", "*/*") for r in ranges):
            return media
    return None


def service_base(request) -> str:
    """The DICOMweb base URL (ending in ``/``) for RetrieveURL and BulkDataURI values.

    ``RIS_DICOMWEB_BASE_URL`` when set (behind a proxy, or for clients such as dicomweb-client
    that send a Host header without the port); else from the request.
    """
    configured = settings.RIS_DICOMWEB_BASE_URL
    if configured:
        return configured.rstrip("/") + "/"
    return request.build_absolute_uri("/dicomweb/")


def _search(request, level: str, path_uids: dict[str, str]) -> HttpResponse:
    for keyword, uid in path_uids.items():
        if not dicomweb._valid_uid(uid):
            return problem(request, 400, f"invalid {keyword} in the path", parameter=keyword)
    media = acceptable(request, JSON_TYPES)
    if media is None:
        return problem(request, 406, "search results are offered as application/dicom+json only")
    try:
        search = qido.parse_search(level, request.GET, path_uids=path_uids)
    except qido.QidoError as exc:
        return problem(request, 400, str(exc), parameter=exc.parameter)
    rows, more = qido.search_rows(search)
    base_url = service_base(request)
    body = [qido.row_dataset(search, row, base_url=base_url).to_json_dict() for row in rows]
    audit_record(
        action="imaging.qido",
        request=request,
        object_type=level,
        object_id=next(iter(path_uids.values()), ""),
        detail={
            "level": level,
            "query": {k: v for k, v in request.GET.lists()},
            "matches": len(rows),
            "more": more,
        },
    )
    response = HttpResponse(json.dumps(body, ensure_ascii=False), content_type=f"{media}; charset=utf-8")
    warnings = list(search.warnings)
    if more:
        warnings.append("There are additional results that can be requested")
    if warnings:
        service = service_base(request).rstrip("/")
        response["Warning"] = ", ".join(f'299 {service} "{w}"' for w in warnings)
    return response


class _Search(APIView):
    schema = None  # DICOMweb (PS3.18) is its own contract, not part of the JSON API schema
    renderer_classes = [dicomweb.AnyRenderer]
    required_actions = {"get": "imaging.view"}


class StudiesView(dicomweb.WadoRsView):
    """``/dicomweb/studies``: GET searches (QIDO-RS), POST stores (STOW-RS, inherited)."""

    def get(self, request):
        return _search(request, qido.STUDY, {})


class SeriesSearchView(_Search):
    """``/dicomweb/series`` and ``/dicomweb/studies/{study}/series``."""

    def get(self, request, study_uid=None):
        return _search(request, qido.SERIES, {"StudyInstanceUID": study_uid} if study_uid else {})


class InstancesSearchView(_Search):
    """``/dicomweb/instances``, ``…/studies/{study}/instances``, ``…/series/{series}/instances``."""

    def get(self, request, study_uid=None, series_uid=None):
        uids = {}
        if study_uid:
            uids["StudyInstanceUID"] = study_uid
        if series_uid:
            uids["SeriesInstanceUID"] = series_uid
        return _search(request, qido.INSTANCE, uids)
