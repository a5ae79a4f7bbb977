"""Console: cancelled exams are not "completed"; no "not in MPPS" for stations that never send MPPS."""

from __future__ import annotations

import pytest
from django.urls import reverse

from scheduling import services as sched
from tests.factories import StationFactory, make_order
from worklist import services

from .mpps_data import for_procedure, n_create
from .test_console import today_slot

pytestmark = pytest.mark.django_db


def _columns(client):
    response = client.get(reverse("worklist:console"), {"station": "CT9"})
    return {key: [s.requested_procedure_id for s in steps] for key, _l, steps in response.context["columns"]}


def test_cancelled_exam_is_not_in_the_completed_column(client_for):
    station = StationFactory(ae_title="CT9")
    done = make_order(station=station, start=today_slot()).procedures.get()
    cancelled = make_order(station=station, start=today_slot(15)).procedures.get()
    sched.procedure_start(procedure=done)
    sched.procedure_complete(procedure=done)
    sched.procedure_cancel(procedure=cancelled, reason="Patient request")
    c = client_for("technologist")
    columns = _columns(c)
    assert columns["completed"] == [done.pk]
    assert columns["cancelled"] == [cancelled.pk]
    body = c.get(reverse("worklist:console"), {"station": "CT9"}).content.decode()
    assert 'data-testid="console-col-cancelled"' in body


def _with_series(exam):
    imaging = pytest.importorskip("imaging.models")
    study = imaging.Study.objects.create(study_instance_uid=exam.study_instance_uid, requested_procedure=exam)
    imaging.Series.objects.create(study=study, series_instance_uid="1.2.3.4.5", num_instances=4)


def test_station_that_never_sent_mpps_gets_no_mpps_warning(client_for):
    exam = make_order(
        station=StationFactory(ae_title="DX9", modality="DX"), start=today_slot()
    ).procedures.get()
    _with_series(exam)
    c = client_for("technologist")
    response = c.get(reverse("worklist:exam", args=[exam.pk]))
    body = response.content.decode()
    assert "not in MPPS" not in body and 'data-testid="no-mpps"' in body
    assert "4 received" in body and "reported" not in body.split('data-testid="image-check-summary"')[1][:80]
    assert response.context["image_check"].complete


def test_station_with_mpps_history_still_warns(client_for):
    station = StationFactory(ae_title="CT8")
    earlier = make_order(station=station, start=today_slot()).procedures.get()
    services.mpps_create(attributes=n_create(for_procedure(earlier)), calling_ae="CT8")
    exam = make_order(station=station, start=today_slot(30)).procedures.get()
    _with_series(exam)
    body = client_for("technologist").get(reverse("worklist:exam", args=[exam.pk])).content.decode()
    assert "not in MPPS" in body
