"""factory_boy factories shared by all tests."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone
from pydicom.uid import generate_uid

from registration.models import Patient
from ris.roles import Role
from scheduling.models import ProcedureType, Station


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-Secret-123")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            group, _ = Group.objects.get_or_create(name=extracted)
            self.groups.add(group)
            if extracted == Role.ADMIN:
                self.is_staff = True
        self.save()


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    patient_id = factory.Sequence(lambda n: f"T{n:06d}")
    issuer = "RIS"
    family_name = factory.Sequence(lambda n: f"Family{n}")
    given_name = "Test"
    birth_date = date(1980, 1, 2)
    sex = "F"


class StationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Station
        django_get_or_create = ("ae_title",)

    ae_title = factory.Sequence(lambda n: f"ST{n}")
    name = factory.LazyAttribute(lambda o: o.ae_title)
    modality = "CT"
    room = "R1"
    work_start = time(0, 0)
    work_end = time(0, 0)  # open around the clock
    slot_minutes = 15


class ProcedureTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProcedureType
        django_get_or_create = ("coding_scheme", "code_value")

    code_value = factory.Sequence(lambda n: f"PT{n}")
    coding_scheme = "99RIS"
    code_meaning = factory.LazyAttribute(lambda o: f"Procedure {o.code_value}")
    modality = "CT"
    body_part = "CHEST"
    duration_minutes = 15


def next_slot(minutes_ahead: int = 60, *, day_offset: int = 1) -> datetime:
    """An aware datetime on a future day, aligned to 15 minutes."""
    base = timezone.localtime() + timedelta(days=day_offset)
    base = base.replace(hour=9, minute=0, second=0, microsecond=0)
    return base + timedelta(minutes=minutes_ahead)


def make_order(*, patient=None, station=None, procedure_type=None, start=None, **kwargs):
    from scheduling.services import order_create

    station = station or StationFactory()
    procedure_type = procedure_type or ProcedureTypeFactory(modality=station.modality)
    return order_create(
        patient=patient or PatientFactory(),
        procedure_type=procedure_type,
        station=station,
        start=start or next_slot(),
        **kwargs,
    )


__all__ = ["generate_uid", "make_order"]
