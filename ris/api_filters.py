"""django-filter for the API: datetime filters that answer 400 for values PostgreSQL cannot store.

``parse_datetime`` accepts offsets PostgreSQL and Python's UTC arithmetic do not: an offset with
seconds (``+05:30:15``), or a value whose UTC equivalent falls outside years 1–9999
(``0001-01-01T00:00+01:00``). Left to the database those end as server errors; here they are
a field error naming the parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_filters import fields as filter_fields
from django_filters import rest_framework as filters


def check_storable_datetime(value: datetime | None) -> datetime | None:
    """Return ``value`` in UTC, or raise ValidationError if PostgreSQL cannot store it."""
    if value is None:
        return None
    offset = value.utcoffset()
    if offset is not None and (offset.seconds % 60 or offset.microseconds):
        raise forms.ValidationError(_("The UTC offset must be whole minutes."), code="invalid")
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise forms.ValidationError(_("The date and time is out of range."), code="invalid") from exc


class StorableIsoDateTimeField(filter_fields.IsoDateTimeField):
    def to_python(self, value):
        return check_storable_datetime(super().to_python(value))


class IsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = StorableIsoDateTimeField


class FilterSet(filters.FilterSet):
    FILTER_DEFAULTS = {
        **filters.FilterSet.FILTER_DEFAULTS,
        models.DateTimeField: {"filter_class": IsoDateTimeFilter},
    }


class FilterBackend(filters.DjangoFilterBackend):
    """``filterset_fields`` on a viewset build their FilterSet from the safe base above."""

    filterset_base = FilterSet
