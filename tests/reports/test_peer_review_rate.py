"""RADPEER sampling rate (issue 9 item 9): each signed report is considered exactly once.

Before the fix a report stayed eligible for every run inside the window and every run took
at least one, so a 5 % setting sampled about 22 % of signed reports.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from pydicom.uid import generate_uid

from reports import services
from reports.models import PeerReview, Report
from scheduling.models import Order, RequestedProcedure
from tests.factories import PatientFactory, ProcedureTypeFactory, UserFactory

pytestmark = pytest.mark.django_db

_seq = iter(range(10**9))


def _signed_reports(n, *, at, author, signer, patient, procedure_type):
    """``n`` signed reports, inserted in bulk (the sampler only reads them)."""
    orders = Order.objects.bulk_create(
        Order(patient=patient, accession_number=f"PR{next(_seq):08d}") for _ in range(n)
    )
    procs = RequestedProcedure.objects.bulk_create(
        RequestedProcedure(
            order=o,
            procedure_type=procedure_type,
            requested_procedure_id=f"RP{o.pk}",
            study_instance_uid=generate_uid(),
            status="completed",
        )
        for o in orders
    )
    return Report.objects.bulk_create(
        Report(requested_procedure=p, status="final", author=author, signed_by=signer, signed_at=at)
        for p in procs
    )


def test_simulated_month_samples_the_configured_share():
    rad, rev = UserFactory(role="radiologist"), UserFactory(role="reviewer")
    UserFactory(role="radiologist"), UserFactory(role="radiologist")
    patient, pt = PatientFactory(), ProcedureTypeFactory()
    rng = random.Random(20261204)
    start = timezone.now() - timedelta(days=30)
    total = 0
    # 30 days, a run every 6 h (the beat default), 12 reports signed between two runs.
    for run in range(30 * 4):
        at = start + timedelta(hours=6 * run)
        total += len(_signed_reports(12, at=at, author=rad, signer=rev, patient=patient, procedure_type=pt))
        services.peer_review_sample(share=0.05, rng=rng)
    sampled = PeerReview.objects.count()
    assert total == 1440
    # Expected 72 (σ ≈ 8.3); the old sampler took ≥ 1 per run from a rolling window (≥ 120).
    assert 0.035 * total <= sampled <= 0.065 * total, sampled
    # Exactly once: every report was considered, none twice.
    assert not Report.objects.filter(peer_review_considered_at__isnull=True).exists()
    assert PeerReview.objects.values("report").distinct().count() == sampled
    assert services.peer_review_sample(share=1.0, rng=rng) == []


def test_a_small_run_may_sample_none():
    """No forced minimum per run: 3 reports at 5 % with this seed select none, and stay considered."""
    rad, rev = UserFactory(role="radiologist"), UserFactory(role="reviewer")
    UserFactory(role="radiologist")
    reports = _signed_reports(
        3,
        at=timezone.now(),
        author=rad,
        signer=rev,
        patient=PatientFactory(),
        procedure_type=ProcedureTypeFactory(),
    )
    assert services.peer_review_sample(share=0.05, rng=random.Random(7)) == []
    assert (
        Report.objects.filter(pk__in=[r.pk for r in reports], peer_review_considered_at__isnull=False).count()
        == 3
    )
