"""ADT → ORM → booking (front desk, in Chromium) → MWL (DCMTK findscu) → CA removes it; the
interface monitor in Chromium; runhl7 as a process driven by python-hl7's ``mllp_send``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from integration.models import InterfaceMessage, OutboxMessage, OutboxState
from scheduling.models import Order, ProcedureStatus
from tests.dicom_support import dcmtk

from .conftest import adt, msa, orm, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.browser, pytest.mark.dicom]


def _findscu(node, tmp: Path, accession: str):
    tmp.mkdir(parents=True, exist_ok=True)
    args = ["-W", "-to", "10", "-ta", "10", "-aet", "CT1", "-aec", node.ae_title, "-X", "-od", str(tmp)]
    for key in (
        "SpecificCharacterSet=ISO_IR 192",
        "PatientName",
        f"AccessionNumber={accession}",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    ):
        args += ["-k", key]
    dcmtk("findscu", *args, node.host, str(node.port))
    return sorted(tmp.glob("rsp*.dcm"))


def test_hl7_order_booked_at_front_desk_appears_on_mwl_and_cancel_removes_it(
    hl7_client, his, catalog, page_for, dicom_node, tmp_path
):
    station, _ = catalog
    station.host = ""
    station.worklist_scope = "station"
    station.save()
    c = hl7_client()
    assert msa(c.send(adt("A01", cid="J1")))[0] == "AA"
    assert msa(c.send(orm("NW", cid="J2", placer="PJ1")))[0] == "AA"
    order = Order.objects.get(placer_order_number="PJ1")
    proc = order.procedures.get()
    assert proc.status == ProcedureStatus.REQUESTED
    # Awaiting booking: not on the worklist.
    assert _findscu(dicom_node, tmp_path / "before", order.accession_number) == []

    page = page_for("front_desk")
    page.goto(f"{page.base_url}/scheduling/to-book/")
    row = page.get_by_test_id("to-book-row").filter(has_text=order.accession_number)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("王小东")
    row.get_by_test_id("book").click()
    expect(page.get_by_test_id("slots")).to_be_visible()
    day = page.get_by_test_id("day").input_value()
    page.get_by_test_id("next-day").click()
    expect(page.get_by_test_id("day")).not_to_have_value(day)
    target = page.get_by_test_id("slot").nth(2)
    value = target.get_attribute("value")
    page.locator(f'label.slot:has(input[value="{value}"])').click()
    page.get_by_test_id("confirm-book").click()
    expect(page).to_have_url(re.compile(r"/scheduling/to-book/$"))
    expect(page.get_by_test_id("to-book-row").filter(has_text=order.accession_number)).to_have_count(0)
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.SCHEDULED
    assert proc.steps.get().station_id == station.pk

    found = _findscu(dicom_node, tmp_path / "booked", order.accession_number)
    assert len(found) == 1
    from pydicom import dcmread

    ds = dcmread(found[0])
    assert ds.AccessionNumber == order.accession_number

    assert msa(c.send(orm("CA", cid="J3", placer="PJ1")))[0] == "AA"
    assert _findscu(dicom_node, tmp_path / "after", order.accession_number) == []


def test_interface_monitor_page(page_for, his, destination_listener, users, settings):
    from tests.integration.test_outbox import _exam, _report_through

    settings.RIS_HL7_OUTBOX_MAX_ATTEMPTS = 1
    lst, dest = destination_listener(mode="AR", types=("ORU^R01",), name="EMR")
    _report_through(_exam(), users, upto="preliminary")
    wait_for(lambda: OutboxMessage.objects.filter(state=OutboxState.DEAD).exists(), what="dead message")
    InterfaceMessage.objects.create(
        direction="in",
        sender=his,
        message_type="ADT^A01",
        control_id="MON1",
        status="AE",
        error="Invalid date",
        error_field="PID^1^7",
        raw="MSH|secret raw text",
        received_at=dest.created_at,
    )
    head = page_for("dept_head")
    head.goto(f"{head.base_url}/interfaces/")
    expect(head.get_by_test_id("sender-row").filter(has_text="HIS/HOSPITAL")).to_have_count(1)
    row = head.get_by_test_id("destination-row").filter(has_text="EMR")
    expect(row.get_by_test_id("dead")).to_have_text("1")
    expect(head.get_by_test_id("log-row").filter(has_text="MON1")).to_contain_text("PID^1^7")
    expect(head.get_by_test_id("retry")).to_have_count(0)  # retry is for administrators
    assert "secret raw text" not in head.content()
    head.locator("#id_control_id").fill("MON1")
    head.get_by_role("button", name="Filter").click()
    expect(head.get_by_test_id("log-row")).to_have_count(1)

    lst.mode = "AA"
    admin = page_for("admin")
    admin.goto(f"{admin.base_url}/interfaces/")
    admin.get_by_test_id("attention-row").get_by_test_id("retry").click()
    expect(admin.locator(".messages")).to_contain_text("queued for delivery again")
    wait_for(lambda: OutboxMessage.objects.get().state == OutboxState.SENT, what="redelivered")
    admin.goto(f"{admin.base_url}/interfaces/?control_id=MON1")
    admin.get_by_test_id("log-row").get_by_role("link").click()
    expect(admin.get_by_test_id("raw")).to_contain_text("secret raw text")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runhl7_process_with_mllp_send(his, catalog, tmp_path):
    from tests.celery_support import _database_url

    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "RIS_HL7_PORT": str(port),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    log = (tmp_path / "runhl7.log").open("wb")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, str(root / "manage.py"), "runhl7", "--bind", "127.0.0.1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(root),
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: b"listening on" in (tmp_path / "runhl7.log").read_bytes() or proc.poll() is not None,
            timeout=60,
        )
        assert proc.poll() is None, (tmp_path / "runhl7.log").read_text()
        messages = tmp_path / "msgs.hl7"
        messages.write_bytes(
            (adt("A01", cid="MS1") + "\r\n" + orm("NW", cid="MS2", placer="PMS") + "\r").encode("utf-8")
        )
        mllp_send = Path(sys.executable).with_name("mllp_send")
        out = subprocess.run(
            [str(mllp_send), "--file", str(messages), "--loose", "--port", str(port), "127.0.0.1"],
            capture_output=True,
            timeout=60,
            check=True,
        )
        acks = out.stdout.decode()
        assert acks.count("MSA|AA|") == 2, acks
        assert Order.objects.filter(placer_order_number="PMS").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    assert proc.returncode is not None
