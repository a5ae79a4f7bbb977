from __future__ import annotations

from django.db.models import Prefetch
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from ris.api_filters import FilterSet, IsoDateTimeFilter
from ris.api_idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from ris.api_mixins import AuditedReadMixin
from scheduling import services
from scheduling.models import (
    Order,
    ProcedureStatus,
    ProcedureType,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
)
from scheduling.selectors import procedure_list_for

from .serializers import (
    BookSerializer,
    DowntimeCreateSerializer,
    DowntimeSerializer,
    OrderCreateSerializer,
    OrderSerializer,
    ProcedureEventSerializer,
    ProcedureSerializer,
    ProcedureTypeSerializer,
    ReasonSerializer,
    RescheduleSerializer,
    StationSerializer,
)


class StationViewSet(viewsets.ModelViewSet):
    required_actions = {
        "list": "station.view",
        "retrieve": "station.view",
        "create": "station.manage",
        "update": "station.manage",
        "partial_update": "station.manage",
        "downtime": "station.manage",
    }
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    serializer_class = StationSerializer
    queryset = Station.objects.all()
    filterset_fields = ["modality", "active", "ae_title"]

    def perform_create(self, serializer):
        serializer.instance = services.station_create(
            actor=self.request.user, request=self.request, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.station_update(
            station=serializer.instance,
            actor=self.request.user,
            request=self.request,
            **serializer.validated_data,
        )

    @extend_schema(
        request=DowntimeCreateSerializer,
        responses={
            201: DowntimeSerializer,
            400: OpenApiResponse(description="Invalid times or reason."),
            409: OpenApiResponse(
                description="The downtime overlaps booked exams (listed in `errors.confirm_overlaps`); "
                "send `confirm_overlaps: true` to record it anyway."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def downtime(self, request, pk=None):
        """Record a downtime on the station (blocks its slots on the booking calendar)."""
        station = self.get_object()
        data = DowntimeCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.station_add_downtime(station=station, actor=request.user, **data.validated_data)
        return Response(DowntimeSerializer(created).data, status=status.HTTP_201_CREATED)


class ProcedureTypeViewSet(viewsets.ModelViewSet):
    required_actions = {
        "list": "catalog.view",
        "retrieve": "catalog.view",
        "create": "catalog.manage",
        "update": "catalog.manage",
        "partial_update": "catalog.manage",
    }
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    serializer_class = ProcedureTypeSerializer
    queryset = ProcedureType.objects.all()
    filterset_fields = ["modality", "body_part", "active", "code_value"]

    def perform_create(self, serializer):
        serializer.instance = services.procedure_type_create(
            actor=self.request.user, request=self.request, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.procedure_type_update(
            procedure_type=serializer.instance,
            actor=self.request.user,
            request=self.request,
            **serializer.validated_data,
        )


def _visible_procedures(user):
    return procedure_list_for(user)


class OrderFilter(FilterSet):
    accession_number = filters.CharFilter()
    placer_order_number = filters.CharFilter()
    patient = filters.NumberFilter(field_name="patient_id")
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Order
        fields = ["accession_number", "placer_order_number", "patient", "priority"]


class OrderViewSet(
    AuditedReadMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Orders (Imaging Service Requests). Creating one books it and assigns its identifiers."""

    required_actions = {"list": "order.view", "retrieve": "order.view", "create": "order.create"}
    audit_object_type = "order"
    serializer_class = OrderSerializer
    filterset_class = OrderFilter

    def audit_patient_id(self, obj):
        return obj.patient_id

    def get_queryset(self):
        visible = _visible_procedures(self.request.user)
        return (
            Order.objects.filter(procedures__in=visible.values("pk"))
            .distinct()
            .prefetch_related(
                Prefetch(
                    "procedures",
                    queryset=RequestedProcedure.objects.select_related(
                        "order", "procedure_type"
                    ).prefetch_related(
                        Prefetch("steps", queryset=ScheduledProcedureStep.objects.select_related("station"))
                    ),
                )
            )
            .order_by("-created_at", "-id")
        )

    @extend_schema(
        request=OrderCreateSerializer,
        responses={201: OrderSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
    )
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = OrderCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = services.order_create(
            actor=request.user, request=request, source="api", **serializer.validated_data
        )
        order = self.get_queryset().get(pk=order.pk)
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


class ProcedureFilter(FilterSet):
    status = filters.MultipleChoiceFilter(choices=ProcedureStatus.choices)
    modality = filters.CharFilter(field_name="procedure_type__modality")
    station = filters.CharFilter(field_name="steps__station__ae_title")
    scheduled_after = IsoDateTimeFilter(field_name="steps__start", lookup_expr="gte")
    scheduled_before = IsoDateTimeFilter(field_name="steps__start", lookup_expr="lt")
    accession_number = filters.CharFilter(field_name="order__accession_number")

    class Meta:
        model = RequestedProcedure
        fields = ["status", "modality", "station", "accession_number"]


class ProcedureViewSet(
    AuditedReadMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Requested procedures and their lifecycle. Transitions are POST actions."""

    required_actions = {
        "list": "procedure.view",
        "retrieve": "procedure.view",
        "events": "procedure.view",
        "arrive": "procedure.arrive",
        "start": "procedure.start",
        "complete": "procedure.complete",
        "discontinue": "procedure.discontinue",
        "cancel": "procedure.cancel",
        "reschedule": "procedure.reschedule",
        "book": "procedure.book",
    }
    audit_object_type = "procedure"
    serializer_class = ProcedureSerializer
    filterset_class = ProcedureFilter

    def audit_patient_id(self, obj):
        return obj.order.patient_id

    def get_queryset(self):
        return _visible_procedures(self.request.user).order_by("id").distinct()

    def _done(self, request, proc):
        proc = self.get_queryset().get(pk=proc.pk)
        return Response(ProcedureSerializer(proc).data)

    @extend_schema(request=None, responses=ProcedureSerializer)
    @action(detail=True, methods=["post"])
    def arrive(self, request, pk=None):
        proc = self.get_object()
        return self._done(
            request,
            services.procedure_mark_arrived(
                procedure=proc, actor=request.user, source="api", request=request
            ),
        )

    @extend_schema(request=None, responses=ProcedureSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        proc = self.get_object()
        return self._done(
            request,
            services.procedure_start(procedure=proc, actor=request.user, source="api", request=request),
        )

    @extend_schema(request=None, responses=ProcedureSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        proc = self.get_object()
        return self._done(
            request,
            services.procedure_complete(procedure=proc, actor=request.user, source="api", request=request),
        )

    @extend_schema(request=ReasonSerializer, responses=ProcedureSerializer)
    @action(detail=True, methods=["post"])
    def discontinue(self, request, pk=None):
        proc = self.get_object()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._done(
            request,
            services.procedure_discontinue(
                procedure=proc,
                reason=data.validated_data["reason"],
                actor=request.user,
                source="api",
                request=request,
            ),
        )

    @extend_schema(request=ReasonSerializer, responses=ProcedureSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        proc = self.get_object()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._done(
            request,
            services.procedure_cancel(
                procedure=proc,
                reason=data.validated_data["reason"],
                actor=request.user,
                source="api",
                request=request,
            ),
        )

    @extend_schema(request=RescheduleSerializer, responses=ProcedureSerializer)
    @action(detail=True, methods=["post"])
    def reschedule(self, request, pk=None):
        proc = self.get_object()
        data = RescheduleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        station = None
        if data.validated_data.get("station_ae_title"):
            station = Station.objects.filter(ae_title=data.validated_data["station_ae_title"]).first()
            if station is None:
                raise ValidationError({"station_ae_title": ["Unknown station."]})
        return self._done(
            request,
            services.procedure_reschedule(
                procedure=proc,
                start=data.validated_data["start"],
                reason=data.validated_data["reason"],
                station=station,
                actor=request.user,
                source="api",
                request=request,
            ),
        )

    @extend_schema(request=BookSerializer, responses=ProcedureSerializer)
    @action(detail=True, methods=["post"])
    def book(self, request, pk=None):
        """Book a procedure awaiting booking (status ``requested``) on a station's calendar."""
        proc = self.get_object()
        data = BookSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        station = Station.objects.filter(ae_title=data.validated_data["station_ae_title"]).first()
        if station is None:
            return Response({"station_ae_title": ["Unknown station."]}, status=status.HTTP_400_BAD_REQUEST)
        return self._done(
            request,
            services.procedure_book(
                procedure=proc,
                station=station,
                start=data.validated_data["start"],
                actor=request.user,
                source="api",
                request=request,
            ),
        )

    @extend_schema(responses=ProcedureEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        proc = self.get_object()
        return Response(ProcedureEventSerializer(proc.events.select_related("actor"), many=True).data)
