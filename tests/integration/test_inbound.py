"""Inbound HL7 v2 over MLLP through the in-process listener, driven by python-hl7's client."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from integration.models import InterfaceMessage, LogStatus
from registration.models import Patient
from scheduling.models import Order, ProcedureStatus

from .conftest import adt, err_location, msa, orm

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_adt_a01_registers_chinese_name_with_pinyin(hl7_client, his):
    c = hl7_client()
    ack = c.send(adt("A01", cid="ADT1"))
    assert msa(ack) == ("AA", "ADT1")
    p = Patient.objects.get(patient_id="MRN1", issuer="HOSPITAL")
    assert (p.ideographic_family, p.ideographic_given) == ("王", "小东")
    assert (p.family_name, p.given_name) == ("Wang", "XiaoDong")
    assert str(p.birth_date) == "1980-05-06" and p.sex == "M"
    assert "Beijing" in p.address and p.phone == "(010)5555"
    log = InterfaceMessage.objects.get(control_id="ADT1")
    assert log.status == LogStatus.AA and log.patient_id == p.pk and log.message_type == "ADT^A01^ADT_A01"
    assert AuditEvent.objects.filter(action="interface.message_in", object_id=str(log.pk)).count() == 1


def test_adt_a08_updates(hl7_client, his):
    c = hl7_client()
    assert msa(c.send(adt("A04", cid="X1")))[0] == "AA"
    assert msa(c.send(adt("A08", cid="X2", name="Wang^Xiaodong~王^小东", sex="F")))[0] == "AA"
    p = Patient.objects.get(patient_id="MRN1")
    assert p.sex == "F" and p.ideographic_family == "王"


def test_gb18030_round_trip(hl7_client, his):
    c = hl7_client("gb18030")
    ack = c.send(adt("A01", cid="GB1", charset="GB18030", name="王^小东"), encoding="gb18030")
    assert msa(ack) == ("AA", "GB1")
    assert Patient.objects.get(patient_id="MRN1").ideographic_given == "小东"
    assert "GB18030" in ack.split("\r")[0]


def test_duplicate_control_id_gets_original_ack_and_applies_once(hl7_client, his, catalog):
    c = hl7_client()
    first = c.send(orm("NW", cid="DUP1", placer="PDUP"))
    again = c.send(orm("NW", cid="DUP1", placer="PDUP"))
    assert msa(first) == ("AA", "DUP1")
    assert again == first
    assert Order.objects.filter(placer_order_number="PDUP").count() == 1
    assert InterfaceMessage.objects.filter(control_id="DUP1", status=LogStatus.DUPLICATE).count() == 1


def test_unknown_sender_is_rejected_and_audited(hl7_client, his):
    c = hl7_client()
    ack = c.send(adt("A01", cid="U1").replace("HIS|HOSPITAL", "EVIL|ELSEWHERE", 1))
    assert msa(ack)[0] == "AR"
    assert not Patient.objects.exists()
    assert AuditEvent.objects.filter(action="interface.unknown_sender").count() == 1
    assert InterfaceMessage.objects.get(control_id="U1").status == LogStatus.AR


def test_orm_without_time_awaits_booking_and_is_searchable(hl7_client, his, catalog, api_for):
    c = hl7_client()
    assert msa(c.send(orm("NW", cid="O1", placer="P100")))[0] == "AA"
    order = Order.objects.get(placer_order_number="P100")
    proc = order.procedures.get()
    step = proc.steps.get()
    assert proc.status == ProcedureStatus.REQUESTED
    assert step.start is None and step.station is None and step.sps_id
    assert order.accession_number and order.filler_order_number == order.accession_number
    assert order.placer_authority == "HIS" and order.priority == "ROUTINE"
    assert order.referring_physician == "Li^Ming" and order.requesting_physician == "Zhang^Wei"
    assert order.requesting_service == "WARD3" and order.reason == "suspected pneumonia"
    assert order.admission_id == "V100"
    resp = api_for("front_desk").get("/api/v1/orders/", {"placer_order_number": "P100"})
    assert resp.status_code == 200
    rows = resp.json()["results"] if "results" in resp.json() else resp.json()
    assert [r["accession_number"] for r in rows] == [order.accession_number]


def test_orm_with_time_is_booked_and_ipc_identifiers_kept(hl7_client, his, catalog):
    from .conftest import hl7_ts, tomorrow_at

    start = tomorrow_at(10)
    c = hl7_client()
    ack = c.send(
        orm("NW", cid="O2", placer="P200", start=hl7_ts(start), omi=True, ipc="ACC777", station="CT1")
    )
    assert msa(ack)[0] == "AA", ack
    order = Order.objects.get(placer_order_number="P200")
    assert order.accession_number == "ACC777"
    step = order.procedures.get().steps.get()
    assert step.station.ae_title == "CT1" and step.start == start
    assert order.procedures.get().status == ProcedureStatus.SCHEDULED


@pytest.mark.parametrize(
    ("message", "code", "where"),
    [
        (lambda: orm("NW", cid="E1", code="NOPE"), "AE", "OBR^1^4"),
        (lambda: orm("ZZ", cid="E2"), "AE", "ORC^1^1"),
        (lambda: orm("CA", cid="E3", placer="UNKNOWN"), "AE", "ORC^1^2"),
        (lambda: orm("NW", cid="E4", placer=""), "AE", "ORC^1^2"),
        (lambda: adt("A01", cid="E5", birth="19801399"), "AE", "PID^1^7"),
        (lambda: adt("A40", cid="E6") + "\rMRG|GHOST^^^HOSPITAL", "AE", "PID^1^3"),
        (lambda: adt("A99", cid="E7"), "AR", "MSH^1^9"),
        (lambda: adt("A01", cid="E8").replace("ADT^A01^ADT_A01", "QRY^Q01"), "AR", "MSH^1^9"),
        (lambda: adt("A01", cid="E9", charset="KLINGON"), "AR", "MSH^1^18"),
    ],
)
def test_bad_input_gets_specific_answer_and_changes_nothing(hl7_client, his, catalog, message, code, where):
    c = hl7_client()
    ack = c.send(message())
    assert msa(ack)[0] == code, ack
    assert err_location(ack) == where, ack
    assert not Order.objects.exists()
    assert not Patient.objects.exists()
    log = InterfaceMessage.objects.get(direction="in")
    assert log.status == code and log.error


def test_merge_of_unknown_prior_patient(hl7_client, his):
    c = hl7_client()
    assert msa(c.send(adt("A01", cid="M0")))[0] == "AA"
    ack = c.send(adt("A40", cid="M1") + "\rMRG|GHOST^^^HOSPITAL")
    assert msa(ack)[0] == "AE" and err_location(ack) == "MRG^1^1"
    assert Patient.objects.filter(merged_into__isnull=False).count() == 0


def test_merge_moves_orders(hl7_client, his, catalog):
    c = hl7_client()
    assert msa(c.send(adt("A01", cid="MM1", pid="OLD")))[0] == "AA"
    assert msa(c.send(orm("NW", cid="MM2", pid="OLD", placer="PM")))[0] == "AA"
    assert msa(c.send(adt("A01", cid="MM3", pid="NEW")))[0] == "AA"
    ack = c.send(adt("A40", cid="MM4", pid="NEW") + "\rMRG|OLD^^^HOSPITAL")
    assert msa(ack)[0] == "AA", ack
    old, new = Patient.objects.get(patient_id="OLD"), Patient.objects.get(patient_id="NEW")
    assert old.merged_into_id == new.pk
    assert Order.objects.get(placer_order_number="PM").patient_id == new.pk


def test_cancel_of_completed_order_is_refused(hl7_client, his, catalog):
    from scheduling.models import RequestedProcedure

    c = hl7_client()
    assert msa(c.send(orm("NW", cid="C1", placer="PC")))[0] == "AA"
    RequestedProcedure.objects.filter(order__placer_order_number="PC").update(
        status=ProcedureStatus.COMPLETED
    )
    ack = c.send(orm("CA", cid="C2", placer="PC"))
    assert msa(ack)[0] == "AE" and err_location(ack) == "ORC^1^1"
    assert RequestedProcedure.objects.get(order__placer_order_number="PC").status == ProcedureStatus.COMPLETED


def test_cancel_and_change(hl7_client, his, catalog):
    from .conftest import hl7_ts, tomorrow_at

    c = hl7_client()
    assert msa(c.send(orm("NW", cid="X1", placer="PX")))[0] == "AA"
    start = tomorrow_at(11)
    ack = c.send(orm("XO", cid="X2", placer="PX", start=hl7_ts(start), priority="S"))
    assert msa(ack)[0] == "AA", ack
    order = Order.objects.get(placer_order_number="PX")
    assert order.priority == "STAT"
    assert order.procedures.get().status == ProcedureStatus.SCHEDULED
    assert order.procedures.get().steps.get().start == start
    assert msa(c.send(orm("CA", cid="X3", placer="PX")))[0] == "AA"
    assert order.procedures.get().status == ProcedureStatus.CANCELLED


def test_framing_and_truncation(hl7_client, his):
    c = hl7_client()
    # No start block: AR, the connection stays usable.
    bad = c.send_raw(b"MSH|^~\\&|HIS|HOSPITAL|RIS\x1c\r")
    assert msa(bad.decode())[0] == "AR"
    # Wrong encoding characters.
    ack = c.send(adt("A01", cid="W1").replace("^~\\&", "^^^^", 1))
    assert msa(ack)[0] == "AR"
    # Truncated inside MSH.
    assert msa(c.send("MSH|^~"))[0] == "AR"
    # Segment longer than allowed.
    long = adt("A01", cid="L1") + "\rNTE|1||" + "x" * 70000
    assert msa(c.send(long))[0] == "AR"
    assert not Patient.objects.exists()
    # Still works afterwards.
    assert msa(c.send(adt("A01", cid="OK1")))[0] == "AA"


def test_rejected_message_may_be_resent_under_the_same_control_id(hl7_client, his):
    c = hl7_client()
    assert msa(c.send(adt("A01", cid="R1", charset="KLINGON")))[0] == "AR"
    assert msa(c.send(adt("A01", cid="R1")))[0] == "AA"
    assert Patient.objects.count() == 1


def test_process_logs_carry_no_patient_data(hl7_client, his, catalog, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    c = hl7_client()
    c.send(adt("A01", cid="LG1", pid="SECRETMRN", name="Secretname^Given"))
    c.send(adt("A01", cid="LG2", pid="SECRETMRN", birth="bad", name="Secretname^Given"))
    text = caplog.text
    assert "SECRETMRN" not in text and "Secretname" not in text


def test_destinations_and_senders_api(api_for, transactional_db):
    admin, head = api_for("admin"), api_for("dept_head")
    body = {
        "name": "EMR",
        "host": "127.0.0.1",
        "port": 2576,
        "message_types": ["ORU^R01"],
        "charset": "GB18030",
    }
    assert head.post("/api/v1/integration/destinations/", body, format="json").status_code == 403
    resp = admin.post("/api/v1/integration/destinations/", body, format="json")
    assert resp.status_code == 201, resp.content
    assert (
        admin.post(
            "/api/v1/integration/destinations/",
            {**body, "name": "X", "message_types": ["ADT^A01"]},
            format="json",
        ).status_code
        == 400
    )
    assert head.get("/api/v1/integration/destinations/").status_code == 200
    assert (
        admin.patch(
            f"/api/v1/integration/destinations/{resp.json()['id']}/", {"enabled": False}, format="json"
        ).json()["enabled"]
        is False
    )
    s = admin.post("/api/v1/integration/senders/", {"application": "LIS", "facility": "HOSP"}, format="json")
    assert s.status_code == 201
    assert api_for("front_desk").get("/api/v1/integration/messages/").status_code == 403
