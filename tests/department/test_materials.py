"""Materials: usage per exam decrements stock atomically, is audited, warns when low."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEvent
from department.models import MaterialItem, MaterialReceipt, MaterialUsage
from department.services import material_item_upsert, material_receive, material_record_usage
from ris.errors import ApplicationError, NotFound
from tests.factories import make_order


@pytest.fixture
def contrast(db):
    item, _ = material_item_upsert(
        code="IOHEXOL", name="Iohexol", kind="contrast", unit="ml", low_stock_threshold=100, initial_stock=300
    )
    return item


@pytest.fixture
def procedure(db):
    return make_order().procedures.get()


@pytest.mark.django_db
def test_usage_decrements_stock_and_is_audited(contrast, procedure, users):
    usage = material_record_usage(
        procedure=procedure,
        item_code="IOHEXOL",
        quantity="80",
        actor=users["technologist"],
        source="console",
        notes="80 ml IV",
    )
    contrast.refresh_from_db()
    assert contrast.stock_level == Decimal("220.00")
    assert usage.stock_level_after == Decimal("220.00")
    assert usage.low_stock is False
    assert (usage.source, usage.source_ae, usage.notes) == ("console", "", "80 ml IV")
    ev = AuditEvent.objects.get(action="material.usage")
    assert ev.object_id == str(procedure.pk)
    assert ev.patient_ref == procedure.order.patient_id
    assert ev.actor_username == users["technologist"].username


@pytest.mark.django_db
def test_low_stock_warning_and_mpps_source(contrast, procedure, caplog):
    usage = material_record_usage(
        procedure=procedure.pk, item_code="IOHEXOL", quantity=250, actor=None, source="mpps:CT1"
    )
    assert usage.low_stock is True
    assert usage.stock_level_after == Decimal("50.00")
    assert (usage.source, usage.source_ae) == ("mpps", "CT1")
    assert any("low stock" in r.getMessage() for r in caplog.records)
    # The log names the item, never the patient.
    assert not any(str(procedure.order.patient.patient_id) in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_usage_beyond_stock_is_still_recorded(contrast, procedure):
    material_record_usage(
        procedure=procedure, item_code="IOHEXOL", quantity=350, actor=None, source="console"
    )
    contrast.refresh_from_db()
    assert contrast.stock_level == Decimal("-50.00")
    assert MaterialUsage.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"item_code": "NOPE", "quantity": 1, "source": "console"}, "item_code"),
        ({"item_code": "IOHEXOL", "quantity": 0, "source": "console"}, "quantity"),
        ({"item_code": "IOHEXOL", "quantity": "-3", "source": "console"}, "quantity"),
        ({"item_code": "IOHEXOL", "quantity": "abc", "source": "console"}, "quantity"),
        ({"item_code": "IOHEXOL", "quantity": 1, "source": "telepathy"}, "source"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(contrast, procedure, kwargs, field):
    with pytest.raises(ApplicationError) as exc:
        material_record_usage(procedure=procedure, actor=None, **kwargs)
    assert field in exc.value.fields
    contrast.refresh_from_db()
    assert contrast.stock_level == Decimal("300.00")
    assert not MaterialUsage.objects.exists()
    assert not AuditEvent.objects.filter(action="material.usage").exists()


@pytest.mark.django_db
def test_unknown_procedure(contrast):
    with pytest.raises(NotFound):
        material_record_usage(procedure=999999, item_code="IOHEXOL", quantity=1, actor=None, source="console")


@pytest.mark.django_db
def test_inactive_item_is_refused(contrast, procedure):
    MaterialItem.objects.filter(pk=contrast.pk).update(active=False)
    with pytest.raises(ApplicationError):
        material_record_usage(
            procedure=procedure, item_code="IOHEXOL", quantity=1, actor=None, source="console"
        )


@pytest.mark.django_db
def test_receive_adds_stock(contrast, users):
    receipt = material_receive(item="IOHEXOL", quantity=500, actor=users["dept_head"], lot_number="L42")
    contrast.refresh_from_db()
    assert contrast.stock_level == Decimal("800.00")
    assert receipt.lot_number == "L42"
    assert AuditEvent.objects.filter(action="material.receive", object_id=str(contrast.pk)).count() == 1


@pytest.mark.django_db
def test_seed_is_idempotent():
    call_command("seed_department", "--no-demo-activity")
    first = dict(MaterialItem.objects.values_list("code", "stock_level"))
    material_receive(item="FILM1417", quantity=10)
    call_command("seed_department", "--no-demo-activity")
    assert MaterialItem.objects.count() == len(first) >= 5
    # Re-seeding never resets stock that moved since.
    assert MaterialItem.objects.get(code="FILM1417").stock_level == first["FILM1417"] + 10
    assert MaterialReceipt.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_usages_are_all_counted(contrast):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locking")
    procs = [make_order().procedures.get() for _ in range(6)]
    errors = []

    def use(p):
        try:
            material_record_usage(procedure=p, item_code="IOHEXOL", quantity=10, actor=None, source="console")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=use, args=(p,)) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    contrast.refresh_from_db()
    assert contrast.stock_level == Decimal("240.00")
    assert MaterialUsage.objects.count() == 6
