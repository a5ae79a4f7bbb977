"""Rendering stored instances to 8-bit images (thumbnails, WADO image/jpeg).

Grayscale pipeline (PS3.3 C.11.1 Modality LUT, C.11.2 VOI LUT, C.7.6.3.1.2 Photometric):
stored values × Rescale Slope + Rescale Intercept → linear window (Window Center/Width; when
absent, the 0.5–99.5 percentile range of the image) → 0..255 → inverted for MONOCHROME1.
Colour images are converted to RGB. Compressed transfer syntaxes are decoded through
pydicom's pixel-data plugins when one is installed (Pillow covers JPEG baseline); otherwise
a clear placeholder is rendered instead of an error.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw
from pydicom.pixels import convert_color_space
from pydicom.uid import UID

from . import storage
from .models import Instance, Series, Study

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 192


class NoDecoder(Exception):
    pass


def window_level(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 linear VOI function to 0..255 (float in, uint8 out)."""
    width = max(float(width), 1.0)
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    out = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    out = np.where(values <= low, 0.0, np.where(values > high, 255.0, out))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _first(value):
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        return float(value[0]) if len(value) else None
    return float(value)


def render_dataset(
    ds, *, frame: int = 0, center: float | None = None, width: float | None = None
) -> Image.Image:
    try:
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, ImportError) as exc:
        raise NoDecoder(str(exc)) from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[min(frame, frames - 1)]
    if samples > 1:
        if photometric.startswith("YBR") and ds.file_meta.TransferSyntaxUID.is_encapsulated is False:
            pixels = convert_color_space(pixels, photometric, "RGB")
        arr = pixels.astype(np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * 255.0 / (hi - lo)
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), mode="RGB")
    values = pixels.astype(np.float64)
    slope = _first(ds.get("RescaleSlope"))
    intercept = _first(ds.get("RescaleIntercept"))
    if slope is not None or intercept is not None:
        values = values * (slope if slope is not None else 1.0) + (intercept or 0.0)
    if center is None or width is None:
        c, w = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        if c is None or w is None or w <= 0:
            lo, hi = np.percentile(values, [0.5, 99.5])
            if hi <= lo:
                hi = lo + 1
            c, w = (lo + hi) / 2 + 0.5, hi - lo + 1
        center = c if center is None else center
        width = w if width is None else width
    out = window_level(values, center, width)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return Image.fromarray(out, mode="L")


def placeholder(text: str, size: int = THUMBNAIL_SIZE) -> Image.Image:
    img = Image.new("L", (size, size), 48)
    draw = ImageDraw.Draw(img)
    draw.rectangle([2, 2, size - 3, size - 3], outline=120)
    y = size // 2 - 20
    for line in text.split("\n"):
        draw.text((10, y), line[:28], fill=220)
        y += 14
    return img


def render_instance(
    instance: Instance, *, frame: int = 0, center=None, width=None, max_size: int | None = None
) -> tuple[Image.Image, bool]:
    """Render one stored instance; returns (image, is_placeholder)."""
    path = storage.path_for(instance.received_object.relpath)
    ds = pydicom.dcmread(str(path))
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return placeholder("No image data\n(" + UID(instance.sop_class_uid).name[:26] + ")"), True
    try:
        img = render_dataset(ds, frame=frame, center=center, width=width)
    except NoDecoder:
        ts = ds.file_meta.TransferSyntaxUID
        return placeholder(f"No decoder installed for\n{ts.name[:28]}"), True
    if max_size:
        img.thumbnail((max_size, max_size))
    return img, False


def encode(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=90)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def thumbnail_path(instance_id: int) -> Path:
    # Named by our primary key, never by a received value.
    return storage.storage_root() / "previews" / f"{int(instance_id) % 1000:03d}" / f"{int(instance_id)}.jpg"


def thumbnail_render(*, instance: Instance) -> Path:
    path = thumbnail_path(instance.pk)
    if path.exists():
        return path
    img, _placeholder = render_instance(instance, max_size=THUMBNAIL_SIZE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(encode(img))
    tmp.replace(path)
    return path


def representative_instance(series: Series) -> Instance | None:
    instances = list(series.instances.order_by("instance_number", "id").only("pk"))
    if not instances:
        return None
    return instances[len(instances) // 2]


def study_render_thumbnails(*, study_id: int) -> int:
    """Render one thumbnail per series (the middle instance). Runs in Celery, off the request."""
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return 0
    count = 0
    for series in study.series.all():
        rep = representative_instance(series)
        if rep is None:
            continue
        rep = Instance.objects.select_related("received_object").get(pk=rep.pk)
        try:
            thumbnail_render(instance=rep)
        except (OSError, ValueError) as exc:
            logger.warning("thumbnail of instance %s failed: %s", rep.pk, type(exc).__name__)
            continue
        if series.thumbnail_instance_id != rep.pk:
            Series.objects.filter(pk=series.pk).update(thumbnail_instance=rep)
        count += 1
    return count
