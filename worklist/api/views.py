"""GET /api/v1/worklist/: the Modality Worklist over REST, through the same selector as C-FIND."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from audit.services import audit_record
from scheduling.models import ScheduledProcedureStep
from worklist.mwl import DateMatch, MWLQuery, StringMatch, UIDListMatch
from worklist.selectors import mwl_query

from .serializers import WorklistItemSerializer, WorklistQuerySerializer

PARAM_FIELDS = {
    "station": "station_ae",
    "modality": "sps_modality",
    "patient_id": "patient_id",
    "accession_number": "accession",
    "requested_procedure_id": "rp_id",
}


def query_from_params(params: dict) -> MWLQuery:
    """Validated query parameters → the MWL filter spec (worklist/mwl.py)."""
    query = MWLQuery()
    for param, field in PARAM_FIELDS.items():
        if params.get(param):
            query.criteria.append(StringMatch(field, (params[param],)))
    if params.get("patient_name"):
        query.criteria.append(StringMatch("patient_name", (params["patient_name"],), pn=True))
    if params.get("study_instance_uid"):
        query.criteria.append(UIDListMatch("study_uid", (params["study_instance_uid"],)))
    if params.get("status"):
        query.criteria.append(StringMatch("sps_status", tuple(sorted(params["status"]))))
    if params.get("date_from") or params.get("date_to"):
        query.criteria.append(DateMatch("sps_start", ((params.get("date_from"), params.get("date_to")),)))
    return query


class WorklistViewSet(viewsets.GenericViewSet):
    """Scheduled procedure steps as the modality worklist serves them (final steps hidden unless
    ``include_final`` or a ``status`` is given; at most ``RIS_MWL_RESULT_CAP`` rows, then
    ``truncated`` is true)."""

    required_actions = {"list": "worklist.view"}
    serializer_class = WorklistItemSerializer
    queryset = ScheduledProcedureStep.objects.none()  # for the schema only; rows come from mwl_query

    @extend_schema(parameters=[WorklistQuerySerializer], responses=WorklistItemSerializer(many=True))
    def list(self, request):
        params = WorklistQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = query_from_params(params.validated_data)
        result = mwl_query(query=query, include_final=params.validated_data.get("include_final", False))
        audit_record(
            action="worklist.search",
            request=request,
            object_type="mwl",
            detail={
                "query": {k: v for k, v in request.query_params.items() if k != "page"},
                "matches": len(result.rows),
                "truncated": result.truncated,
            },
        )
        page = self.paginate_queryset(result.rows)
        data = WorklistItemSerializer(page, many=True).data
        response = self.get_paginated_response(data)
        response.data["truncated"] = result.truncated
        return response if isinstance(response, Response) else Response(data)
