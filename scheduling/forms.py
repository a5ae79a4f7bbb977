"""Front-desk forms for ordering, booking, check-in, cancel, reschedule and downtime."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import ModelChoiceIterator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from registration.forms import FrontDeskForm
from ris.vr import validate_lo, validate_pn_component

from .models import Priority, ProcedureType, Station

# Messages raised by scheduling.services, marked so that the pages show them translated.
SERVICE_MESSAGES = [
    gettext_noop("The slot is already booked."),
    gettext_noop("Slot already booked."),
    gettext_noop("The station is down at that time."),
    gettext_noop("Station downtime."),
    gettext_noop("The slot is outside the station's working hours."),
    gettext_noop("Outside working hours."),
    gettext_noop("The station is not active."),
    gettext_noop("Inactive station."),
    gettext_noop("This procedure is no longer offered."),
    gettext_noop("Inactive."),
    gettext_noop("The station's modality does not match the procedure."),
    gettext_noop("A reason is required."),
    gettext_noop("This field is required."),
    gettext_noop("The procedure has no open scheduled step."),
    gettext_noop("Unknown priority."),
    gettext_noop("Invalid choice."),
    gettext_noop("Downtime must end after it starts."),
    gettext_noop("Before start."),
    gettext_noop("Invalid input."),
]

CANCEL_REASONS = [
    _("Patient request"),
    _("Patient did not attend"),
    _("Clinical contraindication"),
    _("Duplicate order"),
    _("Order withdrawn by the referrer"),
]
RESCHEDULE_REASONS = [
    _("Patient request"),
    _("Patient late"),
    _("Preparation not done"),
    _("Station unavailable"),
    _("Urgent case inserted"),
]


class ProcedureTypeChoiceField(forms.ModelChoiceField):
    """Catalog select grouped by modality; the label names body part and duration."""

    def label_from_instance(self, obj: ProcedureType) -> str:
        body = f" · {obj.body_part}" if obj.body_part else ""
        return f"{obj.code_meaning}{body} ({obj.duration_minutes} min)"

    class iterator(ModelChoiceIterator):
        def __iter__(self):
            if self.field.empty_label is not None:
                yield ("", self.field.empty_label)
            groups: dict[str, list] = {}
            for obj in self.queryset:
                groups.setdefault(obj.modality, []).append(self.choice(obj))
            yield from groups.items()


class StationChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Station) -> str:
        room = f" · {obj.room}" if obj.room else ""
        return f"{obj.ae_title} — {obj.name}{room}"


def parse_slot(value: str) -> datetime | None:
    """A slot value is local wall time ``YYYY-MM-DDTHH:MM`` in the department's time zone."""
    try:
        naive = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    if timezone.is_aware(naive):
        return naive
    return timezone.make_aware(naive, timezone.get_current_timezone())


def slot_value(start: datetime) -> str:
    return timezone.localtime(start).strftime("%Y-%m-%dT%H:%M")


class BookingForm(FrontDeskForm):
    """Station + day + chosen slot; shared by order entry and reschedule."""

    station = StationChoiceField(
        label=_("Station"), queryset=Station.objects.filter(active=True), empty_label=None
    )
    day = forms.DateField(label=_("Day"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    start = forms.CharField(
        label=_("Time"),
        required=True,
        error_messages={"required": _("Choose a free time slot.")},
        widget=forms.HiddenInput,
    )

    def clean_start(self) -> datetime:
        start = parse_slot(self.cleaned_data.get("start", ""))
        if start is None:
            raise ValidationError(_("Choose a free time slot."))
        if start < timezone.now() - timedelta(minutes=5):
            raise ValidationError(_("This time has already passed. Choose a later slot."))
        return start

    def clean(self):
        data = super().clean()
        start, day = data.get("start"), data.get("day")
        if isinstance(start, datetime) and isinstance(day, date) and timezone.localtime(start).date() != day:
            self.add_error("start", _("The chosen time is not on the chosen day."))
        return data


class OrderForm(BookingForm):
    procedure_type = ProcedureTypeChoiceField(
        label=_("Procedure"),
        queryset=ProcedureType.objects.filter(active=True).order_by("modality", "body_part", "code_meaning"),
        empty_label=_("— choose from the catalog —"),
    )
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices, initial=Priority.ROUTINE)
    referring_physician = forms.CharField(
        label=_("Referring physician"),
        required=False,
        max_length=64,
        validators=[validate_pn_component],
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    reason = forms.CharField(
        label=_("Reason for the procedure"),
        required=False,
        max_length=64,
        validators=[validate_lo],
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    clinical_info = forms.CharField(
        label=_("Clinical information"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    field_order = ["procedure_type", "priority", "referring_physician", "reason", "clinical_info"]

    def clean(self):
        data = super().clean()
        station, ptype = data.get("station"), data.get("procedure_type")
        if station and ptype and station.modality != ptype.modality:
            self.add_error(
                "station",
                _("%(station)s is a %(modality)s station; the procedure needs %(needed)s.")
                % {"station": station.ae_title, "modality": station.modality, "needed": ptype.modality},
            )
        return data


class RescheduleForm(BookingForm):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        widget=forms.TextInput(attrs={"list": "reschedule-reasons", "autocomplete": "off"}),
    )


class CancelForm(FrontDeskForm):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        widget=forms.TextInput(attrs={"list": "cancel-reasons", "autocomplete": "off", "autofocus": True}),
    )


class DowntimeForm(FrontDeskForm):
    station = StationChoiceField(
        label=_("Station"), queryset=Station.objects.filter(active=True), widget=forms.HiddenInput
    )
    day = forms.DateField(widget=forms.HiddenInput)
    start_time = forms.TimeField(
        label=_("From"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    end_time = forms.TimeField(label=_("To"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    reason = forms.CharField(label=_("Reason"), max_length=255)
    # Set by the confirm step, after the overlapping bookings were shown.
    confirm_overlaps = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("start_time") and data.get("end_time") and data["end_time"] <= data["start_time"]:
            self.add_error("end_time", _("The end must be after the start."))
        return data

    def bounds(self) -> tuple[datetime, datetime]:
        tz = timezone.get_current_timezone()
        day = self.cleaned_data["day"]
        return (
            datetime.combine(day, self.cleaned_data["start_time"], tzinfo=tz),
            datetime.combine(day, self.cleaned_data["end_time"], tzinfo=tz),
        )
