"""Small pieces shared by the API viewsets."""

from __future__ import annotations

from rest_framework import serializers

from audit.services import audit_record
from ris.errors import ApplicationError


class AuditedReadMixin:
    """One audit event per list (search) and per retrieve of patient data.

    Set ``audit_object_type``; ``audit_patient_id(obj)`` names the patient of an object.
    """

    audit_object_type = ""

    def audit_patient_id(self, obj) -> int | None:  # pragma: no cover - overridden
        return None

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_record(
            action=f"{self.audit_object_type}.search",
            request=request,
            object_type=self.audit_object_type,
            detail={"query": {k: v for k, v in request.query_params.items() if k != "page"}},
        )
        return response

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        audit_record(
            action=f"{self.audit_object_type}.view",
            request=request,
            object_type=self.audit_object_type,
            object_id=obj.pk,
            patient_id=self.audit_patient_id(obj),
        )
        return super().retrieve(request, *args, **kwargs)


def raise_as_validation(exc: ApplicationError):
    """Field errors of an ApplicationError as a DRF ValidationError (400)."""
    if exc.fields:
        raise serializers.ValidationError(exc.fields) from exc
    raise serializers.ValidationError({"non_field_errors": [exc.message]}) from exc
