from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from scheduling.models import Modality

from .models import CriticalCategory, NotificationMethod, PeerReviewScore, ReleaseKind
from .selectors import QUICK_FILTERS, WorklistFilters


class WorklistFilterForm(forms.Form):
    quick = forms.ChoiceField(choices=[(q, q) for q in QUICK_FILTERS], required=False)
    modality = forms.ChoiceField(choices=[("", _("All modalities")), *Modality.choices], required=False)
    body_part = forms.CharField(max_length=16, required=False, label=_("Body part"))
    station = forms.CharField(max_length=16, required=False, label=_("Station"))
    referring = forms.CharField(max_length=64, required=False, label=_("Referring physician"))
    date_from = forms.DateField(
        required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def to_filters(self) -> WorklistFilters:
        d = self.cleaned_data if self.is_valid() else {}
        return WorklistFilters(
            quick=d.get("quick") or "all",
            modality=d.get("modality") or "",
            body_part=(d.get("body_part") or "").strip().upper(),
            station=(d.get("station") or "").strip().upper(),
            referring=(d.get("referring") or "").strip(),
            date_from=d.get("date_from"),
            date_to=d.get("date_to"),
        )


class EditorForm(forms.Form):
    findings = forms.CharField(widget=forms.Textarea(attrs={"rows": 14}), required=False, label=_("Findings"))
    impression = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}), required=False, label=_("Impression")
    )
    revision = forms.IntegerField(widget=forms.HiddenInput, required=False)


class SignForm(forms.Form):
    password = forms.CharField(
        label=_("Your password (re-enter to sign)"),
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        required=False,
    )
    revision = forms.IntegerField(widget=forms.HiddenInput, required=False)


class ReturnForm(forms.Form):
    comment = forms.CharField(label=_("Comment for the author"), widget=forms.Textarea(attrs={"rows": 3}))


class AddendumForm(forms.Form):
    text = forms.CharField(label=_("Addendum"), widget=forms.Textarea(attrs={"rows": 4}))
    password = forms.CharField(
        label=_("Your password (re-enter to sign)"),
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        required=False,
    )


class ReleaseForm(forms.Form):
    kind = forms.ChoiceField(choices=ReleaseKind.choices, initial=ReleaseKind.RELEASE, label=_("Action"))
    recipient = forms.CharField(max_length=128, required=False, label=_("Released to"))
    copies = forms.IntegerField(min_value=1, max_value=20, initial=1, label=_("Copies"))


class CriticalFlagForm(forms.Form):
    category = forms.ChoiceField(choices=CriticalCategory.choices, label=_("ACR category"))
    finding = forms.CharField(
        max_length=255,
        label=_("Critical finding"),
        widget=forms.TextInput(attrs={"placeholder": _("Critical finding")}),
    )


class CriticalNotifyForm(forms.Form):
    recipient = forms.CharField(max_length=128, label=_("Notified person"))
    method = forms.ChoiceField(choices=NotificationMethod.choices, label=_("How"))
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label=_("Note"))


class CriticalAckForm(forms.Form):
    acknowledged_by = forms.CharField(max_length=128, label=_("Acknowledged by"))
    read_back = forms.BooleanField(required=False, label=_("Read-back confirmed"))


class PeerScoreForm(forms.Form):
    score = forms.ChoiceField(
        choices=PeerReviewScore.choices, widget=forms.RadioSelect, label=_("RADPEER score")
    )
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label=_("Comment"))


class SearchForm(forms.Form):
    q = forms.CharField(max_length=200, required=False, label=_("Search signed reports"))
