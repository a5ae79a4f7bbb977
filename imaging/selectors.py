"""Reads for imaging: studies, the reconciliation queue, ranked candidates, QC flags."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from registration.names import has_han, to_pinyin
from scheduling.models import RequestedProcedure

from .models import DuplicateConflict, ObjectState, ReceivedObject, ReconciliationItem, Series, Study

logger = logging.getLogger(__name__)


def mpps_expected_counts(series_uids: list[str]) -> dict[str, int]:
    """Images per series as reported in MPPS Performed Series Sequences (0040,0340).

    Read through the worklist app's model when it exists (guarded: imaging works without it).
    """
    try:
        from worklist.models import PerformedProcedureStep
    except ImportError:
        return {}
    if not hasattr(PerformedProcedureStep, "performed_series"):
        return {}
    wanted = set(series_uids)
    counts: dict[str, int] = {}
    try:
        # A JSON containment filter per UID would need one query each; the MPPS rows of
        # interest are few, so filter by Study Instance UID of those series' studies instead.
        study_uids = list(
            Series.objects.filter(series_instance_uid__in=wanted)
            .values_list("study__study_instance_uid", flat=True)
            .distinct()
        )
        rows = PerformedProcedureStep.objects.filter(study_instance_uid__in=study_uids).values_list(
            "performed_series", flat=True
        )
        for performed in rows:
            for item in performed or []:
                uid = item.get("series_uid")
                images = item.get("images")
                if uid in wanted and isinstance(images, int):
                    counts[uid] = max(counts.get(uid, 0), images)
    except Exception:  # the worklist schema is another app's; never break imaging on it
        logger.exception("could not read MPPS performed series")
        return {}
    return counts


def study_list(*, query: str = "") -> QuerySet[Study]:
    qs = Study.objects.select_related("requested_procedure__order", "patient").order_by("-last_received_at")
    if query:
        qs = qs.filter(
            Q(accession_number__iexact=query)
            | Q(dicom_patient_id__iexact=query)
            | Q(study_instance_uid=query)
            | Q(patient_name__icontains=query)
        )
    return qs


def study_get(*, pk: int) -> Study:
    return (
        Study.objects.select_related("requested_procedure__order__patient", "patient")
        .prefetch_related(
            Prefetch("series", queryset=Series.objects.order_by("series_number", "id")),
            "links__requested_procedure__order",
            "links__linked_by",
            "links__unlinked_by",
        )
        .get(pk=pk)
    )


def study_conflicts(*, study: Study) -> QuerySet[DuplicateConflict]:
    return DuplicateConflict.objects.filter(
        original__study_instance_uid=study.study_instance_uid
    ).select_related("original")


def reconciliation_queue() -> QuerySet[ReconciliationItem]:
    return (
        ReconciliationItem.objects.filter(resolved_at__isnull=True)
        .select_related("study", "study__patient")
        .order_by("-created_at")
    )


def dead_objects() -> QuerySet:
    """Objects the ingest gave up on (kept on disk; an administrator must look)."""
    return ReceivedObject.objects.filter(state=ObjectState.DEAD).order_by("-received_at")


def open_conflicts() -> QuerySet[DuplicateConflict]:
    return DuplicateConflict.objects.filter(resolved_at__isnull=True).select_related("original")


@dataclass
class Candidate:
    procedure: Any  # a RequestedProcedure annotated with n_studies
    rank: int  # 1 best
    score: int
    matches: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


RANK_LABELS = {
    1: "Accession Number",
    2: "Study Instance UID",
    3: "Patient ID + date + modality",
    4: "Name",
}


def _name_keys(study: Study) -> tuple[str, str]:
    """(alphabetic, ideographic) search keys of the study's Patient's Name."""
    groups = study.patient_name.split("=")
    alpha = groups[0].replace("^", "").replace(" ", "").lower() if groups else ""
    ideo = groups[1].replace("^", "").replace(" ", "") if len(groups) > 1 else ""
    if not ideo and has_han(alpha):
        ideo, alpha = alpha, ""
    if ideo and not alpha:
        alpha = to_pinyin(ideo).replace(" ", "").lower()
    return alpha, ideo


def reconciliation_candidates(*, study: Study, limit: int = 10) -> list[Candidate]:
    """Orders that may own the study, best first (Accession > Study UID > ID+date+modality > name)."""
    base = RequestedProcedure.objects.select_related("order__patient", "procedure_type").annotate(
        n_studies=Count("studies")
    )
    found: dict[int, Candidate] = {}

    def add(procs, rank: int, why: str) -> None:
        for p in procs:
            cand = found.get(p.pk)
            if cand is None:
                found[p.pk] = Candidate(procedure=p, rank=rank, score=0, matches=[why])
            else:
                cand.rank = min(cand.rank, rank)
                if why not in cand.matches:
                    cand.matches.append(why)

    if study.accession_number:
        add(base.filter(order__accession_number=study.accession_number), 1, "accession")
    add(base.filter(study_instance_uid=study.study_instance_uid), 2, "study_uid")
    modalities = [m for m in study.modalities.split("\\") if m]
    if study.dicom_patient_id:
        qs = base.filter(order__patient__patient_id=study.dicom_patient_id)
        if study.study_date:
            qs = qs.filter(
                steps__start__date__gte=study.study_date - timedelta(days=1),
                steps__start__date__lte=study.study_date + timedelta(days=1),
            )
        if modalities:
            qs = qs.filter(procedure_type__modality__in=modalities)
        add(qs.distinct()[:limit], 3, "patient_date_modality")
    alpha, ideo = _name_keys(study)
    if alpha or ideo:
        name_q = Q()
        if ideo:
            name_q |= Q(order__patient__search_compact__contains=ideo)
        if alpha and len(alpha) >= 3:
            name_q |= Q(order__patient__search_compact__contains=alpha)
        qs = base.filter(name_q).exclude(status="cancelled")
        if study.study_date:
            qs = qs.filter(
                steps__start__date__gte=study.study_date - timedelta(days=7),
                steps__start__date__lte=study.study_date + timedelta(days=7),
            )
        add(qs.distinct()[:limit], 4, "name")

    for cand in found.values():
        p = cand.procedure
        patient = p.order.patient
        if study.accession_number and p.order.accession_number != study.accession_number:
            cand.mismatches.append("accession")
        if p.study_instance_uid != study.study_instance_uid:
            cand.mismatches.append("study_uid")
        if study.dicom_patient_id and patient.patient_id != study.dicom_patient_id:
            cand.mismatches.append("patient_id")
        if modalities and p.procedure_type.modality not in modalities:
            cand.mismatches.append("modality")
        if p.status == "cancelled":
            cand.mismatches.append("cancelled")
        if p.n_studies:
            cand.mismatches.append("has_images")
        cand.score = 100 * (5 - cand.rank) + 10 * len(cand.matches) - 5 * len(cand.mismatches)
    return sorted(found.values(), key=lambda c: (c.rank, -c.score, c.procedure.pk))[:limit]


def qc_flags_for_procedures(procedure_ids: list[int]) -> dict[int, list[str]]:
    """QC flags per procedure (for the technologist console): one query."""
    flags: dict[int, list[str]] = {}
    rows = Series.objects.filter(
        study__requested_procedure_id__in=procedure_ids, qc_flagged=True
    ).values_list("study__requested_procedure_id", "qc")
    for proc_id, qc in rows:
        for flag in (qc or {}).get("flags", []):
            found = flags.setdefault(int(proc_id), [])
            if flag not in found:
                found.append(flag)
    return flags
