"""The ingest-row and MPPS lifecycles are declared tables on ris.lifecycle (issue 10 item 1)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from imaging import services as imaging_services
from imaging.models import ObjectState, ReceivedObject
from worklist import services as worklist_services
from worklist.models import FINAL_MPPS_STATUSES, MPPSStatus

pytestmark = pytest.mark.django_db


def test_ingest_table_covers_every_state():
    table = imaging_services.INGEST_LIFECYCLE
    assert table.statuses() == set(ObjectState.values)
    assert table.allowed_actions(ObjectState.INDEXED) == []  # indexed is final
    assert set(table.allowed_actions(ObjectState.DEAD)) == {"revive", "retry"}


def test_mpps_table_has_final_states_without_exits():
    table = worklist_services.MPPS_LIFECYCLE
    assert table.statuses() == set(MPPSStatus.values)
    for status in FINAL_MPPS_STATUSES:
        assert table.allowed_actions(status) == []
    assert set(worklist_services.MPPS_ACTION_FOR_STATUS) == set(MPPSStatus.values)


def _row(state: str, uid: str) -> ReceivedObject:
    return ReceivedObject.objects.create(
        sop_instance_uid=uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.4",
        transfer_syntax_uid="1.2.840.10008.1.2",
        relpath=f"objects/{uid}.dcm",
        sha256="0" * 64,
        size=1,
        state=state,
        received_at=timezone.now(),
    )


def test_bulk_transition_moves_only_rows_in_a_source_state():
    received, dead = _row(ObjectState.RECEIVED, "1.2.3.4.1"), _row(ObjectState.DEAD, "1.2.3.4.2")
    moved = imaging_services._ingest_transition(
        action="bury", filters={"study_instance_uid": "1.2.3"}, updates={"last_error": "x"}
    )
    assert moved == 1
    received.refresh_from_db()
    dead.refresh_from_db()
    assert received.state == ObjectState.DEAD and received.last_error == "x"
    assert dead.last_error == ""  # was not a source of "bury": untouched
