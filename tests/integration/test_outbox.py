"""Outbound HL7 through the transactional outbox, to throwaway MLLP listeners."""

from __future__ import annotations

import pytest

from integration.models import InterfaceMessage, OutboxEvent, OutboxMessage, OutboxState
from integration.services import outbox
from integration.services.delivery import sweep_due
from reports import services as rs
from reports.models import Report
from scheduling import services as sched
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order

from .conftest import msa, orm, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
PASSWORD = "pw-Secret-123"


def _exam(patient=None):
    station = StationFactory(modality="CT")
    pt = ProcedureTypeFactory(modality="CT", code_value="CTHEAD", code_meaning="CT head")
    proc = make_order(
        station=station, procedure_type=pt, patient=patient or PatientFactory()
    ).procedures.get()
    sched.procedure_start(procedure=proc)
    sched.procedure_complete(procedure=proc)
    return proc


def _report_through(proc, users, *, findings="Lungs clear.", upto="amended"):
    rad, rev = users["radiologist"], users["reviewer"]
    report = rs.report_claim(procedure=proc, actor=rad)
    rs.report_save_draft(report=report, actor=rad, findings=findings, impression="No acute disease.")
    rs.report_submit(report=report, actor=rad)
    if upto in ("final", "amended"):
        rs.report_sign(report=report, actor=rev, password=PASSWORD)
    if upto == "amended":
        rs.report_add_addendum(
            report=report, actor=rev, text="Addendum | with ^ delimiters", password=PASSWORD
        )
    return Report.objects.get(pk=report.pk)


def _segments(text: str, seg: str) -> list[list[str]]:
    return [s.split("|") for s in text.split("\r") if s.startswith(seg + "|")]


def test_report_transitions_send_one_oru_each_per_destination_in_order(destination_listener, users):
    a, _ = destination_listener(name="HIS-A")
    b, _ = destination_listener(name="HIS-B", types=("ORU^R01",))
    proc = _exam()
    _report_through(proc, users)
    for lst in (a, b):
        wait_for(lambda lst=lst: len(lst.received) >= 3, what="three ORUs")
        texts = lst.texts()
        assert len(texts) == 3
        statuses = [_segments(t, "OBR")[0][25] for t in texts]
        assert statuses == ["P", "F", "C"]
        assert len(set(lst.control_ids())) == 3
        amended = texts[2]
        obx = _segments(amended, "OBX")
        assert any("Addendum \\F\\ with \\S\\ delimiters" in o[5] for o in obx)
    assert OutboxMessage.objects.filter(state=OutboxState.SENT).count() == 6
    assert InterfaceMessage.objects.filter(direction="out", status="AA").count() == 6


def test_critical_result_is_flagged_in_obx8(destination_listener, users):
    lst, _ = destination_listener(types=("ORU^R01",))
    proc = _exam()
    rad = users["radiologist"]
    report = rs.report_claim(procedure=proc, actor=rad)
    rs.report_save_draft(report=report, actor=rad, findings="Large PE.", impression="Pulmonary embolism.")
    rs.critical_result_flag(report=report, actor=rad, category="1", finding="PE")
    rs.report_submit(report=report, actor=rad)
    wait_for(lambda: lst.received, what="ORU")
    obx = _segments(lst.texts()[0], "OBX")
    assert obx[0][8] == "AA"


@pytest.mark.parametrize(("charset", "encoding"), [("UNICODE UTF-8", "utf-8"), ("GB18030", "gb18030")])
def test_chinese_name_round_trip(destination_listener, users, charset, encoding):
    lst, _ = destination_listener(types=("ORU^R01",), charset=charset, encoding=encoding)
    patient = PatientFactory(
        family_name="Wang", given_name="XiaoDong", ideographic_family="王", ideographic_given="小东"
    )
    _report_through(_exam(patient), users, upto="preliminary")
    wait_for(lambda: lst.received, what="ORU")
    raw = lst.received[0]
    assert "王^小东".encode(encoding) in raw
    pid = _segments(raw.decode(encoding), "PID")[0]
    assert pid[5].split("~")[1].startswith("王^小东")
    assert raw.split(b"\r")[0].endswith(charset.encode())


def test_order_status_goes_back_to_the_placer(destination_listener, hl7_client, his, catalog, api_for):
    from scheduling.models import Order

    from .conftest import tomorrow_at

    lst, _ = destination_listener(types=("ORM^O01", "OMI^O23"))
    c = hl7_client()
    assert msa(c.send(orm("NW", cid="S1", placer="PS")))[0] == "AA"
    assert not lst.received  # awaiting booking: nothing scheduled yet
    proc = Order.objects.get(placer_order_number="PS").procedures.get()
    station, _pt = catalog
    sched.procedure_book(procedure=proc, station=station, start=tomorrow_at(9))
    sched.procedure_mark_arrived(procedure=proc)
    sched.procedure_cancel(procedure=proc, reason="patient left")
    wait_for(lambda: len(lst.received) >= 6, what="ORM + OMI for three events")
    texts = lst.texts()
    orm_msgs = [t for t in texts if "ORM^O01" in t.split("\r")[0]]
    omi_msgs = [t for t in texts if "OMI^O23" in t.split("\r")[0]]
    assert [_segments(t, "ORC")[0][5] for t in orm_msgs] == ["SC", "IP", "CA"]
    assert [_segments(t, "ORC")[0][1] for t in omi_msgs] == ["SC", "SC", "OC"]
    assert _segments(omi_msgs[0], "IPC")[0][10] == "CT1"
    assert _segments(orm_msgs[0], "ORC")[0][2] == "PS^HIS"


def test_destination_down_then_up_delivers_everything_in_order(destination_listener, users, settings):
    settings.RIS_HL7_OUTBOX_BACKOFF_BASE = 0.05
    settings.RIS_HL7_OUTBOX_BACKOFF_MAX = 0.2
    settings.RIS_HL7_OUTBOX_LEASE_SECONDS = 0
    lst, _ = destination_listener(types=("ORU^R01",))
    lst.down()
    patient = PatientFactory()
    for n in range(3):
        _report_through(_exam(patient), users, findings=f"Finding {n}", upto="final")
    assert not lst.received
    assert OutboxMessage.objects.filter(state=OutboxState.PENDING).count() == 6
    assert InterfaceMessage.objects.filter(direction="out", status="failed").exists()
    lst.up()

    def drained():
        sweep_due()
        return not OutboxMessage.objects.filter(state=OutboxState.PENDING).exists()

    wait_for(drained, timeout=60, interval=0.3, what="outbox drained")
    expected = list(OutboxMessage.objects.order_by("id").values_list("control_id", flat=True))
    assert lst.control_ids() == expected  # in order, each once


def test_dead_after_max_attempts_then_retry(destination_listener, users, settings, api_for):
    settings.RIS_HL7_OUTBOX_MAX_ATTEMPTS = 2
    settings.RIS_HL7_OUTBOX_BACKOFF_BASE = 0.01
    settings.RIS_HL7_OUTBOX_LEASE_SECONDS = 0
    lst, _ = destination_listener(mode="AE", types=("ORU^R01",))
    _report_through(_exam(), users, upto="preliminary")
    msg = OutboxMessage.objects.get()
    wait_for(
        lambda: (sweep_due() or True) and OutboxMessage.objects.get().state == OutboxState.DEAD, what="dead"
    )
    msg.refresh_from_db()
    assert msg.attempts == 2 and "AE" in msg.last_error
    assert list(OutboxEvent.objects.filter(message=msg).values_list("action", flat=True)) == [
        "enqueue",
        "fail",
        "bury",
    ]
    lst.mode = "AA"
    resp = api_for("admin").post(f"/api/v1/integration/outbox/{msg.pk}/retry/")
    assert resp.status_code == 200, resp.content
    wait_for(
        lambda: (sweep_due() or True) and OutboxMessage.objects.get().state == OutboxState.SENT, what="sent"
    )
    assert api_for("dept_head").post(f"/api/v1/integration/outbox/{msg.pk}/retry/").status_code == 403
    # Every copy the peer saw carried the same control ID (a documented resend, not a new message).
    assert set(lst.control_ids()) == {msg.control_id}


def test_outbox_row_rolls_back_with_the_transition(destination_listener, users):
    from django.db import transaction

    destination_listener(types=("ORU^R01",))
    proc = _exam()
    rad = users["radiologist"]
    report = rs.report_claim(procedure=proc, actor=rad)
    rs.report_save_draft(report=report, actor=rad, findings="x", impression="y")
    with pytest.raises(RuntimeError), transaction.atomic():
        rs.report_submit(report=report, actor=rad)
        assert OutboxMessage.objects.count() == 1
        raise RuntimeError("crash before commit")
    assert OutboxMessage.objects.count() == 0
    assert outbox.OUTBOX_LIFECYCLE.allowed_actions("dead") == ["retry"]
