"""Admin for the department's configuration (stations, downtime, catalog) and a read-only
order list. Orders and procedure states change only through the services."""

from django import forms
from django.contrib import admin
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from audit.services import audit_record
from ris.admin import RoleAdminMixin

from .models import Order, ProcedureType, RequestedProcedure, Station, StationDowntime
from .selectors import downtime_overlapping_bookings
from .services import (
    PROCEDURE_TYPE_FIELDS,
    STATION_FIELDS,
    procedure_type_create,
    procedure_type_update,
    station_add_downtime,
    station_create,
    station_delete_downtime,
    station_update,
    station_update_downtime,
)


def _saved_by_service(obj, created) -> None:
    """The admin goes on (log entry, inlines) with the row the service wrote."""
    obj.pk = created.pk
    obj._state.adding = False
    obj._state.db = created._state.db


def _changed(obj, form, allowed) -> dict:
    return {name: getattr(obj, name) for name in form.changed_data if name in allowed}


def _downtime_add(request, obj, *, confirm_overlaps: bool = False) -> None:
    # New downtime goes through the service (validation and audit), like the calendar page;
    # the form has listed the booked exams it overlaps and had that confirmed.
    created = station_add_downtime(
        station=obj.station,
        start=obj.start,
        end=obj.end,
        reason=obj.reason,
        actor=request.user,
        confirm_overlaps=confirm_overlaps,
    )
    _saved_by_service(obj, created)
    obj.created_by = created.created_by


def _downtime_change(request, obj) -> None:
    station_update_downtime(
        downtime=obj.pk,
        station=obj.station,
        start=obj.start,
        end=obj.end,
        reason=obj.reason,
        actor=request.user,
        request=request,
    )


class DowntimeAdminForm(forms.ModelForm):
    """Lists the booked exams a downtime falls on and saves only once that is confirmed."""

    confirm_overlaps = forms.BooleanField(
        required=False, label=_("Record it although it overlaps booked exams")
    )

    class Meta:
        model = StationDowntime
        fields = ("station", "start", "end", "reason")

    def clean(self):
        data = super().clean()
        station = data.get("station") or getattr(self.instance, "station", None)
        start, end = data.get("start"), data.get("end")
        if station and station.pk and start and end and end > start:
            self.overlaps = downtime_overlapping_bookings(station=station, start=start, end=end)
            if self.overlaps and not data.get("confirm_overlaps"):
                listing = "; ".join(
                    f"{date_format(s.start, 'Y-m-d H:i')} {s.requested_procedure.order.patient.display_name}"
                    f" ({s.requested_procedure.order.accession_number})"
                    for s in self.overlaps
                )
                n = len(self.overlaps)
                self.add_error(
                    "confirm_overlaps",
                    ngettext(
                        "This downtime overlaps %(n)d booked exam: %(list)s. Tick the box to record it anyway.",
                        "This downtime overlaps %(n)d booked exams: %(list)s. Tick the box to record it anyway.",
                        n,
                    )
                    % {"n": n, "list": listing},
                )
        return data


class StationDowntimeInline(RoleAdminMixin, admin.TabularInline):
    model = StationDowntime
    form = DowntimeAdminForm
    extra = 0
    fields = ("start", "end", "reason", "confirm_overlaps", "created_by")
    readonly_fields = ("created_by",)


@admin.register(Station)
class StationAdmin(RoleAdminMixin, admin.ModelAdmin):
    list_display = (
        "ae_title",
        "name",
        "modality",
        "room",
        "charset_profile",
        "worklist_scope",
        "work_start",
        "work_end",
        "slot_minutes",
        "active",
    )
    list_filter = ("modality", "active", "charset_profile")
    search_fields = ("ae_title", "name", "room")
    list_editable = ("active",)
    inlines = [StationDowntimeInline]

    def save_model(self, request, obj, form, change):
        if change:
            station_update(
                station=obj.pk, actor=request.user, request=request, **_changed(obj, form, STATION_FIELDS)
            )
        else:
            fields = {name: getattr(obj, name) for name in STATION_FIELDS}
            _saved_by_service(obj, station_create(actor=request.user, request=request, **fields))

    def save_formset(self, request, form, formset, change):
        if formset.model is not StationDowntime:  # pragma: no cover - the only inline
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)
        for obj in formset.deleted_objects:
            station_delete_downtime(downtime=obj.pk, actor=request.user, request=request)
        for obj, _fields in formset.changed_objects:
            _downtime_change(request, obj)
        confirmed = {
            id(f.instance): f.cleaned_data.get("confirm_overlaps", False)
            for f in formset.forms
            if f.is_valid()
        }
        for obj in formset.new_objects:
            _downtime_add(request, obj, confirm_overlaps=confirmed.get(id(obj), False))
        return None


@admin.register(StationDowntime)
class StationDowntimeAdmin(RoleAdminMixin, admin.ModelAdmin):
    form = DowntimeAdminForm
    fields = ("station", "start", "end", "reason", "confirm_overlaps", "created_by")
    list_display = ("station", "start", "end", "reason", "created_by")
    list_filter = ("station",)
    date_hierarchy = "start"
    readonly_fields = ("created_by",)

    def save_model(self, request, obj, form, change):
        if change:
            _downtime_change(request, obj)
        else:
            _downtime_add(request, obj, confirm_overlaps=form.cleaned_data.get("confirm_overlaps", False))

    def delete_model(self, request, obj):
        station_delete_downtime(downtime=obj.pk, actor=request.user, request=request)

    def delete_queryset(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            station_delete_downtime(downtime=pk, actor=request.user, request=request)


@admin.register(ProcedureType)
class ProcedureTypeAdmin(RoleAdminMixin, admin.ModelAdmin):
    list_display = (
        "code_value",
        "coding_scheme",
        "code_meaning",
        "name_zh",
        "modality",
        "body_part",
        "duration_minutes",
        "active",
    )
    list_filter = ("modality", "body_part", "active")
    search_fields = ("code_value", "code_meaning", "name_zh")
    list_editable = ("active",)

    def save_model(self, request, obj, form, change):
        if change:
            procedure_type_update(
                procedure_type=obj.pk,
                actor=request.user,
                request=request,
                **_changed(obj, form, PROCEDURE_TYPE_FIELDS),
            )
        else:
            fields = {name: getattr(obj, name) for name in PROCEDURE_TYPE_FIELDS}
            _saved_by_service(obj, procedure_type_create(actor=request.user, request=request, **fields))


class RequestedProcedureInline(RoleAdminMixin, admin.TabularInline):
    model = RequestedProcedure
    extra = 0
    can_delete = False
    fields = (
        "requested_procedure_id",
        "procedure_type",
        "status",
        "study_instance_uid",
        "arrived_at",
        "started_at",
        "ended_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(RoleAdminMixin, admin.ModelAdmin):
    """Read-only: orders are placed on the front-desk pages or through the API."""

    list_display = (
        "accession_number",
        "patient",
        "priority",
        "referring_physician",
        "created_at",
        "created_by",
    )
    list_filter = ("priority",)
    search_fields = ("accession_number", "placer_order_number", "filler_order_number")
    date_hierarchy = "created_at"
    list_select_related = ("patient", "created_by")
    list_per_page = 50
    show_full_result_count = False
    readonly_fields = [f.name for f in Order._meta.fields]
    inlines = [RequestedProcedureInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if getattr(response, "status_code", 200) == 200:
            audit_record(action="order.search", request=request, object_type="order", detail={"admin": True})
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        order = (
            Order.objects.filter(pk=object_id).only("patient_id").first()
            if str(object_id).isdigit()
            else None
        )
        if order is not None and getattr(response, "status_code", 200) == 200:
            audit_record(
                action="order.view",
                request=request,
                object_type="order",
                object_id=order.pk,
                patient_id=order.patient_id,
                detail={"admin": True},
            )
        return response
