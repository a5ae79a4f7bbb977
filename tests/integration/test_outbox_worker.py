"""Outbox faults with the real Celery worker on Redis: killed mid-delivery, broker flushed,
destination down then up. 0 lost, 0 reordered, no duplicate beyond a resend of the message
that was in flight (same control ID)."""

from __future__ import annotations

import itertools

import pytest

from integration.models import OutboxMessage, OutboxState
from integration.services.delivery import sweep_due

from .conftest import wait_for
from .test_outbox import _exam, _report_through

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

WORKER_ENV = {
    "RIS_HL7_OUTBOX_BACKOFF_BASE": "0.2",
    "RIS_HL7_OUTBOX_BACKOFF_MAX": "1",
    "RIS_HL7_OUTBOX_TIMEOUT": "5",
}


def _first_seen(ids: list[str]) -> list[str]:
    seen, out = set(), []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _assert_delivered_in_order(listener, *, allow_resend: bool):
    expected = list(OutboxMessage.objects.order_by("id").values_list("control_id", flat=True))
    got = listener.control_ids()
    assert _first_seen(got) == expected  # nothing lost, nothing reordered
    if not allow_resend:
        assert got == expected
    else:
        # A duplicate is only an immediate resend of the message in flight.
        for a, b in itertools.pairwise(got):
            assert a == b or expected.index(b) == expected.index(a) + 1


def _drain(settings, timeout=90):
    settings.RIS_HL7_OUTBOX_LEASE_SECONDS = 0

    def done():
        sweep_due()
        return not OutboxMessage.objects.filter(state=OutboxState.PENDING).exists()

    wait_for(done, timeout=timeout, interval=0.5, what="outbox drained")


def _patient_reports(users, n):
    from tests.factories import PatientFactory

    patient = PatientFactory()
    for i in range(n):
        _report_through(_exam(patient), users, findings=f"Finding {i}", upto="final")


def test_worker_killed_mid_delivery_redelivers(
    celery_worker_factory, kill_mid_task, destination_listener, users, settings
):
    lst, _ = destination_listener(types=("ORU^R01",))
    lst.delay = 0.3  # the worker waits for each ACK: a kill lands mid-delivery
    worker = celery_worker_factory(env=WORKER_ENV)
    _patient_reports(users, 4)
    kill_mid_task(worker, lambda: len(lst.received) >= 2, timeout=60)
    assert OutboxMessage.objects.filter(state=OutboxState.PENDING).exists()
    lst.delay = 0
    celery_worker_factory(env=WORKER_ENV)
    _drain(settings)
    assert OutboxMessage.objects.filter(state=OutboxState.SENT).count() == 8
    _assert_delivered_in_order(lst, allow_resend=True)


def test_broker_flushed_sweeper_delivers(celery_worker_factory, destination_listener, users, settings):
    import redis

    lst, _ = destination_listener(types=("ORU^R01",))
    worker = celery_worker_factory(env=WORKER_ENV, start=False)  # no worker yet: wake-ups queue in Redis
    _patient_reports(users, 2)
    client = redis.Redis.from_url(worker.broker_url)
    client.flushdb()  # every wake-up lost
    client.close()
    worker.start()
    assert not lst.received
    _drain(settings)
    _assert_delivered_in_order(lst, allow_resend=False)


def test_destination_down_then_up_with_worker(celery_worker_factory, destination_listener, users, settings):
    lst, _ = destination_listener(types=("ORU^R01",))
    lst.down()
    celery_worker_factory(env=WORKER_ENV)
    _patient_reports(users, 3)
    wait_for(
        lambda: OutboxMessage.objects.filter(attempts__gte=2).exists(), timeout=60, what="retries while down"
    )
    assert not lst.received
    lst.up()
    _drain(settings)
    assert OutboxMessage.objects.filter(state=OutboxState.SENT).count() == 6
    _assert_delivered_in_order(lst, allow_resend=False)
