"""Volumes, workload, backlog, no-shows, error statistics and materials on hand-built data."""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from department import registry, selectors
from department.figures import Period, period_from_params
from department.services import material_item_upsert, material_record_usage
from reports.models import CriticalResult, PeerReview, Report, ReportEvent
from ris.errors import ApplicationError
from scheduling import services
from scheduling.models import StationDowntime
from tests.department.conftest import DAY
from tests.factories import StationFactory, UserFactory, make_order

PERIOD = Period(first=DAY, last=DAY)
TZ = timezone.get_current_timezone


def table(fig):
    return {r[0]: r[1:] for r in fig.rows}


@pytest.fixture(params=["sql", "python"])
def path(request, monkeypatch):
    """Run a test against the PostgreSQL (milestone table) path and the portable ORM path."""
    if request.param == "python":
        monkeypatch.setattr(selectors, "use_sql", lambda: False)
    elif not selectors.use_sql():
        pytest.skip("PostgreSQL path")
    return request.param


@pytest.mark.django_db
def test_volume_per_modality_and_station(history, path):
    fig = selectors.fig_volume(PERIOD, by="day", per="modality")
    assert fig.columns == ["Day", "CT", "MR", "Total"]
    # Completed (not cancelled, not discontinued): P1, P2 on CT; P5 on MR.
    assert fig.rows == [[DAY.isoformat(), 2, 1, 3]]
    week = selectors.fig_volume(Period(first=DAY, last=DAY + timedelta(days=9)), by="week", per="station")
    assert week.columns == ["Week", "CTA", "MRB", "Total"]
    # DAY is a Monday: two weekly buckets, the second empty.
    assert week.rows == [[DAY.isoformat(), 2, 1, 3], [(DAY + timedelta(days=7)).isoformat(), 0, 0, 0]]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["sql", "python"])
def test_station_utilisation(history, path, monkeypatch):
    if path == "python":
        monkeypatch.setattr(selectors, "use_sql", lambda: False)
    elif not selectors.use_sql():
        pytest.skip("PostgreSQL path")
    ct, _mr = history["stations"]
    day_start = datetime.combine(DAY, time(10, 0), tzinfo=TZ())
    StationDowntime.objects.create(
        station=ct, start=day_start, end=day_start + timedelta(hours=2), reason="tube"
    )
    rows = {r[0]: r[1:] for r in selectors.station_utilisation(PERIOD)}
    # Stations open around the clock (00:00-00:00) = 1440 min = 96 whole 15-min slots; CTA
    # loses 120 min of downtime. Booked: 15-min steps (the cancelled P3's step does not count).
    # Performed: start → complete/discontinue (P4 discontinued after 15 min).
    assert rows["CTA"] == ["CT", 1320, 30, 30, round(100 * 30 / 1320, 1), round(100 * 30 / 1320, 1)]
    assert rows["MRB"] == ["MR", 1440, 30, 45, round(100 * 30 / 1440, 1), round(100 * 45 / 1440, 1)]


@pytest.mark.django_db
def test_backlog_buckets(path):
    now = timezone.now()
    author = UserFactory()

    def completed(hours_ago, report_status=None, discontinue=False):
        proc = make_order(start=now - timedelta(hours=hours_ago, minutes=30)).procedures.get()
        services.procedure_start(procedure=proc, at=now - timedelta(hours=hours_ago, minutes=20))
        if discontinue:
            services.procedure_discontinue(procedure=proc, reason="x", at=now - timedelta(hours=hours_ago))
        else:
            services.procedure_complete(procedure=proc, at=now - timedelta(hours=hours_ago))
        if report_status:
            report = Report.objects.create(requested_procedure=proc, author=author, status=report_status)
            if report_status == "final":
                ReportEvent.objects.create(report=report, action="signed", at=now - timedelta(hours=1))
        return proc

    completed(0.5)
    completed(2, "preliminary")
    completed(2.5, "draft")
    completed(5, "final")  # read: not backlog
    completed(48)
    completed(3, discontinue=True)  # nothing to read
    completed(24 * 40)  # older than the 30-day window
    assert selectors.backlog(now=now) == [
        ["< 1 h", 1],
        ["1–4 h", 2],
        ["4–24 h", 0],
        ["1–3 d", 1],
        ["> 3 d", 0],
    ]


@pytest.mark.django_db
def test_no_shows_and_cancellations(db):
    st = StationFactory()
    day = DAY + timedelta(days=30)
    at10 = datetime.combine(day, time(10, 0), tzinfo=TZ())
    no_show = make_order(station=st, start=at10).procedures.get()
    make_order(station=st, start=at10 + timedelta(hours=2))  # too recent to call a no-show
    came = make_order(station=st, start=at10 + timedelta(minutes=30)).procedures.get()
    services.procedure_mark_arrived(procedure=came)
    period = Period(first=day, last=day)
    assert selectors.no_show_count(period, now=at10 + timedelta(hours=3)) == 1
    services.procedure_cancel(procedure=no_show, reason="patient request")
    assert selectors.no_show_count(period, now=at10 + timedelta(hours=3)) == 0
    today = timezone.localdate()
    fig = selectors.fig_cancellations(Period(first=today, last=today))
    assert table(fig)["patient request"] == [1]


@pytest.mark.django_db
def test_signed_per_radiologist(history, path):
    fig = selectors.fig_signed_per_radiologist(PERIOD)
    # rad_a authored P1, P2; rad_b P5; rev gave all three signatures.
    assert table(fig) == {"rad_a": [2, 0], "rad_b": [1, 0], "rev": [0, 3]}


@pytest.mark.django_db
def test_error_rates(history, path):
    # [signed, with addendum, addendum %, submitted, returned, return %]
    assert {r[0]: r[1:] for r in selectors.error_rates(PERIOD)} == {
        "rad_a": [2, 1, 50.0, 2, 0, 0.0],  # P2 got an addendum
        "rad_b": [1, 0, 0.0, 1, 1, 100.0],  # P5 was returned once, then resubmitted
    }
    assert selectors.error_rates(Period(first=DAY, last=DAY, modality="MR")) == [
        ["rad_b", 1, 0, 0.0, 1, 1, 100.0]
    ]


@pytest.mark.django_db
def test_peer_review_rates(history):
    rad_a = history["procedures"][0].report.author
    reviewers = [UserFactory() for _ in range(4)]
    report = history["procedures"][0].report
    scored = datetime.combine(DAY, time(20, 0), tzinfo=TZ())
    for reviewer, score in zip(reviewers, ["1", "2a", "3b", "1"], strict=True):
        PeerReview.objects.create(
            report=report,
            reviewer=reviewer,
            radiologist=rad_a,
            score=score,
            assigned_at=scored,
            scored_at=scored,
        )
    PeerReview.objects.create(  # assigned, not scored yet: not counted
        report=history["procedures"][1].report, reviewer=reviewers[0], radiologist=rad_a, assigned_at=scored
    )
    fig = selectors.fig_peer_review(PERIOD)
    # [scored, 2a %, 2b %, 3a %, 3b %, any %]
    assert table(fig) == {"rad_a": [4, 25.0, 0.0, 0.0, 25.0, 50.0]}


@pytest.mark.django_db
def test_critical_results(history):
    report = history["procedures"][0].report
    t = datetime.combine(DAY, time(9, 0), tzinfo=TZ())
    CriticalResult.objects.create(
        report=report, category="1", finding="a", created_at=t, due_at=t + timedelta(hours=1)
    )
    CriticalResult.objects.create(
        report=report,
        category="2",
        finding="b",
        created_at=t,
        due_at=t + timedelta(hours=1),
        notified_at=t + timedelta(hours=3),
    )
    CriticalResult.objects.create(
        report=report,
        category="1",
        finding="c",
        created_at=t,
        due_at=t + timedelta(hours=1),
        notified_at=t + timedelta(minutes=20),
    )
    fig = selectors.fig_critical(PERIOD)
    # [created, notified late, overdue now]
    assert table(fig) == {"Category 1": [2, 0, 1], "Category 2": [1, 1, 0], "Category 3": [0, 0, 0]}


@pytest.mark.django_db
def test_materials_consumption(history):
    material_item_upsert(
        code="IOHEXOL", name="Iohexol", kind="contrast", unit="ml", low_stock_threshold=100, initial_stock=150
    )
    p1, p2 = history["procedures"][:2]
    at = datetime.combine(DAY, time(12, 0), tzinfo=TZ())
    material_record_usage(procedure=p1, item_code="IOHEXOL", quantity=60, source="console", at=at)
    material_record_usage(procedure=p2, item_code="IOHEXOL", quantity=20, source="mpps:CTA", at=at)
    material_record_usage(
        procedure=p2, item_code="IOHEXOL", quantity=5, source="console", at=at + timedelta(days=3)
    )  # outside the period
    fig = selectors.fig_materials(PERIOD)
    row = fig.rows[0]
    # code, name, kind, unit, used, exams, in stock, threshold, low
    assert row == ["IOHEXOL", "Iohexol", "contrast", "ml", 80, 2, 65, 100, "LOW"]
    assert [i.code for i in selectors.material_low_stock()] == ["IOHEXOL"]


@pytest.mark.django_db
def test_csv_and_json_carry_the_same_rows(history, client_for):
    c = client_for("dept_head")
    q = {"from": DAY.isoformat(), "to": DAY.isoformat()}
    for name in registry.FIGURES:
        data = c.get(reverse("department:figure_json", args=[name]), q).json()
        raw = c.get(reverse("department:figure_csv", args=[name]), q)
        assert raw["Content-Type"].startswith("text/csv")
        assert f"{name}_{DAY}_{DAY}.csv" in raw["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(raw.content.decode("utf-8-sig"))))
        assert rows[0] == data["columns"], name
        expected = [["" if v is None else str(v) for v in r] for r in data["rows"]]
        assert rows[1:] == expected, name
        # The chart draws exactly these rows.
        assert len(data["chart"]["labels"]) == len(data["rows"])


@pytest.mark.django_db
def test_api_figure_and_step_parameter(history, api_for):
    api = api_for("admin")
    q = {"from": DAY.isoformat(), "to": DAY.isoformat(), "step": "order_to_scheduled"}
    body = api.get("/api/v1/department/figures/tat_by_modality/", q).json()
    assert body["rows"] == [["CT", 3, 60.0, 60.0], ["MR", 2, 105.0, 117.0]]
    names = [f["name"] for f in api.get("/api/v1/department/figures/").json()]
    assert names == list(registry.FIGURES)
    bad = api.get("/api/v1/department/figures/tat_steps/", {"from": "2026-13-01"})
    assert bad.status_code == 400 and "from" in bad.json()["errors"]
    assert api.get("/api/v1/department/figures/nope/").status_code == 404
    schema = api.get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/department/figures/{name}/" in schema["paths"]
    assert "/api/v1/audit/events/" in schema["paths"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from"),
        ({"modality": "XX"}, "modality"),
    ],
)
def test_bad_periods_are_refused(params, field):
    with pytest.raises(ApplicationError) as exc:
        period_from_params(params)
    assert field in exc.value.fields


@pytest.mark.django_db
def test_equipment_downtime_record_and_end(client_for):
    st = StationFactory(ae_title="CTX")
    c = client_for("dept_head")
    start = timezone.localtime() - timedelta(hours=1)
    r = c.post(
        reverse("department:equipment"),
        {
            "station": st.pk,
            "start": start.strftime("%Y-%m-%dT%H:%M"),
            "end": (start + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"),
            "reason": "detector fault",
        },
    )
    assert r.status_code == 302
    down = StationDowntime.objects.get(station=st)
    page = c.get(reverse("department:equipment"))
    assert {s["station"].ae_title: s["state"] for s in page.context["stations"]}["CTX"] == "down"
    assert c.post(reverse("department:downtime_end", args=[down.pk])).status_code == 302
    down.refresh_from_db()
    assert down.end <= timezone.now()
    page = c.get(reverse("department:equipment"))
    assert {s["station"].ae_title: s["state"] for s in page.context["stations"]}["CTX"] == "available"
    bad = c.post(
        reverse("department:equipment"),
        {"station": st.pk, "start": "2030-01-01T10:00", "end": "2030-01-01T09:00", "reason": "x"},
    )
    assert bad.status_code == 200 and bad.context["form"].errors["end"]


@pytest.mark.django_db
def test_stock_in_page(client_for):
    item, _ = material_item_upsert(
        code="FILM", name="Film", kind="film", unit="sheet", initial_stock=5, low_stock_threshold=10
    )
    c = client_for("dept_head")
    page = c.get(reverse("department:materials"))
    assert [i.code for i in page.context["low_stock"]] == ["FILM"]
    r = c.post(reverse("department:materials"), {"item": item.pk, "quantity": "100", "lot_number": "L1"})
    assert r.status_code == 302
    item.refresh_from_db()
    assert item.stock_level == 105
    assert c.get(reverse("department:materials")).context["low_stock"] == []
    r = c.post(reverse("department:materials"), {"item": item.pk, "quantity": "-1"})
    assert r.status_code == 200 and r.context["form"].errors["quantity"]
