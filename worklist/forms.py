from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from scheduling.models import Modality, Station

from .console import materials


class ConsoleFilterForm(forms.Form):
    station = forms.ModelChoiceField(
        label=_("Station"),
        queryset=Station.objects.filter(active=True),
        required=False,
        to_field_name="ae_title",
        empty_label=_("All stations"),
    )
    modality = forms.ChoiceField(label=_("Modality"), required=False)
    day = forms.DateField(label=_("Day"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["modality"].choices = [("", _("All modalities")), *Modality.choices]


class DiscontinueForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=255)


class ExamNoteForm(forms.Form):
    contrast_item = forms.ChoiceField(label=_("Contrast agent"), required=False)
    contrast_dose_ml = forms.DecimalField(
        label=_("Contrast dose (ml)"), required=False, min_value=0, max_value=1000, decimal_places=1
    )
    film_item = forms.ChoiceField(label=_("Film"), required=False)
    films_printed = forms.IntegerField(label=_("Films printed"), required=False, min_value=0, max_value=100)
    text = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.contrast_choices = materials("contrast")
        self.film_choices = materials("film")
        self.fields["contrast_item"].choices = [("", "—"), *self.contrast_choices]
        self.fields["film_item"].choices = [("", "—"), *self.film_choices]

    def clean(self):
        data = super().clean()
        if data.get("contrast_dose_ml") and not data.get("contrast_item"):
            self.add_error("contrast_item", _("Choose the contrast agent given."))
        if data.get("films_printed") and not data.get("film_item") and self.film_choices:
            self.add_error("film_item", _("Choose the film used."))
        if not (data.get("contrast_item") or data.get("films_printed") or (data.get("text") or "").strip()):
            raise forms.ValidationError(_("Enter contrast, films or a note."))
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        names = dict(self.contrast_choices)
        return {
            "contrast_agent": names.get(data.get("contrast_item") or "", "")[:64],
            "contrast_item_code": data.get("contrast_item") or "",
            "contrast_dose_ml": data.get("contrast_dose_ml"),
            "films_printed": data.get("films_printed") or 0,
            "film_item_code": data.get("film_item") or "",
            "film_size": (data.get("film_item") or "")[:16],
            "text": data.get("text") or "",
        }


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class WorklistImportForm(forms.Form):
    files = MultipleFileField(label=_("Worklist files (.wl)"))
    create_stations = forms.BooleanField(label=_("Create unknown stations"), required=False)
