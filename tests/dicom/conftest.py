"""Shared data for the MWL tests: stations in each character-set profile and scheduled steps."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order


def at_today(hour: int, minute: int = 0) -> datetime:
    now = timezone.localtime()
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0)


def schedule(*, patient, station, start, procedure_type=None, **kwargs):
    """An order booked without the calendar checks (tests schedule freely)."""
    procedure_type = procedure_type or ProcedureTypeFactory(
        code_value="CTCHEST", code_meaning="CT chest", modality=station.modality
    )
    order = make_order(
        patient=patient,
        station=station,
        procedure_type=procedure_type,
        start=start,
        check_calendar=False,
        **kwargs,
    )
    proc = order.procedures.get()
    return order, proc, proc.steps.get()


@pytest.fixture
def wang(db):
    return PatientFactory(
        patient_id="P1001",
        family_name="Wang",
        given_name="XiaoDong",
        ideographic_family="王",
        ideographic_given="小东",
        birth_date=datetime(1970, 5, 6).date(),
        sex="M",
        allergies="Iodine contrast",
        medical_alerts="Pacemaker",
    )


@pytest.fixture
def mwl_data(db, wang):
    """Four CT stations (one per charset profile), one MR; steps today and tomorrow."""
    stations = {
        "CT_UTF8": StationFactory(
            ae_title="CT_UTF8", modality="CT", room="CT-1", charset_profile="ISO_IR 192"
        ),
        "CT_GB": StationFactory(ae_title="CT_GB", modality="CT", room="CT-2", charset_profile="GB18030"),
        "CT_LATIN": StationFactory(
            ae_title="CT_LATIN", modality="CT", room="CT-3", charset_profile="ISO_IR 100"
        ),
        "CT_ASCII": StationFactory(ae_title="CT_ASCII", modality="CT", room="CT-4", charset_profile="ASCII"),
        "MR1": StationFactory(ae_title="MR1", modality="MR", room="MR-1", worklist_scope="station"),
    }
    ct = ProcedureTypeFactory(code_value="CTCHEST", code_meaning="CT chest", modality="CT")
    mr = ProcedureTypeFactory(code_value="MRBRAIN", code_meaning="MR brain", modality="MR")
    other = PatientFactory(patient_id="P1002", family_name="Smith", given_name="Anna", sex="F")
    steps = {}
    _, _, steps["wang_ct"] = schedule(
        patient=wang,
        station=stations["CT_UTF8"],
        start=at_today(9),
        procedure_type=ct,
        referring_physician="Li^Ming=李^明",
        priority="STAT",
    )
    _, _, steps["smith_ct"] = schedule(
        patient=other, station=stations["CT_GB"], start=at_today(10), procedure_type=ct
    )
    _, _, steps["smith_mr"] = schedule(
        patient=other, station=stations["MR1"], start=at_today(11), procedure_type=mr
    )
    _, _, steps["wang_ct_tomorrow"] = schedule(
        patient=wang, station=stations["CT_UTF8"], start=at_today(9) + timedelta(days=1), procedure_type=ct
    )
    return {"stations": stations, "steps": steps, "ct": ct, "mr": mr}
