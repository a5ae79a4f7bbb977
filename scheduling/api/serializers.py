from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from registration.models import Patient
from ris.vr import code_errors
from scheduling.models import (
    Order,
    Priority,
    ProcedureEvent,
    ProcedureType,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
    StationDowntime,
)


class StationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Station
        fields = [
            "id",
            "ae_title",
            "name",
            "modality",
            "room",
            "host",
            "charset_profile",
            "worklist_scope",
            "work_start",
            "work_end",
            "slot_minutes",
            "active",
        ]


class DowntimeCreateSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    reason = serializers.CharField(max_length=255)
    confirm_overlaps = serializers.BooleanField(
        default=False,
        help_text="Record the downtime although it overlaps booked exams. Without it, such a "
        "downtime is refused with 409 listing the overlapping bookings.",
    )

    def validate(self, data):
        if data["end"] <= data["start"]:
            raise serializers.ValidationError({"end": ["Downtime must end after it starts."]})
        return data


class DowntimeSerializer(serializers.ModelSerializer):
    class Meta:
        model = StationDowntime
        fields = ["id", "station", "start", "end", "reason"]


class ProcedureTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProcedureType
        fields = [
            "id",
            "code_value",
            "coding_scheme",
            "code_meaning",
            "name_zh",
            "modality",
            "body_part",
            "duration_minutes",
            "preparation",
            "active",
        ]

    def validate(self, attrs):
        # The model's VR rules for the coded entry (ris/vr.py), as for the admin and imports.
        merged = {
            f: attrs.get(f, getattr(self.instance, f, "") if self.instance else "")
            for f in ("code_value", "coding_scheme", "code_meaning")
        }
        if "coding_scheme" not in attrs and self.instance is None:
            merged["coding_scheme"] = ProcedureType._meta.get_field("coding_scheme").default
        errors = code_errors(**merged)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class StepSerializer(serializers.ModelSerializer):
    # Null while the procedure awaits booking (so are start and end).
    station = serializers.CharField(source="station.ae_title", read_only=True, allow_null=True, default=None)

    class Meta:
        model = ScheduledProcedureStep
        fields = ["sps_id", "station", "modality", "start", "end", "status", "description"]


class ProcedureSerializer(serializers.ModelSerializer):
    accession_number = serializers.CharField(source="order.accession_number", read_only=True)
    patient = serializers.IntegerField(source="order.patient_id", read_only=True)
    priority = serializers.CharField(source="order.priority", read_only=True)
    procedure_code = serializers.CharField(source="procedure_type.code_value", read_only=True)
    steps = StepSerializer(many=True, read_only=True)

    class Meta:
        model = RequestedProcedure
        fields = [
            "id",
            "requested_procedure_id",
            "study_instance_uid",
            "accession_number",
            "patient",
            "priority",
            "procedure_code",
            "description",
            "status",
            "status_reason",
            "arrived_at",
            "started_at",
            "ended_at",
            "images_available_at",
            "steps",
        ]
        read_only_fields = fields


class ProcedureEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, default="")

    class Meta:
        model = ProcedureEvent
        fields = ["action", "from_status", "to_status", "at", "actor", "source", "reason"]


class OrderSerializer(serializers.ModelSerializer):
    """Read shape of an order, with the identifiers assigned at ordering."""

    procedures = ProcedureSerializer(many=True, read_only=True)
    requested_procedure_id = serializers.SerializerMethodField()
    sps_id = serializers.SerializerMethodField()
    study_instance_uid = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "accession_number",
            "requested_procedure_id",
            "sps_id",
            "study_instance_uid",
            "patient",
            "priority",
            "referring_physician",
            "requesting_physician",
            "requesting_service",
            "reason",
            "clinical_info",
            "placer_order_number",
            "placer_authority",
            "filler_order_number",
            "admission_id",
            "created_at",
            "procedures",
        ]
        read_only_fields = fields

    def _first(self, obj):
        procs = list(obj.procedures.all())
        return procs[0] if procs else None

    def get_requested_procedure_id(self, obj) -> str:
        p = self._first(obj)
        return p.requested_procedure_id if p else ""

    def get_study_instance_uid(self, obj) -> str:
        p = self._first(obj)
        return p.study_instance_uid if p else ""

    def get_sps_id(self, obj) -> str:
        p = self._first(obj)
        steps = list(p.steps.all()) if p else []
        return steps[0].sps_id if steps else ""


# Same grace as the web form's slot picker: a slot that started a few minutes ago may still be
# booked (the patient is at the desk), anything earlier is in the past.
PAST_GRACE = timedelta(minutes=5)


def validate_future_start(value):
    if value < timezone.now() - PAST_GRACE:
        raise serializers.ValidationError("This time has already passed. Choose a later slot.")
    return value


class OrderCreateSerializer(serializers.Serializer):
    """Create an order: patient, procedure code, station AE title and start time."""

    patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.filter(merged_into__isnull=True))
    procedure_code = serializers.CharField(max_length=16)
    coding_scheme = serializers.CharField(max_length=16, required=False, default="99RIS")
    station_ae_title = serializers.CharField(max_length=16)
    start = serializers.DateTimeField(validators=[validate_future_start])
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.ROUTINE)
    referring_physician = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    requesting_physician = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    requesting_service = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    clinical_info = serializers.CharField(required=False, allow_blank=True, default="")
    placer_order_number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    admission_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        try:
            attrs["procedure_type"] = ProcedureType.objects.get(
                code_value=attrs.pop("procedure_code"), coding_scheme=attrs.pop("coding_scheme")
            )
        except ProcedureType.DoesNotExist as exc:
            raise serializers.ValidationError({"procedure_code": ["Unknown procedure code."]}) from exc
        try:
            attrs["station"] = Station.objects.get(ae_title=attrs.pop("station_ae_title"))
        except Station.DoesNotExist as exc:
            raise serializers.ValidationError({"station_ae_title": ["Unknown station."]}) from exc
        return attrs


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class BookSerializer(serializers.Serializer):
    station_ae_title = serializers.CharField(max_length=16)
    start = serializers.DateTimeField()


class RescheduleSerializer(serializers.Serializer):
    start = serializers.DateTimeField(validators=[validate_future_start])
    reason = serializers.CharField(max_length=255)
    station_ae_title = serializers.CharField(max_length=16, required=False)
