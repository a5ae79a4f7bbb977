"""REST API for reports: state transitions are POST actions calling services."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from audit.services import audit_record
from ris.api_mixins import AuditedReadMixin
from ris.errors import ApplicationError

from .. import selectors, services
from ..models import SIGNED_STATUSES, CriticalResult, PeerReview
from ..pdf import render_report_pdf
from .serializers import (
    AddendumCreateSerializer,
    AddendumSerializer,
    ClaimSerializer,
    CriticalAckSerializer,
    CriticalFlagSerializer,
    CriticalNotifySerializer,
    CriticalResultSerializer,
    DraftSerializer,
    PeerReviewSerializer,
    PeerScoreSerializer,
    ReleaseSerializer,
    ReportDetailSerializer,
    ReportSerializer,
    ReturnSerializer,
    SignatureSerializer,
    SignSerializer,
    SubmitSerializer,
)


def _body(serializer_class, request):
    s = serializer_class(data=request.data)
    s.is_valid(raise_exception=True)
    return s.validated_data


class ReportViewSet(
    AuditedReadMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Reports. Lifecycle: draft → preliminary (submit) → final (sign, password required) →
    amended (addendum, password required); preliminary → draft (return)."""

    required_actions = {
        "list": "report.view",
        "retrieve": "report.view",
        "claim": "report.write",
        "save": "report.write",
        "submit": "report.write",
        "review_edit": "report.sign",
        "sign": "report.sign",
        "return_to_author": "report.sign",
        "addendum": "report.sign",
        "release": "report.release",
        "pdf": "report.release",
        "critical": "report.write",
        "search": "report.view",
    }
    audit_object_type = "report"
    filterset_fields = {
        "status": ["exact", "in"],
        "requested_procedure": ["exact"],
        "requested_procedure__order__accession_number": ["exact"],
        "signed_at": ["gte", "lt"],
    }

    def audit_patient_id(self, obj):
        return obj.requested_procedure.order.patient_id

    def get_queryset(self):
        return (
            selectors.report_list_for(self.request.user).select_related("locked_by").order_by("-created_at")
        )

    def get_serializer_class(self):
        return ReportDetailSerializer if self.action == "retrieve" else ReportSerializer

    def _out(self, report, code=status.HTTP_200_OK):
        report = selectors.report_get(pk=report.pk)
        return Response(ReportSerializer(report).data, status=code)

    @extend_schema(request=ClaimSerializer, responses={201: ReportSerializer})
    @action(detail=False, methods=["post"])
    def claim(self, request):
        """Open (create if needed) the draft of a procedure and lock it for you."""
        data = _body(ClaimSerializer, request)
        report = services.report_claim(
            procedure=data["requested_procedure"], actor=request.user, request=request
        )
        return self._out(report, status.HTTP_201_CREATED)

    @extend_schema(request=DraftSerializer, responses={200: ReportSerializer})
    @action(detail=True, methods=["post"])
    def save(self, request, pk=None):
        """Save the draft text (a changed text becomes a new version)."""
        report = self.get_object()
        d = _body(DraftSerializer, request)
        report = services.report_save_draft(
            report=report,
            actor=request.user,
            findings=d["findings"],
            impression=d["impression"],
            expected_revision=d.get("revision"),
            request=request,
        )
        return self._out(report)

    @extend_schema(request=SubmitSerializer, responses={200: ReportSerializer})
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """draft → preliminary."""
        report = self.get_object()
        d = _body(SubmitSerializer, request)
        report = services.report_submit(
            report=report,
            actor=request.user,
            findings=d.get("findings"),
            impression=d.get("impression"),
            expected_revision=d.get("revision"),
            request=request,
        )
        return self._out(report)

    @extend_schema(request=DraftSerializer, responses={200: ReportSerializer})
    @action(detail=True, methods=["post"], url_path="review-edit")
    def review_edit(self, request, pk=None):
        """The reviewer edits a preliminary report (the submitted version is kept for the diff)."""
        report = self.get_object()
        d = _body(DraftSerializer, request)
        report = services.report_review_edit(
            report=report,
            actor=request.user,
            findings=d["findings"],
            impression=d["impression"],
            expected_revision=d.get("revision"),
            request=request,
        )
        return self._out(report)

    @extend_schema(request=SignSerializer, responses={200: SignatureSerializer})
    @action(detail=True, methods=["post"])
    def sign(self, request, pk=None):
        """Approve and sign: preliminary → final. The password is required (21 CFR 11.200)."""
        report = self.get_object()
        d = _body(SignSerializer, request)
        signature = services.report_sign(
            report=report,
            actor=request.user,
            password=d.get("password"),
            expected_revision=d.get("revision"),
            request=request,
        )
        return Response(SignatureSerializer(signature).data)

    @extend_schema(request=ReturnSerializer, responses={200: ReportSerializer})
    @action(detail=True, methods=["post"], url_path="return")
    def return_to_author(self, request, pk=None):
        """preliminary → draft with a comment for the author."""
        report = self.get_object()
        d = _body(ReturnSerializer, request)
        return self._out(
            services.report_return(report=report, actor=request.user, comment=d["comment"], request=request)
        )

    @extend_schema(request=AddendumCreateSerializer, responses={201: AddendumSerializer})
    @action(detail=True, methods=["post"])
    def addendum(self, request, pk=None):
        """A signed addendum to a final report (password required); the report becomes amended."""
        report = self.get_object()
        d = _body(AddendumCreateSerializer, request)
        addendum = services.report_add_addendum(
            report=report, actor=request.user, text=d["text"], password=d.get("password"), request=request
        )
        return Response(AddendumSerializer(addendum).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReleaseSerializer, responses={201: ReleaseSerializer})
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """Record a release/print (发片): kind, recipient, copies."""
        report = self.get_object()
        d = _body(ReleaseSerializer, request)
        release = services.report_release(report=report, actor=request.user, request=request, **d)
        return Response(ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiResponse(description="The signed report as PDF")}
    )
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        """The signed report as PDF (the download is logged as a release)."""
        report = self.get_object()
        if report.status not in SIGNED_STATUSES:
            raise ApplicationError("Only a signed report has a PDF.")
        services.report_release(report=report, actor=request.user, kind="download", request=request)
        response = HttpResponse(render_report_pdf(report), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="report-{report.pk}.pdf"'
        return response

    @extend_schema(request=CriticalFlagSerializer, responses={201: CriticalResultSerializer})
    @action(detail=True, methods=["post"])
    def critical(self, request, pk=None):
        """Flag a critical result (ACR category 1/2/3) on this report."""
        report = self.get_object()
        d = _body(CriticalFlagSerializer, request)
        critical = services.critical_result_flag(report=report, actor=request.user, request=request, **d)
        return Response(CriticalResultSerializer(critical).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("q", str, description="Words or characters (肺结节); all must match")],
        responses={200: ReportSerializer(many=True)},
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def search(self, request):
        """Full-text search over signed reports (English and Chinese). Drafts are never returned."""
        q = request.query_params.get("q", "")
        results = list(selectors.report_search(user=request.user, q=q))
        audit_record(
            action="report.search",
            request=request,
            object_type="report",
            detail={"query": q, "results": len(results)},
        )
        return Response(ReportSerializer(results, many=True).data)


class CriticalResultViewSet(
    AuditedReadMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Critical results (危急值). ``?overdue=1`` lists those past their notification target."""

    required_actions = {
        "list": "critical.view",
        "retrieve": "critical.view",
        "notify": "report.write",
        "acknowledge": "report.write",
    }
    serializer_class = CriticalResultSerializer
    audit_object_type = "critical_result"

    def audit_patient_id(self, obj):
        return obj.report.requested_procedure.order.patient_id

    def get_queryset(self):
        if self.action == "list":
            return selectors.critical_results(overdue_only=self.request.query_params.get("overdue") == "1")
        return CriticalResult.objects.select_related("report__requested_procedure__order")

    @extend_schema(request=CriticalNotifySerializer, responses={200: CriticalResultSerializer})
    @action(detail=True, methods=["post"])
    def notify(self, request, pk=None):
        """Record who was notified, how and when."""
        d = _body(CriticalNotifySerializer, request)
        critical = services.critical_result_notify(
            critical=self.get_object(), actor=request.user, request=request, **d
        )
        return Response(CriticalResultSerializer(critical).data)

    @extend_schema(request=CriticalAckSerializer, responses={200: CriticalResultSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Record the clinician's acknowledgement (after the notification)."""
        d = _body(CriticalAckSerializer, request)
        critical = services.critical_result_acknowledge(
            critical=self.get_object(), actor=request.user, request=request, **d
        )
        return Response(CriticalResultSerializer(critical).data)


class PeerReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your blinded peer-review assignments (RADPEER)."""

    required_actions = {
        "list": "peer_review.score",
        "retrieve": "peer_review.score",
        "score": "peer_review.score",
    }
    serializer_class = PeerReviewSerializer
    queryset = PeerReview.objects.none()  # for the schema; get_queryset scopes to the reviewer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PeerReview.objects.none()
        return (
            PeerReview.objects.filter(reviewer=self.request.user)
            .select_related("report__requested_procedure__order")
            .order_by("scored_at", "-assigned_at")
        )

    @extend_schema(request=PeerScoreSerializer, responses={200: PeerReviewSerializer})
    @action(detail=True, methods=["post"])
    def score(self, request, pk=None):
        d = _body(PeerScoreSerializer, request)
        review = services.peer_review_score(
            review=self.get_object(), actor=request.user, request=request, **d
        )
        return Response(PeerReviewSerializer(review).data)
