from __future__ import annotations

from datetime import date

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from audit.services import audit_record
from registration.models import Patient
from registration.selectors import patient_find_duplicates, patient_list, patient_search
from registration.services import normalise_name_fields, patient_register, patient_update
from ris.api_idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from ris.api_mixins import AuditedReadMixin
from ris.errors import ApplicationError, PossibleDuplicate

from .serializers import DuplicateCandidateSerializer, PatientSerializer, PatientUpdateSerializer

_NAME_FIELDS = ("family_name", "given_name", "ideographic_family", "ideographic_given")


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Name (any group, pinyin, characters), ID"),
            OpenApiParameter("birth_date", str, description="YYYY-MM-DD"),
        ]
    )
)
class PatientViewSet(
    AuditedReadMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Patients. Search with ``?q=`` (王*, wang, WANG XiaoDong, an ID) and ``?birth_date=``."""

    required_actions = {
        "list": "patient.view",
        "retrieve": "patient.view",
        "create": "patient.create",
        "update": "patient.update",
        "partial_update": "patient.update",
    }
    audit_object_type = "patient"
    serializer_class = PatientSerializer

    def audit_patient_id(self, obj):
        return obj.pk

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return PatientUpdateSerializer
        return PatientSerializer

    def get_queryset(self):
        if self.action != "list":
            return patient_list()
        q = self.request.query_params.get("q", "")
        birth = self.request.query_params.get("birth_date") or None
        if birth:
            try:
                birth = date.fromisoformat(birth)
            except ValueError as exc:
                raise ApplicationError(
                    "birth_date must be YYYY-MM-DD.", fields={"birth_date": ["Invalid date."]}
                ) from exc
        return patient_search(query=q, birth_date=birth)

    @extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER])
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        confirmed = data.pop("confirm_duplicate", False)
        if not confirmed:
            self._refuse_likely_duplicate(request, data)
        try:
            patient = patient_register(actor=request.user, request=request, **data)
        except ValidationError as exc:
            raise ApplicationError("Invalid input.", fields=exc.message_dict) from exc
        return Response(PatientSerializer(patient).data, status=status.HTTP_201_CREATED)

    def _refuse_likely_duplicate(self, request, data: dict) -> None:
        """The web form's rule: same name (any group) and birth date needs an explicit confirmation."""
        names = normalise_name_fields({k: data[k] for k in ("chinese_name", *_NAME_FIELDS) if data.get(k)})
        candidates = list(
            patient_find_duplicates(
                family_name=names.get("family_name", ""),
                given_name=names.get("given_name", ""),
                ideographic_family=names.get("ideographic_family", ""),
                ideographic_given=names.get("ideographic_given", ""),
                birth_date=data.get("birth_date"),
            )[:10]
        )
        if not candidates:
            return
        audit_record(
            action="patient.search",
            request=request,
            object_type="patient",
            detail={"duplicate_check": [p.pk for p in candidates]},
        )
        raise PossibleDuplicate(
            "A patient with the same name and birth date is already registered. Use that patient, "
            "or send confirm_duplicate=true if this is a different person.",
            candidates=DuplicateCandidateSerializer(candidates, many=True).data,
            fields={"confirm_duplicate": ["Confirm that this is a different person."]},
        )

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        patient = self.get_object()
        serializer = self.get_serializer(patient, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        try:
            patient = patient_update(
                patient=patient, actor=request.user, request=request, **serializer.validated_data
            )
        except ValidationError as exc:
            raise ApplicationError("Invalid input.", fields=exc.message_dict) from exc
        return Response(PatientSerializer(patient).data)


__all__ = ["Patient", "PatientViewSet"]
