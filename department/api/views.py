"""REST endpoints for the dashboard figures (the same selectors as the pages and CSV)."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from department import registry
from department.figures import period_from_params
from department.models import MaterialItem
from department.selectors import STEPS

from .serializers import FigureNameSerializer, FigureSerializer, MaterialItemSerializer

PERIOD_PARAMS = [
    OpenApiParameter(
        "from", OpenApiTypes.DATE, description="First day (local), default 29 days before `to`."
    ),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (local, inclusive), default today."),
    OpenApiParameter("modality", OpenApiTypes.STR, description="Only this modality (CT, MR, …)."),
    OpenApiParameter(
        "step",
        OpenApiTypes.STR,
        enum=[s.key for s in STEPS],
        description="For tat_by_*: the turnaround step to break down (default completed_to_final).",
    ),
]


class FigureViewSet(viewsets.ViewSet):
    """Department figures: turnaround, volumes, workload, error statistics, materials.

    Each figure is a small table (``columns``, ``rows``) and its chart description. The web
    dashboard draws the same JSON; ``…/csv/`` returns the rows as CSV.
    """

    required_actions = {"list": "dashboard.view", "retrieve": "dashboard.view", "csv": "dashboard.view"}
    lookup_field = "name"
    lookup_value_regex = "[a-z_]+"

    def _figure(self, request, name):
        if name not in registry.FIGURES:
            raise NotFound(f"No figure named {name!r}.")
        return registry.build(name, period_from_params(request.query_params), request.query_params)

    @extend_schema(responses=FigureNameSerializer(many=True))
    def list(self, request):
        return Response(
            [
                {"name": n, "url": request.build_absolute_uri(reverse("department-figure-detail", args=[n]))}
                for n in registry.FIGURES
            ]
        )

    @extend_schema(parameters=PERIOD_PARAMS, responses=FigureSerializer)
    def retrieve(self, request, name=None):
        return Response(self._figure(request, name).as_dict())

    @extend_schema(parameters=PERIOD_PARAMS, responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def csv(self, request, name=None):
        fig = self._figure(request, name)
        # A BOM, as on the page's CSV, so that spreadsheet programs read the UTF-8 (Chinese) text.
        response = HttpResponse("\ufeff" + fig.csv(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response


class MaterialItemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Materials catalogue with stock levels and the low-stock flag."""

    required_actions = {"list": "dashboard.view", "retrieve": "dashboard.view"}
    serializer_class = MaterialItemSerializer
    queryset = MaterialItem.objects.order_by("kind", "code")
    lookup_field = "code"
    filterset_fields = ["kind", "active"]
