"""Front-desk forms for patients. They validate input; the services do the writing.

Errors raised by the services (``ApplicationError.fields`` or Django ``ValidationError``)
are mapped back onto these forms by :func:`apply_service_errors`, so the page is
re-rendered with the user's input and a message at the right field — never a 500.
"""

from __future__ import annotations

from datetime import date

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from ris.vr import validate_lo, validate_pn_component, validate_sh

from .models import PregnancyStatus, Sex
from .names import has_han, split_chinese_name

# Messages raised by registration.services, marked here so they are translated on the page.
SERVICE_MESSAGES = [
    gettext_noop("A family name (or a Chinese name) is required."),
    gettext_noop("Birth date is in the future."),
    gettext_noop("The name group is longer than 64 characters."),
    gettext_noop("A patient with this ID already exists for this issuer."),
    gettext_noop("Already registered."),
    gettext_noop("This patient was merged; order on the surviving record."),
]


def translated(message) -> str:
    """Service messages are plain English; translate the ones we know (catalog lookup)."""
    return gettext(str(message))


def apply_service_errors(form: forms.Form, exc, *, aliases: dict[str, str] | None = None) -> None:
    """Put a service error onto the form: field errors where a field exists, else non-field."""
    aliases = aliases or {}
    if isinstance(exc, ValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        message = "" if fields else "; ".join(exc.messages)
    else:
        fields = getattr(exc, "fields", {}) or {}
        message = getattr(exc, "message", str(exc))
    placed = False
    for name, errors in fields.items():
        target = aliases.get(name, name)
        if target not in form.fields:
            target = None
        for error in errors if isinstance(errors, list | tuple) else [errors]:
            form.add_error(target, translated(error))
            placed = True
    # Keep the general sentence too: it says *why* (e.g. "The slot is already booked.").
    if message and (not placed or message != "Invalid input."):
        form.add_error(None, translated(message))


class FrontDeskForm(forms.Form):
    """Labels without the trailing colon: the pages lay labels out above their inputs."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class PatientSearchForm(FrontDeskForm):
    q = forms.CharField(
        label=_("Name or ID"),
        required=False,
        max_length=64,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "autofocus": True,
                "autocomplete": "off",
                "placeholder": _("王小东, wang xiaodong, Wang, P000123…"),
            }
        ),
    )
    birth_date = forms.DateField(
        label=_("Birth date"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def has_criteria(self) -> bool:
        return bool(self.is_valid() and (self.cleaned_data["q"].strip() or self.cleaned_data["birth_date"]))


class PatientForm(FrontDeskForm):
    """Registration and demographic edits. ``chinese_name`` fills the ideographic group."""

    chinese_name = forms.CharField(
        label=_("Chinese name (中文姓名)"),
        required=False,
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "off", "lang": "zh-Hans", "placeholder": "王小东"}),
        help_text=_("Family name first. Pinyin is filled in below and stays editable."),
    )
    family_name = forms.CharField(
        label=_("Family name (pinyin / Latin)"),
        required=False,
        max_length=64,
        validators=[validate_pn_component],
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    given_name = forms.CharField(
        label=_("Given name (pinyin / Latin)"),
        required=False,
        max_length=64,
        validators=[validate_pn_component],
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    patient_id = forms.CharField(
        label=_("Patient ID"),
        required=False,
        max_length=64,
        validators=[validate_lo],
        help_text=_("Leave empty to assign a new medical record number."),
    )
    birth_date = forms.DateField(
        label=_("Birth date"),
        required=True,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices, widget=forms.RadioSelect)
    phone = forms.CharField(
        label=_("Phone"),
        required=False,
        max_length=16,
        validators=[validate_sh],
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    address = forms.CharField(label=_("Address"), required=False, max_length=255)
    medical_alerts = forms.CharField(
        label=_("Medical alerts"),
        required=False,
        max_length=64,
        validators=[validate_lo],
        help_text=_("E.g. pacemaker, diabetes, claustrophobia."),
    )
    allergies = forms.CharField(
        label=_("Allergies"),
        required=False,
        max_length=64,
        validators=[validate_lo],
        help_text=_("E.g. iodinated contrast, latex."),
    )
    pregnancy_status = forms.TypedChoiceField(
        label=_("Pregnancy status"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "—"), *PregnancyStatus.choices],
    )
    is_temporary = forms.BooleanField(
        label=_("Temporary registration (unidentified or emergency patient; merge later)"),
        required=False,
    )
    confirm_duplicate = forms.BooleanField(
        label=_("I have checked the patients above: this is a different person, register anyway."),
        required=False,
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            # The ID of a registered patient is changed by a merge, not by an edit.
            del self.fields["patient_id"]
            del self.fields["confirm_duplicate"]

    def clean_chinese_name(self) -> str:
        value = "".join(self.cleaned_data.get("chinese_name", "").split())
        # Han characters, plus the middle dot of transcribed names (阿依古丽·买买提).
        if value and not all(has_han(ch) or ch in "·・" for ch in value):
            raise ValidationError(_("Enter Chinese characters here; Latin letters go below."))
        return value

    def clean_birth_date(self) -> date | None:
        value = self.cleaned_data.get("birth_date")
        if value and value > date.today():
            raise ValidationError(_("Birth date is in the future."))
        if value and value.year < 1900:
            raise ValidationError(_("Check the year of birth."))
        return value

    def clean(self):
        data = super().clean()
        no_name = not (data.get("chinese_name") or data.get("family_name") or data.get("given_name"))
        if no_name and "chinese_name" not in self.errors and "family_name" not in self.errors:
            self.add_error("family_name", _("Enter a Chinese name or a family name."))
        if data.get("pregnancy_status") in (2, 3) and data.get("sex") == Sex.MALE:
            self.add_error("pregnancy_status", _("Pregnancy status does not fit the sex entered."))
        return data

    def service_fields(self) -> dict:
        """Keyword arguments for ``patient_register`` / ``patient_update``."""
        data = self.cleaned_data
        ideo_family, ideo_given = split_chinese_name(data.get("chinese_name", ""))
        fields = {
            "ideographic_family": ideo_family,
            "ideographic_given": ideo_given,
            "family_name": data.get("family_name", "").strip(),
            "given_name": data.get("given_name", "").strip(),
            "birth_date": data.get("birth_date"),
            "sex": data.get("sex", ""),
            "phone": data.get("phone", "").strip(),
            "address": data.get("address", "").strip(),
            "medical_alerts": data.get("medical_alerts", "").strip(),
            "allergies": data.get("allergies", "").strip(),
            "pregnancy_status": data.get("pregnancy_status"),
            "is_temporary": bool(data.get("is_temporary")),
        }
        if not self.editing:
            fields["patient_id"] = data.get("patient_id", "").strip()
        return fields

    @classmethod
    def initial_for(cls, patient) -> dict:
        return {
            "chinese_name": f"{patient.ideographic_family}{patient.ideographic_given}",
            "family_name": patient.family_name,
            "given_name": patient.given_name,
            "birth_date": patient.birth_date,
            "sex": patient.sex,
            "phone": patient.phone,
            "address": patient.address,
            "medical_alerts": patient.medical_alerts,
            "allergies": patient.allergies,
            "pregnancy_status": patient.pregnancy_status,
            "is_temporary": patient.is_temporary,
        }


# Map service field names onto form fields.
FIELD_ALIASES = {"ideographic_family": "chinese_name", "ideographic_given": "chinese_name"}
