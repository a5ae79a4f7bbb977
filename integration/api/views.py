from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from audit.services import audit_record
from integration.models import Destination, InterfaceMessage, OutboxMessage, Sender
from integration.services.outbox import outbox_retry
from ris import api_filters
from ris.roles import has_permission

from .serializers import (
    DestinationSerializer,
    InterfaceMessageRawSerializer,
    InterfaceMessageSerializer,
    OutboxMessageSerializer,
    SenderSerializer,
)

MANAGE = {
    "list": "interface.view",
    "retrieve": "interface.view",
    "create": "interface.manage",
    "update": "interface.manage",
    "partial_update": "interface.manage",
    "destroy": "interface.manage",
}


class SenderViewSet(viewsets.ModelViewSet):
    """Registered HL7 senders (MSH-3/MSH-4, optional source address, default charset)."""

    required_actions = MANAGE
    serializer_class = SenderSerializer
    queryset = Sender.objects.all()
    filterset_fields = ["application", "facility", "active"]


class DestinationViewSet(viewsets.ModelViewSet):
    """Outbound MLLP destinations (host, port, message types, charset, enabled)."""

    required_actions = MANAGE
    serializer_class = DestinationSerializer
    queryset = Destination.objects.all()
    filterset_fields = ["name", "enabled"]


class OutboxFilter(api_filters.FilterSet):
    destination = filters.CharFilter(field_name="destination__name")

    class Meta:
        model = OutboxMessage
        fields = ["state", "message_type", "destination"]


class OutboxViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Outbox messages; ``POST …/{id}/retry/`` puts a dead or backing-off message back now."""

    required_actions = {"list": "interface.view", "retrieve": "interface.view", "retry": "interface.manage"}
    serializer_class = OutboxMessageSerializer
    filterset_class = OutboxFilter
    queryset = OutboxMessage.objects.select_related("destination").order_by("-id")

    @extend_schema(request=None, responses=OutboxMessageSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        msg = self.get_object()
        outbox_retry(message=msg, actor=request.user, request=request)
        return Response(OutboxMessageSerializer(OutboxMessage.objects.get(pk=msg.pk)).data)


class MessageFilter(api_filters.FilterSet):
    sender = filters.CharFilter(field_name="sender__application")
    destination = filters.CharFilter(field_name="destination__name")
    received_after = api_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")

    class Meta:
        model = InterfaceMessage
        fields = ["direction", "status", "message_type", "control_id", "sender", "destination"]


class InterfaceMessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The interface message log. Raw text and ACK only for administrators (audited)."""

    required_actions = {"list": "interface.view", "retrieve": "interface.view"}
    filterset_class = MessageFilter
    queryset = InterfaceMessage.objects.select_related("sender", "destination").order_by(
        "-received_at", "-id"
    )

    def get_serializer_class(self):
        if self.action == "retrieve" and has_permission(self.request.user, "interface.raw"):
            return InterfaceMessageRawSerializer
        return InterfaceMessageSerializer

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        raw = has_permission(request.user, "interface.raw")
        audit_record(
            action="interface.message_view",
            request=request,
            object_type="hl7_message",
            object_id=obj.pk,
            patient_id=obj.patient_id,
            detail={"raw": raw},
        )
        return Response(self.get_serializer(obj).data)
