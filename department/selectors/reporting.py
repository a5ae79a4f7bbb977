"""Reporting quality: signed per radiologist, error rates, peer review, critical results, reconciliation."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from django.db.models import Count, F, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from imaging.models import ReconciliationItem
from reports.models import CriticalResult, PeerReview, Report, ReportEvent

from ..figures import Figure, Period
from ..models import ProcedureMilestone
from .base import (
    people_names,
    sql_path,
)


def report_facts_python(period: Period, *, field: str) -> list[dict]:
    """Per report whose first ``submitted`` (field="prelim") or first ``signed``
    (field="final") event lies in the period: author, first signer, returned?, addendum?
    The portable twin of the milestone table's report columns."""
    action = "submitted" if field == "prelim" else "signed"
    firsts = ReportEvent.objects.filter(action=action).values("report_id").annotate(t=Min("at"))
    firsts = firsts.filter(t__gte=period.start, t__lt=period.end)
    if period.modality:
        firsts = firsts.filter(report__requested_procedure__procedure_type__modality=period.modality)
    ids = [r["report_id"] for r in firsts]
    facts = {
        pk: {"radiologist": author, "signer": None, "returned": False, "addendum": False}
        for pk, author in Report.objects.filter(pk__in=ids).values_list("pk", "author__username")
    }
    for pk, act, actor in (
        ReportEvent.objects.filter(report_id__in=ids, action__in=["signed", "returned", "addendum"])
        .order_by("at", "id")
        .values_list("report_id", "action", "actor__username")
    ):
        if act == "signed" and facts[pk]["signer"] is None:
            facts[pk]["signer"] = actor
        elif act in ("returned", "addendum"):
            facts[pk][act] = True
    return list(facts.values())


def _report_milestones(period: Period, field: str):
    qs = ProcedureMilestone.objects.filter(**{f"{field}__gte": period.start, f"{field}__lt": period.end})
    if period.modality:
        qs = qs.filter(modality=period.modality)
    return qs


def fig_signed_per_radiologist(period: Period) -> Figure:
    """Reports signed in the period: per author (authored and signed) and per first signer."""
    if sql_path():
        qs = _report_milestones(period, "final")
        authored = dict(qs.values("radiologist").annotate(n=Count("pk")).values_list("radiologist", "n"))
        signed = dict(qs.values("signer").annotate(n=Count("pk")).values_list("signer", "n"))
    else:
        facts = report_facts_python(period, field="final")
        authored = Counter(f["radiologist"] for f in facts)
        signed = Counter(f["signer"] for f in facts)
    keys = {n for n in authored if n} | {n for n in signed if n}
    names = people_names(keys)
    rows = sorted(
        ([names.get(n, n), authored.get(n, 0), signed.get(n, 0)] for n in keys), key=lambda r: (-r[1], r[0])
    )
    return Figure(
        name="signed_per_radiologist",
        title=_("Reports signed per radiologist"),
        columns=[_("Radiologist"), _("Reports authored and signed"), _("Signatures given (reviewer)")],
        rows=rows,
        series_columns=[1, 2],
        horizontal=True,
    )


# ---------------------------------------------------------------------------------------
# Error statistics (差错统计)


def error_rates(period: Period) -> list[list]:
    """Per radiologist (report author): reports first signed in the period and how many of
    them received an addendum (at any time); reports first submitted in the period and how
    many of them were returned for correction."""
    if sql_path():
        signed = {
            r["radiologist"]: (r["n"], r["a"])
            for r in _report_milestones(period, "final")
            .values("radiologist")
            .annotate(n=Count("pk"), a=Count("pk", filter=Q(addendum__isnull=False)))
        }
        submitted = {
            r["radiologist"]: (r["n"], r["a"])
            for r in _report_milestones(period, "prelim")
            .values("radiologist")
            .annotate(n=Count("pk"), a=Count("pk", filter=Q(returned__isnull=False)))
        }
    else:
        signed, submitted = defaultdict(lambda: (0, 0)), defaultdict(lambda: (0, 0))
        for f in report_facts_python(period, field="final"):
            n, a = signed[f["radiologist"]]
            signed[f["radiologist"]] = (n + 1, a + int(f["addendum"]))
        for f in report_facts_python(period, field="prelim"):
            n, a = submitted[f["radiologist"]]
            submitted[f["radiologist"]] = (n + 1, a + int(f["returned"]))
    rows = []
    for name in sorted((set(signed) | set(submitted)) - {None}):
        s_n, s_a = signed.get(name, (0, 0))
        p_n, p_r = submitted.get(name, (0, 0))
        rows.append(
            [
                name,
                s_n,
                s_a,
                round(100 * s_a / s_n, 1) if s_n else None,
                p_n,
                p_r,
                round(100 * p_r / p_n, 1) if p_n else None,
            ]
        )
    return rows


def fig_error_rates(period: Period) -> Figure:
    return Figure(
        name="error_rates",
        title=_("Addendum and returned-for-correction rates per radiologist (%)"),
        columns=[
            _("Radiologist"),
            _("Signed"),
            _("With addendum"),
            _("Addendum rate %"),
            _("Submitted"),
            _("Returned"),
            _("Return rate %"),
        ],
        rows=_named(error_rates(period)),
        series_columns=[3, 6],
        unit="%",
    )


def _named(rows: list[list]) -> list[list]:
    """Rows keyed by username in column 0, labelled with the person's name."""
    names = people_names(r[0] for r in rows)
    return [[names.get(r[0], r[0]), *r[1:]] for r in rows]


PEER_SCORES = ["1", "2a", "2b", "3a", "3b"]


def fig_peer_review(period: Period) -> Figure:
    rows: list[list] = []
    qs = PeerReview.objects.filter(scored_at__gte=period.start, scored_at__lt=period.end).exclude(score="")
    if period.modality:
        qs = qs.filter(report__requested_procedure__procedure_type__modality=period.modality)
    counts: dict[str, Counter] = defaultdict(Counter)
    for name, score, n in (
        qs.values("radiologist__username", "score")
        .annotate(n=Count("id"))
        .values_list("radiologist__username", "score", "n")
    ):
        counts[name or "?"][score] = n
    names = people_names(counts)
    for name in sorted(counts, key=lambda n: names.get(n, n)):
        total = sum(counts[name].values())
        rows.append(
            [names.get(name, name), total]
            + [round(100 * counts[name][s] / total, 1) for s in PEER_SCORES[1:]]
            + [round(100 * sum(counts[name][s] for s in PEER_SCORES[1:]) / total, 1)]
        )
    return Figure(
        name="peer_review",
        title=_("Peer review (RADPEER) discrepancy rates per radiologist (%)"),
        columns=[_("Radiologist"), _("Scored"), "2a %", "2b %", "3a %", "3b %", _("Any discrepancy %")],
        rows=rows,
        chart_type="stacked",
        series_columns=[2, 3, 4, 5],
        unit="%",
    )


def fig_critical(period: Period, *, now=None) -> Figure:
    """Critical results by category: created in the period, notified late, open and overdue now."""
    now = now or timezone.now()
    rows: list[list] = []
    in_period = CriticalResult.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    agg = {
        r["category"]: r
        for r in in_period.values("category").annotate(
            n=Count("id"),
            late=Count("id", filter=Q(notified_at__gt=F("due_at"))),
            open_overdue=Count("id", filter=Q(notified_at__isnull=True, due_at__lt=now)),
        )
    }
    overdue_now = dict(
        CriticalResult.objects.filter(notified_at__isnull=True, due_at__lt=now)
        .values("category")
        .annotate(n=Count("id"))
        .values_list("category", "n")
    )
    for cat in ["1", "2", "3"]:
        r: Any = agg.get(cat, {})
        rows.append(
            [_("Category %(c)s") % {"c": cat}, r.get("n", 0), r.get("late", 0), overdue_now.get(cat, 0)]
        )
    return Figure(
        name="critical_results",
        title=_("Critical results: notified late and overdue"),
        columns=[_("Category"), _("Created in period"), _("Notified late"), _("Overdue now (not notified)")],
        rows=rows,
        series_columns=[2, 3],
    )


def fig_reconciliation(period: Period) -> Figure:
    """Studies that could not be linked to an order, by the AE title that sent them."""
    rows: list[list] = []
    qs = ReconciliationItem.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    rows = [
        [r["source_ae"] or "?", r["n"], r["open"]]
        for r in qs.values("source_ae")
        .annotate(n=Count("id"), open=Count("id", filter=Q(resolved_at__isnull=True)))
        .order_by("-n", "source_ae")
    ]
    return Figure(
        name="reconciliation",
        title=_("Reconciliation exceptions (unlinked studies) by source station"),
        columns=[_("Source AE"), _("Exceptions"), _("Still open")],
        rows=rows,
        series_columns=[1, 2],
    )
