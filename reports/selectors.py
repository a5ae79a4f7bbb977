"""Reads for reports: the reading worklist with counters, review queue, priors, search,
critical results, peer-review statistics, and the optional imaging preview."""

from __future__ import annotations

import difflib
import importlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Case, Count, IntegerField, Prefetch, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from ris.roles import Role, has_permission, user_roles
from scheduling.models import PRIORITY_RANK, ProcedureStatus, RequestedProcedure, ScheduledProcedureStep

from .models import (
    SIGNED_STATUSES,
    CriticalResult,
    PeerReview,
    PeerReviewScore,
    Report,
    ReportStatus,
    ReportVersion,
    VersionKind,
)

logger = logging.getLogger(__name__)

S = ReportStatus

PRIORITY_ORDER = Case(
    *[When(order__priority=p, then=Value(rank)) for p, rank in PRIORITY_RANK.items()],
    default=Value(9),
    output_field=IntegerField(),
)

# Quick filters of the reading worklist, each with its counter.
QUICK_FILTERS = ("all", "unread", "my_drafts", "returned", "preliminary", "stat")


@dataclass
class WorklistFilters:
    modality: str = ""
    body_part: str = ""
    station: str = ""
    referring: str = ""
    date_from: date | None = None
    date_to: date | None = None
    quick: str = "all"
    extra: dict = field(default_factory=dict)


def _readable_procedures() -> QuerySet[RequestedProcedure]:
    """Exams to read: images arrived or exam completed, report not signed."""
    return (
        RequestedProcedure.objects.filter(
            Q(images_available_at__isnull=False) | Q(status=ProcedureStatus.COMPLETED)
        )
        .exclude(status=ProcedureStatus.CANCELLED)
        .exclude(report__status__in=SIGNED_STATUSES)
    )


def _quick_q(quick: str, user) -> Q:
    return {
        "all": Q(),
        "unread": Q(report__isnull=True) | Q(report__status=S.DRAFT, report__author__isnull=True),
        "my_drafts": Q(report__status=S.DRAFT, report__author=user, report__returned_at__isnull=True)
        | Q(report__status=S.DRAFT, report__locked_by=user, report__returned_at__isnull=True),
        "returned": Q(report__status=S.DRAFT, report__returned_at__isnull=False, report__author=user),
        "preliminary": Q(report__status=S.PRELIMINARY),
        "stat": Q(order__priority="STAT"),
    }.get(quick, Q())


def reading_worklist(
    *, user, filters: WorklistFilters
) -> tuple[QuerySet[RequestedProcedure], dict[str, int]]:
    """The reading worklist (STAT/priority first, then longest waiting) and counters per quick filter."""
    base = _readable_procedures()
    if filters.modality:
        base = base.filter(procedure_type__modality=filters.modality)
    if filters.body_part:
        base = base.filter(procedure_type__body_part=filters.body_part)
    if filters.station:
        base = base.filter(steps__station__ae_title=filters.station)
    if filters.referring:
        base = base.filter(order__referring_physician__icontains=filters.referring)
    tz = timezone.get_current_timezone()
    waiting_since = Coalesce("images_available_at", "ended_at", "started_at", "updated_at")
    base = base.annotate(waiting_since=waiting_since)
    if filters.date_from:
        base = base.filter(waiting_since__gte=datetime.combine(filters.date_from, time.min, tzinfo=tz))
    if filters.date_to:
        base = base.filter(
            waiting_since__lt=datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=tz)
        )
    counts = base.aggregate(
        **{name: Count("pk", filter=_quick_q(name, user), distinct=True) for name in QUICK_FILTERS}
    )
    rows = (
        base.filter(_quick_q(filters.quick, user))
        .select_related(
            "order__patient", "procedure_type", "report", "report__locked_by__ris_profile", "report__author"
        )
        .prefetch_related(
            Prefetch("steps", queryset=ScheduledProcedureStep.objects.select_related("station"))
        )
        .annotate(priority_rank=PRIORITY_ORDER)
        .order_by("priority_rank", "waiting_since", "pk")
        .distinct()
    )
    # Per-modality counters (before the modality filter, so the chips show where the work is).
    counts["modalities"] = _modality_counts(filters, user)
    return rows, counts


READING_WORKLIST_PAGE_SIZE = 50


def reading_worklist_page(
    *, user, filters: WorklistFilters, page: int | str | None = 1, per_page: int = READING_WORKLIST_PAGE_SIZE
) -> tuple[Page, dict[str, int]]:
    """One page of the reading worklist, with ``page.paginator.count`` the total behind the counter.

    The interface the pages use: filters and a page number in, a Django ``Page`` and the
    counters out (a faster query can replace ``reading_worklist`` behind it).
    """
    rows, counts = reading_worklist(user=user, filters=filters)
    return Paginator(rows, per_page).get_page(page), counts


def _modality_counts(filters: WorklistFilters, user) -> list[tuple[str, int]]:
    base = _readable_procedures().filter(_quick_q(filters.quick, user))
    rows = (
        base.values("procedure_type__modality")
        .annotate(n=Count("pk", distinct=True))
        .order_by("procedure_type__modality")
    )
    return [(r["procedure_type__modality"], r["n"]) for r in rows]


def next_to_read(*, user, filters: WorklistFilters, after_pk: int | None = None) -> RequestedProcedure | None:
    """The first exam in worklist order not claimed by someone else (keyboard "open next")."""
    rows, _ = reading_worklist(user=user, filters=filters)
    now = timezone.now()
    for proc in rows[:200]:
        if after_pk and proc.pk == after_pk:
            continue
        report = getattr(proc, "report", None) if hasattr(proc, "report") else None
        if report is not None:
            if report.status != S.DRAFT:
                continue
            if report.locked_by_id and report.locked_by_id != user.pk and report.locked_until > now:
                continue
        return proc
    return None


def report_get(*, pk: int) -> Report:
    return Report.objects.select_related(
        "requested_procedure__order__patient",
        "requested_procedure__procedure_type",
        "author__ris_profile",
        "signed_by__ris_profile",
        "locked_by__ris_profile",
        "returned_by__ris_profile",
    ).get(pk=pk)


def report_list_for(user) -> QuerySet[Report]:
    """Reports the user may see: front desk only signed ones (for release)."""
    qs = Report.objects.select_related(
        "requested_procedure__order__patient", "requested_procedure__procedure_type", "signed_by", "author"
    )
    roles = user_roles(user)
    if not roles or not has_permission(user, "report.view"):
        return qs.none()
    if Role.ADMIN not in roles and roles <= {Role.FRONT_DESK}:
        qs = qs.filter(status__in=SIGNED_STATUSES)
    return qs


def claimed_reports() -> QuerySet[Report]:
    """Drafts currently claimed (lock not expired), longest held first."""
    return (
        Report.objects.filter(status=S.DRAFT, locked_by__isnull=False, locked_until__gt=timezone.now())
        .select_related(
            "requested_procedure__order__patient",
            "requested_procedure__procedure_type",
            "locked_by__ris_profile",
        )
        .order_by("updated_at", "pk")
    )


def review_queue() -> QuerySet[Report]:
    return (
        Report.objects.filter(status=S.PRELIMINARY)
        .select_related(
            "requested_procedure__order__patient",
            "requested_procedure__procedure_type",
            "author__ris_profile",
        )
        .annotate(
            priority_rank=Case(
                *[
                    When(requested_procedure__order__priority=p, then=Value(r))
                    for p, r in PRIORITY_RANK.items()
                ],
                default=Value(9),
                output_field=IntegerField(),
            )
        )
        .order_by("priority_rank", "submitted_at", "pk")
    )


def prior_exams(*, procedure: RequestedProcedure, limit: int = 20) -> list[RequestedProcedure]:
    """Other performed exams of the same patient, newest first, with their report."""
    performed = (ProcedureStatus.IN_PROGRESS, ProcedureStatus.COMPLETED, ProcedureStatus.DISCONTINUED)
    return list(
        RequestedProcedure.objects.filter(order__patient_id=procedure.order.patient_id)
        .filter(Q(status__in=performed) | Q(images_available_at__isnull=False))
        .exclude(pk=procedure.pk)
        .select_related("procedure_type", "order", "report")
        .order_by(Coalesce("ended_at", "started_at", "order__created_at").desc())[:limit]
    )


def submitted_version(report: Report) -> ReportVersion | None:
    return report.versions.filter(kind=VersionKind.PRELIMINARY).order_by("-number").first()


def final_version(report: Report) -> ReportVersion | None:
    return report.versions.filter(kind=VersionKind.FINAL).order_by("-number").first()


def text_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Word-level diff as (op, text) with op in '=', '-', '+' for display."""
    a, b = _tokens(old), _tokens(new)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", "".join(a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", "".join(a[i1:i2])))
            if j2 > j1:
                out.append(("+", "".join(b[j1:j2])))
    return out


def _tokens(text: str) -> list[str]:
    """Words and spaces for Latin text, single characters for CJK (no spaces between words)."""
    return re.findall(r"[A-Za-z0-9_]+|\s+|.", text or "", flags=re.S)


def report_search(*, user, q: str, limit: int = 100) -> QuerySet[Report]:
    """Full-text search over signed reports (final/amended). Drafts are never returned.

    PostgreSQL: substring match on the lower-cased ``search_text`` answered by a pg_trgm GIN
    index (works for 肺结节 inside a sentence, where word-based full-text search fails).
    SQLite: the same match without an index.
    """
    terms = [t for t in (q or "").lower().split() if t]
    qs = report_list_for(user).filter(status__in=SIGNED_STATUSES)
    if not terms:
        return qs.none()
    for term in terms[:8]:
        qs = qs.filter(search_text__contains=term)
    return qs.order_by("-signed_at")[:limit]


def recently_signed(*, user, limit: int = 50) -> QuerySet[Report]:
    return report_list_for(user).filter(status__in=SIGNED_STATUSES).order_by("-signed_at")[:limit]


def critical_results(*, overdue_only: bool = False, open_only: bool = True) -> QuerySet[CriticalResult]:
    qs = CriticalResult.objects.select_related(
        "report__requested_procedure__order__patient",
        "report__requested_procedure__procedure_type",
        "created_by",
    )
    if open_only:
        qs = qs.filter(acknowledged_at__isnull=True)
    if overdue_only:
        qs = qs.filter(notified_at__isnull=True, due_at__lt=timezone.now())
    return qs.order_by("due_at")


def peer_reviews_for(user) -> QuerySet[PeerReview]:
    return (
        PeerReview.objects.filter(reviewer=user)
        .select_related("report__requested_procedure__procedure_type", "report__requested_procedure__order")
        .order_by("scored_at", "-assigned_at")
    )


def peer_review_results(*, since: datetime | None = None) -> list[dict]:
    """Per radiologist: number scored, count per RADPEER score, discrepancy rate (2-3)."""
    qs = PeerReview.objects.filter(scored_at__isnull=False)
    if since:
        qs = qs.filter(scored_at__gte=since)
    agg = {f"s_{v}": Count("pk", filter=Q(score=v)) for v in PeerReviewScore.values}
    # Any: the score columns are annotated by name, which no TypedDict of values() knows.
    rows: Iterable[Any] = (
        qs.values("radiologist", "radiologist__username", "radiologist__ris_profile__printed_name")
        .annotate(total=Count("pk"), **agg)
        .order_by("radiologist__username")
    )
    out = []
    for r in rows:
        discrepant = r["total"] - r["s_1"]
        significant = r["s_2b"] + r["s_3b"]
        out.append(
            {
                "radiologist": r["radiologist__ris_profile__printed_name"] or r["radiologist__username"],
                "total": r["total"],
                "scores": [(v, r[f"s_{v}"]) for v in PeerReviewScore.values],
                "discrepancy_rate": round(100.0 * discrepant / r["total"], 1) if r["total"] else 0.0,
                "significant": significant,
            }
        )
    return out


def viewer_url(procedure: RequestedProcedure) -> str:
    template = getattr(settings, "RIS_VIEWER_URL_TEMPLATE", "")
    if not template:
        return ""
    try:
        return template.format(
            study_instance_uid=procedure.study_instance_uid,
            accession_number=procedure.order.accession_number,
        )
    except (KeyError, IndexError, ValueError):
        logger.warning("RIS_VIEWER_URL_TEMPLATE is malformed")
        return ""


def imaging_preview(procedure: RequestedProcedure) -> dict:
    """Series summary and thumbnails from the imaging app when it has them; empty otherwise.

    Reporting must work without the imaging app (or before images arrive): any missing
    module, selector, URL or error yields no preview rather than a broken reporting page.
    ``imaging.selectors.study_preview_for_procedure(procedure=…)`` is used when it exists;
    otherwise the linked studies are summarised here (read-only).
    """
    try:
        selectors = importlib.import_module("imaging.selectors")
    except ImportError:
        return {}
    fn = getattr(selectors, "study_preview_for_procedure", None)
    try:
        if fn is not None:
            result = fn(procedure=procedure)
            return result if isinstance(result, dict) else {"thumbnails": list(result or [])}
        return _imaging_summary(procedure)
    except Exception:  # the preview must never break reporting
        logger.exception("imaging preview failed for procedure %s", procedure.pk)
        return {}


# URL names the imaging app may expose for a rendered preview of one instance.
_PREVIEW_URL_NAMES = ("imaging:thumbnail", "imaging:instance_preview", "imaging:instance_thumbnail")


def _imaging_summary(procedure: RequestedProcedure) -> dict:
    studies = getattr(procedure, "studies", None)
    if studies is None:
        return {}
    series = []
    thumbnails = []
    total = 0
    for study in studies.all().prefetch_related("series__thumbnail_instance"):
        total += study.num_instances or 0
        for s in study.series.all():
            series.append(
                {
                    "number": s.series_number,
                    "modality": s.modality,
                    "description": s.description,
                    "images": s.num_instances,
                }
            )
            inst = s.thumbnail_instance
            if inst is None:
                continue
            for name in _PREVIEW_URL_NAMES:
                try:
                    thumbnails.append({"url": reverse(name, kwargs={"pk": inst.pk}), "label": s.description})
                    break
                except NoReverseMatch:
                    continue
    if not series:
        return {}
    study_urls = []
    for study in studies.all():
        try:
            study_urls.append(reverse("imaging:study_detail", kwargs={"pk": study.pk}))
        except NoReverseMatch:
            break
    return {"series": series, "thumbnails": thumbnails, "instance_count": total, "study_urls": study_urls}
