"""Previews (modality LUT, VOI window, MONOCHROME1) and slice-geometry QC."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from imaging import previews, services
from imaging.models import Instance, Series
from imaging.qc import slice_geometry
from tests.imaging.dicom_data import ct_dataset, part10_bytes


def _load(ds):
    """As stored: encode to Part 10 bytes and read back."""
    return pydicom.dcmread(io.BytesIO(part10_bytes(ds)))


def _probe_image():
    # Three flat columns of stored values.
    px = np.zeros((8, 12), dtype=np.uint16)
    px[:, 0:4] = 864  # HU -160 with intercept -1024: the window's lower edge
    px[:, 4:8] = 1064  # HU 40: the window centre
    px[:, 8:12] = 1424  # HU 400: above the window
    return px


def test_rescaled_ct_renders_expected_values():
    ds = ct_dataset(rows=8, columns=12, pixels=_probe_image(), slope=1.0, intercept=-1024.0, window=(40, 400))
    img = np.asarray(previews.render_dataset(_load(ds)))
    # PS3.3 C.11.2.1.2.1 with c=40, w=400: x<=-160 → 0, x>239.5 → 255, x=40 → ((40-39.5)/399+0.5)*255.
    assert img[4, 1] == 0
    assert img[4, 5] == round(((40 - 39.5) / 399 + 0.5) * 255)
    assert img[4, 9] == 255


def test_slope_is_applied_before_the_window():
    px = np.full((4, 4), 100, dtype=np.uint16)
    ds = ct_dataset(rows=4, columns=4, pixels=px, slope=2.0, intercept=-100.0, window=(100, 201))
    # 100*2-100 = 100 = window centre → ((100-99.5)/200+0.5)*255
    assert np.asarray(previews.render_dataset(_load(ds)))[0, 0] == round(((100 - 99.5) / 200 + 0.5) * 255)


def test_monochrome1_is_inverted():
    ds = ct_dataset(rows=8, columns=12, pixels=_probe_image(), photometric="MONOCHROME1", window=(40, 400))
    img = np.asarray(previews.render_dataset(_load(ds)))
    assert (img[0, 0], img[0, 9]) == (255, 0)  # low values white, high values black
    assert img[0, 5] == 255 - round(((40 - 39.5) / 399 + 0.5) * 255)


def test_default_window_spans_the_data_when_absent():
    px = np.tile(np.arange(0, 1000, 10, dtype=np.uint16), (4, 1))
    ds = ct_dataset(rows=4, columns=100, pixels=px, window=None, slope=None)
    img = np.asarray(previews.render_dataset(_load(ds)))
    assert img[0, 0] <= 3 and img[0, -1] >= 252 and 100 < img[0, 50] < 155


@pytest.mark.django_db
def test_thumbnails_rendered_off_request_and_cached(
    receive, client_for, users, django_capture_on_commit_callbacks
):
    study_uid = generate_uid()
    series_uid = generate_uid()
    receive(*[ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=i) for i in range(3)])
    with django_capture_on_commit_callbacks(execute=True):
        services.study_ingest(study_instance_uid=study_uid)
    series = Series.objects.get()
    assert series.thumbnail_instance_id is not None
    path = previews.thumbnail_path(series.thumbnail_instance_id)
    assert path.exists()
    r = client_for("radiologist").get(f"/imaging/instances/{series.thumbnail_instance_id}/thumbnail.jpg")
    assert r.status_code == 200 and b"".join(r.streaming_content) == path.read_bytes()
    other = Instance.objects.exclude(pk=series.thumbnail_instance_id).first()
    placeholder = client_for("radiologist").get(f"/imaging/instances/{other.pk}/thumbnail.jpg")
    assert placeholder["Cache-Control"] == "no-store"  # not rendered on the request path


def test_slice_geometry_detects_gap_on_an_oblique_stack():
    # Orientation rotated 30° about x: the normal is (0, -sin, cos); positions along it.
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    orientation = [1, 0, 0, 0, c, s]
    normal = np.cross([1, 0, 0], [0, c, s])
    steps = [0, 1, 2, 3, 5, 6]  # slice 4 missing
    positions = [list(np.array([10.0, 20.0, 30.0]) + 2.5 * k * normal) for k in steps]
    positions.reverse()  # arrival order does not matter
    g = slice_geometry(positions, orientation)
    assert g["spacing_mm"] == pytest.approx(2.5)
    assert g["gaps"] == [{"after_mm": pytest.approx(g["gaps"][0]["after_mm"]), "size_mm": 5.0, "missing": 1}]
    assert g["consistent"] is False and g["slices"] == 6


def test_slice_geometry_regular_stack_is_consistent():
    g = slice_geometry([[0, 0, z * 1.25] for z in range(10)], [1, 0, 0, 0, 1, 0])
    assert (g["consistent"], g["spacing_mm"], g["gaps"], g["duplicate_positions"]) == (True, 1.25, [], 0)


@pytest.mark.django_db
def test_series_qc_flags_gap_and_mpps_count(receive, client_for):
    from worklist.models import PerformedProcedureStep

    study_uid, series_uid = generate_uid(), generate_uid()
    PerformedProcedureStep.objects.create(
        sop_instance_uid=generate_uid(),
        study_instance_uid=study_uid,
        performed_series=[{"series_uid": series_uid, "images": 6}],
    )
    zs = [0.0, 2.0, 4.0, 8.0, 10.0]  # 5 received, one gap
    receive(
        *[
            ct_dataset(study_uid=study_uid, series_uid=series_uid, z=z, instance_number=i)
            for i, z in enumerate(zs)
        ]
    )
    services.study_ingest(study_instance_uid=study_uid)
    series = Series.objects.get()
    assert series.qc_flagged is True
    assert series.qc["expected"] == 6 and series.qc["received"] == 5
    assert set(series.qc["flags"]) == {"missing_instances", "slice_gap"}
    # The study page says what the flags mean.
    page = client_for("technologist").get(f"/imaging/studies/{series.study_id}/").content.decode()
    assert 'data-flag="missing_instances"' in page and 'data-flag="slice_gap"' in page
    assert "fewer images than the modality reported" in page and "slice gap" in page
    from imaging.selectors import qc_flags_for_procedures

    assert qc_flags_for_procedures([]) == {}
