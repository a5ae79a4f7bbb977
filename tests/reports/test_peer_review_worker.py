"""The peer-review beat task runs in a real Celery worker (Redis broker, PostgreSQL)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from reports.models import PeerReview
from tests.factories import UserFactory


@pytest.mark.integration
@pytest.mark.postgres
def test_beat_task_assigns_peer_reviews_in_a_worker(celery_worker_factory, make_report, users):
    entry = settings.CELERY_BEAT_SCHEDULE["reports-peer-review-sample"]
    assert entry["task"] == "reports.peer_review_sample"
    peer = UserFactory(role="radiologist")
    report = make_report("final")
    worker = celery_worker_factory(env={"RIS_PEER_REVIEW_SHARE": "1.0"})
    from reports.tasks import peer_review_sample

    peer_review_sample.apply_async()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not PeerReview.objects.filter(report=report).exists():
        time.sleep(0.2)
    review = PeerReview.objects.filter(report=report).first()
    assert review is not None, worker.log()
    assert review.reviewer == peer and review.radiologist == users["reviewer"]
    assert review.scored_at is None
