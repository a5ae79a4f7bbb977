from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from ..models import (
    Addendum,
    CriticalCategory,
    CriticalResult,
    NotificationMethod,
    PeerReview,
    PeerReviewScore,
    ReleaseKind,
    Report,
    ReportRelease,
    ReportVersion,
    Signature,
)
from ..selectors import final_version
from ..services import signature_verify


class SignatureSerializer(serializers.ModelSerializer):
    verified = serializers.SerializerMethodField()

    class Meta:
        model = Signature
        fields = [
            "id",
            "printed_name",
            "meaning",
            "signed_at",
            "content_hash",
            "version",
            "addendum",
            "verified",
        ]

    def get_verified(self, obj) -> bool:
        return signature_verify(obj)


class VersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReportVersion
        fields = ["id", "number", "kind", "findings", "impression", "author", "created_at", "content_hash"]


class AddendumSerializer(serializers.ModelSerializer):
    class Meta:
        model = Addendum
        fields = ["id", "number", "text", "author", "created_at", "content_hash"]


class ReportSerializer(serializers.ModelSerializer):
    accession_number = serializers.CharField(
        source="requested_procedure.order.accession_number", read_only=True
    )
    study_instance_uid = serializers.CharField(
        source="requested_procedure.study_instance_uid", read_only=True
    )
    patient = serializers.IntegerField(source="requested_procedure.order.patient_id", read_only=True)
    procedure = serializers.CharField(
        source="requested_procedure.procedure_type.code_meaning", read_only=True
    )
    locked_by = serializers.CharField(source="locked_by.username", read_only=True, default=None)

    class Meta:
        model = Report
        fields = [
            "id",
            "requested_procedure",
            "accession_number",
            "study_instance_uid",
            "patient",
            "procedure",
            "status",
            "findings",
            "impression",
            "revision",
            "author",
            "signed_by",
            "created_at",
            "submitted_at",
            "signed_at",
            "amended_at",
            "locked_by",
            "locked_until",
            "returned_at",
            "return_comment",
            "verification_code",
        ]
        read_only_fields = fields


class ReportDetailSerializer(ReportSerializer):
    versions = VersionSerializer(many=True, read_only=True)
    addenda = AddendumSerializer(many=True, read_only=True)
    signatures = SignatureSerializer(many=True, read_only=True)

    class Meta(ReportSerializer.Meta):
        fields = [*ReportSerializer.Meta.fields, "versions", "addenda", "signatures"]
        read_only_fields = fields


class ClaimSerializer(serializers.Serializer):
    requested_procedure = serializers.IntegerField()


class DraftSerializer(serializers.Serializer):
    findings = serializers.CharField(allow_blank=True, trim_whitespace=False)
    impression = serializers.CharField(allow_blank=True, trim_whitespace=False)
    revision = serializers.IntegerField(required=False, help_text="Revision you edited (409 if it changed).")


class SubmitSerializer(serializers.Serializer):
    findings = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    impression = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    revision = serializers.IntegerField(required=False)


class SignSerializer(serializers.Serializer):
    password = serializers.CharField(
        required=False, allow_blank=True, style={"input_type": "password"}, help_text="The signer's password."
    )
    revision = serializers.IntegerField(required=False, help_text="Revision reviewed (409 if it changed).")


class ReturnSerializer(serializers.Serializer):
    comment = serializers.CharField()


class AddendumCreateSerializer(serializers.Serializer):
    text = serializers.CharField()
    password = serializers.CharField(required=False, allow_blank=True, style={"input_type": "password"})


class ReleaseSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=ReleaseKind.choices, default=ReleaseKind.RELEASE)

    class Meta:
        model = ReportRelease
        fields = ["id", "kind", "recipient", "copies", "at", "actor"]
        read_only_fields = ["id", "at", "actor"]


class CriticalResultSerializer(serializers.ModelSerializer):
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = CriticalResult
        fields = [
            "id",
            "report",
            "category",
            "finding",
            "created_at",
            "created_by",
            "due_at",
            "notified_at",
            "notified_by",
            "recipient",
            "method",
            "acknowledged_at",
            "acknowledged_by",
            "read_back",
            "note",
            "overdue",
        ]
        read_only_fields = fields

    def get_overdue(self, obj) -> bool:
        return obj.notified_at is None and obj.due_at < timezone.now()


class CriticalFlagSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=CriticalCategory.choices)
    finding = serializers.CharField(max_length=255)


class CriticalNotifySerializer(serializers.Serializer):
    recipient = serializers.CharField(max_length=128)
    method = serializers.ChoiceField(choices=NotificationMethod.choices)
    at = serializers.DateTimeField(required=False)
    note = serializers.CharField(required=False, allow_blank=True)


class CriticalAckSerializer(serializers.Serializer):
    acknowledged_by = serializers.CharField(max_length=128)
    read_back = serializers.BooleanField(default=False)


class PeerReviewSerializer(serializers.ModelSerializer):
    """Blinded: neither the author nor the signer of the report is shown."""

    findings = serializers.SerializerMethodField()
    impression = serializers.SerializerMethodField()

    class Meta:
        model = PeerReview
        fields = ["id", "report", "score", "comment", "assigned_at", "scored_at", "findings", "impression"]
        read_only_fields = fields

    def _final(self, obj):
        if not hasattr(obj, "_final"):
            obj._final = final_version(obj.report)
        return obj._final

    def get_findings(self, obj) -> str:
        v = self._final(obj)
        return v.findings if v else ""

    def get_impression(self, obj) -> str:
        v = self._final(obj)
        return v.impression if v else ""


class PeerScoreSerializer(serializers.Serializer):
    score = serializers.ChoiceField(choices=PeerReviewScore.choices)
    comment = serializers.CharField(required=False, allow_blank=True)
