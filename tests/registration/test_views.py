"""Front-desk pages: forms keep input, duplicate warning, stale slots, roles, one audit event per page."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from registration.models import Patient
from scheduling.forms import slot_value
from scheduling.models import Order, ProcedureStatus, RequestedProcedure, StationDowntime
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order, next_slot

pytestmark = pytest.mark.django_db


def events(action: str | None = None):
    qs = AuditEvent.objects.all()
    return qs.filter(action=action) if action else qs


@pytest.fixture
def desk(client_for):
    return client_for("front_desk")


@pytest.fixture
def wang():
    return PatientFactory(
        family_name="Wang",
        given_name="XiaoDong",
        ideographic_family="王",
        ideographic_given="小东",
        birth_date=date(1985, 3, 14),
        sex="M",
        patient_id="P900001",
    )


@pytest.fixture
def ct():
    station = StationFactory(ae_title="CTUI1", modality="CT")
    ptype = ProcedureTypeFactory(
        code_value="CTUI", code_meaning="CT Chest", modality="CT", duration_minutes=15
    )
    return station, ptype


# ---------------------------------------------------------------------------------------
# Search


@pytest.mark.parametrize("query", ["王小东", "王", "wang xiaodong", "WANGXIAODONG", "xiaodong", "P900001"])
def test_search_finds_by_any_name_group_and_id(desk, wang, query):
    PatientFactory(family_name="Li", given_name="Na", birth_date=date(1990, 1, 1))
    before = events().count()
    resp = desk.get(reverse("registration:patient_search"), {"q": query}, headers={"HX-Request": "true"})
    assert resp.status_code == 200
    assert resp.templates[0].name == "registration/_search_results.html"
    html = resp.content.decode()
    assert f'href="/patients/{wang.pk}/"' in html
    assert "LI Na" not in html
    assert events().count() - before == 1
    event = events("patient.search").get()
    assert event.detail["results"] == [wang.pk]
    assert event.actor_username == "u_front_desk"


def test_search_by_birth_date_full_page(desk, wang):
    PatientFactory(birth_date=date(1990, 1, 1))
    resp = desk.get(reverse("registration:patient_search"), {"birth_date": "1985-03-14"})
    assert resp.status_code == 200
    assert resp.templates[0].name == "registration/patient_search.html"
    assert list(resp.context["patients"]) == [wang]
    assert events("patient.search").count() == 1


def test_empty_search_shows_no_patient_data_and_writes_no_event(desk, wang):
    resp = desk.get(reverse("registration:patient_search"))
    assert resp.status_code == 200
    assert f"/patients/{wang.pk}/" not in resp.content.decode()
    assert events().count() == 0


def test_no_result_offers_registration_with_the_typed_name(desk):
    resp = desk.get(reverse("registration:patient_search"), {"q": "赵六"}, headers={"HX-Request": "true"})
    html = resp.content.decode()
    assert 'data-testid="no-results"' in html
    assert "/patients/new/?q=%E8%B5%B5%E5%85%AD" in html


# ---------------------------------------------------------------------------------------
# Registration


def _patient_post(**overrides):
    data = {
        "chinese_name": "王小东",
        "family_name": "",
        "given_name": "",
        "birth_date": "1985-03-14",
        "sex": "M",
        "phone": "13800138000",
        "address": "北京市海淀区",
        "medical_alerts": "",
        "allergies": "Iodinated contrast",
        "pregnancy_status": "",
    }
    data.update(overrides)
    return data


def test_pinyin_endpoint_fills_and_respects_user_edits(desk):
    url = reverse("registration:pinyin")
    html = desk.get(url, {"chinese_name": "王小东"}).content.decode()
    assert 'value="Wang"' in html and 'value="XiaoDong"' in html
    # Still the auto-filled value: replaced when the characters change.
    html = desk.get(
        url,
        {
            "chinese_name": "欧阳娜娜",
            "family_name": "Wang",
            "given_name": "XiaoDong",
            "auto_family": "Wang",
            "auto_given": "XiaoDong",
        },
    ).content.decode()
    assert 'value="OuYang"' in html and 'value="NaNa"' in html
    # Typed over by the user: kept.
    html = desk.get(
        url,
        {
            "chinese_name": "王小东",
            "family_name": "Wong",
            "given_name": "Siu Tung",
            "auto_family": "Wang",
            "auto_given": "XiaoDong",
        },
    ).content.decode()
    assert 'value="Wong"' in html and 'value="Siu Tung"' in html
    assert events().count() == 0


def test_register_with_chinese_name_only_fills_pinyin(desk):
    resp = desk.post(reverse("registration:patient_register"), _patient_post())
    patient = Patient.objects.get()
    assert resp.status_code == 302 and resp.url == reverse("registration:patient_detail", args=[patient.pk])
    assert (patient.family_name, patient.given_name) == ("Wang", "XiaoDong")
    assert (patient.ideographic_family, patient.ideographic_given) == ("王", "小东")
    assert patient.patient_id  # MRN assigned
    assert events("patient.create").count() == 1
    assert events().count() == 1


def test_register_form_error_keeps_input(desk):
    resp = desk.post(
        reverse("registration:patient_register"), _patient_post(birth_date="", phone="13912345678", sex="")
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'value="13912345678"' in html
    assert 'value="王小东"' in html
    assert 'value="北京市海淀区"' in html
    assert resp.context["form"].errors.keys() >= {"birth_date", "sex"}
    assert Patient.objects.count() == 0


def test_register_vr_violation_is_a_field_error_not_500(desk):
    resp = desk.post(
        reverse("registration:patient_register"), _patient_post(family_name="Wang^X", chinese_name="")
    )
    assert resp.status_code == 200
    assert "family_name" in resp.context["form"].errors
    assert Patient.objects.count() == 0


def test_register_duplicate_id_maps_service_conflict_onto_field(desk, wang):
    resp = desk.post(
        reverse("registration:patient_register"),
        _patient_post(chinese_name="李娜", patient_id="P900001", birth_date="1990-01-01"),
    )
    assert resp.status_code == 200
    assert "patient_id" in resp.context["form"].errors
    assert Patient.objects.count() == 1


def test_duplicate_warning_must_be_confirmed(desk, wang):
    url = reverse("registration:patient_register")
    resp = desk.post(url, _patient_post())
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'data-testid="duplicate-warning"' in html
    assert "P900001" in html
    assert 'value="13800138000"' in html  # input kept
    assert Patient.objects.count() == 1
    assert events("patient.search").count() == 1  # the duplicate list shows patient data
    resp = desk.post(url, _patient_post(confirm_duplicate="on"))
    assert resp.status_code == 302
    assert Patient.objects.count() == 2


def test_edit_patient_keeps_input_on_error_and_saves(desk, wang):
    url = reverse("registration:patient_edit", args=[wang.pk])
    resp = desk.get(url)
    assert resp.status_code == 200 and 'value="王小东"' in resp.content.decode()
    assert events("patient.view").count() == 1
    version = resp.context["version"]
    data = _patient_post(
        family_name="Wang", given_name="XiaoDong", birth_date="2999-01-01", phone="010-1234", version=version
    )
    resp = desk.post(url, data)
    assert resp.status_code == 200
    assert "birth_date" in resp.context["form"].errors
    assert 'value="010-1234"' in resp.content.decode()
    wang.refresh_from_db()
    assert wang.phone == ""
    resp = desk.post(
        url, _patient_post(family_name="Wang", given_name="XiaoDong", phone="010-1234", version=version)
    )
    assert resp.status_code == 302
    wang.refresh_from_db()
    assert wang.phone == "010-1234" and wang.allergies == "Iodinated contrast"
    assert events("patient.update").count() == 1


def test_patient_detail_writes_exactly_one_event(desk, wang, ct):
    station, ptype = ct
    make_order(patient=wang, station=station, procedure_type=ptype)
    AuditEvent.objects.all()  # order.create from the service is not part of the page view
    before = events().count()
    resp = desk.get(reverse("registration:patient_detail", args=[wang.pk]))
    assert resp.status_code == 200
    assert 'data-testid="check-in"' in resp.content.decode()
    assert events().count() - before == 1
    event = events("patient.view").get()
    assert (event.patient_ref, event.object_id) == (wang.pk, str(wang.pk))


# ---------------------------------------------------------------------------------------
# Ordering and booking


def _order_post(station, ptype, start, **overrides):
    data = {
        "procedure_type": ptype.pk,
        "priority": "ROUTINE",
        "referring_physician": "Dr Li",
        "reason": "Persistent cough",
        "clinical_info": "Smoker, 30 pack-years",
        "station": station.pk,
        "day": timezone.localtime(start).date().isoformat(),
        "start": slot_value(start),
    }
    data.update(overrides)
    return data


def test_slot_picker_offers_only_free_slots(desk, ct, wang):
    station, ptype = ct
    start = next_slot(60)
    make_order(patient=wang, station=station, procedure_type=ptype, start=start)
    resp = desk.get(
        reverse("scheduling:slots"),
        {"procedure_type": ptype.pk, "station": station.pk, "day": start.date().isoformat()},
    )
    html = resp.content.decode()
    assert f'value="{slot_value(start)}"' not in html
    assert f'value="{slot_value(start + timedelta(minutes=15))}"' in html
    assert events().filter(action__in=["patient.search", "patient.view"]).count() == 0


def test_order_create_books_and_shows_identifiers(desk, ct, wang):
    station, ptype = ct
    start = next_slot(30)
    resp = desk.post(reverse("scheduling:order_create", args=[wang.pk]), _order_post(station, ptype, start))
    order = Order.objects.get()
    assert resp.status_code == 302 and resp.url == reverse("scheduling:order_detail", args=[order.pk])
    assert events().count() == 1 and events("order.create").count() == 1
    proc = order.procedures.get()
    step = proc.steps.get()
    assert step.start == start and step.station == station
    assert order.reason == "Persistent cough" and order.referring_physician == "Dr Li"
    resp = desk.get(resp.url)
    html = resp.content.decode()
    for value in (order.accession_number, proc.requested_procedure_id, step.sps_id, proc.study_instance_uid):
        assert value in html
    assert events("order.view").count() == 1 and events().count() == 2


def test_stale_slot_gets_clear_error_and_keeps_input(desk, ct, wang):
    station, ptype = ct
    start = next_slot(90)
    form_data = _order_post(station, ptype, start, reason="Fever and cough")
    # Someone else books the slot while the form is open.
    make_order(station=station, procedure_type=ptype, start=start)
    before = events().count()
    resp = desk.post(reverse("scheduling:order_create", args=[wang.pk]), form_data)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'data-testid="booking-error"' in html
    assert "already booked" in html
    assert 'value="Fever and cough"' in html
    assert "Smoker, 30 pack-years" in html
    assert f'value="{slot_value(start)}"' not in html  # no longer offered
    assert Order.objects.filter(patient=wang).count() == 0
    assert events().count() - before == 1 and events("order.create").count() == 1  # the other desk's


def test_downtime_is_refused(desk, ct, wang):
    station, ptype = ct
    start = next_slot(120)
    StationDowntime.objects.create(
        station=station, start=start, end=start + timedelta(hours=1), reason="Service"
    )
    resp = desk.post(reverse("scheduling:order_create", args=[wang.pk]), _order_post(station, ptype, start))
    assert resp.status_code == 200
    assert "down at that time" in resp.content.decode()
    assert not Order.objects.exists()


def test_past_slot_and_modality_mismatch_are_field_errors(desk, ct, wang):
    station, ptype = ct
    past = timezone.localtime() - timedelta(hours=2)
    resp = desk.post(reverse("scheduling:order_create", args=[wang.pk]), _order_post(station, ptype, past))
    assert resp.status_code == 200 and "start" in resp.context["form"].errors
    mr = ProcedureTypeFactory(code_value="MRX", modality="MR")
    resp = desk.post(
        reverse("scheduling:order_create", args=[wang.pk]), _order_post(station, mr, next_slot(15))
    )
    assert resp.status_code == 200 and "station" in resp.context["form"].errors
    assert not Order.objects.exists()


# ---------------------------------------------------------------------------------------
# Check-in, cancel, reschedule


def test_check_in_then_board_shows_arrived(desk, ct, wang):
    station, ptype = ct
    start = timezone.localtime().replace(second=0, microsecond=0) + timedelta(minutes=30)
    start = start - timedelta(minutes=start.minute % 15)
    if start.date() != timezone.localdate():
        pytest.skip("too close to midnight for a today booking")
    proc = make_order(patient=wang, station=station, procedure_type=ptype, start=start).procedures.get()
    resp = desk.post(reverse("scheduling:procedure_arrive", args=[proc.pk]), {"next": "/board/"})
    assert resp.status_code == 302 and resp.url == "/board/"
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.ARRIVED
    assert events("procedure.arrive").count() == 1
    before = events().count()
    resp = desk.get(reverse("scheduling:board"))
    columns = {key: procs for key, _label, procs in resp.context["columns"]}
    assert [p.pk for p in columns["arrived"]] == [proc.pk]
    assert columns["scheduled"] == []
    assert events().count() - before == 1 and events("board.view").count() == 1
    # Polling with the same version: 204, nothing sent, nothing audited.
    version = resp.context["version"]
    resp = desk.get(reverse("scheduling:board"), {"v": version}, headers={"HX-Request": "true"})
    assert resp.status_code == 204
    assert events("board.view").count() == 1
    # A change makes the poll answer with the new board.
    RequestedProcedure.objects.filter(pk=proc.pk).update(updated_at=timezone.now() + timedelta(seconds=1))
    resp = desk.get(reverse("scheduling:board"), {"v": version}, headers={"HX-Request": "true"})
    assert resp.status_code == 200 and resp.templates[0].name == "scheduling/_board.html"
    assert events("board.view").count() == 2


def test_check_in_twice_is_a_message_not_an_error(desk, ct, wang):
    station, ptype = ct
    proc = make_order(patient=wang, station=station, procedure_type=ptype).procedures.get()
    url = reverse("scheduling:procedure_arrive", args=[proc.pk])
    desk.post(url)
    resp = desk.post(url, follow=True)
    assert resp.status_code == 200
    assert "no longer possible" in resp.content.decode()
    assert events("procedure.arrive").count() == 1


def test_cancel_requires_reason(desk, ct, wang):
    station, ptype = ct
    proc = make_order(patient=wang, station=station, procedure_type=ptype).procedures.get()
    url = reverse("scheduling:procedure_cancel", args=[proc.pk])
    resp = desk.post(url, {"reason": "  "})
    assert resp.status_code == 200 and "reason" in resp.context["form"].errors
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.SCHEDULED
    resp = desk.post(url, {"reason": "Patient request"})
    assert resp.status_code == 302
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.CANCELLED and proc.status_reason == "Patient request"


def test_reschedule_moves_booking_and_refuses_taken_slot(desk, ct, wang):
    station, ptype = ct
    old = next_slot(0)
    proc = make_order(patient=wang, station=station, procedure_type=ptype, start=old).procedures.get()
    taken = next_slot(60)
    make_order(station=station, procedure_type=ptype, start=taken)
    url = reverse("scheduling:procedure_reschedule", args=[proc.pk])
    resp = desk.get(url)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert f'value="{slot_value(taken)}"' not in html and f'value="{slot_value(old)}"' not in html
    data = {
        "reason": "Patient late",
        "station": station.pk,
        "day": old.date().isoformat(),
        "start": slot_value(taken),
    }
    resp = desk.post(url, data)
    assert resp.status_code == 200 and "already booked" in resp.content.decode()
    assert 'value="Patient late"' in resp.content.decode()
    new = next_slot(120)
    resp = desk.post(url, {**data, "start": slot_value(new)})
    assert resp.status_code == 302
    assert proc.steps.get().start == new


# ---------------------------------------------------------------------------------------
# Calendar


def test_calendar_shows_bookings_and_downtime_with_one_event(client_for, ct, wang):
    station, ptype = ct
    start = next_slot(60)
    make_order(patient=wang, station=station, procedure_type=ptype, start=start)
    StationDowntime.objects.create(
        station=station, start=next_slot(180), end=next_slot(240), reason="Tube change"
    )
    before = events().count()
    resp = client_for("technologist").get(
        reverse("scheduling:calendar"), {"station": station.pk, "day": start.date().isoformat()}
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "王小东" in html and "Tube change" in html
    states = [s.state for s in resp.context["slots"]]
    assert states.count("booked") == 1 and states.count("down") == 4
    down_rows = [r for r in resp.context["rows"] if r.state == "down"]
    assert len(down_rows) == 1 and down_rows[0].span_end - down_rows[0].start == timedelta(hours=1)
    assert events().count() - before == 1
    assert events("station.calendar.view").get().detail["patients"] == [wang.pk]


def test_dept_head_adds_downtime_from_calendar(client_for, ct):
    station, _ptype = ct
    day = (timezone.localdate() + timedelta(days=2)).isoformat()
    resp = client_for("dept_head").post(
        reverse("scheduling:downtime_add"),
        {
            "station": station.pk,
            "day": day,
            "start_time": "10:00",
            "end_time": "11:00",
            "reason": "Maintenance",
        },
    )
    assert resp.status_code == 302
    assert StationDowntime.objects.get().reason == "Maintenance"
    resp = client_for("front_desk").post(reverse("scheduling:downtime_add"), {"station": station.pk})
    assert resp.status_code == 403


# ---------------------------------------------------------------------------------------
# Roles


@pytest.mark.parametrize(
    ("role", "name", "method", "expected"),
    [
        ("technologist", "registration:patient_register", "get", 403),
        ("radiologist", "registration:patient_register", "post", 403),
        ("reviewer", "registration:patient_edit", "get", 403),
        ("technologist", "scheduling:order_create", "get", 403),
        ("dept_head", "scheduling:order_create", "post", 403),
        ("radiologist", "scheduling:procedure_cancel", "post", 403),
        ("technologist", "scheduling:procedure_reschedule", "get", 403),
        ("radiologist", "scheduling:procedure_arrive", "post", 403),
        ("front_desk", "scheduling:downtime_add", "post", 403),
        ("radiologist", "registration:patient_search", "get", 200),
        ("technologist", "scheduling:board", "get", 200),
        ("technologist", "scheduling:procedure_arrive", "post", 302),
        ("admin", "scheduling:order_create", "get", 200),
    ],
)
def test_role_matrix_on_pages(client_for, ct, wang, role, name, method, expected):
    station, ptype = ct
    proc = make_order(patient=wang, station=station, procedure_type=ptype).procedures.get()
    args = {
        "registration:patient_edit": [wang.pk],
        "scheduling:order_create": [wang.pk],
        "scheduling:procedure_cancel": [proc.pk],
        "scheduling:procedure_reschedule": [proc.pk],
        "scheduling:procedure_arrive": [proc.pk],
    }.get(name, [])
    before = events().exclude(action="order.create").count()
    resp = getattr(client_for(role), method)(reverse(name, args=args))
    assert resp.status_code == expected
    if expected == 403:
        # Refused before any patient data is read; the refusal itself is recorded.
        refused = list(events().exclude(action="order.create").order_by("id"))[before:]
        assert [(e.action, e.outcome, e.patient_ref) for e in refused] == [("access.denied", "denied", None)]


def test_anonymous_is_sent_to_login(client):
    resp = client.get(reverse("registration:patient_search"))
    assert resp.status_code == 302 and "/accounts/login/" in resp.url


def test_service_errors_are_shown_translated(client_for, ct, wang, settings):
    station, ptype = ct
    start = next_slot(45)
    make_order(station=station, procedure_type=ptype, start=start)
    desk = client_for("front_desk")
    desk.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    resp = desk.post(reverse("scheduling:order_create", args=[wang.pk]), _order_post(station, ptype, start))
    html = resp.content.decode()
    assert resp.status_code == 200
    assert '<html lang="zh-hans">' in html
    assert "该时段已被预约" in html  # "The slot is already booked." from the service
    assert "already booked" not in html


# ---------------------------------------------------------------------------------------
# Admin


def test_admin_patient_is_read_only_and_audited(client_for, wang, ct):
    station, ptype = ct
    order = make_order(patient=wang, station=station, procedure_type=ptype)
    admin = client_for("admin")
    before = events().count()
    resp = admin.get("/admin/registration/patient/")
    assert resp.status_code == 200 and "P900001" in resp.content.decode()
    assert events().count() - before == 1
    resp = admin.get(f"/admin/registration/patient/{wang.pk}/change/")
    assert resp.status_code == 200
    assert 'name="family_name"' not in resp.content.decode()  # read-only
    assert events("patient.view").get().patient_ref == wang.pk
    assert admin.get("/admin/registration/patient/add/").status_code == 403
    resp = admin.get(f"/admin/scheduling/order/{order.pk}/change/")
    assert resp.status_code == 200 and order.accession_number in resp.content.decode()
    assert events("order.view").get().patient_ref == wang.pk
    assert admin.get("/admin/scheduling/order/add/").status_code == 403
    assert admin.get("/admin/scheduling/station/").status_code == 200
    assert admin.get("/admin/scheduling/proceduretype/add/").status_code == 200


# ---------------------------------------------------------------------------------------
# Query counts do not grow with the number of rows


def _count_queries(client, url, params=None):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url, params or {})
    assert resp.status_code == 200
    return len(ctx.captured_queries)


def test_board_patient_and_search_queries_are_constant(desk, ct, wang):
    station, ptype = ct
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)

    def book(n, offset):
        for i in range(n):
            make_order(
                patient=wang,
                station=station,
                procedure_type=ptype,
                start=start + timedelta(minutes=15 * (offset + i)),
            )

    book(1, 0)
    detail = reverse("registration:patient_detail", args=[wang.pk])
    calendar = reverse("scheduling:calendar")
    cal_params = {"station": station.pk, "day": start.date().isoformat()}
    one = (_count_queries(desk, detail), _count_queries(desk, calendar, cal_params))
    book(6, 4)
    for i in range(6):
        PatientFactory(family_name="Wang", given_name=f"Extra{i}")
    many = (_count_queries(desk, detail), _count_queries(desk, calendar, cal_params))
    assert many == one
    search = reverse("registration:patient_search")
    assert _count_queries(desk, search, {"q": "wang"}) <= 12


def test_reschedule_offers_overlap_with_own_booking(desk, wang):
    station = StationFactory(ae_title="CTUI2", modality="CT")
    long = ProcedureTypeFactory(code_value="CTUI30", modality="CT", duration_minutes=30)
    old = next_slot(0)
    proc = make_order(patient=wang, station=station, procedure_type=long, start=old).procedures.get()
    make_order(station=station, procedure_type=long, start=old + timedelta(minutes=45))
    url = reverse("scheduling:procedure_reschedule", args=[proc.pk])
    slots = {s.value: s.state for s in desk.get(url).context["slots"]}
    assert slots[slot_value(old)] == "current"
    assert slots[slot_value(old + timedelta(minutes=15))] == "free"  # 15 min later still fits (its own time)
    assert slots[slot_value(old - timedelta(minutes=15))] == "free"
    assert slots[slot_value(old + timedelta(minutes=30))] == "short"  # would run into the next booking
    resp = desk.post(
        url,
        {
            "reason": "Patient late",
            "station": station.pk,
            "day": old.date().isoformat(),
            "start": slot_value(old + timedelta(minutes=15)),
        },
    )
    assert resp.status_code == 302
    assert proc.steps.get().start == old + timedelta(minutes=15)


def test_order_form_asks_about_pregnancy_and_shows_preparation(desk, ct):
    station, _ptype = ct
    prep = ProcedureTypeFactory(code_value="CTUIC", modality="CT", preparation="Fasting 4 h")
    young = PatientFactory(sex="F", birth_date=date(timezone.localdate().year - 30, 1, 1))
    older = PatientFactory(sex="F", birth_date=date(1940, 1, 1))
    checked = PatientFactory(
        sex="F", birth_date=date(timezone.localdate().year - 30, 1, 1), pregnancy_status=1
    )
    url = lambda p: reverse("scheduling:order_create", args=[p.pk])  # noqa: E731
    assert 'data-testid="pregnancy-check"' in desk.get(url(young)).content.decode()
    assert 'data-testid="pregnancy-check"' not in desk.get(url(older)).content.decode()
    assert 'data-testid="pregnancy-check"' not in desk.get(url(checked)).content.decode()
    html = desk.get(
        reverse("scheduling:slots"), {"procedure_type": prep.pk, "station": station.pk}
    ).content.decode()
    assert "Fasting 4 h" in html


def test_order_page_shows_history_with_reasons(desk, ct, wang):
    station, ptype = ct
    order = make_order(patient=wang, station=station, procedure_type=ptype)
    desk.post(
        reverse("scheduling:procedure_cancel", args=[order.procedures.get().pk]),
        {"reason": "Patient request"},
    )
    html = desk.get(reverse("scheduling:order_detail", args=[order.pk])).content.decode()
    assert 'data-testid="history"' in html
    assert "Patient request" in html and "Cancelled" in html and "Ordered" in html


def test_board_flags_overdue_and_shows_waiting_time(desk, ct, wang):
    station, ptype = ct
    now = timezone.localtime().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=now.minute % 15) - timedelta(minutes=30)
    if start.date() != now.date():
        pytest.skip("too close to midnight")
    late = make_order(patient=wang, station=station, procedure_type=ptype, start=start).procedures.get()
    waiting = make_order(
        station=station, procedure_type=ptype, start=start + timedelta(minutes=15)
    ).procedures.get()
    desk.post(reverse("scheduling:procedure_arrive", args=[waiting.pk]))
    resp = desk.get(reverse("scheduling:board"))
    columns = {key: procs for key, _label, procs in resp.context["columns"]}
    assert [p.pk for p in columns["scheduled"]] == [late.pk]
    html = resp.content.decode()
    assert html.count('data-testid="overdue"') == 1
    assert "waiting" in html


def test_date_inputs_are_iso_in_every_language(client_for, wang, settings):
    # <input type=date> only accepts YYYY-MM-DD; the zh-hans input format would be 1985/03/14.
    desk = client_for("front_desk")
    desk.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    html = desk.get(reverse("registration:patient_edit", args=[wang.pk])).content.decode()
    assert 'type="date"' in html and 'value="1985-03-14"' in html


def test_search_rows_offer_ordering_only_to_who_may_order(client_for, wang):
    order_url = reverse("scheduling:order_create", args=[wang.pk])
    params = {"q": "wang"}
    assert (
        order_url
        in client_for("front_desk").get(reverse("registration:patient_search"), params).content.decode()
    )
    html = client_for("radiologist").get(reverse("registration:patient_search"), params).content.decode()
    assert f"/patients/{wang.pk}/" in html and order_url not in html


def test_booking_opens_on_next_day_with_a_free_slot(desk):
    from datetime import time

    station = StationFactory(ae_title="CTUI3", modality="CT", work_start=time(8, 0), work_end=time(8, 30))
    ptype = ProcedureTypeFactory(code_value="CTUI3P", modality="CT", duration_minutes=15)
    today = timezone.localdate()
    tz = timezone.get_current_timezone()
    # Tomorrow is fully booked; today is over or full either way for an 08:00-08:30 station.
    from datetime import datetime as dt

    tomorrow = today + timedelta(days=1)
    for minute in (0, 15):
        make_order(
            station=station, procedure_type=ptype, start=dt.combine(tomorrow, time(8, minute), tzinfo=tz)
        )
    if dt.combine(today, time(8, 15), tzinfo=tz) > timezone.now():
        for minute in (0, 15):
            make_order(
                station=station, procedure_type=ptype, start=dt.combine(today, time(8, minute), tzinfo=tz)
            )
    resp = desk.get(reverse("scheduling:slots"), {"procedure_type": ptype.pk, "station": station.pk})
    assert resp.context["day"] == today + timedelta(days=2)
    assert resp.context["advanced_from"] == today
    assert 'data-testid="advanced"' in resp.content.decode()
    # An explicit day is respected even when it is full.
    resp = desk.get(
        reverse("scheduling:slots"),
        {"procedure_type": ptype.pk, "station": station.pk, "day": tomorrow.isoformat()},
    )
    assert resp.context["day"] == tomorrow and resp.context["free_count"] == 0


def test_temporary_registration_is_flagged(desk):
    resp = desk.post(
        reverse("registration:patient_register"),
        _patient_post(chinese_name="", family_name="Unknown", given_name="Trauma", is_temporary="on"),
    )
    assert resp.status_code == 302
    patient = Patient.objects.get()
    assert patient.is_temporary
    html = desk.get(reverse("registration:patient_search"), {"q": "unknown"}).content.decode()
    assert "temporary" in html


def test_admin_downtime_goes_through_the_service(client_for, ct):
    station, _ptype = ct
    day = (timezone.localdate() + timedelta(days=3)).isoformat()
    resp = client_for("admin").post(
        "/admin/scheduling/stationdowntime/add/",
        {
            "station": station.pk,
            "start_0": day,
            "start_1": "10:00:00",
            "end_0": day,
            "end_1": "11:00:00",
            "reason": "Service visit",
        },
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    downtime = StationDowntime.objects.get()
    assert downtime.reason == "Service visit" and downtime.created_by.username == "u_admin"
    assert events("station.downtime").count() == 1


def test_patient_pages_are_not_cached_by_the_browser(desk, wang):
    # After log-out, Back must not show patient data from the browser cache.
    for url in (reverse("registration:patient_detail", args=[wang.pk]), reverse("scheduling:board")):
        assert "no-store" in desk.get(url)["Cache-Control"]


@pytest.mark.parametrize(
    "params",
    [
        {"procedure_type": "abc", "station": "x", "day": "9999-12-31", "shift": "1"},
        {"procedure_type": "999999", "day": "0001-01-01", "shift": "-1"},
        {"procedure": "abc"},
        {"day": "2026-13-45", "shift": "many", "start": "yesterday"},
        {"birth_date": "1985-02-30", "q": "x" * 500},
        {"modality": "<script>alert(1)</script>", "q": "<script>alert(1)</script>", "v": "'\""},
    ],
)
def test_garbage_query_strings_never_500(desk, ct, wang, params):
    station, ptype = ct
    proc = make_order(patient=wang, station=station, procedure_type=ptype).procedures.get()
    urls = [
        reverse("registration:patient_search"),
        reverse("registration:pinyin"),
        reverse("scheduling:slots"),
        reverse("scheduling:order_create", args=[wang.pk]),
        reverse("scheduling:procedure_reschedule", args=[proc.pk]),
        reverse("scheduling:calendar"),
        reverse("scheduling:board"),
    ]
    for url in urls:
        resp = desk.get(url, params, headers={"HX-Request": "true"})
        assert resp.status_code in (200, 204, 404), (url, resp.status_code)
        assert "<script>alert(1)" not in resp.content.decode()


def test_garbage_posts_are_form_errors(desk, ct, wang):
    station, ptype = ct
    proc = make_order(patient=wang, station=station, procedure_type=ptype).procedures.get()
    garbage = {
        "procedure_type": "abc",
        "station": "abc",
        "day": "9999-99-99",
        "start": "never",
        "priority": "URGENT",
        "reason": "x" * 300,
        "sex": "X",
        "pregnancy_status": "abc",
        "birth_date": "tomorrow",
        "chinese_name": "abc",
    }
    for url in (
        reverse("registration:patient_register"),
        reverse("registration:patient_edit", args=[wang.pk]),
        reverse("scheduling:order_create", args=[wang.pk]),
        reverse("scheduling:procedure_reschedule", args=[proc.pk]),
        reverse("scheduling:procedure_cancel", args=[proc.pk]),
    ):
        resp = desk.post(url, garbage)
        assert resp.status_code == 200, url
        assert resp.context["form"].errors, url
    assert Order.objects.count() == 1
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.SCHEDULED


def test_calendar_hides_patients_outside_the_users_scope(client_for, users, wang):
    from ris.models import StaffProfile

    mr = StationFactory(ae_title="MRUI1", modality="MR")
    mr_type = ProcedureTypeFactory(code_value="MRUI", modality="MR")
    start = next_slot(60)
    make_order(patient=wang, station=mr, procedure_type=mr_type, start=start)
    tech = users["technologist"]
    StaffProfile.objects.update_or_create(user=tech, defaults={"modalities": "CT"})
    params = {"station": mr.pk, "day": start.date().isoformat()}
    html = client_for("technologist").get(reverse("scheduling:calendar"), params).content.decode()
    assert "王小东" not in html and "booked" in html
    assert not events("station.calendar.view").exists()
    html = client_for("front_desk").get(reverse("scheduling:calendar"), params).content.decode()
    assert "王小东" in html
    assert events("station.calendar.view").count() == 1


def test_edit_refuses_to_overwrite_a_concurrent_change(client_for, wang):
    url = reverse("registration:patient_edit", args=[wang.pk])
    desk_a, desk_b = client_for("front_desk"), client_for("front_desk")
    version = desk_a.get(url).context["version"]
    assert desk_b.get(url).context["version"] == version
    assert (
        desk_b.post(
            url, _patient_post(family_name="Wang", given_name="XiaoDong", phone="111", version=version)
        ).status_code
        == 302
    )
    resp = desk_a.post(
        url, _patient_post(family_name="Wang", given_name="XiaoDong", phone="222", version=version)
    )
    assert resp.status_code == 200
    assert "changed this patient" in resp.content.decode() and 'value="222"' in resp.content.decode()
    wang.refresh_from_db()
    assert wang.phone == "111"
    # Saving again with the version now shown is a conscious overwrite.
    resp = desk_a.post(
        url,
        _patient_post(
            family_name="Wang", given_name="XiaoDong", phone="222", version=resp.context["version"]
        ),
    )
    assert resp.status_code == 302
    wang.refresh_from_db()
    assert wang.phone == "222"
