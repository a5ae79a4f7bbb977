"""DICOMweb: WADO-URI (PS3.18 §9), WADO-RS retrieve (§10.4) and STOW-RS (§10.5).

DRF views so that session and token authentication both work (an EHR uses a token);
permission-checked through the role matrix and audited once per request. STOW-RS goes
through exactly the same durable path as C-STORE (``services.object_receive``).
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import tempfile
import uuid
from contextlib import suppress

from django.conf import settings
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from rest_framework.renderers import BaseRenderer
from rest_framework.views import APIView

from audit.services import audit_record
from ris.errors import problem_http_response
from ris.vr import validate_ui

from . import previews, services, storage
from .dicom import STATUS_CANNOT_UNDERSTAND, receive_status
from .models import Instance, Study

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024


class AnyRenderer(BaseRenderer):
    """Let DICOMweb Accept headers through DRF's negotiation; views return raw responses."""

    media_type = "*/*"
    format = "dicom"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


_CODES = {400: "invalid", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable", 409: "conflict"}
_CODES.update({413: "request_too_large", 415: "unsupported_media_type"})


def _bad(request, message: str, status: int = 400) -> HttpResponse:
    """A refusal as an RFC 9457 problem (application/problem+json), like the REST API's.

    Refusals raised by DRF itself (401 with a challenge for anonymous requests, 403 for a
    role that may not, 405) go through the API's exception handler to the same shape.
    """
    return problem_http_response(
        status_code=status,
        detail=message,
        code=_CODES.get(status, "invalid"),
        instance=request.path,
        headers={"Allow": "GET, HEAD, OPTIONS"} if status == 405 else None,
    )


def _accepts(request, offered: tuple[str, ...]) -> str | None:
    """The first offered media type the Accept header allows (no header = anything)."""
    accept = request.headers.get("Accept", "") or "*/*"
    ranges = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for media in offered:
        major = media.split("/")[0]
        if any(r in (media, f"{major}/*", "*/*") for r in ranges):
            return media
    return None


def _valid_uid(value: str | None) -> bool:
    if not value:
        return False
    try:
        validate_ui(value)
    except Exception:
        return False
    return True


def _float(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _render_response(instance: Instance, request, *, fmt: str = "JPEG") -> HttpResponse:
    q = request.GET
    size = None
    for key in ("rows", "columns"):
        if q.get(key, "").isdigit():
            size = max(size or 0, min(int(q[key]), 4096))
    frame = (
        int(q["frameNumber"]) - 1 if q.get("frameNumber", "").isdigit() and int(q["frameNumber"]) > 0 else 0
    )
    img, _placeholder = previews.render_instance(
        instance,
        frame=frame,
        center=_float(q.get("windowCenter")),
        width=_float(q.get("windowWidth")),
        max_size=size,
    )
    content_type = "image/png" if fmt == "PNG" else "image/jpeg"
    return HttpResponse(previews.encode(img, fmt), content_type=content_type)


def _audit_retrieve(request, *, action: str, study: Study, detail: dict) -> None:
    audit_record(
        action=action,
        request=request,
        object_type="study",
        object_id=study.pk,
        patient_id=study.patient_id,
        detail=detail,
    )


class WadoUriView(APIView):
    """``/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…&contentType=…``"""

    schema = None  # DICOMweb (PS3.18) is its own contract, not part of the JSON API schema

    renderer_classes = [AnyRenderer]
    required_actions = {"get": "imaging.view"}

    def get(self, request):
        q = request.GET
        if q.get("requestType") != "WADO":
            return _bad(request, "requestType must be WADO")
        uids = {k: q.get(k) for k in ("studyUID", "seriesUID", "objectUID")}
        if not all(_valid_uid(v) for v in uids.values()):
            return _bad(request, "studyUID, seriesUID and objectUID must be valid UIDs")
        content_type = (q.get("contentType") or "image/jpeg").split(",")[0].strip()
        if content_type not in ("image/jpeg", "image/png", "application/dicom"):
            return _bad(request, "unsupported contentType", 406)
        instance = (
            Instance.objects.select_related("series__study", "received_object")
            .filter(
                sop_instance_uid=uids["objectUID"],
                series__series_instance_uid=uids["seriesUID"],
                series__study__study_instance_uid=uids["studyUID"],
            )
            .first()
        )
        if instance is None:
            return _bad(request, "no such object", 404)
        _audit_retrieve(
            request,
            action="imaging.wado_uri",
            study=instance.series.study,
            detail={"sop_instance_uid": instance.sop_instance_uid, "content_type": content_type},
        )
        if content_type == "application/dicom":
            response = FileResponse(
                storage.path_for(instance.received_object.relpath).open("rb"),
                content_type="application/dicom",
            )
            response["Content-Disposition"] = 'attachment; filename="object.dcm"'
            return response
        return _render_response(instance, request, fmt="PNG" if content_type == "image/png" else "JPEG")


def _multipart_stream(paths, boundary: str):
    for path in paths:
        yield (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode()
        with path.open("rb") as fp:
            while chunk := fp.read(CHUNK):
                yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


class WadoRsView(APIView):
    """Retrieve study / series / instance as multipart/related; type="application/dicom"."""

    schema = None  # DICOMweb (PS3.18) is its own contract, not part of the JSON API schema

    renderer_classes = [AnyRenderer]
    required_actions = {"get": "imaging.view", "post": "imaging.store"}

    def get(self, request, study_uid=None, series_uid=None, instance_uid=None):
        if study_uid is None:
            return _bad(request, "QIDO-RS search is not offered; retrieve a study by its UID", 400)
        for uid in (study_uid, series_uid, instance_uid):
            if uid is not None and not _valid_uid(uid):
                return _bad(request, "invalid UID")
        accept = request.headers.get("Accept", "*/*")
        if not any(t in accept for t in ("multipart/related", "application/dicom", "*/*")):
            return _bad(request, "only multipart/related; type=application/dicom is offered", 406)
        qs = Instance.objects.select_related("received_object", "series__study").filter(
            series__study__study_instance_uid=study_uid
        )
        if series_uid:
            qs = qs.filter(series__series_instance_uid=series_uid)
        if instance_uid:
            qs = qs.filter(sop_instance_uid=instance_uid)
        instances = list(qs.order_by("series__series_number", "instance_number", "id"))
        if not instances:
            return _bad(request, "not found", 404)
        _audit_retrieve(
            request,
            action="imaging.wado_rs",
            study=instances[0].series.study,
            detail={"instances": len(instances), "series": series_uid or "", "instance": instance_uid or ""},
        )
        boundary = uuid.uuid4().hex
        paths = [storage.path_for(i.received_object.relpath) for i in instances]
        response = StreamingHttpResponse(
            _multipart_stream(paths, boundary),
            content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        )
        return response

    def post(self, request, study_uid=None, series_uid=None, instance_uid=None):
        if series_uid or instance_uid:
            return _bad(request, "STOW-RS accepts POST on /studies or /studies/{study}", 405)
        if study_uid is not None and not _valid_uid(study_uid):
            return _bad(request, "invalid Study Instance UID")
        return stow(request, study_uid)


class RenderedView(APIView):
    schema = None  # DICOMweb (PS3.18) is its own contract, not part of the JSON API schema
    renderer_classes = [AnyRenderer]
    required_actions = {"get": "imaging.view"}

    def get(self, request, study_uid, series_uid, instance_uid):
        if not all(_valid_uid(u) for u in (study_uid, series_uid, instance_uid)):
            return _bad(request, "invalid UID")
        if _accepts(request, ("image/jpeg", "image/png")) is None:
            return _bad(request, "only image/jpeg and image/png are offered", 406)
        instance = (
            Instance.objects.select_related("series__study", "received_object")
            .filter(
                sop_instance_uid=instance_uid,
                series__series_instance_uid=series_uid,
                series__study__study_instance_uid=study_uid,
            )
            .first()
        )
        if instance is None:
            return _bad(request, "not found", 404)
        _audit_retrieve(
            request,
            action="imaging.wado_rs_rendered",
            study=instance.series.study,
            detail={"sop_instance_uid": instance_uid},
        )
        fmt = "PNG" if "image/png" in request.headers.get("Accept", "") else "JPEG"
        return _render_response(instance, request, fmt=fmt)


# ---------------------------------------------------------------------------------------
# STOW-RS


_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.I)
_TYPE_RE = re.compile(r'type="?([^";]+)"?', re.I)


class StowError(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _spool_body(request, limit: int):
    """Copy the request body to a temp file in the storage root (bounded), return the file."""
    length = request.META.get("CONTENT_LENGTH")
    if length and length.isdigit() and int(length) > limit:
        raise StowError("request too large", 413)
    fp = tempfile.TemporaryFile(dir=storage.tmp_dir())  # noqa: SIM115 - returned to the caller, who closes it
    total = 0
    stream = request._request if hasattr(request, "_request") else request
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            fp.close()
            raise StowError("request too large", 413)
        fp.write(chunk)
    fp.flush()
    return fp, total


def _iter_parts(fp, size: int, boundary: bytes):
    """Yield (headers: dict, start, end) of each part; the body is fp[start:end]."""
    if size == 0:
        raise StowError("empty body", 400)
    with mmap.mmap(fp.fileno(), size, access=mmap.ACCESS_READ) as mm:
        delim = b"--" + boundary
        pos = mm.find(delim)
        if pos < 0:
            raise StowError("no multipart boundary in body", 400)
        while True:
            pos += len(delim)
            if mm[pos : pos + 2] == b"--":
                return
            header_end = mm.find(b"\r\n\r\n", pos)
            if header_end < 0:
                raise StowError("malformed multipart part", 400)
            headers = {}
            for line in mm[pos:header_end].split(b"\r\n"):
                if b":" in line:
                    name, value = line.split(b":", 1)
                    headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            start = header_end + 4
            nxt = mm.find(b"\r\n" + delim, start)
            if nxt < 0:
                raise StowError("multipart body not terminated", 400)
            yield headers, start, nxt
            pos = nxt + 2


def _dicom_json_ref(sop_class: str, sop_instance: str, url: str | None = None, failure: int | None = None):
    item = {
        "00081150": {"vr": "UI", "Value": [sop_class]},
        "00081155": {"vr": "UI", "Value": [sop_instance]},
    }
    if url:
        item["00081190"] = {"vr": "UR", "Value": [url]}
    if failure is not None:
        item["00081197"] = {"vr": "US", "Value": [failure]}
    return item


def stow(request, study_uid: str | None):
    content_type = request.META.get("CONTENT_TYPE", "")
    if not content_type.lower().startswith("multipart/related"):
        return _bad(request, "Content-Type must be multipart/related", 415)
    m_type = _TYPE_RE.search(content_type)
    if m_type and m_type.group(1).lower() != "application/dicom":
        return _bad(request, 'only type="application/dicom" is supported', 415)
    m_boundary = _BOUNDARY_RE.search(content_type)
    if not m_boundary:
        return _bad(request, "multipart boundary missing", 400)
    boundary = m_boundary.group(1).encode("latin-1")
    calling = f"STOW:{request.user.get_username()}"[:16]
    stored, failed, studies = [], [], {}
    try:
        fp, size = _spool_body(request, settings.RIS_STOW_MAX_REQUEST_BYTES)
    except StowError as exc:
        return _bad(request, str(exc), exc.status)
    try:
        for headers, start, end in _iter_parts(fp, size, boundary):
            part_type = headers.get("content-type", "application/dicom").split(";")[0].strip().lower()
            part_path = None
            lock_fd = None
            try:
                if part_type != "application/dicom":
                    failed.append(_dicom_json_ref("", "", failure=STATUS_CANNOT_UNDERSTAND))
                    continue
                fd, part_path = tempfile.mkstemp(dir=storage.tmp_dir(), prefix="stow-")
                lock_fd = os.dup(fd)  # holds the part's lock until it is removed (storage.hold_lock)
                storage.hold_lock(lock_fd)
                with os.fdopen(fd, "wb") as out:
                    fp.seek(start)
                    remaining = end - start
                    while remaining > 0:
                        chunk = fp.read(min(CHUNK, remaining))
                        if not chunk:
                            break
                        out.write(chunk)
                        remaining -= len(chunk)
                try:
                    result = services.object_receive(
                        path=part_path, calling_ae=calling, source="stow", expected_study_uid=study_uid
                    )
                except services.ReceiveRefused as exc:
                    from imaging.dicomfile import MalformedObject, inspect_file

                    sop_class = sop_inst = ""
                    with suppress(MalformedObject, OSError):
                        h = inspect_file(part_path)
                        sop_class, sop_inst = h.sop_class_uid or "", h.sop_instance_uid or ""
                    failed.append(
                        _dicom_json_ref(
                            sop_class if _valid_uid(sop_class) else "",
                            sop_inst if _valid_uid(sop_inst) else "",
                            failure=receive_status(exc),
                        )
                    )
                    continue
                studies[result.study_instance_uid] = studies.get(result.study_instance_uid, 0) + 1
                url = request.build_absolute_uri(
                    reverse(
                        "imaging:wado_rs_study",
                        args=[result.study_instance_uid],
                    )
                )
                stored.append(_dicom_json_ref(result.sop_class_uid, result.sop_instance_uid, url=url))
            finally:
                if part_path:
                    with suppress(OSError):
                        os.unlink(part_path)
                if lock_fd is not None:
                    with suppress(OSError):
                        os.close(lock_fd)
    except StowError as exc:
        return _bad(request, str(exc), exc.status)
    finally:
        fp.close()
    if studies:
        services.studies_enqueue(
            study_uids=list(studies), source_ae="", counts=studies, actor=request.user, request=request
        )
    body: dict = {}
    if study_uid:
        body["00081190"] = {
            "vr": "UR",
            "Value": [request.build_absolute_uri(reverse("imaging:wado_rs_study", args=[study_uid]))],
        }
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if not stored and not failed:
        return _bad(request, "no parts in the request", 400)
    status = 200 if not failed else (202 if stored else 409)
    return JsonResponse(body, status=status, content_type="application/dicom+json")
