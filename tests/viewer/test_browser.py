"""The viewer in Chromium (WebGL 2 through SwiftShader) on a synthetic CT volume of known geometry.

Positions come from the phantom (tests/viewer/conftest.py: PHANTOM); the test hook
``window.risViewer`` reports state and maps patient coordinates to canvas pixels, and pixel
values are read back from the rendered canvas.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from audit.models import AuditEvent
from tests.viewer.conftest import PHANTOM
from viewer import demo

pytestmark = pytest.mark.browser

SP = PHANTOM["slice_spacing"]
Z0 = PHANTOM["origin"][2]
SX, SY, SZ = PHANTOM["sphere_center"]
CX, CY, CZ = PHANTOM["cavity_center"]


def slice_of(z: float) -> int:
    return round((z - Z0) / SP)


def open_viewer(page, uid: str):
    page.goto(f"{page.base_url}/viewer/studies/{uid}/")
    page.wait_for_function("window.risViewer && window.risViewer.state().ready")


def state(page) -> dict:
    return page.evaluate("window.risViewer.state()")


def viewport(page, vid: str) -> dict:
    return next(v for v in state(page)["viewports"] if v["id"] == vid)


def to_canvas(page, vid: str, world) -> list[float]:
    return page.evaluate("([id, w]) => window.risViewer.worldToCanvas(id, w)", [vid, list(world)])


def to_page(page, vid: str, xy) -> tuple[float, float]:
    rect = page.evaluate("(id) => window.risViewer.canvasRect(id)", vid)
    return rect["x"] + xy[0], rect["y"] + xy[1]


def gray_at(page, vid: str, world) -> int:
    x, y = to_canvas(page, vid, world)
    return page.evaluate("([id, x, y]) => window.risViewer.pixel(id, x, y)", [vid, x, y])[0]


def wait_gray(page, vid: str, world, low: int, high: int):
    """Poll the rendered pixel until it is in [low, high] (rendering is asynchronous)."""
    x, y = to_canvas(page, vid, world)
    page.wait_for_function(
        "([id, x, y, lo, hi]) => { const v = window.risViewer.pixel(id, x, y)[0]; return v >= lo && v <= hi; }",
        arg=[vid, x, y, low, high],
        timeout=30_000,
    )
    return gray_at(page, vid, world)


def next_frames(page):
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def drag(page, vid: str, start_world, end_world, steps: int = 8):
    """Press, move in steps (each after the tool has seen the last: drags are throttled), release."""
    a = to_page(page, vid, to_canvas(page, vid, start_world))
    b = to_page(page, vid, to_canvas(page, vid, end_world))
    page.mouse.move(*a)
    page.mouse.down()
    for k in range(1, steps + 1):
        page.mouse.move(a[0] + (b[0] - a[0]) * k / steps, a[1] + (b[1] - a[1]) * k / steps)
        next_frames(page)
    page.mouse.up()
    next_frames(page)


def test_stack_scroll_shows_the_expected_slice_position(viewer_page_for, imaged_exam):
    proc = imaged_exam()
    page = viewer_page_for("radiologist")
    open_viewer(page, proc.study_instance_uid)
    expect(page.get_by_test_id("ov-position")).to_have_text(f"Pos: {Z0:.2f} mm", timeout=30_000)
    page.get_by_test_id("viewport-main").hover()
    # Press as a reader does, watching the position: a key that arrives while the viewer is
    # still settling (loading the series on a loaded machine) may be taken by no viewport yet,
    # so each press is checked and repeated rather than counted blindly.
    target = slice_of(SZ)
    for _ in range(3 * target + 10):
        index = page.evaluate("window.risViewer.state().viewports[0].imageIndex")
        if index == target:
            break
        page.keyboard.press("ArrowDown" if index < target else "ArrowUp")
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_function(
                "(k) => window.risViewer.state().viewports[0].imageIndex !== k", arg=index, timeout=2_000
            )
    page.wait_for_function(
        "(z) => { const v = window.risViewer.state().viewports[0]; return Math.abs(v.slicePosition - z) < 1e-3; }",
        arg=SZ,
    )
    expect(page.get_by_test_id("ov-position")).to_have_text(f"Pos: {SZ:.2f} mm", timeout=30_000)
    expect(page.get_by_test_id("ov-image")).to_have_text(
        f"Im: {slice_of(SZ) + 1} / {PHANTOM['slices']}", timeout=30_000
    )
    page.mouse.wheel(0, 120)  # the wheel scrolls one slice on
    page.wait_for_function(
        "(z) => Math.abs(window.risViewer.state().viewports[0].slicePosition - z) < 1e-3", arg=SZ + SP
    )
    # Orientation markers of an axial slice (LPS): anterior up, patient's left on the right.
    assert page.locator(".om-top").inner_text() == "A" and page.locator(".om-right").inner_text() == "L"
    assert page.js_errors == []


def test_window_level_preset_changes_rendered_pixels(viewer_page_for, imaged_exam):
    proc = imaged_exam()
    page = viewer_page_for("radiologist")
    open_viewer(page, proc.study_instance_uid)
    page.evaluate("(k) => window.risViewer.scrollTo(k)", slice_of(SZ))
    tissue = (0.0, -30.0, SZ)  # 40 HU
    sphere = (SX, SY, SZ)  # 1000 HU
    # Header window W 400 / L 40: 40 HU is mid-grey, 1000 HU white.
    assert abs(wait_gray(page, "main", tissue, 110, 145) - 127) <= 10
    assert wait_gray(page, "main", sphere, 245, 255) >= 245
    page.get_by_test_id("preset").select_option("bone")  # W 2000 / L 500: 40 HU → 69, 1000 HU → 191
    assert abs(wait_gray(page, "main", tissue, 55, 85) - 69) <= 10
    assert abs(wait_gray(page, "main", sphere, 175, 205) - 191) <= 10
    expect(page.get_by_test_id("ov-wl")).to_have_text("W: 2000 L: 500", timeout=30_000)
    page.get_by_test_id("preset").select_option("lung")  # W 1500 / L −600: 40 HU → 236
    assert abs(wait_gray(page, "main", tissue, 220, 250) - 236) <= 10
    page.keyboard.press("i")  # invert
    assert abs(wait_gray(page, "main", tissue, 5, 35) - 19) <= 10
    assert state(page)["invert"] is True
    # The preset is remembered for this user and modality.
    page.evaluate("window.risViewer.flushPrefs()")
    page.wait_for_function(
        "window.risViewer.state().prefs.presets && window.risViewer.state().prefs.presets.CT === 'lung'"
    )
    open_viewer(page, proc.study_instance_uid)
    assert state(page)["preset"] == "lung"


def test_length_and_elliptical_roi_measure_known_values(viewer_page_for, imaged_exam):
    proc = imaged_exam()
    page = viewer_page_for("radiologist")
    open_viewer(page, proc.study_instance_uid)
    page.evaluate("(k) => window.risViewer.scrollTo(k)", slice_of(SZ))
    page.wait_for_function(
        "(z) => Math.abs(window.risViewer.state().viewports[0].slicePosition - z) < 1e-3", arg=SZ
    )
    page.keyboard.press("l")
    drag(page, "main", (SX - 15, SY, SZ), (SX + 15, SY, SZ))  # 30 mm
    page.wait_for_function("window.risViewer.state().measurements.some(m => m.length != null)")
    length = next(m for m in state(page)["measurements"] if m["length"] is not None)["length"]
    assert abs(length - 30.0) <= PHANTOM["pixel_spacing"]
    page.keyboard.press("e")
    drag(page, "main", (SX, SY + 4, SZ), (SX + 5, SY + 8, SZ))  # centre and corner: inside the sphere
    page.wait_for_function("window.risViewer.state().measurements.some(m => m.mean != null)")
    roi = next(m for m in state(page)["measurements"] if m["mean"] is not None)
    assert abs(roi["mean"] - PHANTOM["sphere_hu"]) <= 1 and roi["stdDev"] <= 1
    assert roi["unit"] == "HU"
    page.keyboard.press("a")
    a, b, c = (SX - 10, SY - 10, SZ), (SX, SY, SZ), (SX + 10, SY - 10, SZ)  # a right angle at b
    drag(page, "main", a, b)
    page.mouse.move(*to_page(page, "main", to_canvas(page, "main", c)))
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("window.risViewer.state().measurements.some(m => m.angle != null)")
    angle = next(m for m in state(page)["measurements"] if m["angle"] is not None)["angle"]
    assert abs(angle - 90) <= 3
    items = page.get_by_test_id("measurement").all_inner_texts()
    assert any(re.match(r"Length: 3\d\.\d mm", t) or re.match(r"Length: 29\.\d mm", t) for t in items), items


def test_mpr_dimensions_and_projections(viewer_page_for, imaged_exam):
    proc = imaged_exam()
    page = viewer_page_for("radiologist")
    open_viewer(page, proc.study_instance_uid)
    page.wait_for_function("window.risViewer.state().volume.ready")
    page.get_by_test_id("btn-mpr").click()
    page.wait_for_function(
        "window.risViewer.state().mode === 'mpr' && window.risViewer.state().viewports.length === 3"
    )
    rows, cols, slices = PHANTOM["rows"], PHANTOM["columns"], PHANTOM["slices"]
    sag, cor, ax = viewport(page, "sagittal"), viewport(page, "coronal"), viewport(page, "axial")
    assert (ax["planeColumns"], ax["planeRows"], ax["numImages"]) == (cols, rows, slices)
    assert (sag["planeColumns"], sag["planeRows"], sag["numImages"]) == (rows, slices, cols)
    assert (cor["planeColumns"], cor["planeRows"], cor["numImages"]) == (cols, slices, rows)
    # On screen the reformats keep the physical aspect (2.5 mm slices, 1 mm pixels).
    z_top, z_bottom = Z0 + (slices - 1) * SP, Z0
    for vid in ("sagittal", "coronal"):
        top = to_canvas(page, vid, (0.0, 0.0, z_top))
        bottom = to_canvas(page, vid, (0.0, 0.0, z_bottom))
        left = to_canvas(page, vid, (-40.0, -40.0, z_bottom))
        right = to_canvas(page, vid, (40.0, 40.0, z_bottom))
        height_px = abs(bottom[1] - top[1])
        width_px = abs(right[0] - left[0])
        assert abs((height_px / width_px) - ((z_top - z_bottom) / 80.0)) < 0.03
    # The axial plane halfway between the sphere (z 18–42) and the cavity (z 60–80) shows neither…
    mid = (SZ + CZ) / 2
    # A volume viewport counts its slices from the top (head) down.
    page.evaluate("(k) => window.risViewer.scrollTo(k, 'axial')", slices - 1 - slice_of(mid))
    page.wait_for_function(
        "(z) => Math.abs(window.risViewer.state().viewports[0].slicePosition - z) < 1.3", arg=mid
    )
    at_sphere, at_cavity = (SX, SY, mid), (CX, CY, mid)
    wait_gray(page, "axial", at_sphere, 110, 145)
    wait_gray(page, "axial", at_cavity, 110, 145)
    # …a 100 mm MIP slab shows the sphere, a MinIP the cavity, at their in-plane positions.
    page.get_by_test_id("projection").select_option("mip")
    page.evaluate("window.risViewer.setProjection('mip', 100)")
    assert wait_gray(page, "axial", at_sphere, 240, 255) >= 240
    assert 110 <= wait_gray(page, "axial", at_cavity, 110, 145) <= 145
    assert viewport(page, "axial")["slab"] == pytest.approx(100)
    page.evaluate("window.risViewer.setProjection('minip', 100)")
    assert wait_gray(page, "axial", at_cavity, 0, 15) <= 15
    assert 110 <= wait_gray(page, "axial", at_sphere, 110, 145) <= 145
    page.evaluate("window.risViewer.setProjection('avg', 100)")
    page.evaluate("window.risViewer.applyPreset('bone')")  # W 2000 / L 500 keeps the means in range
    # Column means over the slab: sphere ≈ 276 HU → 99, cavity ≈ −173 HU → 42, tissue 40 HU → 69.
    assert 80 <= wait_gray(page, "axial", at_sphere, 80, 125) <= 125
    assert 25 <= wait_gray(page, "axial", at_cavity, 25, 58) <= 58
    assert (
        "Slab: 100.0 mm" in page.locator("[data-viewport-id=axial] [data-testid=ov-thickness]").inner_text()
    )
    # Oblique: the plane turns about its vertical axis.
    before = viewport(page, "axial")["viewPlaneNormal"]
    page.keyboard.press("]")
    after = viewport(page, "axial")["viewPlaneNormal"]
    assert abs(float(np.dot(before, after)) - np.cos(np.radians(15))) < 1e-3
    assert page.js_errors == []


def test_series_with_a_gap_is_refused_for_mpr_and_stays_readable(viewer_page_for, imaged_exam):
    positions = [k * SP for k in range(12)] + [k * SP for k in range(14, 30)]  # two slices missing
    proc = imaged_exam(phantom_obj=demo.Phantom(**{**PHANTOM, "slices": len(positions)}), positions=positions)
    page = viewer_page_for("radiologist")
    open_viewer(page, proc.study_instance_uid)
    assert page.get_by_test_id("btn-mpr").is_disabled()
    reason = page.get_by_test_id("mpr-reason").inner_text()
    assert "gap of 7.5 mm (2 slices missing)" in reason, reason
    page.keyboard.press("m")
    assert state(page)["mode"] == "stack"
    page.evaluate("(k) => window.risViewer.scrollTo(k)", 12)
    page.wait_for_function("Math.abs(window.risViewer.state().viewports[0].slicePosition - 35) < 1e-3")


def test_undecodable_object_shows_a_message_and_the_rest_of_the_series(
    viewer_page_for, ct_exam, phantom, tmp_path
):
    proc = ct_exam()
    items = list(demo.for_procedure(proc, demo.Phantom(**{**PHANTOM, "slices": 6})))
    bad = items[2]
    bad.file_meta.TransferSyntaxUID = JPEG2000Lossless
    bad.PixelData = encapsulate([b"\xff\x4f\xff\x51 not a codestream" * 4])
    bad["PixelData"].VR = "OB"
    demo.receive_and_ingest(items, workdir=tmp_path)
    page = viewer_page_for("radiologist")
    open_viewer(page, proc.study_instance_uid)
    page.evaluate("(k) => window.risViewer.scrollTo(k)", 2)
    message = page.locator("[data-viewport-id=main] .vp-message")
    message.wait_for(state="visible")
    assert "Image 3" in message.inner_text() and "cannot be decoded" in message.inner_text()
    assert JPEG2000Lossless in message.inner_text()
    page.evaluate("(k) => window.risViewer.scrollTo(k)", 3)
    page.wait_for_function("window.risViewer.state().viewports[0].imageIndex === 3")
    message.wait_for(state="hidden")
    wait_gray(page, "main", (0.0, -30.0, Z0 + 3 * SP), 110, 145)


def test_prior_side_by_side_scrolls_in_sync_by_position(viewer_page_for, imaged_exam):
    prior = imaged_exam(
        phantom_obj=demo.Phantom(**{**PHANTOM, "slices": 20, "slice_spacing": 5.0}), study_date="20250101"
    )
    current = imaged_exam(patient=prior.order.patient)
    page = viewer_page_for("radiologist")
    open_viewer(page, current.study_instance_uid)
    page.get_by_test_id("prior").select_option(prior.study_instance_uid)
    page.wait_for_function("window.risViewer.state().viewports.length === 2")
    page.evaluate("(k) => window.risViewer.scrollTo(k)", slice_of(SZ))  # z = 30 mm
    page.wait_for_function(
        "(z) => { const p = window.risViewer.state().viewports[1]; return Math.abs(p.slicePosition - z) < 1e-3; }",
        arg=SZ,
    )
    assert viewport(page, "prior")["imageIndex"] == 6  # 30 mm / 5 mm


def test_open_from_reading_worklist_and_report_editor_and_refused_for_front_desk(
    viewer_page_for, imaged_exam
):
    proc = imaged_exam()
    uid = proc.study_instance_uid
    page = viewer_page_for("radiologist")
    page.goto(page.base_url + "/reading/")
    row = page.locator(f"[data-testid=wl-row][data-accession='{proc.order.accession_number}']")
    with page.context.expect_page() as popup:
        row.get_by_test_id("open-viewer").click()
    viewer = popup.value
    viewer.wait_for_function("window.risViewer && window.risViewer.state().ready")
    assert viewer.url.endswith(f"/viewer/studies/{uid}/")
    assert state(viewer)["viewports"][0]["numImages"] == PHANTOM["slices"]
    assert AuditEvent.objects.filter(action="viewer.open", object_id=str(proc.studies.get().pk)).count() == 1
    viewer.close()
    row.get_by_test_id("claim").click()
    page.wait_for_url("**/reports/*/edit/")
    with page.context.expect_page() as popup:
        page.get_by_test_id("open-viewer").click()
    beside = popup.value
    beside.wait_for_function("window.risViewer && window.risViewer.state().ready")
    assert beside.url.endswith(f"/viewer/studies/{uid}/")
    assert page.url.endswith("/edit/")  # the report stays open beside the images
    beside.close()

    desk = viewer_page_for("front_desk")
    response = desk.goto(f"{desk.base_url}/viewer/studies/{uid}/")
    assert response.status == 403
    assert desk.get_by_test_id("viewer-refused").is_visible()
    assert desk.evaluate("typeof window.risViewer") == "undefined"
    assert AuditEvent.objects.filter(action="access.denied", actor_username="u_front_desk").exists()


def test_monochrome1_and_multiframe_objects(viewer_page_for, ct_exam, tmp_path):
    proc = ct_exam()
    small = {**PHANTOM, "slices": 3, "origin": (-48.0, -48.0, SZ - SP)}  # slice 1 cuts the sphere
    mono1 = list(demo.for_procedure(proc, demo.Phantom(**small)))
    for ds in mono1:
        ds.PhotometricInterpretation = "MONOCHROME1"
    # One multi-frame object (Multi-frame Grayscale Word SC): frame k is a flat 100·k HU.
    frames = demo.Phantom(**{**PHANTOM, "slices": 1})
    (mf,) = demo.for_procedure(proc, frames, series_description="multi-frame")
    mf.SOPClassUID = mf.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    mf.NumberOfFrames = 3
    mf.PixelData = b"".join(
        (np.full((96, 96), 100 * k - demo.INTERCEPT, dtype=np.uint16)).tobytes() for k in range(3)
    )
    mf.SeriesNumber = 3
    demo.receive_and_ingest([*mono1, mf], workdir=tmp_path)
    page = viewer_page_for("radiologist")
    open_viewer(page, proc.study_instance_uid)
    page.get_by_test_id("series-button").first.click()
    page.wait_for_function("window.risViewer.state().viewports[0].numImages === 3")
    page.evaluate("(k) => window.risViewer.scrollTo(k)", 1)
    # MONOCHROME1: high values are dark, so the 1000 HU sphere is black at the header window.
    z = SZ
    assert wait_gray(page, "main", (SX, SY, z), 0, 12) <= 12
    page.keyboard.press("i")
    assert wait_gray(page, "main", (SX, SY, z), 243, 255) >= 243
    page.get_by_test_id("series-button").nth(1).click()
    page.wait_for_function(
        "() => { const v = window.risViewer.state().viewports[0]; return v.numImages === 3 && v.imageId.endsWith('&frame=1'); }"
    )
    page.evaluate("(k) => window.risViewer.scrollTo(k)", 2)
    page.wait_for_function("window.risViewer.state().viewports[0].imageId.endsWith('&frame=3')")
    assert "multi-frame" in state(page)["series"]["volume"]["reason"]
    assert page.js_errors == []
