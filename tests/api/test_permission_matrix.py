"""Role × endpoint matrix for the foundation API (expected 2xx / 403 / 404).

The expected roles are written out by hand here (not read from ris.roles), so a change to
the permission matrix must be a deliberate change to this table too.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ris.models import StaffProfile
from ris.roles import Role
from scheduling.models import RequestedProcedure
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order, next_slot

pytestmark = pytest.mark.django_db

FD, TE, RA, RV, DH, AD = (
    Role.FRONT_DESK,
    Role.TECHNOLOGIST,
    Role.RADIOLOGIST,
    Role.REVIEWER,
    Role.DEPT_HEAD,
    Role.ADMIN,
)
EVERYONE = {FD, TE, RA, RV, DH, AD}

# (name, method, url template, payload factory or None, roles that succeed)
MATRIX = [
    ("patients list", "get", "/api/v1/patients/", None, EVERYONE),
    ("patient detail", "get", "/api/v1/patients/{patient}/", None, EVERYONE),
    (
        "patient create",
        "post",
        "/api/v1/patients/",
        lambda ctx: {"family_name": "New", "given_name": "P"},
        {FD, AD},
    ),
    ("patient update", "patch", "/api/v1/patients/{patient}/", lambda ctx: {"phone": "123"}, {FD, AD}),
    ("stations list", "get", "/api/v1/stations/", None, EVERYONE),
    (
        "station create",
        "post",
        "/api/v1/stations/",
        lambda ctx: {"ae_title": f"NEW{ctx['n']}", "name": "N", "modality": "CT"},
        {DH, AD},
    ),
    ("catalog list", "get", "/api/v1/procedure-types/", None, EVERYONE),
    (
        "catalog create",
        "post",
        "/api/v1/procedure-types/",
        lambda ctx: {"code_value": f"C{ctx['n']}", "code_meaning": "X", "modality": "CT"},
        {AD},
    ),
    ("orders list", "get", "/api/v1/orders/", None, EVERYONE),
    ("order detail", "get", "/api/v1/orders/{order}/", None, EVERYONE),
    (
        "order create",
        "post",
        "/api/v1/orders/",
        lambda ctx: {
            "patient": ctx["patient"],
            "procedure_code": "CTX",
            "station_ae_title": "CTM",
            "start": next_slot(30 * ctx["n"]).isoformat(),
        },
        {FD, AD},
    ),
    ("procedures list", "get", "/api/v1/procedures/", None, EVERYONE),
    ("procedure detail", "get", "/api/v1/procedures/{procedure}/", None, EVERYONE),
    ("procedure events", "get", "/api/v1/procedures/{procedure}/events/", None, EVERYONE),
    ("arrive", "post", "/api/v1/procedures/{procedure}/arrive/", None, {FD, TE, AD}),
    ("cancel", "post", "/api/v1/procedures/{procedure}/cancel/", lambda ctx: {"reason": "r"}, {FD, AD}),
    ("start", "post", "/api/v1/procedures/{started}/start/", None, {TE, AD}),
]


@pytest.fixture
def ctx(db):
    station = StationFactory(ae_title="CTM", modality="CT")
    ptype = ProcedureTypeFactory(code_value="CTX", modality="CT")
    order = make_order(station=station, procedure_type=ptype, start=next_slot(-60))
    started = make_order(station=station, procedure_type=ptype, start=next_slot(-120)).procedures.get()
    return {
        "patient": order.patient_id,
        "order": order.pk,
        "procedure": order.procedures.get().pk,
        "started": started.pk,
        "n": 0,
    }


@pytest.mark.parametrize("role", sorted(EVERYONE))
@pytest.mark.parametrize(("name", "method", "url", "payload", "allowed"), MATRIX, ids=[m[0] for m in MATRIX])
def test_matrix(api_for, ctx, role, name, method, url, payload, allowed):
    ctx["n"] = sorted(EVERYONE).index(role) + 1
    client = api_for(role)
    data = payload(ctx) if payload else None
    resp = getattr(client, method)(url.format(**ctx), data, format="json")
    if role in allowed:
        assert 200 <= resp.status_code < 300, (role, name, resp.status_code, resp.content[:300])
    else:
        assert resp.status_code == 403, (role, name, resp.status_code)


@pytest.mark.parametrize(("name", "method", "url", "payload", "allowed"), MATRIX, ids=[m[0] for m in MATRIX])
def test_anonymous_is_refused(ctx, name, method, url, payload, allowed):
    resp = getattr(APIClient(), method)(url.format(**ctx), payload(ctx) if payload else None, format="json")
    assert resp.status_code in (401, 403)


def test_user_without_role_sees_nothing(ctx):
    from tests.factories import UserFactory

    client = APIClient()
    client.force_authenticate(UserFactory())
    assert client.get("/api/v1/patients/").status_code == 403
    assert client.get("/api/v1/procedures/").status_code == 403


def test_object_scope_technologist_modality(users, api_for):
    """A technologist scoped to MR sees MR procedures only: a CT procedure is 404, not 403."""
    StaffProfile.objects.create(user=users[TE], modalities="MR")
    ct = make_order(station=StationFactory(ae_title="CTS", modality="CT")).procedures.get()
    mr_station = StationFactory(ae_title="MRS", modality="MR")
    mr = make_order(station=mr_station, procedure_type=ProcedureTypeFactory(modality="MR")).procedures.get()
    tech = api_for(TE)
    ids = [p["id"] for p in tech.get("/api/v1/procedures/").json()["results"]]
    assert ids == [mr.pk]
    assert tech.get(f"/api/v1/procedures/{ct.pk}/").status_code == 404
    assert tech.post(f"/api/v1/procedures/{ct.pk}/start/").status_code == 404
    assert RequestedProcedure.objects.get(pk=ct.pk).status == "scheduled"
    orders = [o["accession_number"] for o in tech.get("/api/v1/orders/").json()["results"]]
    assert orders == [mr.order.accession_number]
    # Others are not scoped.
    assert api_for(RA).get(f"/api/v1/procedures/{ct.pk}/").status_code == 200


def test_merged_patient_is_not_listed(api_for):
    survivor, temp = PatientFactory(), PatientFactory(is_temporary=True)
    from registration.services import patient_merge

    patient_merge(source=temp, target=survivor, actor=None)
    api = api_for(FD)
    ids = [p["id"] for p in api.get("/api/v1/patients/").json()["results"]]
    assert temp.pk not in ids and survivor.pk in ids
    assert api.get(f"/api/v1/patients/{temp.pk}/").status_code == 404
