"""The shape every dashboard number travels in: one Figure feeds the chart, the CSV and the API.

A Figure is a small table (``columns`` + ``rows``) plus a description of how to draw it
(which column gives the labels, which columns are series). The chart JSON and the CSV are
both derived from the same rows, so they cannot disagree.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext as _

from ris.errors import ApplicationError

MAX_RANGE_DAYS = 400


@dataclass(frozen=True)
class Period:
    """A half-open interval of local calendar days [first, last] as aware datetimes."""

    first: date
    last: date
    modality: str = ""

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=timezone.get_current_timezone())

    @property
    def end(self) -> datetime:
        return datetime.combine(
            self.last + timedelta(days=1), time.min, tzinfo=timezone.get_current_timezone()
        )

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def as_query(self) -> dict[str, str]:
        q = {"from": self.first.isoformat(), "to": self.last.isoformat()}
        if self.modality:
            q["modality"] = self.modality
        return q


YEARS = (1900, 2999)


def period_from_params(params, *, default_days: int = 30) -> Period:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD&modality=CT`` (dates inclusive, local time)."""
    from scheduling.models import Modality

    today = timezone.localdate()
    errors: dict[str, list[str]] = {}

    def parse(name: str, default: date) -> date:
        raw = (params.get(name) or "").strip()
        if not raw:
            return default
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            errors[name] = [_("Use the format YYYY-MM-DD.")]
            return default
        # A day near year 1 or 9999 overflows when its local midnight becomes a UTC datetime.
        if not YEARS[0] <= value.year <= YEARS[1]:
            errors[name] = [_("Choose a date between %(a)s and %(b)s.") % {"a": YEARS[0], "b": YEARS[1]}]
            return default
        return value

    last = parse("to", today)
    first = parse("from", last - timedelta(days=default_days - 1))
    modality = (params.get("modality") or "").strip().upper()
    if modality and modality not in Modality.values:
        errors["modality"] = [_("Unknown modality.")]
    if not errors and first > last:
        errors["from"] = [_("The start date is after the end date.")]
    if not errors and (last - first).days >= MAX_RANGE_DAYS:
        errors["from"] = [_("Choose at most %(n)s days.") % {"n": MAX_RANGE_DAYS}]
    if errors:
        raise ApplicationError(_("Invalid date range."), fields=errors)
    return Period(first=first, last=last, modality=modality)


@dataclass
class Figure:
    name: str
    title: str
    columns: list[str]
    rows: list[list]
    chart_type: str = "bar"  # bar | line | stacked
    label_column: int = 0
    series_columns: list[int] = field(default_factory=list)
    unit: str = ""
    note: str = ""
    # Extra tables shown under the chart (and in the CSV when asked for), same row shape.
    horizontal: bool = False

    def chart(self) -> dict:
        series = self.series_columns or list(range(1, len(self.columns)))
        return {
            "name": self.name,
            "title": self.title,
            "type": self.chart_type,
            "unit": self.unit,
            "note": self.note,
            "horizontal": self.horizontal,
            "labels": [_plain(r[self.label_column]) for r in self.rows],
            "datasets": [
                {"label": self.columns[i], "data": [_plain(r[i]) for r in self.rows]} for i in series
            ],
        }

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "unit": self.unit,
            "columns": self.columns,
            "rows": [[_plain(v) for v in r] for r in self.rows],
            "chart": self.chart(),
        }

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for r in self.rows:
            writer.writerow(["" if v is None else _plain(v) for v in r])
        return buf.getvalue()


def _plain(v):
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float):
        return round(v, 2)
    if isinstance(v, datetime):
        return timezone.localtime(v).isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return v


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks: PostgreSQL ``percentile_cont``."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None
    pos = p * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
