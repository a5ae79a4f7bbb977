"""Benchmark (not a test): the viewer's time to first image and to an MPR-ready volume.

    python bench/viewer.py [--slices 200] [--size 512] [--runs 3] [--workers 4]

Makes two studies of the same synthetic 512×512 CT volume (``viewer.demo``: soft tissue,
a bright sphere, an air cavity), one uncompressed (Explicit VR Little Endian) and one
JPEG 2000 lossless (encoded with pylibjpeg-openjpeg: ``pip install pylibjpeg==2.1.0
pylibjpeg-openjpeg==2.6.0``, not part of the locked set), stores them through the
normal ingest into a scratch PostgreSQL database, serves the RIS with gunicorn (as in
production; static files by WhiteNoise) on a free loopback port, and opens each study in
headless Debian Chromium (WebGL through SwiftShader), cold (a new browser context per run),
interleaving the two. It reports, from the page's own clock (navigation start):

- first image: the first slice rendered in the stack viewport (bundle, manifest, one object);
- volume ready: every slice fetched, decoded and in the MPR volume.

Goals on this machine: first image ≤ 1 s, volume ≤ 5 s. The load average is printed beside
each figure. ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/ris_viewer_bench``)
is created when missing and reused; its bench studies are replaced each run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/ris_viewer_bench"
GL_ARGS = [
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-background-networking",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.2f} {b:.2f} {c:.2f}"


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def prepare(args, storage: Path) -> tuple[tuple[str, str], str, str]:
    """Migrate, make the bench user and both studies; return (session cookie, uid raw, uid j2k)."""
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "ris.settings"
    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from pydicom.uid import JPEG2000Lossless

    from imaging.models import Study
    from ris.roles import Role, ensure_groups
    from tests.factories import UserFactory
    from viewer import demo

    call_command("migrate", verbosity=0)
    ensure_groups()
    from django.contrib.auth.models import User

    user = User.objects.filter(username="bench_radiologist").first() or UserFactory(
        username="bench_radiologist", role=Role.RADIOLOGIST
    )
    phantom = demo.Phantom(
        rows=args.size,
        columns=args.size,
        slices=args.slices,
        pixel_spacing=round(400 / args.size, 4),
        slice_spacing=1.0,
        origin=(-200.0, -200.0, -args.slices / 2),
    )
    uids = []
    for label, syntax in (("raw", None), ("j2k", JPEG2000Lossless)):
        description = f"bench viewer {label}"
        Study.objects.filter(description=description).delete()
        t0 = time.perf_counter()

        def items(syntax=syntax, description=description):
            for ds in demo.datasets(phantom, study_uid=demo.generate_uid(), description=description):
                if syntax:
                    ds.compress(syntax, encoding_plugin="pylibjpeg")
                yield ds

        uids.append(demo.receive_and_ingest(items(), workdir=storage))
        print(
            f"prepared {label}: {args.slices} × {args.size}² in {time.perf_counter() - t0:.1f} s", flush=True
        )
    client = Client()
    client.force_login(user)
    from django.conf import settings

    return (
        (settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value),
        uids[0],
        uids[1],
    )


def measure(browser, base: str, cookie: tuple[str, str], uid: str) -> tuple[float, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": base}])
    page = context.new_page()
    try:
        page.goto(f"{base}/viewer/studies/{uid}/")
        page.wait_for_function(
            "window.risViewer && window.risViewer.state().firstImageMs > 0", timeout=120_000
        )
        page.wait_for_function("window.risViewer.state().volume.ready", timeout=300_000)
        s = page.evaluate("window.risViewer.state()")
        if s["errors"]:
            raise RuntimeError(f"decode errors: {list(s['errors'].values())[:2]}")
        return s["firstImageMs"] / 1000, s["volumeReadyMs"] / 1000
    finally:
        page.goto("about:blank")
        context.close()


def main() -> None:
    import logging

    logging.disable(logging.INFO)  # the encoder logs every tile
    try:
        import openjpeg  # noqa: F401
    except ImportError:
        sys.exit(
            "bench/viewer.py encodes JPEG 2000 with pylibjpeg-openjpeg: pip install pylibjpeg==2.1.0 pylibjpeg-openjpeg==2.6.0"
        )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    db = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    ensure_database(db)
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        storage = Path(tmp) / "storage"
        storage.mkdir()
        env = {
            **os.environ,
            "DATABASE_URL": db,
            "RIS_STORAGE_ROOT": str(storage),
            "RIS_VAR_DIR": tmp,
            "DJANGO_DEBUG": "true",  # WhiteNoise serves static files from the finders, no collectstatic
            "CELERY_BROKER_URL": "",
        }
        os.environ.update(
            {k: env[k] for k in ("DATABASE_URL", "RIS_STORAGE_ROOT", "RIS_VAR_DIR", "DJANGO_DEBUG")}
        )
        os.environ.pop("CELERY_BROKER_URL", None)
        cookie, uid_raw, uid_j2k = prepare(args, Path(tmp))
        port = free_port()
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "ris.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--threads",
                "4",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.2)
            from playwright.sync_api import sync_playwright

            results: dict[str, list[tuple[float, float]]] = {"uncompressed": [], "JPEG 2000": []}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=GL_ARGS)
                try:
                    measure(browser, base, cookie, uid_raw)  # warm the server (imports, connections)
                    for run in range(args.runs):
                        for label, uid in (("uncompressed", uid_raw), ("JPEG 2000", uid_j2k)):
                            first, ready = measure(browser, base, cookie, uid)
                            results[label].append((first, ready))
                            print(
                                f"run {run + 1} {label:12s} first image {first:6.2f} s   "
                                f"volume ({args.slices} slices) {ready:6.2f} s   {load()}",
                                flush=True,
                            )
                finally:
                    browser.close()
            print(
                f"\nmedian of {args.runs} cold runs, {args.size}×{args.size} × {args.slices}, gunicorn ×{args.workers}:"
            )
            for label, rows in results.items():
                first = statistics.median(r[0] for r in rows)
                ready = statistics.median(r[1] for r in rows)
                print(
                    f"  {label:12s} first image {first:6.2f} s (goal ≤ 1 s)   "
                    f"volume ready {ready:6.2f} s (goal ≤ 5 s)   {load()}"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
