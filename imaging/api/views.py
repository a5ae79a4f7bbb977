"""REST API: studies (read), the reconciliation queue and its actions (link, dismiss, unlink)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ris.api_mixins import AuditedReadMixin
from scheduling.models import RequestedProcedure

from .. import services
from ..models import ReconciliationItem, Study
from .serializers import (
    LinkSerializer,
    ReasonSerializer,
    ReconciliationItemSerializer,
    StudyDetailSerializer,
    StudySerializer,
)


class StudyViewSet(AuditedReadMixin, viewsets.ReadOnlyModelViewSet):
    audit_object_type = "study"
    required_actions = {"list": "imaging.view", "retrieve": "imaging.view", "unlink": "imaging.reconcile"}
    filterset_fields = ["accession_number", "dicom_patient_id", "study_instance_uid", "requested_procedure"]

    def get_queryset(self):
        qs = Study.objects.order_by("-last_received_at", "-id")
        if self.action == "retrieve":
            qs = qs.prefetch_related("series", "links__linked_by")
        return qs

    def get_serializer_class(self):
        return StudyDetailSerializer if self.action == "retrieve" else StudySerializer

    def audit_patient_id(self, obj):
        return obj.patient_id

    @action(detail=True, methods=["post"])
    def unlink(self, request, pk=None):
        study = self.get_object()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.study_unlink(
            study=study, actor=request.user, reason=data.validated_data["reason"], request=request
        )
        return Response(StudySerializer(Study.objects.get(pk=study.pk)).data)


class ReconciliationViewSet(
    AuditedReadMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    audit_object_type = "reconciliation"
    serializer_class = ReconciliationItemSerializer
    required_actions = {
        "list": "imaging.reconcile",
        "retrieve": "imaging.reconcile",
        "link": "imaging.reconcile",
        "dismiss": "imaging.reconcile",
    }
    filterset_fields = ["reason"]

    def get_queryset(self):
        qs = ReconciliationItem.objects.select_related("study").order_by("-created_at", "-id")
        if self.action == "list" and self.request.query_params.get("all") != "1":
            qs = qs.filter(resolved_at__isnull=True)
        return qs

    def audit_patient_id(self, obj):
        return obj.study.patient_id

    @action(detail=True, methods=["post"])
    def link(self, request, pk=None):
        item = self.get_object()
        data = LinkSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        procedure = get_object_or_404(
            RequestedProcedure.objects.select_related("order"), pk=data.validated_data["procedure"]
        )
        services.study_link_manual(
            study=item.study,
            procedure=procedure,
            actor=request.user,
            request=request,
            note=data.validated_data.get("note", ""),
        )
        item.refresh_from_db()
        return Response(ReconciliationItemSerializer(item).data)

    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        item = self.get_object()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.reconciliation_dismiss(
            item=item, actor=request.user, resolution=data.validated_data["reason"], request=request
        )
        item.refresh_from_db()
        return Response(ReconciliationItemSerializer(item).data)
