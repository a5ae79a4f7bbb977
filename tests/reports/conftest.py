"""Fixtures for report tests: readable exams and reports in each state."""

from __future__ import annotations

import pytest
from django.utils import timezone

from reports import services
from reports.models import Report
from scheduling import services as sched
from tests.factories import ProcedureTypeFactory, StationFactory, make_order

PASSWORD = "pw-Secret-123"  # tests.factories.UserFactory's password


@pytest.fixture
def make_exam(db):
    """A completed exam with images, ready to read."""

    def make(*, priority="ROUTINE", patient=None, modality="CT", body_part="CHEST", **kwargs):
        station = StationFactory(modality=modality)
        pt = ProcedureTypeFactory(modality=modality, body_part=body_part)
        kw = {"patient": patient} if patient else {}
        proc = make_order(
            station=station, procedure_type=pt, priority=priority, **kw, **kwargs
        ).procedures.get()
        sched.procedure_start(procedure=proc)
        sched.procedure_complete(procedure=proc)
        type(proc).objects.filter(pk=proc.pk).update(images_available_at=timezone.now())
        proc.refresh_from_db()
        return proc

    return make


@pytest.fixture
def make_report(make_exam, users):
    """A report in a given state: draft, preliminary, final or amended."""

    def make(status="draft", *, findings="Lungs clear.", impression="No acute disease.", exam=None):
        exam = exam or make_exam()
        rad, rev = users["radiologist"], users["reviewer"]
        report = services.report_claim(procedure=exam, actor=rad)
        report = services.report_save_draft(
            report=report, actor=rad, findings=findings, impression=impression
        )
        if status == "draft":
            return report
        services.report_submit(report=report, actor=rad)
        if status == "preliminary":
            return Report.objects.get(pk=report.pk)
        services.report_sign(report=report, actor=rev, password=PASSWORD)
        if status == "final":
            return Report.objects.get(pk=report.pk)
        services.report_add_addendum(report=report, actor=rev, text="Addendum text.", password=PASSWORD)
        return Report.objects.get(pk=report.pk)

    return make
