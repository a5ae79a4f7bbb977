"""`seed_department` in demo mode leaves the dashboards something to show (make run story)."""

from __future__ import annotations

from datetime import time

import pytest
from django.core.management import call_command

from department import registry
from department.figures import period_from_params
from department.models import MaterialUsage
from scheduling.models import Order, ProcedureEvent, StationDowntime
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, UserFactory


@pytest.mark.django_db
def test_demo_activity_populates_the_dashboards():
    for ae, modality in [("DCT1", "CT"), ("DDX1", "DX")]:
        StationFactory(ae_title=ae, modality=modality, work_start=time(0, 0), work_end=time(23, 59))
        ProcedureTypeFactory(modality=modality, duration_minutes=15)
    PatientFactory.create_batch(5)
    UserFactory(username="tech", role="technologist")
    UserFactory(username="radiologist", role="radiologist")
    reviewer = UserFactory(username="reviewer", role="reviewer")
    reviewer.set_password("demo-reviewer")
    reviewer.save()

    call_command("seed_department", "--demo-activity")
    orders = Order.objects.filter(placer_order_number__startswith="DEPTDEMO").count()
    assert orders > 20
    call_command("seed_department", "--demo-activity")  # idempotent
    assert Order.objects.filter(placer_order_number__startswith="DEPTDEMO").count() == orders

    assert ProcedureEvent.objects.filter(action="complete").exists()
    assert MaterialUsage.objects.exists()
    assert StationDowntime.objects.count() == 1
    period = period_from_params({})
    steps = {r[0]: r for r in registry.build("tat_steps", period).rows}
    assert steps["started → completed"][1] > 0
    assert steps["completed → final"][1] > 0
    assert sum(r[1] for r in registry.build("backlog", period).rows) > 0
    assert registry.build("signed_per_radiologist", period).rows
