"""Viewer test fixtures: a synthetic CT volume with known geometry, and a WebGL-capable Chromium.

Debian Chromium renders WebGL 2 headless through SwiftShader (software), so the viewer's
real rendering path runs in the tests; each browser test checks ``webgl2`` first.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order
from viewer import demo

CHROMIUM = "/usr/bin/chromium"
GL_ARGS = [
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# The test phantom: 96×96 × 40 slices, 1.0 mm pixels, 2.5 mm slices; a 1000 HU sphere and an
# air cavity in different slabs so that only a thick projection shows both from one plane.
PHANTOM = dict(
    rows=96,
    columns=96,
    slices=40,
    pixel_spacing=1.0,
    slice_spacing=2.5,
    origin=(-48.0, -48.0, 0.0),
    sphere_center=(20.0, 0.0, 30.0),
    sphere_radius=12.0,
    sphere_hu=1000,
    cavity_center=(-20.0, 10.0, 70.0),
    cavity_radius=10.0,
    cavity_hu=-1000,
)


@pytest.fixture
def phantom():
    return demo.Phantom(**PHANTOM)


@pytest.fixture
def ct_exam(db):
    """An ordered CT exam for a registered patient (not yet imaged)."""

    def make(*, patient=None):
        station = StationFactory(modality="CT")
        ptype = ProcedureTypeFactory(modality="CT", code_value=f"CTV{station.pk}")
        order = make_order(patient=patient or PatientFactory(), station=station, procedure_type=ptype)
        return order.procedures.select_related("order__patient", "procedure_type").get()

    return make


@pytest.fixture
def imaged_exam(ct_exam, phantom, tmp_path):
    """A CT exam whose synthetic volume went through the normal ingest (indexed and linked)."""

    def make(*, patient=None, phantom_obj=None, **kwargs):
        proc = ct_exam(patient=patient)
        demo.receive_and_ingest(demo.for_procedure(proc, phantom_obj or phantom, **kwargs), workdir=tmp_path)
        proc.refresh_from_db()
        return proc

    return make


@pytest.fixture(scope="session")
def gl_browser(browser):
    """A second Chromium with WebGL flags, from the suite's one Playwright instance
    (the shared ``browser`` runs with --disable-gpu; two sync Playwrights cannot coexist)."""
    b = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=GL_ARGS)
    try:
        page = b.new_page()
        has_webgl2 = page.evaluate("!!document.createElement('canvas').getContext('webgl2')")
        page.close()
        if not has_webgl2:
            pytest.skip("this Chromium offers no WebGL 2 even through SwiftShader")
        yield b
    finally:
        b.close()


@pytest.fixture
def viewer_page_for(gl_browser, live_server, live_server_quiesce, transactional_db, users):
    """A logged-in page in the WebGL browser: ``page = viewer_page_for("radiologist")``."""
    from django.conf import settings
    from django.test import Client

    contexts = []

    def make(role: str):
        client = Client()
        client.force_login(users[role])
        context = gl_browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                },
                {"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": live_server.url},
            ]
        )
        context.set_default_timeout(60_000)
        contexts.append(context)
        page = context.new_page()
        page.base_url = live_server.url
        page.js_errors = []
        page.on("pageerror", lambda e: page.js_errors.append(str(e)))
        return page

    yield make
    # As page_for: no new request starts while the contexts close, then the live server drains.
    for context in contexts:
        with contextlib.suppress(Exception):
            context.route("**/*", lambda route: route.abort())
    for context in contexts:
        context.close()
    live_server_quiesce.wait_idle()
