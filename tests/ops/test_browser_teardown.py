"""Browser tests leave no request in flight at teardown (issue 9 item 23).

The department page's chart requests were still running while the database was flushed
(PostgreSQL deadlock). ``page_for``'s teardown now aborts new requests, closes the contexts and
waits until the live server has no connection in flight.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.ops import slow_urls

pytestmark = [pytest.mark.browser]


@pytest.fixture
def slow_request_finished_before_flush():
    """Torn down after page_for (requested first): the slow request must be over by then."""
    slow_urls.started.clear()
    slow_urls.finished.clear()
    yield
    assert slow_urls.started.is_set(), "the slow request never reached the server"
    assert slow_urls.finished.is_set(), "page_for's teardown returned while a request was in flight"


def test_teardown_waits_for_in_flight_requests(slow_request_finished_before_flush, page_for, settings):
    settings.ROOT_URLCONF = "tests.ops.slow_urls"
    page = page_for("front_desk")
    page.goto(f"{page.base_url}/blank/")
    page.evaluate("() => { fetch('/slow/'); }")
    deadline = time.monotonic() + 30
    while not slow_urls.started.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    # The test ends with the request running; the teardown must wait for it.


@pytest.mark.django_db
def test_quiesce_counts_connections(live_server, live_server_quiesce):
    host, port = live_server.thread.host, live_server.thread.port
    sock = socket.create_connection((host, port))
    try:
        sock.sendall(b"GET /blank/ HTTP/1.1\r\nHost: x\r\n")  # incomplete request: still in flight
        with pytest.raises(AssertionError, match="in flight"):
            live_server_quiesce.wait_idle(timeout=1.0)
    finally:
        sock.close()
    live_server_quiesce.wait_idle(timeout=30)


@pytest.mark.django_db
def test_quiesce_does_not_wait_for_an_idle_socket(live_server, live_server_quiesce):
    """A connection that sends nothing for a while (a browser's preconnect or keep-alive socket
    after its context closed) holds no lock: teardown goes on once it has been quiet."""
    host, port = live_server.thread.host, live_server.thread.port
    sock = socket.create_connection((host, port))
    try:
        started = time.monotonic()
        live_server_quiesce.wait_idle(timeout=30)
        assert time.monotonic() - started >= live_server_quiesce.IDLE_SOCKET_SECONDS - 0.1
    finally:
        sock.close()
