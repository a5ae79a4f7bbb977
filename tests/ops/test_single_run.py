"""Only one sweeper/peer-review run at a time, even with two beats (issue 9 item 26)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from ris.locks import lock_key, single_run


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("task_path", "service_path", "skipped"),
    [
        ("imaging.tasks.sweep_received", "imaging.services.sweep_received", {"skipped": True}),
        ("reports.tasks.peer_review_sample", "reports.services.peer_review_sample", 0),
    ],
)
def test_two_concurrent_runs_one_skips(monkeypatch, task_path, service_path, skipped):
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    import importlib

    module_name, task_name = task_path.rsplit(".", 1)
    task = getattr(importlib.import_module(module_name), task_name)
    inside, release, runs = threading.Event(), threading.Event(), []

    def slow_job(**_kwargs):
        runs.append(threading.current_thread().name)
        inside.set()
        assert release.wait(60)
        return {"studies": 0} if "imaging" in service_path else []

    monkeypatch.setattr(service_path, slow_job)
    results = {}

    def first():
        try:
            results["first"] = task()
        finally:
            connections.close_all()

    t = threading.Thread(target=first, name="beat-1")
    t.start()
    try:
        assert inside.wait(60), "the first run never started"
        # The second beat's run, on another database session, while the first still runs.
        results["second"] = task()
    finally:
        release.set()
        t.join(60)
    assert results["second"] == skipped
    assert runs == ["beat-1"]
    # Once the first is done the next tick runs again.
    release.set()
    task()
    assert runs == ["beat-1", "MainThread"]


@pytest.mark.django_db(transaction=True)
def test_lock_is_released_after_an_error():
    with pytest.raises(RuntimeError), single_run("test.job") as acquired:
        assert acquired
        raise RuntimeError("job failed")
    with single_run("test.job") as acquired:
        assert acquired


def test_lock_keys_are_distinct_bigints():
    a, b = lock_key("imaging.sweep_received"), lock_key("reports.peer_review_sample")
    assert a != b and all(-(2**63) <= k < 2**63 for k in (a, b))
