from __future__ import annotations

import contextlib

import pytest
from rest_framework.test import APIClient

from ris.roles import Role
from tests.factories import UserFactory


@pytest.fixture
def users(db):
    """One user per role, keyed by role name."""
    return {role: UserFactory(username=f"u_{role}", role=role) for role in Role.ALL}


@pytest.fixture
def api_for(users):
    def make(role: str) -> APIClient:
        client = APIClient()
        client.force_authenticate(users[role])
        return client

    return make


@pytest.fixture
def client_for(users, client):
    from django.test import Client

    def make(role: str) -> Client:
        c = Client()
        c.force_login(users[role])
        return c

    return make


# ---------------------------------------------------------------------------------------
# Browser tests: Debian Chromium driven by Playwright against pytest-django's live_server.

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser():
    import os

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page actions are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is not installed (make test installs it)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class LiveServerQuiesce:
    """Knows when pytest-django's live server has nothing in flight (browser test teardown).

    Counted at the connection level, not the browser's: ``networkidle`` never comes on pages
    that poll, and a request the browser gave up on (context closed) still runs in the server
    thread, holding database locks while the test database is flushed — the deadlock seen at
    teardown. A connection counts from the moment the server accepts it until its handler
    thread ends (after the response is closed and Django's request_finished ran); a connection
    still waiting in the listen backlog shows as a readable listening socket. Requests in the
    WSGI application are counted too, so that an idle socket can be told from a running request.
    """

    # An open connection with no request started or finished for this long is an idle
    # keep-alive or preconnected socket (Chromium may hold one after its context closed): it
    # holds no database lock, so it is not waited for. A request in the application always is.
    IDLE_SOCKET_SECONDS = 2.0

    def __init__(self, httpd):
        import threading
        import time

        self.httpd = httpd
        self.open = 0
        self.active = 0
        self.last_activity = time.monotonic()
        self.cond = threading.Condition()
        process_request, process_request_thread = httpd.process_request, httpd.process_request_thread
        app = httpd.get_app()
        quiesce = self

        class _Counted:
            """The WSGI response; the server calls close() once it has sent it."""

            def __init__(self, result):
                self.result = result

            def __iter__(self):
                return iter(self.result)

            def close(self):
                try:
                    if hasattr(self.result, "close"):
                        self.result.close()
                finally:
                    quiesce._request_done()

        def counted_app(environ, start_response):
            with self.cond:
                self.active += 1
                self.last_activity = time.monotonic()
            try:
                return _Counted(app(environ, start_response))
            except BaseException:
                self._request_done()
                raise

        httpd.set_app(counted_app)

        def counted_process_request(request, client_address):
            with self.cond:
                self.open += 1
                self.last_activity = time.monotonic()
            try:
                process_request(request, client_address)
            except BaseException:
                self._done()
                raise

        def counted_thread(request, client_address):
            try:
                process_request_thread(request, client_address)
            finally:
                self._done()

        httpd.process_request = counted_process_request
        httpd.process_request_thread = counted_thread

    def _done(self) -> None:
        with self.cond:
            self.open -= 1
            self.cond.notify_all()

    def _request_done(self) -> None:
        import time

        with self.cond:
            self.active -= 1
            self.last_activity = time.monotonic()
            self.cond.notify_all()

    def _backlog(self) -> bool:
        import select

        readable, _, _ = select.select([self.httpd.socket], [], [], 0)
        return bool(readable)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Return once nothing is in flight twice in a row 0.2 s apart; fail after ``timeout``."""
        import time

        deadline = time.monotonic() + timeout
        quiet_since = None
        with self.cond:
            while True:
                now = time.monotonic()
                sockets_idle = self.open == 0 or now - self.last_activity >= self.IDLE_SOCKET_SECONDS
                idle = self.active == 0 and sockets_idle and not self._backlog()
                if idle:
                    quiet_since = quiet_since or now
                    if now - quiet_since >= 0.2:
                        return
                else:
                    quiet_since = None
                if now >= deadline:
                    raise AssertionError(
                        f"live server still has {self.active} request(s) and {self.open} connection(s) in flight"
                    )
                self.cond.wait(0.05)


@pytest.fixture(scope="session")
def live_server_quiesce(live_server):
    import time

    thread = live_server.thread
    deadline = time.monotonic() + 30
    while not hasattr(thread, "httpd") and time.monotonic() < deadline:
        time.sleep(0.05)
    return LiveServerQuiesce(thread.httpd)


@pytest.fixture
def page_for(browser, live_server, live_server_quiesce, transactional_db, users):
    """Open a browser page logged in as the demo user of a role: ``page = page_for("front_desk")``.

    Teardown stops every request before the database is flushed: new requests are aborted,
    the contexts are closed, then it waits until the live server has none in flight.
    """
    from django.conf import settings
    from django.test import Client

    contexts = []

    def make(role: str, *, language: str = "en"):
        client = Client()
        client.force_login(users[role])
        context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                },
                {"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url},
            ]
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.base_url = live_server.url
        return page

    yield make
    for context in contexts:
        # No new request (a poll timer) starts while the contexts close; a gone context is fine.
        with contextlib.suppress(Exception):
            context.route("**/*", lambda route: route.abort())
    for context in contexts:
        context.close()
    live_server_quiesce.wait_idle()
