"""Role × page matrix: every page in the navigation answers 200 to the roles that may use it,
403 to the others, and sends anonymous visitors to the login page."""

from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, reverse

from ris.context_processors import NAV
from ris.roles import Role

pytestmark = pytest.mark.django_db

FD, TE, RA, RV, DH, AD = (
    Role.FRONT_DESK,
    Role.TECHNOLOGIST,
    Role.RADIOLOGIST,
    Role.REVIEWER,
    Role.DEPT_HEAD,
    Role.ADMIN,
)
CLINICAL = {FD, TE, RA, RV, DH, AD}

# Written out by hand: a change to who may open a page must change this table too.
EXPECTED = {
    "registration:patient_search": CLINICAL,
    "scheduling:calendar": CLINICAL,
    "scheduling:board": CLINICAL,
    "scheduling:to_book": {FD, AD},
    "worklist:console": {TE, AD},
    "imaging:reconciliation": {TE, DH, AD},
    "reports:reading_worklist": {RA, RV, AD},
    "reports:review_queue": {RV, AD},
    "reports:search": {FD, RA, RV, DH, AD},
    "department:dashboard": {DH, AD},
    "audit:event_list": {DH, AD},
    "integration:monitor": {DH, AD},
}


def _pages():
    out = []
    for _label, name, _action in NAV:
        try:
            out.append((name, reverse(name)))
        except NoReverseMatch:
            continue
    return out


def test_every_nav_entry_has_an_expectation():
    assert {name for _l, name, _a in NAV} == set(EXPECTED)


@pytest.mark.parametrize("role", sorted(CLINICAL))
def test_page_matrix(client_for, role):
    pages = _pages()
    assert pages, "no page is routed"
    client = client_for(role)
    for name, url in pages:
        resp = client.get(url)
        expected = 200 if role in EXPECTED[name] else 403
        assert resp.status_code == expected, (role, name, resp.status_code)


def test_anonymous_is_sent_to_login(client):
    for name, url in _pages():
        resp = client.get(url)
        assert resp.status_code == 302, name
        assert reverse("login") in resp["Location"], name


def test_navigation_shows_only_permitted_pages(client_for):
    html = client_for(FD).get(reverse("scheduling:board")).content.decode()
    assert reverse("scheduling:board") in html
    for name, url in _pages():
        if FD not in EXPECTED[name]:
            assert f'href="{url}"' not in html, name
