"""Dashboard correctness (issue 9 item 11): no negative turnaround, units by magnitude,
one "No-show" category, radiologists by name."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from department import selectors
from department.figures import Period
from reports.models import Report, ReportEvent
from ris.models import StaffProfile
from scheduling import services
from tests.department.conftest import DAY, at
from tests.factories import StationFactory, UserFactory, make_order

pytestmark = pytest.mark.django_db
PERIOD = Period(first=DAY, last=DAY)


@pytest.fixture(params=["sql", "python"])
def path(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setattr(selectors, "use_sql", lambda: False)
    elif not selectors.use_sql():
        pytest.skip("PostgreSQL path")
    return request.param


def overall(step):
    r = next(r for r in selectors.tat_table(PERIOD, dimensions=[]) if r["dimension"] == "all")
    return r[f"{step}_n"], r[f"{step}_p50"]


def test_no_step_is_ever_negative(path):
    """Early arrival, images linked while the exam was running, arrival before a reschedule."""
    t0 = datetime.combine(DAY, time(8, 0), tzinfo=timezone.get_current_timezone())
    st = StationFactory()
    # 1: arrives 11 min before the appointment (the −11 min seen on the dashboard).
    p1 = make_order(station=st, start=at(t0, 30), ordered_at=t0).procedures.get()
    services.procedure_mark_arrived(procedure=p1, at=at(t0, 19))
    services.procedure_start(procedure=p1, at=at(t0, 31))
    # Images were linked while the exam was still in progress (MPPS complete came later).
    services.procedure_images_available(procedure=p1, at=at(t0, 40))
    services.procedure_complete(procedure=p1, at=at(t0, 51))
    # 2: arrived for 9:00, rescheduled to 11:00, then started straight from the modality.
    p2 = make_order(station=st, start=at(t0, 60), ordered_at=t0).procedures.get()
    services.procedure_mark_arrived(procedure=p2, at=at(t0, 55))
    services.procedure_reschedule(procedure=p2, reason="Station unavailable", start=at(t0, 180))
    services.procedure_start(procedure=p2, at=at(t0, 185))

    table = selectors.tat_table(PERIOD, dimensions=[])
    values = [v for r in table for k, v in r.items() if k.endswith(("_p50", "_p90")) and v is not None]
    assert values and min(values) >= 0
    assert overall("scheduled_to_arrived") == (1, 0)  # early = on time, not −11 min
    assert overall("completed_to_images") == (1, 0)  # images were already there
    # The arrival before the reschedule no longer counts: p2 has no arrived → started step.
    assert overall("arrived_to_started") == (1, 12 * 60)


def test_multi_day_steps_are_shown_in_days_and_short_ones_in_minutes(path):
    t0 = datetime.combine(DAY, time(8, 0), tzinfo=timezone.get_current_timezone())
    st = StationFactory()
    p = make_order(station=st, start=at(t0, 3 * 24 * 60), ordered_at=t0).procedures.get()
    services.procedure_mark_arrived(procedure=p, at=at(t0, 3 * 24 * 60 - 5))
    services.procedure_start(procedure=p, at=at(t0, 3 * 24 * 60 + 10))
    services.procedure_complete(procedure=p, at=at(t0, 3 * 24 * 60 + 30))
    fig = selectors.fig_tat_chain(PERIOD)
    assert fig.unit == "d" and "(days)" in fig.title
    assert fig.columns[2:] == ["Median (d)", "90th percentile (d)"]
    rows = {r[0]: r for r in fig.rows}
    assert rows["order → scheduled"][2] == 3.0
    by = selectors.fig_tat_by(PERIOD, "modality", "started_to_completed")
    assert by.unit == "min" and by.rows[0][2] == 20.0
    assert selectors.duration_unit([90 * 60]) == "min"
    assert selectors.duration_unit([5 * 3600]) == "h"
    assert selectors.duration_unit([None, 49 * 3600]) == "d"


def test_one_no_show_category(path):
    st = StationFactory()
    day = DAY + timedelta(days=30)
    t10 = datetime.combine(day, time(10, 0), tzinfo=timezone.get_current_timezone())
    make_order(station=st, start=t10)  # never arrived: a no-show
    for reason in ("Patient did not attend", "No-show", "patient request"):
        proc = make_order(station=st, start=t10 + timedelta(minutes=20)).procedures.get()
        services.procedure_cancel(procedure=proc, reason=reason, at=t10)
    fig = selectors.fig_cancellations(Period(first=day, last=day))
    labels = [r[0] for r in fig.rows]
    assert labels.count("No-show") == 1 and "Patient did not attend" not in labels
    assert dict(fig.rows) == {"patient request": 1, "No-show": 3}


def test_radiologists_are_listed_by_name(path):
    t0 = datetime.combine(DAY, time(8, 0), tzinfo=timezone.get_current_timezone())
    st = StationFactory()
    wang = UserFactory(username="wangxd", first_name="Xiaodong", last_name="Wang")
    li = UserFactory(username="lim")
    StaffProfile.objects.create(user=li, printed_name="李明 主任医师")
    rev = UserFactory(username="rev1")
    for author in (wang, li):
        p = make_order(station=st, start=at(t0, 30), ordered_at=t0).procedures.get()
        services.procedure_start(procedure=p, at=at(t0, 31))
        services.procedure_complete(procedure=p, at=at(t0, 40))
        r = Report.objects.create(requested_procedure=p, author=author, status="final")
        ReportEvent.objects.create(report=r, action="submitted", at=at(t0, 50), actor=author)
        ReportEvent.objects.create(report=r, action="signed", at=at(t0, 60), actor=rev)
    signed = {r[0] for r in selectors.fig_signed_per_radiologist(PERIOD).rows}
    assert signed == {"Xiaodong Wang", "李明 主任医师", "rev1"}
    assert {r[0] for r in selectors.fig_tat_by(PERIOD, "radiologist").rows} == {
        "Xiaodong Wang",
        "李明 主任医师",
    }
    assert {r[0] for r in selectors.fig_error_rates(PERIOD).rows} == {"Xiaodong Wang", "李明 主任医师"}
