from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from scheduling.models import Station

from .models import MaterialItem


class DowntimeForm(forms.Form):
    station = forms.ModelChoiceField(Station.objects.order_by("modality", "ae_title"), label=_("Station"))
    start = forms.DateTimeField(
        label=_("From"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    )
    end = forms.DateTimeField(
        label=_("To"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    )
    reason = forms.CharField(label=_("Reason"), max_length=255)
    # Shown (and required to proceed) only once the overlapping bookings were listed.
    confirm_overlaps = forms.BooleanField(
        required=False, label=_("I have seen the booked exams; record the downtime anyway")
    )

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", _("The downtime must end after it starts."))
        return data


class ReceiptForm(forms.Form):
    item = forms.ModelChoiceField(MaterialItem.objects.order_by("kind", "code"), label=_("Item"))
    quantity = forms.DecimalField(label=_("Quantity"), min_value=0.01, max_digits=12, decimal_places=2)
    lot_number = forms.CharField(label=_("Lot number"), max_length=64, required=False)
    expiry_date = forms.DateField(
        label=_("Expiry date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    supplier = forms.CharField(label=_("Supplier"), max_length=128, required=False)

    def clean_expiry_date(self):
        d = self.cleaned_data.get("expiry_date")
        if d and d < timezone.localdate():
            raise forms.ValidationError(_("This lot has already expired."))
        return d
