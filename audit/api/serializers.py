from rest_framework import serializers

from audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor_id",
            "actor_username",
            "role",
            "source_ip",
            "source_ae",
            "action",
            "object_type",
            "object_id",
            "patient_ref",
            "outcome",
            "detail",
        ]
        read_only_fields = fields
