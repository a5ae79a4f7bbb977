"""Reads for the worklist: the Modality Worklist query engine (one indexed SQL query).

``mwl_query`` is shared by the DICOM C-FIND handler and ``GET /api/v1/worklist/``: it turns
an ``MWLQuery`` (worklist/mwl.py) into one SELECT joining SPS → requested procedure → order
→ patient, procedure type and station, limited to ``settings.RIS_MWL_RESULT_CAP`` rows, and
returns plain rows (dicts keyed by the logical field names below). The number of SQL
queries is one, whatever the number of matches.

Scoping: SPS in final states (COMPLETED, DISCONTINUED, CANCELED) are hidden unless the query
matches on SPS Status; when the query names no station, the calling station's
``worklist_scope`` decides between its own station, its modality, or every station.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import reduce

from django.conf import settings
from django.db import connection
from django.db.models import CharField, F, Lookup, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Upper
from django.utils import timezone

from scheduling.models import FINAL_SPS_STATUSES, ScheduledProcedureStep, SPSStatus

from .mwl import (
    DateMatch,
    DateTimeRange,
    EmptyMatch,
    IntMatch,
    MWLQuery,
    StringMatch,
    TimeRange,
    UIDListMatch,
    dicom_wildcard_to_like,
)

ACTIVE_SPS_STATUSES = tuple(s for s in SPSStatus.values if s not in FINAL_SPS_STATUSES)

# Logical field → ORM path (relative to ScheduledProcedureStep).
RP = "requested_procedure__"
ORDER = RP + "order__"
PATIENT = ORDER + "patient__"
PTYPE = RP + "procedure_type__"

MWL_FIELDS: dict[str, str] = {
    "sps_pk": "id",
    "sps_id": "sps_id",
    "sps_start": "start",
    "sps_end": "end",
    "sps_status": "status",
    "sps_description": "description",
    "sps_modality": "modality",
    "performing_physician": "performing_physician",
    "pre_medication": "pre_medication",
    "contrast_agent": "contrast_agent",
    "station_pk": "station_id",
    "station_ae": "station__ae_title",
    "station_name": "station__name",
    "sps_location": "station__room",
    "rp_pk": "requested_procedure_id",
    "rp_id": RP + "requested_procedure_id",
    "study_uid": RP + "study_instance_uid",
    "rp_description": RP + "description",
    "rp_status": RP + "status",
    "code_value": PTYPE + "code_value",
    "coding_scheme": PTYPE + "coding_scheme",
    "code_meaning": PTYPE + "code_meaning",
    "accession": ORDER + "accession_number",
    "priority": ORDER + "priority",
    "referring": ORDER + "referring_physician",
    "requesting": ORDER + "requesting_physician",
    "requesting_service": ORDER + "requesting_service",
    "reason": ORDER + "reason",
    "placer": ORDER + "placer_order_number",
    "filler": ORDER + "filler_order_number",
    "admission_id": ORDER + "admission_id",
    "patient_pk": ORDER + "patient_id",
    "patient_id": PATIENT + "patient_id",
    "issuer": PATIENT + "issuer",
    "pn_alphabetic": PATIENT + "pn_alphabetic",
    "pn_ideographic": PATIENT + "pn_ideographic",
    "pn_phonetic": PATIENT + "pn_phonetic",
    "birth_date": PATIENT + "birth_date",
    "sex": PATIENT + "sex",
    "medical_alerts": PATIENT + "medical_alerts",
    "allergies": PATIENT + "allergies",
    "pregnancy_status": PATIENT + "pregnancy_status",
}
# Code sequence items are matched against the procedure type's code.
CODE_FIELD_ALIASES = {
    f"{seq}.{name}": name
    for seq in ("procedure_code", "protocol_code")
    for name in ("code_value", "coding_scheme", "code_meaning")
}
ROW_FIELDS = (*MWL_FIELDS, "alt_station_aes")


class Like(Lookup):
    """``lhs LIKE rhs ESCAPE '\\'`` (the rhs is already a LIKE pattern)."""

    lookup_name = "ris_like"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


@dataclass
class MWLResult:
    rows: list[dict]
    truncated: bool
    cap: int


def _alternates_model():
    try:
        from .models import ScheduledStationAlternate
    except ImportError:  # pragma: no cover - model not there yet
        return None
    return ScheduledStationAlternate


def _column(name: str) -> str:
    name = CODE_FIELD_ALIASES.get(name, name)
    try:
        return MWL_FIELDS[name]
    except KeyError as exc:
        raise ValueError(f"unknown MWL field {name}") from exc


def _strip_value(value: str) -> str:
    return value.strip(" ")


def _string_q(column: str, values: tuple[str, ...]) -> Q:
    parts = []
    for raw in values:
        value = _strip_value(raw)
        if "*" in value or "?" in value:
            parts.append(Q(Like(F(column), Value(dicom_wildcard_to_like(value)))))
        else:
            parts.append(Q(**{column: value}))
    return reduce(operator.or_, parts)


def _pn_norm(group: str) -> str:
    """Trailing empty components are insignificant (PS3.5 6.2.1): ``Wang^^`` == ``Wang``."""
    return group.rstrip("^").strip(" ")


def _pn_column_q(column: str, pattern: str, *, upper: bool) -> Q:
    expr = Upper(F(column)) if upper else F(column)
    value = pattern.upper() if upper else pattern
    if "*" in value or "?" in value:
        return Q(Like(expr, Value(dicom_wildcard_to_like(value))))
    if upper:
        return Q(Like(expr, Value(dicom_wildcard_to_like(value))))  # LIKE without wildcards = equality
    return Q(**{column: value})


PATIENT_PN_GROUPS = (("pn_alphabetic", True), ("pn_ideographic", False), ("pn_phonetic", True))


def _patient_name_q(values: tuple[str, ...]) -> Q:
    """Case-insensitive, against the alphabetic, ideographic and phonetic groups."""
    parts = []
    for raw in values:
        groups = raw.split("=")
        if len(groups) == 1:
            pattern = _pn_norm(groups[0])
            if not pattern or set(pattern) == {"*"}:
                return Q()
            parts.append(
                reduce(
                    operator.or_,
                    [
                        _pn_column_q(MWL_FIELDS[name], pattern, upper=upper)
                        for name, upper in PATIENT_PN_GROUPS
                    ],
                )
            )
            continue
        group_qs = []
        for (name, upper), group in zip(PATIENT_PN_GROUPS, groups[:3], strict=False):
            pattern = _pn_norm(group)
            if not pattern or set(pattern) == {"*"}:
                continue
            group_qs.append(_pn_column_q(MWL_FIELDS[name], pattern, upper=upper))
        if not group_qs:
            return Q()
        parts.append(reduce(operator.and_, group_qs))
    return reduce(operator.or_, parts)


def _pn_string_q(column: str, values: tuple[str, ...]) -> Q:
    """PN kept as one DICOM string (physicians): case-insensitive, any component group."""
    parts = []
    for raw in values:
        groups = [g for g in (_pn_norm(g) for g in raw.split("=")) if g and set(g) != {"*"}]
        if not groups:
            return Q()
        for group in groups:
            like = dicom_wildcard_to_like(group.upper())
            expr = Upper(F(column))
            # The group may be the whole value, the first group, or a later one.
            parts.append(
                Q(Like(expr, Value(like)))
                | Q(Like(expr, Value(like + "=%")))
                | Q(Like(expr, Value("%=" + like)))
                | Q(Like(expr, Value("%=" + like + "=%")))
            )
    return reduce(operator.or_, parts)


def _aware(value: datetime) -> datetime:
    return timezone.make_aware(value, timezone.get_current_timezone())


def _day_start(d) -> datetime:
    return _aware(datetime.combine(d, time.min))


def _date_q(column: str, ranges, *, datetime_column: bool) -> Q:
    parts = []
    for lo, hi in ranges:
        q = Q()
        if datetime_column:
            if lo:
                q &= Q(**{f"{column}__gte": _day_start(lo)})
            if hi:
                q &= Q(**{f"{column}__lt": _day_start(hi + timedelta(days=1))})
        else:
            if lo:
                q &= Q(**{f"{column}__gte": lo})
            if hi:
                q &= Q(**{f"{column}__lte": hi})
        parts.append(q)
    return reduce(operator.or_, parts)


def _station_q(values: tuple[str, ...]) -> Q:
    q = _string_q(MWL_FIELDS["station_ae"], values)
    alternates = _alternates_model()
    if alternates is not None:
        q |= Q(pk__in=alternates.objects.filter(_string_q("ae_title", values)).values("step_id"))
    return q


def criterion_q(criterion) -> Q:
    fld = criterion.field
    if fld.startswith("none."):
        # A key the RIS keeps no data for: every entity has the empty value.
        return Q(pk__in=[])
    if isinstance(criterion, StringMatch):
        if fld == "patient_name":
            return _patient_name_q(criterion.values)
        if fld == "station_ae":
            return _station_q(criterion.values)
        column = _column(fld)
        if criterion.pn:
            return _pn_string_q(column, criterion.values)
        return _string_q(column, criterion.values)
    if isinstance(criterion, EmptyMatch):
        if fld == "patient_name":
            return Q(**{MWL_FIELDS["pn_alphabetic"]: ""}, **{MWL_FIELDS["pn_ideographic"]: ""})
        column = _column(fld)
        if fld in ("birth_date", "pregnancy_status"):
            return Q(**{f"{column}__isnull": True})
        return Q(**{f"{column}__isnull": True}) | Q(**{column: ""})
    if isinstance(criterion, UIDListMatch):
        return Q(**{f"{_column(fld)}__in": list(criterion.uids)})
    if isinstance(criterion, IntMatch):
        return Q(**{f"{_column(fld)}__in": list(criterion.values)})
    if isinstance(criterion, DateMatch):
        column = _column(fld)
        return _date_q(column, criterion.ranges, datetime_column=fld == "sps_start")
    if isinstance(criterion, DateTimeRange):
        column = _column(fld)
        q = Q()
        if criterion.lo:
            q &= Q(**{f"{column}__gte": _aware(criterion.lo)})
        if criterion.hi:
            q &= Q(**{f"{column}__lte": _aware(criterion.hi)})
        return q
    if isinstance(criterion, TimeRange):
        column = _column(fld)
        q = Q()
        if criterion.lo:
            q &= Q(**{f"{column}__time__gte": criterion.lo})
        if criterion.hi:
            q &= Q(**{f"{column}__time__lte": criterion.hi})
        return q
    raise TypeError(f"unknown criterion {criterion!r}")


def scope_q(query: MWLQuery, calling_station) -> Q:
    """The calling station's worklist scope, when the query does not name a station."""
    if calling_station is None or query.names_station:
        return Q()
    scope = calling_station.worklist_scope
    if scope == "all":
        return Q()
    if scope == "modality":
        return Q(modality=calling_station.modality)
    q = Q(station_id=calling_station.id)
    alternates = _alternates_model()
    if alternates is not None:
        q |= Q(pk__in=alternates.objects.filter(ae_title=calling_station.ae_title).values("step_id"))
    return q


def mwl_queryset(query: MWLQuery, *, calling_station=None, include_final: bool = False):
    # Steps awaiting booking (no station/time yet) are never on a worklist.
    qs = ScheduledProcedureStep.objects.filter(start__isnull=False)
    for criterion in query.criteria:
        qs = qs.filter(criterion_q(criterion))
    qs = qs.filter(scope_q(query, calling_station))
    if not include_final and not query.names_status:
        # A positive list (not NOT IN): over years almost every step is final, and the
        # (status, start) index then finds the few active ones directly.
        qs = qs.filter(status__in=ACTIVE_SPS_STATUSES)
    qs = qs.annotate(alt_station_aes=_alternates_annotation())
    return qs.order_by("start", "id")


def _alternates_annotation():
    """Further Scheduled Station AE Titles of each step, backslash-joined (one correlated subquery).

    Written as SQL rather than a Subquery of ``.values().annotate()``: building that ORM tree
    cost about a millisecond of CPU per C-FIND.
    """
    alternates = _alternates_model()
    if alternates is None:  # pragma: no cover
        return Value("", output_field=CharField())
    table = alternates._meta.db_table
    sps = ScheduledProcedureStep._meta.db_table
    if connection.vendor == "postgresql":
        agg = "STRING_AGG(a.ae_title, '\\' ORDER BY a.position)"
    else:
        agg = "GROUP_CONCAT(a.ae_title, '\\')"
    sql = f'(SELECT {agg} FROM "{table}" a WHERE a.step_id = "{sps}"."id")'  # noqa: S608 - fixed names
    return RawSQL(sql, [], output_field=CharField())  # noqa: S611 - no user input


def mwl_query(
    *, query: MWLQuery, calling_station=None, cap: int | None = None, include_final: bool = False
) -> MWLResult:
    """Run the worklist query: one SELECT, at most ``cap`` rows (default RIS_MWL_RESULT_CAP)."""
    cap = cap or settings.RIS_MWL_RESULT_CAP
    qs = mwl_queryset(query, calling_station=calling_station, include_final=include_final)
    columns = [*MWL_FIELDS.values(), "alt_station_aes"]
    rows = [dict(zip(ROW_FIELDS, values, strict=True)) for values in qs.values_list(*columns)[: cap + 1]]
    truncated = len(rows) > cap
    return MWLResult(rows=rows[:cap], truncated=truncated, cap=cap)
