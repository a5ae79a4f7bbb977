from __future__ import annotations

from rest_framework import serializers

from ..models import ReconciliationItem, Series, Study, StudyLink


class SeriesSerializer(serializers.ModelSerializer):
    class Meta:
        model = Series
        fields = [
            "id",
            "series_instance_uid",
            "series_number",
            "modality",
            "body_part",
            "description",
            "num_instances",
            "qc",
            "qc_flagged",
        ]


class StudyLinkSerializer(serializers.ModelSerializer):
    linked_by = serializers.CharField(source="linked_by.username", default=None, read_only=True)

    class Meta:
        model = StudyLink
        fields = ["requested_procedure", "method", "linked_at", "linked_by", "unlinked_at", "note"]


class StudySerializer(serializers.ModelSerializer):
    class Meta:
        model = Study
        fields = [
            "id",
            "study_instance_uid",
            "accession_number",
            "study_date",
            "description",
            "modalities",
            "dicom_patient_id",
            "issuer_of_patient_id",
            "patient_name",
            "patient",
            "requested_procedure",
            "source_ae",
            "num_series",
            "num_instances",
            "first_received_at",
            "last_received_at",
        ]


class StudyDetailSerializer(StudySerializer):
    series = SeriesSerializer(many=True, read_only=True)
    links = StudyLinkSerializer(many=True, read_only=True)

    class Meta(StudySerializer.Meta):
        fields = [*StudySerializer.Meta.fields, "series", "links"]


class ReconciliationItemSerializer(serializers.ModelSerializer):
    study = StudySerializer(read_only=True)

    class Meta:
        model = ReconciliationItem
        fields = ["id", "study", "reason", "detail", "source_ae", "created_at", "resolved_at", "resolution"]


class LinkSerializer(serializers.Serializer):
    procedure = serializers.IntegerField()
    note = serializers.CharField(required=False, allow_blank=True, max_length=255)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)
