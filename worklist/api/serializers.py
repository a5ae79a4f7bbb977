"""Serializers for GET /api/v1/worklist/ (the MWL query engine over REST)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from scheduling.models import SPSStatus


class WorklistQuerySerializer(serializers.Serializer):
    """Query parameters. Text filters accept DICOM wildcards ``*`` and ``?``."""

    station = serializers.CharField(required=False, max_length=16, help_text="Scheduled Station AE Title")
    modality = serializers.CharField(required=False, max_length=16)
    date_from = serializers.DateField(required=False, help_text="SPS start date, from (inclusive)")
    date_to = serializers.DateField(required=False, help_text="SPS start date, to (inclusive)")
    patient_name = serializers.CharField(
        required=False, max_length=200, help_text="Any name group, case-insensitive: WANG*, wang*, 王*"
    )
    patient_id = serializers.CharField(required=False, max_length=64)
    accession_number = serializers.CharField(required=False, max_length=16)
    requested_procedure_id = serializers.CharField(required=False, max_length=16)
    study_instance_uid = serializers.CharField(required=False, max_length=64)
    status = serializers.MultipleChoiceField(required=False, choices=SPSStatus.choices)
    include_final = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": [_("Must not be before date_from.")]})
        return attrs


class CodeSerializer(serializers.Serializer):
    value = serializers.CharField(source="code_value")
    scheme = serializers.CharField(source="coding_scheme")
    meaning = serializers.CharField(source="code_meaning")


class WorklistPatientSerializer(serializers.Serializer):
    patient_id = serializers.CharField()
    issuer = serializers.CharField()
    name = serializers.SerializerMethodField()
    name_alphabetic = serializers.CharField(source="pn_alphabetic")
    name_ideographic = serializers.CharField(source="pn_ideographic")
    birth_date = serializers.DateField(allow_null=True)
    sex = serializers.CharField()
    medical_alerts = serializers.CharField()
    allergies = serializers.CharField()
    pregnancy_status = serializers.IntegerField(allow_null=True)

    def get_name(self, row) -> str:
        from ris.vr import join_pn_groups

        return join_pn_groups(row["pn_alphabetic"], row["pn_ideographic"], row["pn_phonetic"])


class WorklistItemSerializer(serializers.Serializer):
    """One scheduled procedure step, as the modality worklist presents it."""

    sps_id = serializers.CharField()
    status = serializers.CharField(source="sps_status")
    scheduled_start = serializers.DateTimeField(source="sps_start")
    scheduled_end = serializers.DateTimeField(source="sps_end")
    modality = serializers.CharField(source="sps_modality")
    station_ae_titles = serializers.SerializerMethodField()
    station_name = serializers.CharField()
    location = serializers.CharField(source="sps_location")
    description = serializers.SerializerMethodField()
    performing_physician = serializers.CharField()
    protocol_code = serializers.SerializerMethodField()
    accession_number = serializers.CharField(source="accession")
    requested_procedure_id = serializers.CharField(source="rp_id")
    study_instance_uid = serializers.CharField(source="study_uid")
    requested_procedure_description = serializers.SerializerMethodField()
    priority = serializers.CharField()
    referring_physician = serializers.CharField(source="referring")
    requesting_physician = serializers.CharField(source="requesting")
    admission_id = serializers.CharField()
    patient = serializers.SerializerMethodField()

    def get_station_ae_titles(self, row) -> list[str]:
        alternates = [a for a in (row.get("alt_station_aes") or "").split("\\") if a]
        return [row["station_ae"], *alternates]

    def get_description(self, row) -> str:
        return row["sps_description"] or row["code_meaning"]

    def get_requested_procedure_description(self, row) -> str:
        return row["rp_description"] or row["code_meaning"]

    def get_protocol_code(self, row) -> dict:
        return CodeSerializer(row).data

    def get_patient(self, row) -> dict:
        return WorklistPatientSerializer(row).data
