"""Identifiers and bookings under real concurrency on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connection, connections

from ris.errors import Conflict
from scheduling.models import Order, ScheduledProcedureStep
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order, next_slot

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")


def test_fifty_parallel_orders_get_fifty_distinct_accession_numbers():
    stations = [StationFactory(ae_title=f"CT{i}", modality="CT") for i in range(5)]
    ptype = ProcedureTypeFactory(modality="CT")
    patients = [PatientFactory() for _ in range(10)]
    barrier = threading.Barrier(10)

    def create(i):
        try:
            if i < 10:
                barrier.wait()
            return make_order(
                patient=patients[i % 10],
                station=stations[i % 5],
                procedure_type=ptype,
                start=next_slot(15 * (i // 5)),
            ).accession_number
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=10) as pool:
        numbers = list(pool.map(create, range(50)))
    assert len(set(numbers)) == 50
    assert Order.objects.count() == 50
    assert sorted(Order.objects.values_list("accession_number", flat=True)) == sorted(numbers)


def test_parallel_bookings_of_one_slot_exactly_one_wins():
    station = StationFactory(ae_title="CTX", modality="CT")
    ptype = ProcedureTypeFactory(modality="CT")
    patients = [PatientFactory() for _ in range(6)]
    start = next_slot()
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def book(p):
        try:
            barrier.wait()
            make_order(patient=p, station=station, procedure_type=ptype, start=start)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=book, args=(p,)) for p in patients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["ok"]
    assert ScheduledProcedureStep.objects.filter(station=station).count() == 1


def test_database_refuses_overlapping_steps_even_without_the_service():
    order = make_order(station=StationFactory(ae_title="CTY", modality="CT"))
    step = order.procedures.get().steps.get()
    other = make_order(station=StationFactory(ae_title="CTZ", modality="CT")).procedures.get()
    with pytest.raises(IntegrityError):
        ScheduledProcedureStep.objects.create(
            requested_procedure=other,
            sps_id="SPSMANUAL1",
            station=step.station,
            modality="CT",
            start=step.start,
            end=step.end,
        )


def test_imported_steps_may_overlap_but_booked_ones_may_not():
    station = StationFactory(ae_title="CTI", modality="CT")
    ptype = ProcedureTypeFactory(modality="CT")
    start = next_slot()
    make_order(station=station, procedure_type=ptype, start=start, check_calendar=False)
    make_order(station=station, procedure_type=ptype, start=start, check_calendar=False)
    assert ScheduledProcedureStep.objects.filter(station=station, exclusive_slot=False).count() == 2
    # The calendar still treats the slot as taken.
    with pytest.raises(Conflict):
        make_order(station=station, procedure_type=ptype, start=start)


@pytest.mark.parametrize(
    ("hours", "start", "length", "ok"),
    [
        ((8, 18), (17, 45), 15, True),
        ((8, 18), (17, 50), 15, False),  # ends after closing
        ((8, 18), (7, 50), 15, False),
        ((20, 8), (23, 50), 30, True),  # overnight shift across midnight
        ((20, 8), (2, 0), 30, True),  # early morning belongs to the previous evening's shift
        ((20, 8), (12, 0), 15, False),
        ((0, 0), (23, 50), 30, True),  # open around the clock
    ],
)
def test_working_hours_overnight_and_around_the_clock(hours, start, length, ok):
    from datetime import datetime, time, timedelta

    from django.utils import timezone

    station = StationFactory(
        ae_title=f"H{hours[0]}{start[0]}{start[1]}", work_start=time(hours[0]), work_end=time(hours[1])
    )
    day = timezone.localdate() + timedelta(days=3)
    begin = datetime.combine(day, time(*start), tzinfo=timezone.get_current_timezone())
    assert station.fits(begin, begin + timedelta(minutes=length)) is ok
    ptype = ProcedureTypeFactory(modality="CT", duration_minutes=length)
    if ok:
        make_order(station=station, procedure_type=ptype, start=begin)
    else:
        from ris.errors import ApplicationError

        with pytest.raises(ApplicationError, match="working hours"):
            make_order(station=station, procedure_type=ptype, start=begin)
