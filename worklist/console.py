"""Reads for the technologist console: today's exams per station/modality, one exam's detail."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from django.db.models import Count, Prefetch, Q, QuerySet

from scheduling.models import (
    PRIORITY_RANK,
    ProcedureEvent,
    ProcedureStatus,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
)
from scheduling.selectors import day_bounds

from .models import ExamNote, MPPSEvent, PerformedProcedureStep

S = ProcedureStatus

# The console's columns; discontinued and cancelled exams are shown with the completed ones.
COLUMNS = (
    ("scheduled", (S.SCHEDULED,)),
    ("arrived", (S.ARRIVED,)),
    ("in_progress", (S.IN_PROGRESS,)),
    ("completed", (S.COMPLETED, S.DISCONTINUED)),
    # Never performed: not "completed" (issue 9 item 20), but still on the day's board.
    ("cancelled", (S.CANCELLED,)),
)


@dataclass
class ConsoleFilter:
    day: date
    station: Station | None = None
    modality: str = ""


def _steps(f: ConsoleFilter) -> QuerySet[ScheduledProcedureStep]:
    start, end = day_bounds(f.day)
    qs = ScheduledProcedureStep.objects.filter(start__gte=start, start__lt=end)
    if f.station is not None:
        qs = qs.filter(station=f.station)
    if f.modality:
        qs = qs.filter(modality=f.modality)
    return qs


def console_version(f: ConsoleFilter) -> str:
    """A cheap fingerprint of what the list shows: polling returns 204 while it is unchanged."""
    rows = _steps(f).values_list(
        "pk", "status", "requested_procedure__status", "requested_procedure__updated_at"
    )
    digest = hashlib.sha1(usedforsecurity=False)
    for row in rows.order_by("pk"):
        digest.update(repr(row).encode())
    return digest.hexdigest()[:16]


def console_columns(f: ConsoleFilter) -> list[tuple[str, list[ScheduledProcedureStep]]]:
    steps = list(
        _steps(f)
        .select_related(
            "station",
            "requested_procedure__order__patient",
            "requested_procedure__procedure_type",
        )
        .annotate(mpps_count=Count("requested_procedure__performed_steps"))
        .order_by("start", "pk")
    )
    out = []
    for key, statuses in COLUMNS:
        column = [s for s in steps if s.requested_procedure.status in statuses]
        if key == "arrived":
            # Who to call in next: STAT/HIGH first, then in order of arrival.
            column.sort(
                key=lambda s: (
                    PRIORITY_RANK.get(s.requested_procedure.order.priority, 9),
                    s.requested_procedure.arrived_at or s.start,
                )
            )
        out.append((key, column))
    return out


def exam_get(pk: int) -> RequestedProcedure | None:
    return (
        RequestedProcedure.objects.select_related("order__patient", "procedure_type")
        .prefetch_related(
            Prefetch("steps", queryset=ScheduledProcedureStep.objects.select_related("station")),
            Prefetch(
                "performed_steps",
                queryset=PerformedProcedureStep.objects.prefetch_related(
                    Prefetch("events", queryset=MPPSEvent.objects.order_by("at", "id")), "exceptions"
                ).order_by("created_at"),
            ),
            Prefetch("exam_notes", queryset=ExamNote.objects.select_related("author")),
            # In the order recorded: a modality's clock may put its start a moment before
            # the order row written in the same second.
            Prefetch("events", queryset=ProcedureEvent.objects.order_by("id")),
        )
        .filter(pk=pk)
        .first()
    )


def exam_version(proc: RequestedProcedure) -> str:
    mpps = PerformedProcedureStep.objects.filter(procedures=proc).values_list("pk", "status", "updated_at")
    current = RequestedProcedure.objects.filter(pk=proc.pk).values_list("status", "updated_at").first()
    images = None
    try:
        from imaging.models import Series

        images = list(
            Series.objects.filter(study__requested_procedure=proc)
            .order_by("pk")
            .values_list("pk", "num_instances", "qc_flagged")
        )
    except ImportError:  # pragma: no cover
        pass
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(repr((current, list(mpps.order_by("pk")), images)).encode())
    return digest.hexdigest()[:16]


def materials(kind: str) -> list[tuple[str, str]]:
    """Active materials of one kind from the department ledger (empty when it is not installed)."""
    try:
        from department.models import MaterialItem
    except ImportError:  # pragma: no cover
        return []
    return list(MaterialItem.objects.filter(kind=kind, active=True).values_list("code", "name"))


@dataclass
class SeriesCheck:
    series_uid: str
    description: str
    reported: int | None  # images the modality said it made (MPPS), None if not in any MPPS
    received: int | None  # instances the archive holds, None if the series never arrived

    @property
    def ok(self) -> bool:
        return self.reported is not None and self.received == self.reported


@dataclass
class ImageCheck:
    series: list[SeriesCheck]
    reported: int
    received: int
    # False when the exam's station has never sent an MPPS (inferred from history: some
    # modalities do not send MPPS at all); then a series missing from MPPS is no warning.
    mpps_expected: bool = True

    @property
    def complete(self) -> bool:
        if not self.mpps_expected:
            return bool(self.series) and all(s.received for s in self.series)
        return bool(self.series) and all(s.ok for s in self.series)


def station_sends_mpps(proc: RequestedProcedure, mpps_list: list[PerformedProcedureStep]) -> bool:
    """Whether MPPS is expected for this exam: it has one, or its station has ever sent one."""
    if mpps_list:
        return True
    stations = [s.station for s in proc.steps.all()]
    aes = [st.ae_title for st in stations]
    return PerformedProcedureStep.objects.filter(
        Q(station__in=stations) | Q(source_ae__in=aes) | Q(performed_station_ae__in=aes)
    ).exists()


def image_check(proc: RequestedProcedure, mpps_list: list[PerformedProcedureStep]) -> ImageCheck | None:
    """Images reported by the modality (MPPS Performed Series) against images received.

    Returns None when neither side knows anything yet. Two queries at most.
    """
    reported: dict[str, tuple[str, int]] = {}
    for mpps in mpps_list:
        for item in mpps.performed_series or []:
            uid = item.get("series_uid")
            if uid:
                reported[uid] = (item.get("description", ""), int(item.get("images") or 0))
    try:
        from imaging.models import Series
    except ImportError:  # pragma: no cover - imaging is optional for the console
        Series = None
    received: dict[str, tuple[str, int]] = {}
    if Series is not None:
        rows = Series.objects.filter(study__requested_procedure=proc) | Series.objects.filter(
            series_instance_uid__in=list(reported)
        )
        for uid, desc, count in rows.values_list("series_instance_uid", "description", "num_instances"):
            received[uid] = (desc, count)
    if not reported and not received:
        return None
    series = []
    for uid in list(reported) + [u for u in received if u not in reported]:
        desc = (reported.get(uid) or received.get(uid) or ("", 0))[0]
        series.append(
            SeriesCheck(
                series_uid=uid,
                description=desc,
                reported=reported[uid][1] if uid in reported else None,
                received=received[uid][1] if uid in received else None,
            )
        )
    return ImageCheck(
        series=series,
        reported=sum(v[1] for v in reported.values()),
        received=sum(v[1] for v in received.values()),
        mpps_expected=station_sends_mpps(proc, mpps_list),
    )


def qc_flags(procedure_ids: list[int]) -> dict[int, list[str]]:
    """Image QC flags per procedure from the imaging app (one query; empty without it)."""
    try:
        from imaging.selectors import qc_flags_for_procedures
    except ImportError:  # pragma: no cover
        return {}
    return qc_flags_for_procedures(procedure_ids)


def contrast_warning(proc: RequestedProcedure, steps: list[ScheduledProcedureStep]) -> bool:
    """An allergy is recorded and the exam involves contrast: say so before it is given."""
    if not proc.order.patient.allergies:
        return False
    text = " ".join(
        [proc.procedure_type.code_meaning, proc.procedure_type.preparation, proc.description]
        + [s.contrast_agent for s in steps]
    ).lower()
    return any(s.contrast_agent for s in steps) or "contrast" in text or "造影" in text or "增强" in text
