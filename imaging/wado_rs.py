"""WADO-RS metadata, frames, bulkdata and thumbnails (PS3.18 §10.4), beside ``dicomweb``.

* ``…/metadata`` (study, series, instance): ``application/dicom+json``, one Annex F object
  per instance read from the stored file (pixel data not read); binary values over 1 KiB at
  the top level (Pixel Data, overlays, …) become a ``BulkDataURI`` to ``…/bulkdata/{tag}``.
* ``…/instances/{i}/frames/{n[,m…]}``: ``multipart/related``, one part per frame in the
  order asked; native syntaxes as ``application/octet-stream`` (Explicit VR Little Endian
  bytes), an encapsulated syntax as stored (``image/jpeg``, ``image/jls``, ``image/jp2``…
  with its ``transfer-syntax``) when the Accept allows it. A frame number 0 or not a number
  → 400; beyond the object's Number of Frames → 404.
* ``…/bulkdata/{tag}``: the value of a top-level binary element (Pixel Data: its frames).
* ``…/thumbnail`` (study, series, instance): the cached JPEG preview of the representative
  instance (``imaging.previews``).

Same authentication, ``imaging.view`` permission and one audit record per request as the
retrieve views in ``dicomweb``.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pydicom
from django.http import FileResponse, HttpResponse
from pydicom.encaps import generate_frames
from pydicom.uid import UID, ExplicitVRBigEndian
from rest_framework.views import APIView

from . import dicomweb, previews, storage
from .models import Instance
from .qido_rs import acceptable, problem, service_base

BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
BULK_THRESHOLD = 1024
PIXEL_DATA = 0x7FE00010

# PS3.18 Table 8.7.3-2: the media type of each encapsulated transfer syntax's frames.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
EXPLICIT_LE = "1.2.840.10008.1.2.1"


class _View(APIView):
    schema = None  # DICOMweb (PS3.18) is its own contract, not part of the JSON API schema
    renderer_classes = [dicomweb.AnyRenderer]
    required_actions = {"get": "imaging.view"}


def _bad_uid(request, **uids):
    names = {
        "study_uid": "StudyInstanceUID",
        "series_uid": "SeriesInstanceUID",
        "instance_uid": "SOPInstanceUID",
    }
    for key, uid in uids.items():
        if uid is not None and not dicomweb._valid_uid(uid):
            return problem(request, 400, f"invalid {names[key]} in the path", parameter=names[key])
    return None


def _instances(study_uid, series_uid=None, instance_uid=None):
    qs = Instance.objects.select_related("received_object", "series__study").filter(
        series__study__study_instance_uid=study_uid
    )
    if series_uid:
        qs = qs.filter(series__series_instance_uid=series_uid)
    if instance_uid:
        qs = qs.filter(sop_instance_uid=instance_uid)
    return list(qs.order_by("series__series_number", "series_id", "instance_number", "id"))


def _audit(request, action: str, instance: Instance, **detail) -> None:
    dicomweb._audit_retrieve(request, action=action, study=instance.series.study, detail=detail)


def instance_url(request, instance: Instance) -> str:
    return (
        f"{service_base(request)}studies/{instance.series.study.study_instance_uid}"
        f"/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}"
    )


def _read(instance: Instance, *, pixels: bool) -> pydicom.Dataset:
    path = storage.path_for(instance.received_object.relpath)
    return pydicom.dcmread(path, stop_before_pixels=not pixels)


def instance_metadata(instance: Instance, url: str) -> dict:
    """The Annex F object of one stored instance, bulk data as BulkDataURIs."""
    ds = _read(instance, pixels=False)
    bulk = {}
    for elem in list(ds):
        if elem.VR in BINARY_VRS and elem.value is not None and len(elem.value) > BULK_THRESHOLD:
            bulk[elem.tag] = elem.VR
            del ds[elem.tag]
    if instance.rows:
        encapsulated = UID(instance.transfer_syntax_uid).is_compressed
        bits = ds.get("BitsAllocated", 16)
        bulk[PIXEL_DATA] = "OB" if encapsulated or bits <= 8 else "OW"
    out = ds.to_json_dict(bulk_data_threshold=2**31, suppress_invalid_tags=True)
    for tag, vr in bulk.items():
        out[f"{tag:08X}"] = {"vr": vr, "BulkDataURI": f"{url}/bulkdata/{tag:08X}"}
    return dict(sorted(out.items()))


class MetadataView(_View):
    def get(self, request, study_uid, series_uid=None, instance_uid=None):
        if bad := _bad_uid(request, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid):
            return bad
        media = acceptable(request, ("application/dicom+json", "application/json"))
        if media is None:
            return problem(request, 406, "metadata is offered as application/dicom+json only")
        instances = _instances(study_uid, series_uid, instance_uid)
        if not instances:
            return problem(request, 404, "no such study, series or instance")
        _audit(request, "imaging.wado_rs_metadata", instances[0], instances=len(instances))
        body = [instance_metadata(i, instance_url(request, i)) for i in instances]
        return HttpResponse(json.dumps(body, ensure_ascii=False), content_type=f"{media}; charset=utf-8")


# ---------------------------------------------------------------------------------------
# Frames and bulk data.


def accepted_parts(request) -> list[tuple[str, str | None]]:
    """(part media type, transfer syntax or None) the Accept allows, in the client's order."""
    accept = request.headers.get("Accept", "") or "*/*"
    out = []
    for media_range in accept.split(","):
        params = [p.strip() for p in media_range.split(";")]
        media = params[0].lower()
        attrs = {}
        for p in params[1:]:
            if "=" in p:
                k, v = p.split("=", 1)
                attrs[k.strip().lower()] = v.strip().strip('"')
        if media == "multipart/related":
            out.append((attrs.get("type", "application/octet-stream").lower(), attrs.get("transfer-syntax")))
        elif media in ("*/*", "multipart/*"):
            out.append(("*/*", None))
        else:
            out.append((media, attrs.get("transfer-syntax")))
    return out


def _choose(request, stored_ts: str) -> str | None:
    """'stored' (send the stored encapsulated frames), 'native' (octet-stream) or None (406)."""
    encapsulated = UID(stored_ts).is_compressed
    stored_media = FRAME_MEDIA_TYPES.get(stored_ts)
    for media, ts in accepted_parts(request):
        if ts not in (None, "*", stored_ts) and not (
            media == "application/octet-stream" and ts == EXPLICIT_LE
        ):
            continue
        if media in ("*/*", "image/*") and encapsulated and ts in (None, "*", stored_ts):
            return "stored"
        if encapsulated and stored_media and media in (stored_media, f"image/x-{stored_media.split('/')[1]}"):
            return "stored"
        if media in ("application/octet-stream", "application/*", "*/*"):
            return "native"
    return None


def _multipart(parts: list[bytes], media: str, transfer_syntax: str) -> HttpResponse:
    boundary = uuid.uuid4().hex
    head = f"--{boundary}\r\nContent-Type: {media}; transfer-syntax={transfer_syntax}\r\n\r\n".encode()
    body = b"".join(head + p + b"\r\n" for p in parts) + f"--{boundary}--\r\n".encode()
    return HttpResponse(
        body,
        content_type=f'multipart/related; type="{media}"; transfer-syntax={transfer_syntax}; boundary={boundary}',
    )


class FrameError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_frame_list(value: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise FrameError(400, f"not a list of frame numbers: {value!r}") from None
    if not numbers or any(n < 1 for n in numbers):
        raise FrameError(400, "frame numbers start at 1")
    return numbers


def frames_of(instance: Instance, numbers: list[int], mode: str) -> tuple[list[bytes], str, str]:
    """The frames' bytes, their media type and transfer syntax; FrameError when impossible."""
    total = instance.number_of_frames or 1
    if not instance.rows:
        raise FrameError(404, "the instance has no pixel data")
    beyond = [n for n in numbers if n > total]
    if beyond:
        raise FrameError(404, f"frame {beyond[0]} is beyond the {total} frame(s) of the instance")
    ds = _read(instance, pixels=True)
    if "PixelData" not in ds:
        raise FrameError(404, "the instance has no pixel data")
    ts = str(ds.file_meta.TransferSyntaxUID)
    if UID(ts).is_compressed:
        if mode == "stored":
            frames = list(generate_frames(ds.PixelData, number_of_frames=total))
            return [frames[n - 1] for n in numbers], FRAME_MEDIA_TYPES.get(ts, "application/octet-stream"), ts
        try:
            arr = ds.pixel_array
        except Exception as exc:  # no decoder for this syntax: the client must accept it as stored
            raise FrameError(406, f"frames are stored as {ts} and cannot be decoded here ({exc})") from None
        frames = arr if total > 1 else arr[np.newaxis]
        data = [
            np.ascontiguousarray(frames[n - 1], dtype=arr.dtype.newbyteorder("<")).tobytes() for n in numbers
        ]
        return data, "application/octet-stream", EXPLICIT_LE
    bits = int(ds.get("BitsAllocated", 16))
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8
    data = ds.PixelData
    if ts == ExplicitVRBigEndian and bits > 8:
        data = np.frombuffer(data, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    return [data[(n - 1) * size : n * size] for n in numbers], "application/octet-stream", EXPLICIT_LE


class FramesView(_View):
    def get(self, request, study_uid, series_uid, instance_uid, frames):
        if bad := _bad_uid(request, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid):
            return bad
        try:
            numbers = parse_frame_list(frames)
        except FrameError as exc:
            return problem(request, exc.status, str(exc), parameter="frames")
        instances = _instances(study_uid, series_uid, instance_uid)
        if not instances:
            return problem(request, 404, "no such instance")
        instance = instances[0]
        mode = _choose(request, instance.transfer_syntax_uid)
        if mode is None:
            return problem(request, 406, "the Accept header allows none of the frame media types offered")
        try:
            parts, media, ts = frames_of(instance, numbers, mode)
        except FrameError as exc:
            return problem(request, exc.status, str(exc), parameter="frames" if exc.status != 406 else None)
        _audit(request, "imaging.wado_rs_frames", instance, sop_instance_uid=instance_uid, frames=numbers)
        return _multipart(parts, media, ts)


class BulkdataView(_View):
    def get(self, request, study_uid, series_uid, instance_uid, tag):
        if bad := _bad_uid(request, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid):
            return bad
        try:
            tag_value = int(tag, 16)
            if len(tag) != 8:
                raise ValueError
        except ValueError:
            return problem(request, 400, f"not a tag: {tag!r}", parameter="tag")
        instances = _instances(study_uid, series_uid, instance_uid)
        if not instances:
            return problem(request, 404, "no such instance")
        instance = instances[0]
        if tag_value == PIXEL_DATA:
            mode = _choose(request, instance.transfer_syntax_uid)
            if mode is None:
                return problem(request, 406, "the Accept header allows none of the media types offered")
            try:
                parts, media, ts = frames_of(
                    instance, list(range(1, (instance.number_of_frames or 1) + 1)), mode
                )
            except FrameError as exc:
                return problem(request, exc.status, str(exc))
        else:
            if _choose(request, EXPLICIT_LE) is None:
                return problem(request, 406, "bulk data is offered as application/octet-stream")
            ds = _read(instance, pixels=False)
            elem = ds.get(tag_value)
            if elem is None or elem.VR not in BINARY_VRS:
                return problem(request, 404, f"no bulk data element {tag} in the instance")
            parts, media, ts = [bytes(elem.value)], "application/octet-stream", EXPLICIT_LE
        _audit(request, "imaging.wado_rs_bulkdata", instance, sop_instance_uid=instance_uid, tag=tag.upper())
        return _multipart(parts, media, ts)


# ---------------------------------------------------------------------------------------
# Thumbnails.


class ThumbnailView(_View):
    """The cached preview (JPEG) of the instance, or of the series'/study's representative one."""

    def get(self, request, study_uid, series_uid=None, instance_uid=None):
        if bad := _bad_uid(request, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid):
            return bad
        if acceptable(request, ("image/jpeg",)) is None:
            return problem(request, 406, "thumbnails are offered as image/jpeg")
        instances = _instances(study_uid, series_uid, instance_uid)
        if not instances:
            return problem(request, 404, "no such study, series or instance")
        instance = _representative(instances)
        _audit(request, "imaging.wado_rs_thumbnail", instance, sop_instance_uid=instance.sop_instance_uid)
        path = previews.thumbnail_path(instance.pk)
        if not path.exists():
            path = previews.thumbnail_render(instance=instance)
        response = FileResponse(path.open("rb"), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=3600"
        return response


def _representative(instances: list[Instance]) -> Instance:
    """The series' chosen thumbnail instance when there is one, else the middle image."""
    first_series = instances[0].series
    if first_series.thumbnail_instance_id:
        for i in instances:
            if i.pk == first_series.thumbnail_instance_id:
                return i
    images = [i for i in instances if i.series_id == first_series.pk and i.rows] or instances
    return images[len(images) // 2]
