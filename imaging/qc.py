"""Image QC facts per series: counts against MPPS, slice order, spacing and gaps.

Slice geometry follows PS3.3 C.7.6.2.1.1: the slice normal is the cross product of the row
and column direction cosines of Image Orientation (Patient); each slice's position along
the normal is the dot product of Image Position (Patient) with it. Sorted positions give
the slice order; their differences give the spacing, which should be constant.
"""

from __future__ import annotations

from itertools import pairwise
from statistics import median

import numpy as np
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from .models import Series
from .selectors import mpps_expected_counts

# What each series QC flag means, for people (study page, technologist console).
FLAG_LABELS = {
    "missing_instances": _("fewer images than the modality reported"),
    "extra_instances": _("more images than the modality reported"),
    "slice_gap": _("slice gap"),
    "irregular_spacing": _("irregular slice spacing"),
    "duplicate_positions": _("duplicate slice positions"),
}


def flag_label(flag: str) -> str:
    return str(FLAG_LABELS.get(flag, flag))


SPACING_TOLERANCE = 0.1  # 10 % of the median spacing
MIN_TOLERANCE_MM = 0.05


def slice_geometry(positions: list[list[float]], orientation: list[float]) -> dict:
    """Pure function: QC facts for one stack of parallel slices."""
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:], dtype=float)
    normal = np.cross(row, col)
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        return {"error": "degenerate orientation"}
    normal = normal / norm
    distances = sorted(float(np.dot(normal, np.asarray(p, dtype=float))) for p in positions)
    if len(distances) < 2:
        return {"slices": len(distances)}
    steps = [b - a for a, b in pairwise(distances)]
    nonzero = [s for s in steps if s > 1e-3]
    duplicates = len(steps) - len(nonzero)
    if not nonzero:
        return {"slices": len(distances), "duplicate_positions": duplicates}
    spacing = median(nonzero)
    tolerance = max(spacing * SPACING_TOLERANCE, MIN_TOLERANCE_MM)
    gaps = []
    irregular = 0
    for i, step in enumerate(steps):
        if step <= 1e-3:
            continue
        if step > spacing + tolerance:
            missing = round(step / spacing) - 1
            if missing >= 1:
                gaps.append(
                    {"after_mm": round(distances[i], 3), "size_mm": round(step, 3), "missing": missing}
                )
            else:
                irregular += 1
        elif step < spacing - tolerance:
            irregular += 1
    return {
        "slices": len(distances),
        "spacing_mm": round(spacing, 4),
        "min_step_mm": round(min(nonzero), 4),
        "max_step_mm": round(max(nonzero), 4),
        "consistent": not gaps and not irregular and not duplicates,
        "gaps": gaps,
        "irregular_steps": irregular,
        "duplicate_positions": duplicates,
        "extent_mm": round(distances[-1] - distances[0], 3),
    }


def _parallel(a: list[float], b: list[float]) -> bool:
    return bool(np.allclose(np.asarray(a), np.asarray(b), atol=1e-3))


def expected_count(series_uid: str) -> int | None:
    return mpps_expected_counts([series_uid]).get(series_uid)


def series_qc_compute(series: Series) -> dict:
    rows = list(series.instances.values_list("image_position", "image_orientation", "number_of_frames"))
    received = len(rows)
    facts: dict = {"received": received}
    expected = expected_count(series.series_instance_uid)
    flags = []
    if expected is not None:
        facts["expected"] = expected
        if received < expected:
            flags.append("missing_instances")
        elif received > expected:
            flags.append("extra_instances")
    geo = [(p, o) for p, o, frames in rows if p and o and (frames or 1) == 1]
    if len(geo) >= 3:
        ref = geo[0][1]
        if all(_parallel(o, ref) for _, o in geo):
            g = slice_geometry([p for p, _ in geo], ref)
            facts["geometry"] = g
            if g.get("gaps"):
                flags.append("slice_gap")
            if g.get("irregular_steps"):
                flags.append("irregular_spacing")
            if g.get("duplicate_positions"):
                flags.append("duplicate_positions")
        else:
            facts["geometry"] = {"mixed_orientations": True}
    facts["flags"] = flags
    return facts


def series_qc_refresh(*, series_id: int) -> dict:
    with transaction.atomic():
        series = Series.objects.select_for_update().get(pk=series_id)
        facts = series_qc_compute(series)
        Series.objects.filter(pk=series_id).update(qc=facts, qc_flagged=bool(facts["flags"]))
    return facts
