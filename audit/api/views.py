"""Read-only REST access to the audit trail (department head, administrator); audited."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.pagination import CursorPagination

from audit.models import Outcome
from audit.selectors import audit_event_list
from audit.services import audit_record
from audit.views import patient_refs

from .serializers import AuditEventSerializer


class AuditCursorPagination(CursorPagination):
    # No COUNT(*) over an ever-growing table; stable under concurrent inserts.
    ordering = "-id"
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"


class AuditQuerySerializer(serializers.Serializer):
    patient = serializers.CharField(required=False, allow_blank=True, max_length=64)
    user = serializers.CharField(required=False, allow_blank=True, max_length=150)
    action = serializers.CharField(required=False, allow_blank=True, max_length=64)
    outcome = serializers.ChoiceField(required=False, allow_blank=True, choices=Outcome.values)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


@extend_schema(
    parameters=[
        OpenApiParameter("patient", OpenApiTypes.STR, description="Patient ID (MRN), any issuer."),
        OpenApiParameter("user", OpenApiTypes.STR, description="Username (exact, case-insensitive)."),
        OpenApiParameter(
            "action", OpenApiTypes.STR, description="Action prefix, e.g. `report.` or `patient.view`."
        ),
        OpenApiParameter("outcome", OpenApiTypes.STR, enum=Outcome.values),
        OpenApiParameter("since", OpenApiTypes.DATETIME, description="From this time (inclusive)."),
        OpenApiParameter("until", OpenApiTypes.DATETIME, description="Before this time (exclusive)."),
    ]
)
class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Search the append-only audit trail. Every search is recorded as ``audit.search``."""

    required_actions = {"list": "audit.view"}
    serializer_class = AuditEventSerializer
    pagination_class = AuditCursorPagination
    filter_backends: list = []

    def _filters(self) -> dict:
        q = AuditQuerySerializer(data=self.request.query_params)
        q.is_valid(raise_exception=True)
        d = q.validated_data
        filters = {
            "actor": d.get("user", "").strip(),
            "action": d.get("action", "").strip(),
            "outcome": d.get("outcome", ""),
            "since": d.get("since"),
            "until": d.get("until"),
        }
        if d.get("patient", "").strip():
            filters["patient_ids"] = patient_refs(d["patient"].strip())
        return filters

    def get_queryset(self):
        return audit_event_list(**self._filters())

    def list(self, request, *args, **kwargs):
        filters = self._filters()
        response = super().list(request, *args, **kwargs)
        audit_record(
            action="audit.search",
            request=request,
            object_type="audit_event",
            patient_id=(filters.get("patient_ids") or [None])[0],
            detail={
                "query": {k: v for k, v in request.query_params.items() if k != "cursor"},
                "api": True,
                "shown": len(response.data.get("results", [])),
            },
        )
        return response
